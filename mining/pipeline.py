"""The Beam wiring of pair mining: MinePairs, five named steps (mining/steps/), and the run around it.

  ReadPages           WARC locations → pages (first capture of each URL), image records, revisits / redirects
  ResolveImageBytes   pages + image records + revisits / redirects → a result per kept reference; image bytes
  FlagFrequentImages  results → results by page, those on too many pages or domains marked (crawl-wide LSH)
  AssemblePages       pages + their results → rows of refs/, pairs/, pages/; the image ids kept references use
  ImageRows           used image ids + image bytes → rows of images/
  every step's counts ((stage, reason), n) ─ summed ─ stats.json; an element whose step raised ─ failures/

The records between the steps are declared in mining/records.py; the counts and stats.json in mining/stats.py.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Optional

import apache_beam as beam

from semantica import schemas
from semantica.beam import beam_options
from semantica.beam_logs import beam_logs_to_file, log_path
from semantica.config import MineConfig, Settings
from semantica.errors import UserError
from semantica.outputs import mark_complete, prepare_output
from semantica.mining import stats as S
from semantica.mining.steps.assemble_pages import AssemblePages
from semantica.mining.steps.frequent import FlagFrequentImages
from semantica.mining.steps.image_bytes import ResolveImageBytes
from semantica.mining.steps.image_rows import ImageRows
from semantica.mining.steps.read_pages import ReadPages

log = logging.getLogger(__name__)
PARQUET_ROW_GROUP_BYTES = 8 << 20  # Beam buffers 64 MB per open file by default; a worker has several open


class MinePairs(beam.PTransform):
    """WARC locations → {'refs', 'pairs', 'pages', 'images': rows of those tables; 'stats': ((stage,
    reason), n) summed per key; 'failures': failures/ rows}."""

    def __init__(self, cfg: MineConfig, allow_private: bool):
        super().__init__()
        self.cfg, self.allow_private = cfg, allow_private

    def expand(self, locations):
        read = locations | "ReadPages" >> ReadPages(self.cfg)
        resolved = ({"pages": read["pages"], "images": read["images"], "aliases": read["aliases"]}
                    | "ResolveImageBytes" >> ResolveImageBytes(self.cfg, self.allow_private))
        flagged = resolved["results"] | "FlagFrequentImages" >> FlagFrequentImages(self.cfg.dedup)
        assembled = ({"pages": read["pages"], "results": flagged["by_page"]}
                     | "AssemblePages" >> AssemblePages(self.cfg))
        images = {"used": assembled["used"], "bytes": resolved["bytes"]} | "ImageRows" >> ImageRows()
        steps = (read, resolved, flagged, assembled, images)
        stats = (tuple(step["stats"] for step in steps) | "AllStats" >> beam.Flatten()
                 | "SumStats" >> beam.CombinePerKey(sum))
        failures = tuple(step["failures"] for step in steps) | "AllFailures" >> beam.Flatten()
        return {"refs": assembled["refs"], "pairs": assembled["pairs"], "pages": assembled["pages"],
                "images": images["images"], "stats": stats, "failures": failures}


def stats_line(kv) -> str:
    """((stage, reason), n) → a JSON line of the temporary _stats/ file."""
    (stage, reason), n = kv
    return json.dumps([stage, reason, n])


def build_pipeline(p: beam.Pipeline, locations: list[str], out, cfg: MineConfig, allow_private: bool) -> None:
    """`out`: a local folder or any Beam filesystem URL (gs://, s3://, hdfs://)."""
    base = str(out).rstrip("/")
    outs = p | "Locations" >> beam.Create(locations) | "MinePairs" >> MinePairs(cfg, allow_private)
    for name, schema in (("pages", schemas.PAGES), ("refs", schemas.REFS), ("images", schemas.IMAGES),
                         ("pairs", schemas.PAIRS), ("failures", schemas.FAILURES)):
        outs[name] | f"Write{name.title()}" >> beam.io.WriteToParquet(
            f"{base}/{name}/part", schema, file_name_suffix=".parquet", codec="snappy",
            row_group_buffer_size=PARQUET_ROW_GROUP_BYTES)
    (outs["stats"] | "StatsJson" >> beam.Map(stats_line)
     | "WriteStats" >> beam.io.WriteToText(f"{base}/_stats/stats", file_name_suffix=".jsonl", num_shards=1))


class ResultsLost(UserError):
    """The runner delivered fewer results than the pipeline produced: the output is incomplete."""


def _report_input_errors(out: str, stats: dict, counts: dict, inputs: int) -> None:
    """Name the input files that could not be read on the console (stats.json lists them all); when no input
    gave a single record, the run is an error (exit 2) and its output is left unmarked."""
    errors = stats["input_errors"]
    if not errors:
        return
    bad = sum(n for (stage, _), n in counts.items() if stage == S.INPUT_ERRORS)
    for e in errors[:5]:
        log.warning("input %s: %s: %s", e["file"], e["reason"], e["error"])
    if bad > 5:
        log.warning("… and %d more input errors: every one is in %s/stats.json (input_errors)", bad - 5, out)
    if not counts.get(S.RECORDS, 0):
        first = errors[0]
        raise UserError(f"{out}: none of the {inputs} input file(s) could be read ({first['file']}: {first['reason']}: "
                        f"{first['error']}); each file's error is in stats.json (input_errors)")


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
    locations = [loc if '://' in loc else os.path.abspath(loc)  # warc_file: where the input is, not as typed
                 for loc in resolve_inputs(inputs, cfg.commoncrawl_base_url)]
    prepare_output(out, overwrite, list(inputs) + locations)  # the files a listing names, too
    allow = cfg.download.allow_private_network if allow_private is None else allow_private
    log.info("mining %d WARC file(s) → %s (runner %s)", len(locations), out, settings.profile.beam.get("runner"))
    t0 = time.perf_counter()
    with beam_logs_to_file(log_path(out)), beam_options(settings, extra_options) as options, \
            beam.Pipeline(options=options) as p:
        build_pipeline(p, locations, out, cfg, allow)
    lines = []
    stats_files = [m.path for r in FileSystems.match([f"{out}/_stats/*.jsonl"]) for m in r.metadata_list]
    for path in sorted(stats_files):
        with FileSystems.open(path) as f:
            lines += [json.loads(line) for line in f.read().decode().splitlines()]
    if stats_files:
        FileSystems.delete([f"{out}/_stats"])
    counts = S.counts_of(((stage, reason), n) for stage, reason, n in lines)
    stats = S.summarize(counts, time.perf_counter() - t0, len(locations))
    _write_text(f"{out}/stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    _write_text(f"{out}/settings.json", json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n")
    _write_text(f"{out}/inputs.txt", "\n".join(locations) + "\n")
    _report_input_errors(out, stats, counts, len(locations))
    if stats["lost_results"]:  # the output is not what the input holds: never marked complete
        raise ResultsLost(
            f"{out}: the runner lost {stats['lost_results']} reference results between steps "
            f"({stats['internal_errors'].get('assemble', 0)} pages written to failures/ instead of pages/); the "
            "output is left unmarked (no _SUCCESS). Beam's FnApiRunner lost inputs this way until "
            "semantica.portable.close_input_flush_race; if you see this, please report it with the runner and "
            "the job's log.")
    mark_complete(out)
    return stats
