"""Mining against the ground truth of other sample webs: the same generator, other seeds.

The demo and the tests mine the default sample web (seed 0). Each seed draws another web (other topics per page,
other pictures, formats and noise), so a miner tuned to one web shows it here. For each seed: write the sample web,
serve its images on loopback, `run_mine` with the local profile (Beam DirectRunner), then `score_mining` (image
precision / recall, pair precision / recall, status agreement: semantica/sample_web/score.py). Mismatched
references are listed by role, expected and mined status.

  .venv/bin/python benchmarks/bench_sample_webs.py [--seeds 0,1,2,3,4,5,6,7] [--pages 48] [--json F]
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def mine_seed(settings, seed: int, pages: int, work: Path) -> dict:
    import pyarrow.parquet as pq

    from semantica.demo import _free_port, local_only
    from semantica.mining.pipeline import run_mine
    from semantica.sample_web import serve_sample_web, write_sample_web
    from semantica.sample_web.score import score_mining
    sw = dataclasses.replace(settings.stages.sample_web, seed=seed, num_pages=pages)
    sw = dataclasses.replace(sw, port=_free_port(sw.host))
    s = local_only(dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, sample_web=sw)), sw.host)
    web, mined = work / f"web{seed}", work / f"mined{seed}"
    write_sample_web(sw, web)
    t = time.perf_counter()
    with serve_sample_web(web, host=sw.host, port=sw.port):
        run_mine(s, [str(web / "warc")], mined)
    row = {"seed": seed, "pages": pages, "mine_s": round(time.perf_counter() - t, 1), **score_mining(web, mined)}
    refs = pq.read_table(web / "ground_truth" / "refs.parquet").to_pylist()
    truth = {(r["page_url"], r["position"]): r for r in refs}
    wrong = collections.Counter()
    for r in pq.read_table(mined / "refs").to_pylist():
        want = truth.get((r["page_url"], r["position"]))
        if want is not None and want["expected_reason"] != r["status"]:
            wrong[f"{want['role']}: want {want['expected_reason']}, got {r['status']}"] += 1
    row["mismatches"] = dict(wrong)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="sample web seeds, comma-separated")
    ap.add_argument("--pages", type=int, default=48)
    ap.add_argument("--json", type=Path, help="append one JSON row per seed")
    args = ap.parse_args(argv)
    from semantica.config import load_settings
    settings = load_settings(None, "local")
    keys = ("image_precision", "image_recall", "pair_precision", "pair_recall_unordered", "status_agreement")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            row = mine_seed(settings, seed, args.pages, Path(tmp))
            rows.append(row)
            print(f"seed {seed}: " + ", ".join(f"{k} {row[k]:.3f}" for k in keys) + f" ({row['mine_s']} s)"
                  + (f"; mismatches: {row['mismatches']}" if row["mismatches"] else ""), flush=True)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    print("lowest over seeds: " + ", ".join(f"{k} {min(r[k] for r in rows):.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
