"""Semantic filtering of mined pairs (a Beam stage).

Every image is embedded once by the frozen encoder; every pair is scored by the cosine
similarity of its two embeddings and kept when it lies in [low, high]: below, the images
are unrelated (nothing to learn); above, one is a copy of the other (the model would learn
to reconstruct, not to vary). Outputs under DIR: pairs/ (kept, with `similarity`),
rejected/ (dropped, with `similarity` and `status`), images/ (those the kept pairs use),
embeddings/ (image_id → float16 pooled embedding, so later stages do not recompute them),
stats.json.
"""
from __future__ import annotations

import glob
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from semantica import schemas
from semantica.beam import beam_options
from semantica.beam_logs import beam_logs_to_file, log_path
from semantica.config import FilterConfig, Settings
from semantica.errors import UserError
from semantica.outputs import mark_complete, prepare_output, require_complete

log = logging.getLogger(__name__)
KEPT, UNRELATED, COPY = "kept", "filter:unrelated", "filter:copy"
NO_IMAGE = "filter:no_image"  # an image of the pair is not in images/, or does not decode: similarity NaN
DUPLICATE = "filter:duplicate_pair"  # a pair_id read again (a part file copied twice): scored once, the rest NaN
UNSCORED = (NO_IMAGE, DUPLICATE)

EMBEDDINGS = pa.schema([("image_id", pa.string()), ("embedding", pa.list_(pa.float16())),
                        ("encoder", pa.string())])
SCORED_PAIRS = pa.schema(list(schemas.PAIRS) + [pa.field("similarity", pa.float32()), pa.field("status", pa.string())])


def pair_status(similarity: float, cfg: FilterConfig) -> str:
    if similarity < cfg.low:
        return UNRELATED
    if similarity > cfg.high:
        return COPY
    return KEPT


class Embed(beam.DoFn):
    """Batches of image rows → (image_id, float16 embedding). The encoder loads once per worker."""

    def __init__(self, encoder: str):
        self.encoder_name = encoder
        self.encoder = None

    def setup(self):
        from semantica.encoders import load_encoder
        self.encoder = load_encoder(self.encoder_name)

    def process(self, rows):
        import io
        from PIL import Image
        from semantica.images import UNREADABLE, to_rgb
        images, ok = [], []
        for r in rows:
            try:
                images.append(to_rgb(Image.open(io.BytesIO(r["bytes"] or b""))))
                ok.append(r)
            except UNREADABLE as e:  # its pairs: NO_IMAGE
                log.warning("filter: image %s (%s) does not decode: %s: %s", r["image_id"], r.get("url"),
                            type(e).__name__, e)
                Metrics.counter("semantica.filter", "images_undecodable").inc()
        if not ok:
            return
        emb = self.encoder.embed_pil(images, batch_size=len(images)).cpu().numpy().astype(np.float16)
        Metrics.counter("semantica.filter", "images_embedded").inc(len(ok))
        for r, e in zip(ok, emb):
            yield r["image_id"], e


def _first(values):
    """The first of a CoGroupByKey group's values, or None for an empty group (an image with no embedding)."""
    return next(iter(values), None)


def _duplicate(pair: dict) -> dict:
    Metrics.counter("semantica.filter", DUPLICATE).inc()
    return dict(pair, similarity=float("nan"), status=DUPLICATE)


def score(kv, cfg: FilterConfig):
    """pair_id → pair + both embeddings → the pair with similarity and status."""
    _, g = kv
    pair = g["pair"][0]
    if g["cond"][0] is None or g["target"][0] is None:  # kept in rejected/ and counted, never lost
        Metrics.counter("semantica.filter", NO_IMAGE).inc()
        return dict(pair, similarity=float("nan"), status=NO_IMAGE)
    a, b = g["cond"][0].astype(np.float32), g["target"][0].astype(np.float32)
    sim = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-8))
    status = pair_status(sim, cfg)
    Metrics.counter("semantica.filter", status).inc()
    return dict(pair, similarity=sim, status=status)


class FilterPairs(beam.PTransform):
    def __init__(self, cfg: FilterConfig, encoder: str):
        super().__init__()
        self.cfg, self.encoder = cfg, encoder

    def expand(self, inputs):
        images, all_pairs = inputs["images"], inputs["pairs"]
        # one row per pair_id is scored; repeats go to rejected/ and are counted (never published twice)
        by_id = (all_pairs | "ByPairId" >> beam.Map(lambda p: (p["pair_id"], p))
                 | "GroupPairId" >> beam.GroupByKey()
                 | "OrderRepeats" >> beam.Map(lambda kv: sorted(kv[1], key=repr)))  # the same choice every run
        pairs = by_id | "FirstOfId" >> beam.Map(lambda rows: rows[0])
        repeats = by_id | "Repeats" >> beam.FlatMap(lambda rows: [_duplicate(p) for p in rows[1:]])
        emb = (images | "BatchImages" >> beam.BatchElements(min_batch_size=8, max_batch_size=self.cfg.batch_size)
               | "Embed" >> beam.ParDo(Embed(self.encoder)))
        # attach the condition's, then the target's embedding to each pair (None where there is none)
        by_cond = pairs | "ByCond" >> beam.Map(lambda p: (p["cond_image_id"], p))
        with_cond = ({"pair": by_cond, "emb": emb} | "JoinCond" >> beam.CoGroupByKey()
                     | "CondEmb" >> beam.FlatMap(lambda kv: [(p["target_image_id"], (p, _first(kv[1]["emb"])))
                                                             for p in kv[1]["pair"]]))
        scored = ({"pe": with_cond, "emb": emb} | "JoinTarget" >> beam.CoGroupByKey()
                  | "Score" >> beam.FlatMap(lambda kv, cfg: [
                      score((None, {"pair": [p], "cond": [ce], "target": [_first(kv[1]["emb"])]}), cfg)
                      for p, ce in kv[1]["pe"]], self.cfg))
        return {"scored": (scored, repeats) | "WithRepeats" >> beam.Flatten(), "embeddings": emb}


def run_filter(settings: Settings, pairs_dir: Path, out: Path, encoder: Optional[str] = None,
               overwrite: bool = False) -> dict:
    cfg = settings.stages.filter
    encoder = encoder or cfg.encoder
    if Path(encoder).is_dir():  # Beam workers may run elsewhere: an absolute path
        encoder = str(Path(encoder).resolve())
    pairs_dir, out = Path(pairs_dir), Path(out)
    for sub in ("pairs", "images"):
        if not (pairs_dir / sub).exists():
            raise UserError(f"{pairs_dir}: no {sub}/ (expected the output of `semantica mine`)")
    require_complete(pairs_dir, "filter")
    schemas.manifest_files(pairs_dir / "pairs", schemas.PAIRS)  # each file's footer: a damaged one is named
    schemas.manifest_files(pairs_dir / "images", schemas.IMAGES)  # here, not deep in the Beam job
    from semantica.encoders import load_encoder
    load_encoder(encoder)  # fail here, in one clear line, rather than inside a worker
    prepare_output(out, overwrite, [pairs_dir, encoder] if Path(encoder).exists() else [pairs_dir])
    t0 = time.perf_counter()
    with beam_logs_to_file(log_path(str(out))), beam_options(settings) as options, beam.Pipeline(options=options) as p:
        # Beam reads a file pattern: a folder named `m*` or `a[1]` must match itself, not its siblings
        where = glob.escape(str(pairs_dir))
        images = p | "ReadImages" >> beam.io.ReadFromParquet(f"{where}/images/*.parquet")
        pairs = p | "ReadPairs" >> beam.io.ReadFromParquet(f"{where}/pairs/*.parquet")
        res = {"images": images, "pairs": pairs} | "FilterPairs" >> FilterPairs(cfg, encoder)
        scored = res["scored"]
        (scored | "Kept" >> beam.Filter(lambda r: r["status"] == KEPT)
         | "WritePairs" >> beam.io.WriteToParquet(str(out / "pairs" / "part"), SCORED_PAIRS,
                                                  file_name_suffix=".parquet"))
        (scored | "Rejected" >> beam.Filter(lambda r: r["status"] != KEPT)
         | "WriteRejected" >> beam.io.WriteToParquet(str(out / "rejected" / "part"), SCORED_PAIRS,
                                                     file_name_suffix=".parquet"))
        (res["embeddings"] | "EmbRows" >> beam.Map(lambda kv, enc: {"image_id": kv[0], "embedding": kv[1].tolist(),
                                                                     "encoder": enc}, encoder)
         | "WriteEmbeddings" >> beam.io.WriteToParquet(str(out / "embeddings" / "part"), EMBEDDINGS,
                                                       file_name_suffix=".parquet"))
        used = (scored | "UsedIds" >> beam.FlatMap(lambda r: [(r["cond_image_id"], 1), (r["target_image_id"], 1)]
                                                   if r["status"] == KEPT else [])
                | "DistinctUsed" >> beam.Distinct())
        ({"used": used, "row": images | "ImgKey" >> beam.Map(lambda r: (r["image_id"], r))}
         | "JoinUsed" >> beam.CoGroupByKey()
         | "UsedRows" >> beam.FlatMap(lambda kv: kv[1]["row"][:1] if kv[1]["used"] else [])
         | "WriteImages" >> beam.io.WriteToParquet(str(out / "images" / "part"), schemas.IMAGES,
                                                   file_name_suffix=".parquet"))
    stats = filter_stats(out, cfg, encoder, time.perf_counter() - t0)
    stats["source_pairs_dir"] = str(pairs_dir.resolve())
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    settings.dump(out / "settings.json")
    for name in ("inputs.txt",):
        if (pairs_dir / name).exists():
            shutil.copy(pairs_dir / name, out / name)
    mark_complete(out)
    return stats


def read_scored(out: Path) -> list[dict]:
    rows = []
    for sub in ("pairs", "rejected"):
        if any((out / sub).glob("*.parquet")):
            rows += pq.read_table(out / sub).to_pylist()
    return rows


def filter_stats(out: Path, cfg: FilterConfig, encoder: str, seconds: float) -> dict:
    rows = read_scored(out)
    by = {}
    for r in rows:
        by[r["status"]] = by.get(r["status"], 0) + 1
    sims = np.array([r["similarity"] for r in rows if r["status"] not in UNSCORED], dtype=np.float32)
    if len(sims):
        hist, edges = np.histogram(sims, bins=20, range=(-1, 1))
    else:
        hist, edges = np.zeros(20, int), np.linspace(-1, 1, 21)
    return {"encoder": encoder, "low": cfg.low, "high": cfg.high, "seconds": round(seconds, 2),
            "pairs_in": len(rows), "pairs_kept": by.get(KEPT, 0),
            "drops": {"filter": {k.split(":", 1)[1]: v for k, v in sorted(by.items()) if k != KEPT}},
            "images": sum(pq.read_metadata(f).num_rows for f in (out / "images").glob("*.parquet")),
            "similarity_histogram": {"edges": [round(float(e), 2) for e in edges], "counts": hist.tolist()}}
