"""What the miner counts, keyed by (stage, reason), and how the counts become stats.json.

Every step counts with `count((stage, reason), n)`: a Beam counter (named `stage:reason`, or `stage`
alone) and a 'stats' output that the pipeline sums per key. A drop's key is its reason split in two
(reasons.py names every drop `stage:reason`): `of_reason(R.PAGE_HTTP_STATUS) == ("page", "http_status")`.
A reference's final status is counted under ("refs", status) and a resolved URL's under ("urls", what),
so stats.json can list them whole. `summarize` builds stats.json from the summed counts by stage;
its layout is read by others (the CLI, the demo, publish) and does not change.
"""
from __future__ import annotations

import json
from typing import Iterable

from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from semantica.mining import reasons as R
from semantica.mining.failures import INTERNAL_ERROR

Stat = tuple  # (stage: str, reason: Optional[str])
NAMESPACE = "semantica.mine"

# stages whose elements are contained one by one (mining/containment.py): `(stage, "internal_error")`
READ_STAGE = "read"          # a WARC record (extract.py)
CAPTURE_STAGE = "capture"    # a page's captures, its candidates
IMAGE_STAGE = "image"        # a URL's captures in the crawl, a reference's choice among its candidates
FETCH_STAGE = "fetch"        # a downloaded URL
DEDUP_STAGE = "dedup"        # a pHash's bucket or neighbourhood, a result marked frequent
ASSEMBLE_STAGE = "assemble"  # a page's final statuses and pairs
IMAGES_STAGE = "images"      # an images/ row

# counts that are not drops
RECORDS = ("records", None)                         # every record read
RECORDS_NO_URI = ("records", "no_uri")
RECORDS_REVISIT = ("records", "revisit")
RECORDS_REDIRECT = ("records", "redirect")
RECORDS_IMAGE = ("records", "image")                # image records (2xx, an image body)
RECORDS_OTHER = ("records", "other")                # neither a page nor an image
RECORDS_IMAGE_UNREFERENCED = ("records", "image_unreferenced")  # image records no kept reference names
WARC_FILES = ("warc_files", None)
PAGES = ("pages", None)                             # pages parsed
PAGES_DUPLICATE_CAPTURE = ("pages", "duplicate_capture")  # later captures of a page URL (not mined)
PAGES_MAIN_CONTENT_ERROR = ("pages", "main_content_error")  # kept, in_main_content unknown
PAGES_WITH_PAIRS = ("pages", "with_pairs")
IMAGES = ("images", None)                           # rows of images/
PAIRS = ("pairs", None)                             # rows of pairs/
RESULTS_LOST = ("assemble", "results_lost")          # kept references whose result never reached their page
URLS_WARC = ("urls", "warc")                        # URLs resolved from a capture in the crawl


def of_reason(reason: str) -> Stat:
    """A reason of reasons.py (`stage:reason`) as its stats key (`kept`, no stage: ("kept", None))."""
    stage, sep, why = reason.partition(":")
    return stage, why if sep else None


INPUT_ERRORS = "input_errors"  # stats key stage of one input file's error: its reason holds [file, reason, error]
MAX_INPUT_ERRORS = 1000        # stats.json names this many; the counts in `records` cover them all


def input_error(location: str, reason: str, error: str) -> tuple:
    """A 'stats' output naming one input file that could not be opened, read to its end, or held no record.
    No Beam counter: one per file would flood a runner's UI; the counts of warc:* reasons are the counters."""
    return TaggedOutput("stats", ((INPUT_ERRORS, json.dumps([location, reason, error[:500]])), 1))


def internal_error(stage: str) -> Stat:
    return stage, INTERNAL_ERROR


def ref_status(status: str) -> Stat:
    """A reference's final status (the refs/ `status` column)."""
    return "refs", status


def url_outcome(what: str) -> Stat:
    """A resolved URL: where its bytes came from (warc | download) or, if not kept, its status."""
    return "urls", what


def name(key: Stat) -> str:
    """The flat name of a count: its Beam counter, its line in stats.json's `records`."""
    stage, reason = key
    return stage if reason is None else f"{stage}:{reason}"


def count(key: Stat, n: int = 1) -> TaggedOutput:
    """A Beam counter, and the same count as a 'stats' output (summed into stats.json)."""
    Metrics.counter(NAMESPACE, name(key)).inc(n)
    return TaggedOutput("stats", (tuple(key), n))


def counts_of(items: Iterable) -> dict:
    """((stage, reason), n) pairs (the summed 'stats' output) → {(stage, reason): n}."""
    out: dict = {}
    for key, n in items:
        key = tuple(key)
        out[key] = out.get(key, 0) + n
    return out


def summarize(counts: dict, seconds: float, inputs: int) -> dict:
    """{(stage, reason): n} → stats.json: records, pages, refs by status, drops by stage and reason, and
    the elements whose step raised (internal errors, by stage; their rows are in failures/)."""
    by_stage: dict = {}
    for (stage, reason), n in counts.items():
        by_stage.setdefault(stage, {})[reason] = n
    refs = by_stage.get("refs", {})
    drops: dict = {}

    def drop(stage: str, reason: str, n: int) -> None:
        drops.setdefault(stage, {})[reason] = drops.get(stage, {}).get(reason, 0) + n

    for status, n in refs.items():
        if status != R.KEPT:
            drop(*of_reason(status), n)
    for stage in ("warc", "page"):  # a WARC file's and a page's own drops
        for reason, n in by_stage.get(stage, {}).items():
            drop(stage, reason, n)

    def get(key: Stat) -> int:
        return by_stage.get(key[0], {}).get(key[1], 0)

    return {
        "inputs": inputs,
        "seconds": round(seconds, 2),
        "records": {name((stage, reason)): n for stage in ("records", "warc_files", "warc")
                    for reason, n in by_stage.get(stage, {}).items()},
        "pages": {"parsed": get(PAGES), "with_pairs": get(PAGES_WITH_PAIRS),
                  "duplicate_captures": get(PAGES_DUPLICATE_CAPTURE),
                  "not_2xx": get(of_reason(R.PAGE_HTTP_STATUS)), "truncated": get(of_reason(R.PAGE_TRUNCATED)),
                  "parse_errors": get(of_reason(R.PAGE_PARSE_ERROR)), "bad_uri": get(of_reason(R.PAGE_BAD_URI)),
                  "too_complex": get(of_reason(R.PAGE_TOO_COMPLEX)),
                  "main_content_errors": get(PAGES_MAIN_CONTENT_ERROR)},
        "refs": {"total": sum(refs.values()), "by_status": dict(sorted(refs.items()))},
        "urls": dict(sorted(by_stage.get("urls", {}).items())),
        "images": get(IMAGES),
        "pairs": get(PAIRS),
        "drops": {s: dict(sorted(r.items())) for s, r in sorted(drops.items())},
        "internal_errors": dict(sorted((stage, reasons[INTERNAL_ERROR]) for stage, reasons in by_stage.items()
                                       if INTERNAL_ERROR in reasons and stage not in ("refs", "urls"))),
        "lost_results": get(RESULTS_LOST),
        "input_errors": [dict(zip(("file", "reason", "error"), json.loads(detail)))
                         for detail in sorted(by_stage.get(INPUT_ERRORS, {}))[:MAX_INPUT_ERRORS]],
    }
