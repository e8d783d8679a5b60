"""ResolveImageBytes: every kept reference of every page → its image's bytes, decoded (resolve.py).

  pages ─Candidates─ (canonical URL, Candidate) ─┐
  image records + aliases ─CapturesUnderEveryName─┴─JoinByUrl─JoinCaptures: decode each captured URL once
  ─ Outcome per candidate ─ByReference─ChooseCapture─┬─ a captured reference: its result
                                                     └─ none captured: Download (or fetch:not_captured)
"""
from __future__ import annotations

from typing import Iterable, Optional

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from semantica.config import MineConfig
from semantica.mining import reasons as R
from semantica.mining import stats as S
from semantica.mining.containment import contained, contained_step
from semantica.mining.failures import internal_error
from semantica.mining.fetch import fetch_many
from semantica.mining.records import Candidate, ImageBytes, ImageResult, Outcome, Page, PageRef, RefResult
from semantica.mining.resolve import from_download, from_warc, not_captured, result_row
from semantica.mining.steps.aliases import CapturesUnderEveryName
from semantica.mining.steps.read_pages import capture_order, page_at
from semantica.mining.urls import canonical_url

# the most URLs one FetchBatch call takes (BatchElements grows its batches up to this while they stay
# fast): 4 rounds of download_threads (16 as shipped), and at most this many bodies (each ≤
# download.max_bytes) held at once by a call
MAX_DOWNLOAD_BATCH = 64


def failed_result(ref, stage: str) -> RefResult:
    """The result of a reference whose image's step raised, so its page still assembles."""
    return RefResult.at(ref, result_row(None, internal_error(stage), None, "see failures/"))


# ----------------------------------------------------------------------------- the join with the crawl
def candidates(page: Page):
    """(canonical candidate URL, Candidate) for every candidate of every kept reference."""
    for ref in page.refs:
        if ref.status == R.KEPT:
            at = PageRef(page_url=page.page_url, position=ref.position, domain=page.domain,
                         warc_file=page.warc_file, warc_offset=page.warc_offset, url=ref.url)
            for i, url in enumerate(ref.candidates or [ref.url]):
                yield canonical_url(url), Candidate(i, url, at)


def by_reference(outcome: Outcome):
    return (outcome.ref.page_url, outcome.ref.position), outcome


def join_captures(kv, cfg: MineConfig):
    """canonical URL → (candidates naming it, captures of it): decode a capture once, and give every
    reference that names it the result; a URL the crawl did not capture gives each its absence."""
    url, grouped = kv
    cands, records = list(grouped["cands"]), list(grouped["warc"])
    if not cands:
        yield S.count(S.RECORDS_IMAGE_UNREFERENCED, sum(1 for r in records if r.alias_of is None))
        return
    if records:
        result, body = from_warc(url, records, cfg)
        yield S.count(S.URLS_WARC)
        if result.status != R.KEPT:
            yield S.count(S.url_outcome(result.status))
        for c in cands:
            yield by_reference(Outcome(c.index, c.ref, result))
        if body is not None:
            yield TaggedOutput("bytes", (result.image_id, ImageBytes(result.url, body, result)))
    else:
        for c in cands:
            yield by_reference(Outcome(c.index, c.ref, None))


def join_at(kv) -> dict:
    """Where a joined URL came from: its first capture, else its first candidate's page."""
    url, grouped = kv
    recs = list(grouped["warc"]) or [c.ref for c in grouped["cands"]]
    first = min(recs, key=capture_order) if recs else None
    return dict(warc_file=getattr(first, "warc_file", None), warc_offset=getattr(first, "warc_offset", None), url=url)


def join_failed(kv, stage: str):
    """A URL whose join raised: each candidate naming it, as captured with the failure."""
    for c in kv[1]["cands"]:
        yield by_reference(Outcome(c.index, c.ref, failed_result(c.ref, stage).image))


def candidate_index(outcome: Outcome) -> int:
    return outcome.index


def decoded_pixels(choice: tuple) -> tuple:
    """Order of the decoded captures of one reference: the most pixels, then the first candidate."""
    index, result = choice
    return result.width * result.height, -index


def choose_capture(kv, cfg: MineConfig):
    """One reference's outcomes over its candidates → its result: the largest captured candidate
    that decodes (by pixels; among equals the first), else the first captured one's failure; with
    none captured, a download of its URL (the largest candidate), or `fetch:not_captured` when
    downloads are off. A captured reference is never downloaded."""
    _, outcomes = kv
    outcomes = sorted(outcomes, key=candidate_index)
    ref = outcomes[0].ref
    captured = [(o.index, o.result) for o in outcomes if o.result is not None]
    if captured:
        decoded = [(i, res) for i, res in captured if res.status == R.KEPT]
        _, res = max(decoded, key=decoded_pixels) if decoded else captured[0]
        yield RefResult.at(ref, res)
    elif cfg.download.enabled:
        yield TaggedOutput("download", (ref.url, ref))
    else:
        yield S.count(S.url_outcome(R.FETCH_NOT_CAPTURED))
        yield RefResult.at(ref, not_captured(ref.url))


def choice_at(kv) -> dict:
    ref = next(iter(kv[1])).ref
    return dict(warc_file=ref.warc_file, warc_offset=ref.warc_offset, url=ref.url)


def choice_failed(kv, stage: str):
    return [failed_result(next(iter(kv[1])).ref, stage)]


# ----------------------------------------------------------------------------- downloads
def emit_result(url: str, refs: list, result: ImageResult, body: Optional[bytes]) -> Iterable:
    """A downloaded URL's result → one RefResult per reference naming it, its bytes, its counts."""
    yield S.count(S.url_outcome(result.source))
    if result.status != R.KEPT:
        yield S.count(S.url_outcome(result.status))
    for ref in refs:
        yield RefResult.at(ref, result)
    if body is not None:
        yield TaggedOutput("bytes", (result.image_id, ImageBytes(url, body, result)))


def download_at(url: str, refs: list) -> dict:
    """Where a downloaded URL came from: the first page naming it."""
    return dict(warc_file=refs[0].warc_file, warc_offset=refs[0].warc_offset, url=url)


class FetchBatch(beam.DoFn):
    """A batch of (URL, [PageRef]) → fetched in threads → decoded one by one; each URL contained on its own."""

    def __init__(self, cfg: MineConfig, allow_private: bool):
        self.cfg, self.allow_private = cfg, allow_private

    def process(self, batch):
        fetched = fetch_many([u for u, _ in batch], self.cfg.download, self.cfg.download_threads, self.allow_private,
                             return_exceptions=True)
        for (url, refs), f in zip(batch, fetched):
            yield from contained(S.FETCH_STAGE, lambda: self._one(url, refs, f), element=(url, refs),
                                 where=lambda: download_at(url, refs),
                                 fallback=lambda: [failed_result(ref, S.FETCH_STAGE) for ref in refs])

    def _one(self, url: str, refs: list, f):
        if isinstance(f, BaseException):
            raise f
        return emit_result(url, refs, *from_download(f, self.cfg))


def listed(kv):
    """(URL, its references) with the references as a list (a batch is pickled whole)."""
    url, refs = kv
    yield url, list(refs)


class Download(beam.PTransform):
    """(URL, PageRef) of references the crawl did not capture → {'results': RefResult, 'bytes': (image id,
    ImageBytes), 'stats', 'failures'}: each URL fetched once for all the references naming it."""

    def __init__(self, cfg: MineConfig, allow_private: bool):
        super().__init__()
        self.cfg, self.allow_private = cfg, allow_private

    def expand(self, requests):
        fetched = (requests | "DownloadsByUrl" >> beam.GroupByKey() | "GroupDownloads" >> beam.FlatMap(listed)
                   | "BatchUrls" >> beam.BatchElements(min_batch_size=1, max_batch_size=MAX_DOWNLOAD_BATCH)
                   | "Fetch" >> beam.ParDo(FetchBatch(self.cfg, self.allow_private)).with_outputs(
                       "bytes", "stats", "failures", main="results"))
        return {"results": fetched.results, "bytes": fetched.bytes, "stats": fetched.stats,
                "failures": fetched.failures}


# ----------------------------------------------------------------------------- the step
class ResolveImageBytes(beam.PTransform):
    """{'pages': Page, 'images': (canonical URL, ImageRecord), 'aliases': (canonical URL, Alias)} →
    {'results': a RefResult for every kept reference; 'bytes': (image id, ImageBytes) of every decoded
    image (once per source URL); 'stats'; 'failures'}.

    A reference's candidates (src, srcset, <picture> sources…) are joined with the crawl's captures,
    revisits and redirects followed; the largest captured candidate that decodes is its image. Only a
    reference none of whose candidates the crawl holds is downloaded (download.enabled)."""

    def __init__(self, cfg: MineConfig, allow_private: bool):
        super().__init__()
        self.cfg, self.allow_private = cfg, allow_private

    def expand(self, inputs):
        cfg = self.cfg
        cands = inputs["pages"] | "Candidates" >> contained_step(S.CAPTURE_STAGE, candidates, where=page_at)
        captures = {"images": inputs["images"], "aliases": inputs["aliases"]} | "CapturesUnderEveryName" >> \
            CapturesUnderEveryName()
        joined = ({"cands": cands.out, "warc": captures} | "JoinByUrl" >> beam.CoGroupByKey()
                  | "JoinCaptures" >> contained_step(S.IMAGE_STAGE, join_captures, cfg, outputs=("bytes",),
                                                     main="outcomes", where=join_at, fallback=join_failed))
        chosen = (joined.outcomes | "ByReference" >> beam.GroupByKey()
                  | "ChooseCapture" >> contained_step(S.IMAGE_STAGE, choose_capture, cfg, outputs=("download",),
                                                      main="results", where=choice_at, fallback=choice_failed))
        fetched = chosen.download | "Download" >> Download(cfg, self.allow_private)
        stats = (cands.stats, joined.stats, chosen.stats, fetched["stats"])
        failures = (cands.failures, joined.failures, chosen.failures, fetched["failures"])
        return {"results": (chosen.results, fetched["results"]) | "AllResults" >> beam.Flatten(),
                "bytes": (joined.bytes, fetched["bytes"]) | "AllBytes" >> beam.Flatten(),
                "stats": stats | "Stats" >> beam.Flatten(), "failures": failures | "Failures" >> beam.Flatten()}
