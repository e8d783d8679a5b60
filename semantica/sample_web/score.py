"""How well a mining run recovered a sample web's ground truth (precision / recall)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def score_mining(sample_web: Path, mined: Path) -> dict:
    """Image precision/recall (kept pictures per page), pair precision and status agreement."""
    truth = pq.read_table(Path(sample_web) / "ground_truth" / "refs.parquet").to_pylist()
    got = pq.read_table(Path(mined) / "refs").to_pylist()
    picture = {(r["page_url"], r["url"]): r["picture_id"] for r in truth}
    want_images = {(r["page_url"], r["picture_id"]) for r in truth if r["keep"]}
    got_images = {(r["page_url"], picture.get((r["page_url"], r["url"]), r["url"]))
                  for r in got if r["status"] == "kept"}
    tp = len(want_images & got_images)
    want_pairs = {(p["page_url"], frozenset((p["url_a"], p["url_b"])))
                  for p in pq.read_table(Path(sample_web) / "ground_truth" / "pairs.parquet").to_pylist()}
    got_pairs = {(p["page_url"], frozenset((p["cond_url"], p["target_url"])))
                 for p in pq.read_table(Path(mined) / "pairs").to_pylist()}
    expected = {(r["page_url"], r["position"]): r["expected_reason"] for r in truth}
    agree = sum(expected.get((r["page_url"], r["position"])) == r["status"] for r in got)
    return {"image_precision": _ratio(tp, len(got_images)), "image_recall": _ratio(tp, len(want_images)),
            "pair_precision": _ratio(len(got_pairs & want_pairs), len(got_pairs)),
            "pair_recall_unordered": _ratio(len(got_pairs & want_pairs), len(want_pairs)),
            "status_agreement": _ratio(agree, len(truth))}
