"""The Beam wiring of pair mining: a thin layer over extract / resolve / dedup / assemble.

  WARC locations ─ReadWarcs─┬─ pages ─ByUrl(first capture)─┬─ candidates (url → ref) ─┐
                            └─ image records (url → bytes) ─┼──────────────────────────┴─JoinBytes─┐
                                                            │      in WARC: decode │ else: fetch+decode
  results by image id ─LSH bands─ near pairs ─ neighbourhood page/domain counts ─ frequent ids ─┐
  results + frequent ─ByPage─ Assemble ─┬─ refs/  ─┬─ pairs/ ─┬─ pages/ ─┬─ used ids + bytes → images/
  stats from every step ─ sum ─ stats.json
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import TaggedOutput

from semantica.config import MineConfig, Settings
from semantica.outputs import prepare_output
from semantica.mining import reasons as R
from semantica.mining import schemas
from semantica.mining.assemble import assemble_page
from semantica.mining.dedup import band_keys, capped_union, near_pairs
from semantica.mining.fetch import fetch_many
from semantica.mining.resolve import from_download, from_warc

log = logging.getLogger(__name__)
NAMESPACE = "semantica.mine"


def _count(name: str, n: int = 1):
    Metrics.counter(NAMESPACE, name).inc(n)
    return TaggedOutput("stats", (name, n))


# ----------------------------------------------------------------------------- DoFns
class ReadWarcs(beam.DoFn):
    """One WARC location → pages (main output) and in-WARC image records ('images')."""

    def __init__(self, cfg: MineConfig):
        self.cfg = cfg

    def process(self, location: str):
        from semantica.mining.extract import process_warc
        counts: Counter = Counter()
        for kind, item in process_warc(location, self.cfg, counts):
            if kind == "page":
                yield item
            else:
                yield TaggedOutput("images", item)
        for k, v in counts.items():
            yield _count(k, v)


def first_capture(kv):
    """Several captures of one page URL: the first by (file, offset), so reruns agree."""
    url, pages = kv
    pages = list(pages)
    page = min(pages, key=lambda p: (p["warc_file"], p["warc_offset"]))
    yield page
    if len(pages) > 1:
        yield _count("pages:duplicate_capture", len(pages) - 1)


def candidates(page: dict):
    for ref in page["refs"]:
        if ref["status"] == R.KEPT:
            yield ref["url"], dict(page_url=page["page_url"], position=ref["position"], domain=page["domain"])


class JoinBytes(beam.DoFn):
    """url → (refs, image records): decode the in-WARC bytes, or send the URL to download."""

    def __init__(self, cfg: MineConfig):
        self.cfg = cfg

    def process(self, kv):
        url, grouped = kv
        refs, records = list(grouped["refs"]), list(grouped["warc"])
        if not refs:
            yield _count("records:image_unreferenced", len(records))
            return
        if records:
            yield from emit_result(url, refs, *from_warc(url, records, self.cfg))
        else:
            yield TaggedOutput("download", (url, refs))


class FetchBatch(beam.DoFn):
    def __init__(self, cfg: MineConfig, allow_private: bool):
        self.cfg, self.allow_private = cfg, allow_private

    def process(self, batch):
        fetched = fetch_many([u for u, _ in batch], self.cfg.download, self.cfg.download_threads, self.allow_private)
        for (url, refs), f in zip(batch, fetched):
            yield from emit_result(url, refs, *from_download(f, self.cfg))


def emit_result(url: str, refs: list, result: dict, body: Optional[bytes]):
    yield _count(f"urls:{result['source']}")
    if result["status"] != R.KEPT:
        yield _count(f"urls:{result['status']}")
    for ref in refs:
        yield dict(result, page_url=ref["page_url"], position=ref["position"], domain=ref["domain"])
    if body is not None:
        yield TaggedOutput("bytes", (result["image_id"], (url, body, result)))


def neighbourhood_counts(kv, max_pages: int, max_domains: int):
    """x → the (capped) pages and domains of every picture within near-dup distance of x."""
    image_id, occurrences = kv
    occurrences = list(occurrences)
    pages = capped_union(([p for p, _ in occ] for occ in occurrences), max_pages + 1)
    domains = capped_union(([d for _, d in occ] for occ in occurrences), max_domains + 1)
    if len(pages) > max_pages or len(domains) > max_domains:
        yield image_id


def spread_occurrences(kv):
    """y with its near duplicates xs and its occurrences → (x, occurrences of y) for each x."""
    _, grouped = kv
    occ = [tuple(o) for rows in grouped["occ"] for o in rows]
    for x in grouped["of"]:
        yield x, occ


def mark_frequent(kv):
    image_id, grouped = kv
    frequent = bool(list(grouped["freq"]))
    for r in grouped["refs"]:
        yield r["page_url"], dict(r, frequent=frequent)


class Assemble(beam.DoFn):
    def __init__(self, cfg: MineConfig):
        self.cfg = cfg

    def process(self, kv):
        page_url, grouped = kv
        pages = list(grouped["page"])
        if not pages:
            return
        results = {r["position"]: r for r in grouped["results"]}
        frequent = {r["image_id"] for r in results.values() if r.get("frequent")}
        rows, pairs, page_row = assemble_page(pages[0], results, frequent, self.cfg)
        status_counts = Counter(r["status"] for r in rows)
        for row in rows:
            yield schemas.project(row, schemas.REFS)
        for p in pairs:
            yield TaggedOutput("pairs", schemas.project(p, schemas.PAIRS))
        yield TaggedOutput("pages", schemas.project(page_row, schemas.PAGES))
        for image_id in {r["image_id"] for r in rows if r["status"] == R.KEPT}:
            yield TaggedOutput("used", (image_id, True))
        for status, n in status_counts.items():
            yield _count(f"refs:{status}", n)
        yield _count("pairs", len(pairs))
        if pairs:
            yield _count("pages:with_pairs")


def image_row(kv):
    image_id, grouped = kv
    if not list(grouped["used"]):
        return
    url, body, res = min(grouped["bytes"], key=lambda x: x[0])
    yield schemas.project(dict(res, image_id=image_id, url=url, bytes=body, source_warc_file=res["warc_file"],
                               source_warc_offset=res["warc_offset"]), schemas.IMAGES)
    yield _count("images")


# ----------------------------------------------------------------------------- the pipeline
class MinePairs(beam.PTransform):
    """WARC locations → {'refs', 'pairs', 'pages', 'images', 'stats'} PCollections."""

    def __init__(self, cfg: MineConfig, allow_private: bool):
        super().__init__()
        self.cfg, self.allow_private = cfg, allow_private

    def expand(self, locations):
        cfg, dedup = self.cfg, self.cfg.dedup
        read = (locations | "SpreadFiles" >> beam.Reshuffle()
                | "ReadWarcs" >> beam.ParDo(ReadWarcs(cfg)).with_outputs("images", "stats", main="pages"))
        pages = (read.pages | "PageByUrl" >> beam.Map(lambda p: (p["page_url"], p))
                 | "GroupCaptures" >> beam.GroupByKey()
                 | "FirstCapture" >> beam.FlatMap(first_capture).with_outputs("stats", main="pages"))
        cands = pages.pages | "Candidates" >> beam.FlatMap(candidates)
        joined = ({"refs": cands, "warc": read.images} | "JoinByUrl" >> beam.CoGroupByKey()
                  | "JoinBytes" >> beam.ParDo(JoinBytes(cfg)).with_outputs("download", "bytes", "stats", main="results"))
        fetched = (joined.download
                   | "BatchUrls" >> beam.BatchElements(min_batch_size=1, max_batch_size=64)
                   | "Fetch" >> beam.ParDo(FetchBatch(cfg, self.allow_private)).with_outputs("bytes", "stats", main="results"))
        results = (joined.results, fetched.results) | "AllResults" >> beam.Flatten()
        ok = results | "Decoded" >> beam.Filter(lambda r: r["status"] == R.KEPT)

        # crawl-wide: near-duplicate neighbourhoods (LSH) and how widely each is spread
        distinct = (ok | "IdHash" >> beam.Map(lambda r: (r["image_id"], r["phash"])) | "DistinctImages" >> beam.Distinct())
        edges = (distinct
                 | "Bands" >> beam.FlatMap(lambda kv: [(k, kv) for k in band_keys(kv[1], dedup.lsh_bands,
                                                                                  dedup.near_dup_hamming)])
                 | "Buckets" >> beam.GroupByKey()
                 | "Verify" >> beam.FlatMap(lambda kv: near_pairs(kv[1], dedup.near_dup_hamming))
                 | "DistinctEdges" >> beam.Distinct())
        neighbours = ((edges | "BothWays" >> beam.FlatMap(lambda e: [(e[1], e[0]), (e[0], e[1])]),
                       distinct | "Self" >> beam.Map(lambda kv: (kv[0], kv[0])))
                      | "Neighbours" >> beam.Flatten())
        occ = (ok | "Occurrence" >> beam.Map(lambda r: (r["image_id"], (r["page_url"], r["domain"])))
               | "DistinctOccurrences" >> beam.Distinct()
               | "OccByImage" >> beam.GroupByKey()
               | "CapOcc" >> beam.Map(lambda kv: (kv[0], sorted(kv[1])[: max(dedup.max_pages_per_image, dedup.max_domains_per_image) * 4 + 4])))
        # each row is a distinct page, so keeping more than N rows keeps the verdict "on > N pages"
        frequent = ({"of": neighbours, "occ": occ} | "JoinNeighbours" >> beam.CoGroupByKey()
                    | "Spread" >> beam.FlatMap(spread_occurrences)
                    | "ByNeighbour" >> beam.GroupByKey()
                    | "Frequent" >> beam.FlatMap(neighbourhood_counts, dedup.max_pages_per_image,
                                                 dedup.max_domains_per_image)
                    | "FreqFlag" >> beam.Map(lambda i: (i, True)))
        ok_by_id = ok | "ById" >> beam.Map(lambda r: (r["image_id"], r))
        marked = ({"refs": ok_by_id, "freq": frequent} | "JoinFrequent" >> beam.CoGroupByKey()
                  | "MarkFrequent" >> beam.FlatMap(mark_frequent))
        failed = (results | "Failed" >> beam.Filter(lambda r: r["status"] != R.KEPT)
                  | "FailedByPage" >> beam.Map(lambda r: (r["page_url"], r)))
        by_page = (marked, failed) | "ResultsByPage" >> beam.Flatten()
        assembled = ({"page": pages.pages | "PageKey" >> beam.Map(lambda p: (p["page_url"], p)), "results": by_page}
                     | "JoinPage" >> beam.CoGroupByKey()
                     | "Assemble" >> beam.ParDo(Assemble(cfg)).with_outputs("pairs", "pages", "used", "stats", main="refs"))
        all_bytes = (joined.bytes, fetched.bytes) | "AllBytes" >> beam.Flatten()
        images = ({"used": assembled.used, "bytes": all_bytes} | "JoinImages" >> beam.CoGroupByKey()
                  | "ImageRows" >> beam.FlatMap(image_row).with_outputs("stats", main="images"))
        stats = ((read.stats, pages.stats, joined.stats, fetched.stats, assembled.stats, images.stats)
                 | "AllStats" >> beam.Flatten() | "SumStats" >> beam.CombinePerKey(sum))
        return {"refs": assembled.refs, "pairs": assembled.pairs, "pages": assembled.pages,
                "images": images.images, "stats": stats}


def pipeline_options(settings: Settings, extra: Optional[list] = None) -> PipelineOptions:
    """The profile's `beam:` mapping as explicit flags (never sys.argv)."""
    flags = []
    for k, v in settings.profile.beam.items():
        if isinstance(v, bool):
            if v:
                flags.append(f"--{k}")
        elif v != "":
            flags.append(f"--{k}={v}")
    if settings.profile.beam.get("runner") != "DirectRunner":
        # workers need the package: ship it unless a prebuilt container image is named
        if not settings.profile.beam.get("sdk_container_image"):
            flags.append(f"--setup_file={Path(__file__).resolve().parent.parent / 'setup.py'}")
    return PipelineOptions(flags + list(extra or []))


def build_pipeline(p: beam.Pipeline, locations: list[str], out, cfg: MineConfig, allow_private: bool) -> None:
    """`out`: a local folder or any Beam filesystem URL (gs://, s3://, hdfs://)."""
    base = str(out).rstrip("/")
    outs = p | "Locations" >> beam.Create(locations) | "MinePairs" >> MinePairs(cfg, allow_private)
    for name, schema in (("pages", schemas.PAGES), ("refs", schemas.REFS), ("images", schemas.IMAGES),
                         ("pairs", schemas.PAIRS)):
        outs[name] | f"Write{name.title()}" >> beam.io.WriteToParquet(
            f"{base}/{name}/part", schema, file_name_suffix=".parquet", codec="snappy")
    (outs["stats"] | "StatsJson" >> beam.Map(lambda kv: json.dumps({kv[0]: kv[1]}))
     | "WriteStats" >> beam.io.WriteToText(f"{base}/_stats/stats", file_name_suffix=".jsonl", num_shards=1))


def summarize_stats(counts: dict, seconds: float, inputs: int) -> dict:
    """Flat counters → stats.json: records, pages, refs by status, drops by stage and reason."""
    refs = {k[5:]: v for k, v in counts.items() if k.startswith("refs:")}
    drops: dict = {}
    for key, n in counts.items():
        name = key[5:] if key.startswith(("refs:", "urls:")) else key
        if ":" in name and name != R.KEPT and key.startswith(("refs:", "warc:", "page:")):
            stage, reason = name.split(":", 1)
            drops.setdefault(stage, {})[reason] = drops.setdefault(stage, {}).get(reason, 0) + n
    return {
        "inputs": inputs,
        "seconds": round(seconds, 2),
        "records": {k: v for k, v in counts.items() if k.startswith("records") or k.startswith("warc")},
        "pages": {"parsed": counts.get("pages", 0), "with_pairs": counts.get("pages:with_pairs", 0),
                  "duplicate_captures": counts.get("pages:duplicate_capture", 0),
                  "not_2xx": counts.get(R.PAGE_HTTP_STATUS, 0), "truncated": counts.get(R.PAGE_TRUNCATED, 0),
                  "parse_errors": counts.get(R.PAGE_PARSE_ERROR, 0), "bad_uri": counts.get(R.PAGE_BAD_URI, 0),
                  "too_complex": counts.get(R.PAGE_TOO_COMPLEX, 0)},
        "refs": {"total": sum(refs.values()), "by_status": dict(sorted(refs.items()))},
        "urls": {k[5:]: v for k, v in sorted(counts.items()) if k.startswith("urls:")},
        "images": counts.get("images", 0),
        "pairs": counts.get("pairs", 0),
        "drops": {s: dict(sorted(r.items())) for s, r in sorted(drops.items())},
    }


def _write_text(path: str, text: str) -> None:
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.create(path) as f:
        f.write(text.encode())


def run_mine(settings: Settings, inputs: list[str], out, overwrite: bool = False,
             allow_private: Optional[bool] = None, extra_options: Optional[list] = None) -> dict:
    """Run the mining pipeline to completion; returns stats.json's content. `out` may be local or
    a Beam filesystem URL (gs://, s3://, hdfs://)."""
    from apache_beam.io.filesystems import FileSystems
    from semantica.mining.warc_io import resolve_inputs
    cfg = settings.stages.mine
    out = str(out).rstrip("/")
    locations = resolve_inputs(inputs, cfg.commoncrawl_base_url)
    prepare_output(out, overwrite)
    allow = cfg.download.allow_private_network if allow_private is None else allow_private
    log.info("mining %d WARC file(s) → %s (runner %s)", len(locations), out, settings.profile.beam.get("runner"))
    t0 = time.perf_counter()
    with beam.Pipeline(options=pipeline_options(settings, extra_options)) as p:
        build_pipeline(p, locations, out, cfg, allow)
    counts: dict = {}
    stats_files = [m.path for r in FileSystems.match([f"{out}/_stats/*.jsonl"]) for m in r.metadata_list]
    for path in sorted(stats_files):
        with FileSystems.open(path) as f:
            for line in f.read().decode().splitlines():
                counts.update(json.loads(line))
    if stats_files:
        FileSystems.delete([f"{out}/_stats"])
    stats = summarize_stats(counts, time.perf_counter() - t0, len(locations))
    _write_text(f"{out}/stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    _write_text(f"{out}/settings.json", json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n")
    _write_text(f"{out}/inputs.txt", "\n".join(locations) + "\n")
    return stats
