"""The Beam wiring of pair mining: a thin layer over extract / resolve / dedup / assemble.

  WARC locations ─ReadWarcs─┬─ pages ─ByUrl(first capture)─┬─ candidates (url → ref) ─┐
                            └─ image records (url → bytes) ─┼──────────────────────────┴─JoinBytes─┐
                                                            │      in WARC: decode │ else: fetch+decode
  results by pHash ─CrawlDedup: spread per hash ─ LSH keys ─ near pairs ─ neighbourhood spread ─ frequent hashes ─┐
  results + frequent ─ByPage─ Assemble ─┬─ refs/  ─┬─ pairs/ ─┬─ pages/ ─┬─ used ids + bytes → images/
  stats from every step ─ sum ─ stats.json;   an element whose step raised ─ failures/ (containment.py)
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from types import SimpleNamespace
from typing import Optional

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from semantica import schemas
from semantica.beam import beam_options
from semantica.beam_logs import beam_logs_to_file, log_path
from semantica.config import DedupConfig, MineConfig, Settings
from semantica.errors import UserError
from semantica.outputs import mark_complete, prepare_output
from semantica.mining import reasons as R
from semantica.mining.assemble import assemble_page
from semantica.mining.containment import Contained, contained, count, failure_outputs
from semantica.mining.dedup import band_keys, is_frequent, key_layout, near_pairs, smallest_distinct, spread_add
from semantica.mining.failures import INTERNAL_ERROR, failure_row, internal_error
from semantica.mining.fetch import fetch_many
from semantica.mining.resolve import from_download, from_warc, not_captured, result_row
from semantica.mining.urls import canonical_url

log = logging.getLogger(__name__)
# stage names of internal errors (`<stage>:internal_error`); records are "read" (extract.READ_STAGE)
IMAGE_STAGE, FETCH_STAGE, DEDUP_STAGE = "image", "fetch", "dedup"
PARQUET_ROW_GROUP_BYTES = 8 << 20  # Beam buffers 64 MB per open file by default; a worker has several open
READ_OUTPUTS = {"image": "images", "alias": "aliases", "failure": "failures"}


def _page_at(page: dict) -> dict:
    return dict(warc_file=page.get("warc_file"), warc_offset=page.get("warc_offset"), url=page.get("page_url"))


# ----------------------------------------------------------------------------- steps
class ReadWarcs(beam.DoFn):
    """One WARC location → pages (main output) and in-WARC image records ('images'); a record that
    raises is contained in process_warc ('failures')."""

    def __init__(self, cfg: MineConfig):
        self.cfg = cfg

    def process(self, location: str):
        from semantica.mining.extract import READ_STAGE, process_warc
        counts: Counter = Counter()
        try:
            for kind, item in process_warc(location, self.cfg, counts):
                yield item if kind == "page" else TaggedOutput(READ_OUTPUTS[kind], item)
        except Exception as e:  # noqa: BLE001 (outside any record: the rest of this file is lost, the job goes on)
            yield from failure_outputs(failure_row(READ_STAGE, e, warc_file=location))
        for k, v in counts.items():
            yield count(k, v)


def first_capture(kv):
    """Several captures of one page URL: the first by (file, offset), so reruns agree."""
    url, pages = kv
    pages = list(pages)
    page = min(pages, key=lambda p: (p["warc_file"], p["warc_offset"]))
    yield page
    if len(pages) > 1:
        yield count("pages:duplicate_capture", len(pages) - 1)


def candidates(page: dict):
    """(canonical candidate URL, (candidate index, URL, ref)) for every candidate of every kept reference."""
    for ref in page["refs"]:
        if ref["status"] == R.KEPT:
            info = dict(page_url=page["page_url"], position=ref["position"], domain=page["domain"],
                        warc_file=page["warc_file"], warc_offset=page["warc_offset"], url=ref["url"])
            for i, url in enumerate(ref.get("candidates") or [ref["url"]]):
                yield canonical_url(url), (i, url, info)


def failed_refs(refs: list, status: str):
    """A result for each reference of an image whose step raised, so its page still assembles."""
    for ref in refs:
        yield dict(result_row(None, status, None, "see failures/"),
                   page_url=ref["page_url"], position=ref["position"], domain=ref["domain"])


# ----------------------------------------------------------------------------- revisits and redirects
MAX_ALIAS_HOPS = 5


def digest_key(kv):
    """An image record → (payload digest, its URL), for revisits that name only the digest."""
    url, rec = kv
    if rec.get("digest"):
        yield rec["digest"], url


def split_aliases(kv):
    """A revisit or redirect → (from, to) where its target is named; a revisit that names only a
    payload digest → ('by_digest', (digest, from)). A revisit of its own URL needs nothing: the
    original is joined under the same URL."""
    url, alias = kv
    if alias["to"] and alias["to"] != url:
        yield url, alias["to"]
    elif alias["to"] is None and alias["digest"]:
        yield TaggedOutput("by_digest", (alias["digest"], url))


def digest_aliases(kv):
    _, grouped = kv
    originals = sorted(set(grouped["original"]))
    if originals:
        for url in set(grouped["revisit"]):
            if url not in originals:
                yield url, originals[0]


class AliasMap(beam.CombineFn):
    """Every (from, to) of the job → {to: sorted froms}, following chains (a redirect to a
    redirect, a redirect to a revisit) up to MAX_ALIAS_HOPS."""

    def create_accumulator(self):
        return set()

    def add_input(self, acc, pair):
        acc.add(tuple(pair))
        return acc

    def merge_accumulators(self, accs):
        return set().union(*accs)

    def extract_output(self, acc):
        to: dict = {}
        for a, b in acc:
            to.setdefault(a, set()).add(b)
        inverse: dict = {}
        for start in to:
            seen, frontier = set(), {start}
            for _ in range(MAX_ALIAS_HOPS):
                frontier = {b for a in frontier for b in to.get(a, ())} - seen - {start}
                seen |= frontier
            for b in seen:
                inverse.setdefault(b, []).append(start)
        return {b: sorted(froms) for b, froms in inverse.items()}


def with_aliases(kv, alias_map: dict):
    """An image record under its own URL, and under every URL that revisits or redirects to it."""
    url, rec = kv
    yield url, rec
    for other in alias_map.get(url, ()):
        yield other, dict(rec, alias_of=url)


# ----------------------------------------------------------------------------- the join with the crawl
def join_captures(kv, cfg: MineConfig):
    """canonical URL → (candidates naming it, captures of it): decode a capture once, and give every
    reference that names it the result; a URL the crawl did not capture gives each its absence."""
    url, grouped = kv
    cands, records = list(grouped["cands"]), list(grouped["warc"])
    if not cands:
        yield count("records:image_unreferenced", sum(1 for r in records if "alias_of" not in r))
        return
    if records:
        result, body = from_warc(url, records, cfg)
        yield count("urls:warc")
        if result["status"] != R.KEPT:
            yield count(f"urls:{result['status']}")
        for i, _, info in cands:
            yield (info["page_url"], info["position"]), ("crawl", i, result, info)
        if body is not None:
            yield TaggedOutput("bytes", (result["image_id"], (result["url"], body, result)))
    else:
        for i, cand_url, info in cands:
            yield (info["page_url"], info["position"]), ("none", i, None, info)


def _captures_at(kv) -> dict:
    url, grouped = kv
    recs = list(grouped["warc"]) or [c[2] for c in grouped["cands"]]
    first = min(recs, key=lambda r: (r["warc_file"], r["warc_offset"])) if recs else {}
    return dict(warc_file=first.get("warc_file"), warc_offset=first.get("warc_offset"), url=kv[0])


def _captures_failed(kv, stage):
    for i, _, info in kv[1]["cands"]:
        yield (info["page_url"], info["position"]), ("crawl", i, next(failed_refs([info], internal_error(stage))), info)


def choose_capture(kv, cfg: MineConfig):
    """One reference's outcomes over its candidates → its result: the largest captured candidate
    that decodes (by pixels; among equals the first), else the first captured one's failure; with
    none captured, a download of its URL (the largest candidate), or `fetch:not_captured` when
    downloads are off. A captured reference is never downloaded."""
    _, outcomes = kv
    outcomes = sorted(outcomes, key=lambda o: o[1])
    info = outcomes[0][3]
    where = dict(page_url=info["page_url"], position=info["position"], domain=info["domain"])
    captured = [(i, res) for kind, i, res, _ in outcomes if kind == "crawl"]
    if captured:
        decoded = [(i, res) for i, res in captured if res["status"] == R.KEPT]
        _, res = max(decoded, key=lambda c: (c[1]["width"] * c[1]["height"], -c[0])) if decoded else captured[0]
        yield dict(res, **where)
    elif cfg.download.enabled:
        yield TaggedOutput("download", (info["url"], info))
    else:
        yield count(f"urls:{R.FETCH_NOT_CAPTURED}")
        yield dict(not_captured(info["url"]), **where)


def _choice_at(kv) -> dict:
    info = next(iter(kv[1]))[3]
    return dict(warc_file=info["warc_file"], warc_offset=info["warc_offset"], url=info["url"])


def _choice_failed(kv, stage):
    return failed_refs([next(iter(kv[1]))[3]], internal_error(stage))


def group_downloads(kv):
    url, infos = kv
    yield url, list(infos)


class FetchBatch(beam.DoFn):
    """A batch of URLs → fetched in threads → decoded one by one; each URL contained on its own."""

    def __init__(self, cfg: MineConfig, allow_private: bool):
        self.cfg, self.allow_private = cfg, allow_private

    def process(self, batch):
        fetched = fetch_many([u for u, _ in batch], self.cfg.download, self.cfg.download_threads, self.allow_private,
                             return_exceptions=True)
        for (url, refs), f in zip(batch, fetched):
            yield from contained(FETCH_STAGE, lambda: self._one(url, refs, f), element=(url, refs),
                                 where=lambda: dict(warc_file=refs[0]["warc_file"], warc_offset=refs[0]["warc_offset"],
                                                    url=url),
                                 fallback=lambda: failed_refs(refs, internal_error(FETCH_STAGE)))

    def _one(self, url, refs, f):
        if isinstance(f, BaseException):
            raise f
        return emit_result(url, refs, *from_download(f, self.cfg))


def emit_result(url: str, refs: list, result: dict, body: Optional[bytes]):
    yield count(f"urls:{result['source']}")
    if result["status"] != R.KEPT:
        yield count(f"urls:{result['status']}")
    for ref in refs:
        yield dict(result, page_url=ref["page_url"], position=ref["position"], domain=ref["domain"])
    if body is not None:
        yield TaggedOutput("bytes", (result["image_id"], (url, body, result)))


def mark_frequent(result: dict, frequent: bool):
    """One result, marked, by page."""
    yield result["page_url"], dict(result, frequent=frequent)


class MarkFrequent(beam.DoFn):
    """pHash → its results and whether it is frequent → each result by page, marked. Each result is
    contained on its own and yielded as it is read: a logo's results (one per page it is on) are
    streamed, never listed."""

    def process(self, kv):
        _, grouped = kv
        frequent = any(True for _ in grouped["freq"])
        for r in grouped["refs"]:
            yield from contained(DEDUP_STAGE, lambda r=r: mark_frequent(r, frequent), element=r,
                                 fallback=lambda r=r: _mark_failed(r))


def _mark_failed(result: dict):
    yield result["page_url"], next(failed_refs([result], internal_error(DEDUP_STAGE)))


def assemble(kv, cfg: MineConfig):
    page_url, grouped = kv
    pages = list(grouped["page"])
    if not pages:
        # every result comes from a reference of a parsed page: results alone mean the runner
        # delivered them apart from their page. Counted and written aside, never dropped silently.
        n = sum(1 for _ in grouped["results"])
        if n:
            raise RuntimeError(f"{page_url}: {n} results arrived without their page")
        return
    results = {r["position"]: r for r in grouped["results"]}
    lost = [ref["position"] for ref in pages[0]["refs"] if ref["status"] == R.KEPT and ref["position"] not in results]
    if lost:  # every kept reference gets a result upstream: a missing one was lost between steps
        yield count(RESULTS_LOST, len(lost))
        error = RuntimeError(f"{page_url}: no result for reference position(s) {lost[:20]} (lost between steps)")
        yield from failure_outputs(failure_row("assemble", error, warc_file=pages[0]["warc_file"],
                                               warc_offset=pages[0]["warc_offset"], url=page_url))
        return
    frequent = {r["image_id"] for r in results.values() if r.get("frequent")}
    rows, pairs, page_row = assemble_page(pages[0], results, frequent, cfg)
    status_counts = Counter(r["status"] for r in rows)
    for row in rows:
        yield schemas.project(row, schemas.REFS)
    for p in pairs:
        yield TaggedOutput("pairs", schemas.project(p, schemas.PAIRS))
    yield TaggedOutput("pages", schemas.project(page_row, schemas.PAGES))
    for image_id in {r["image_id"] for r in rows if r["status"] == R.KEPT}:
        yield TaggedOutput("used", (image_id, True))
    for status, n in status_counts.items():
        yield count(f"refs:{status}", n)
    yield count("pairs", len(pairs))
    if pairs:
        yield count("pages:with_pairs")


def image_row(kv):
    image_id, grouped = kv
    if not list(grouped["used"]):
        return
    url, body, res = min(grouped["bytes"], key=lambda x: x[0])
    yield schemas.project(dict(res, image_id=image_id, url=url, bytes=body, source_warc_file=res["warc_file"],
                               source_warc_offset=res["warc_offset"]), schemas.IMAGES)
    yield count("images")


def _image_at(kv) -> dict:
    url, _, res = min(kv[1]["bytes"], key=lambda x: x[0])
    return dict(warc_file=res["warc_file"], warc_offset=res["warc_offset"], url=url)


def _step(stage: str, fn, *args, outputs: tuple = (), main: str = "out", where=None, fallback=None):
    """A contained ParDo of a plain function, with its 'stats' and 'failures' outputs."""
    kw = {} if where is None else {"where": where}
    return beam.ParDo(Contained(stage, fn, *args, fallback=fallback, **kw)).with_outputs(
        "stats", "failures", *outputs, main=main)


# ----------------------------------------------------------------------------- crawl-wide dedup
class PageSpread(beam.CombineFn):
    """(page, domain) occurrences of one hash → its (pages, domains) spread, each capped at max + 1:
    the state per hash stays bounded however many pages a logo is on."""

    def __init__(self, max_pages: int, max_domains: int):
        self.max_pages, self.max_domains = max_pages, max_domains

    def create_accumulator(self):
        return [], []

    def add_input(self, acc, occurrence):
        page, domain = occurrence
        return spread_add(acc, (page,), (domain,), self.max_pages, self.max_domains)

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for pages, domains in accumulators:
            spread_add(out, pages, domains, self.max_pages, self.max_domains)
        return out

    def extract_output(self, acc):
        return tuple(sorted(acc[0])), tuple(sorted(acc[1]))


class NeighbourhoodSpread(PageSpread):
    """The spreads of a hash's neighbourhood (its own and its near duplicates') → their capped union."""

    def add_input(self, acc, spread):
        return spread_add(acc, spread[0], spread[1], self.max_pages, self.max_domains)


class SmallestHashes(beam.CombineFn):
    """An LSH bucket's hashes → its `cap` (dedup.lsh_max_bucket) smallest distinct ones, sorted: bounded
    during the shuffle (combiner lifting), and what `near_pairs` verifies."""

    def __init__(self, cap: int):
        self.cap = cap

    def create_accumulator(self):
        return []

    def add_input(self, acc, phash):
        acc.append(phash)
        if len(acc) > 2 * self.cap:
            acc[:] = sorted(set(acc))[:self.cap]
        return acc

    def merge_accumulators(self, accumulators):
        out: list = []
        for acc in accumulators:
            smallest_distinct(out, acc, self.cap)
        return out

    def extract_output(self, acc):
        return sorted(set(acc))[:self.cap]


def spread_to_neighbours(kv, max_pages: int, max_domains: int):
    """A hash with its spread and its near duplicates → its spread sent to each of them and to itself
    (main output: summed per hash by NeighbourhoodSpread); a hash with no near duplicate is decided
    here ('frequent'). The near duplicates are iterated, not listed (the containment collects this
    element's outputs: one per near duplicate, at most C(bands, bands − d)·(lsh_max_bucket − 1))."""
    phash, grouped = kv
    spread = next(iter(grouped["spread"]), None)
    if spread is None:  # a near duplicate found in a bucket is a hash with a spread
        return
    alone = True
    for other in grouped["to"]:
        alone = False
        yield other, spread
    if not alone:
        yield phash, spread
    elif is_frequent(spread, max_pages, max_domains):
        yield TaggedOutput("frequent", phash)


class CrawlDedup(beam.PTransform):
    """(pHash, (page_url, domain)) occurrences → {'frequent': the hashes whose near-duplicate
    neighbourhood is on more than max_pages_per_image pages or max_domains_per_image domains,
    'edges': the near-duplicate pairs (a < b) of distinct hashes, 'stats', 'failures'}.

      occurrences ─PageSpread (per hash, capped)─ spread ─┬─ LSH keys (ints) ─SmallestHashes─ Verify ─ edges
                                                          └─ JoinEdges (spread + near duplicates) ─ spread to each
      ─ NeighbourhoodSpread (per hash, capped) ─ frequent; hashes with no near duplicate: frequent from their own

    Every shuffle's state per key is bounded: spreads hold at most max + 1 pages and domains, a
    bucket at most lsh_max_bucket hashes (combiners, so also before the shuffle); only JoinEdges groups
    a hash's near duplicates (at most C(bands, bands − d)·(lsh_max_bucket − 1): the buckets it is in).
    """

    def __init__(self, cfg: DedupConfig):
        super().__init__()
        self.cfg = cfg
        _, key_bits, subsets = key_layout(cfg.lsh_bands, cfg.near_dup_hamming)
        # int keys and signed 64-bit hashes: typed, so the shuffle codes them as varints (VarIntCoder)
        self.typed_keys = (len(subsets) - 1) << key_bits | ((1 << key_bits) - 1) < 1 << 63

    def expand(self, occurrences):
        d = self.cfg
        max_p, max_d = d.max_pages_per_image, d.max_domains_per_image
        spread = occurrences | "PageSpread" >> beam.CombinePerKey(PageSpread(max_p, max_d))
        keys = beam.FlatMap(lambda kv, b=d.lsh_bands, dist=d.near_dup_hamming:
                            [(k, kv[0]) for k in band_keys(kv[0], b, dist)])
        bands = spread | "LshKeys" >> (keys.with_output_types(beam.typehints.KV[int, int]) if self.typed_keys else keys)
        verified = (bands | "Buckets" >> beam.CombinePerKey(SmallestHashes(d.lsh_max_bucket))
                    | "Verify" >> _step(DEDUP_STAGE, lambda kv: near_pairs(kv[1], d.near_dup_hamming,
                                                                           d.lsh_max_bucket)))
        edges = verified.out | "DistinctEdges" >> beam.Distinct()
        both_ways = edges | "BothWays" >> beam.FlatMap(lambda e: [(e[0], e[1]), (e[1], e[0])])
        spread_out = ({"spread": spread, "to": both_ways} | "JoinEdges" >> beam.CoGroupByKey()
                      | "SpreadToNeighbours" >> _step(DEDUP_STAGE, spread_to_neighbours, max_p, max_d,
                                                      outputs=("frequent",)))
        crowded = (spread_out.out | "Neighbourhoods" >> beam.CombinePerKey(NeighbourhoodSpread(max_p, max_d))
                   | "Crowded" >> beam.Filter(lambda kv: is_frequent(kv[1], max_p, max_d))
                   | "CrowdedHash" >> beam.Keys())
        frequent = (spread_out.frequent, crowded) | "Frequent" >> beam.Flatten()
        return {"frequent": frequent, "edges": edges,
                "stats": (verified.stats, spread_out.stats) | "DedupStats" >> beam.Flatten(),
                "failures": (verified.failures, spread_out.failures) | "DedupFailures" >> beam.Flatten()}


# ----------------------------------------------------------------------------- the pipeline
class MinePairs(beam.PTransform):
    """WARC locations → {'refs', 'pairs', 'pages', 'images', 'stats', 'failures'} PCollections."""

    def __init__(self, cfg: MineConfig, allow_private: bool):
        super().__init__()
        self.cfg, self.allow_private = cfg, allow_private

    def expand(self, locations):
        cfg, dedup = self.cfg, self.cfg.dedup
        side: list = []  # every step's stats and failures

        def steps(result):
            side.append(result)
            return result

        page_at = lambda kv: _page_at(min(kv[1], key=lambda p: (p["warc_file"], p["warc_offset"])))  # noqa: E731
        read = steps(locations | "SpreadFiles" >> beam.Reshuffle()
                     | "ReadWarcs" >> beam.ParDo(ReadWarcs(cfg)).with_outputs("images", "aliases", "stats", "failures",
                                                                              main="pages"))
        pages = steps(read.pages | "PageByUrl" >> beam.Map(lambda p: (p["page_url"], p))
                      | "GroupCaptures" >> beam.GroupByKey()
                      | "FirstCapture" >> _step("capture", first_capture, main="pages", where=page_at))
        cands = steps(pages.pages | "Candidates" >> _step("capture", candidates, where=_page_at))
        # revisits and redirects: the URL a page names may hold its bytes under another URL
        links = read.aliases | "SplitAliases" >> beam.FlatMap(split_aliases).with_outputs("by_digest", main="named")
        by_digest = ({"original": read.images | "Digests" >> beam.FlatMap(digest_key), "revisit": links.by_digest}
                     | "JoinDigests" >> beam.CoGroupByKey() | "DigestAliases" >> beam.FlatMap(digest_aliases))
        alias_map = ((links.named, by_digest) | "AllAliases" >> beam.Flatten()
                     | "AliasMap" >> beam.CombineGlobally(AliasMap()))
        captures = read.images | "WithAliases" >> beam.FlatMap(with_aliases, beam.pvalue.AsSingleton(alias_map))
        joined = steps({"cands": cands.out, "warc": captures} | "JoinByUrl" >> beam.CoGroupByKey()
                       | "JoinCaptures" >> _step(IMAGE_STAGE, join_captures, cfg, outputs=("bytes",), main="outcomes",
                                                 where=_captures_at, fallback=_captures_failed))
        chosen = steps(joined.outcomes | "ByReference" >> beam.GroupByKey()
                       | "ChooseCapture" >> _step(IMAGE_STAGE, choose_capture, cfg, outputs=("download",),
                                                  main="results", where=_choice_at, fallback=_choice_failed))
        downloads = chosen.download | "DownloadsByUrl" >> beam.GroupByKey() | "GroupDownloads" >> beam.FlatMap(group_downloads)
        fetched = steps(downloads
                        | "BatchUrls" >> beam.BatchElements(min_batch_size=1, max_batch_size=64)
                        | "Fetch" >> beam.ParDo(FetchBatch(cfg, self.allow_private)).with_outputs(
                            "bytes", "stats", "failures", main="results"))
        results = (chosen.results, fetched.results) | "AllResults" >> beam.Flatten()
        ok = results | "Decoded" >> beam.Filter(lambda r: r["status"] == R.KEPT)

        # crawl-wide: near-duplicate neighbourhoods (LSH) and how widely each is spread, per pHash
        crawl = (ok | "Occurrence" >> beam.Map(lambda r: (r["phash"], (r["page_url"], r["domain"])))
                 | "CrawlDedup" >> CrawlDedup(dedup))
        side.append(SimpleNamespace(stats=crawl["stats"], failures=crawl["failures"]))
        ok_by_hash = ok | "ByHash" >> beam.Map(lambda r: (r["phash"], r))
        frequent = crawl["frequent"] | "FrequentKey" >> beam.Map(lambda h: (h, True))
        marked = steps({"refs": ok_by_hash, "freq": frequent} | "JoinFrequent" >> beam.CoGroupByKey()
                       | "MarkFrequent" >> beam.ParDo(MarkFrequent()).with_outputs("stats", "failures", main="out"))
        failed = (results | "Failed" >> beam.Filter(lambda r: r["status"] != R.KEPT)
                  | "FailedByPage" >> beam.Map(lambda r: (r["page_url"], r)))
        by_page = (marked.out, failed) | "ResultsByPage" >> beam.Flatten()
        assembled = steps({"page": pages.pages | "PageKey" >> beam.Map(lambda p: (p["page_url"], p)),
                           "results": by_page}
                          | "JoinPage" >> beam.CoGroupByKey()
                          | "Assemble" >> _step("assemble", assemble, cfg, outputs=("pairs", "pages", "used"),
                                                main="refs", where=lambda kv: _page_at(list(kv[1]["page"])[0])))
        all_bytes = (joined.bytes, fetched.bytes) | "AllBytes" >> beam.Flatten()
        images = steps({"used": assembled.used, "bytes": all_bytes} | "JoinImages" >> beam.CoGroupByKey()
                       | "ImageRows" >> _step("images", image_row, main="images", where=_image_at))
        stats = (tuple(r.stats for r in side) | "AllStats" >> beam.Flatten() | "SumStats" >> beam.CombinePerKey(sum))
        failures = tuple(r.failures for r in side) | "AllFailures" >> beam.Flatten()
        return {"refs": assembled.refs, "pairs": assembled.pairs, "pages": assembled.pages,
                "images": images.images, "stats": stats, "failures": failures}


def build_pipeline(p: beam.Pipeline, locations: list[str], out, cfg: MineConfig, allow_private: bool) -> None:
    """`out`: a local folder or any Beam filesystem URL (gs://, s3://, hdfs://)."""
    base = str(out).rstrip("/")
    outs = p | "Locations" >> beam.Create(locations) | "MinePairs" >> MinePairs(cfg, allow_private)
    for name, schema in (("pages", schemas.PAGES), ("refs", schemas.REFS), ("images", schemas.IMAGES),
                         ("pairs", schemas.PAIRS), ("failures", schemas.FAILURES)):
        outs[name] | f"Write{name.title()}" >> beam.io.WriteToParquet(
            f"{base}/{name}/part", schema, file_name_suffix=".parquet", codec="snappy",
            row_group_buffer_size=PARQUET_ROW_GROUP_BYTES)
    (outs["stats"] | "StatsJson" >> beam.Map(lambda kv: json.dumps({kv[0]: kv[1]}))
     | "WriteStats" >> beam.io.WriteToText(f"{base}/_stats/stats", file_name_suffix=".jsonl", num_shards=1))


RESULTS_LOST = "assemble:results_lost"  # references whose result never reached their page (stats.json: lost_results)


class ResultsLost(UserError):
    """The runner delivered fewer results than the pipeline produced: the output is incomplete."""


def summarize_stats(counts: dict, seconds: float, inputs: int) -> dict:
    """Flat counters → stats.json: records, pages, refs by status, drops by stage and reason, and the
    elements whose step raised (internal errors, by stage; their rows are in failures/)."""
    refs = {k[5:]: v for k, v in counts.items() if k.startswith("refs:")}
    internal = {k.rsplit(":", 1)[0]: v for k, v in counts.items()
                if k.endswith(":" + INTERNAL_ERROR) and not k.startswith(("refs:", "urls:"))}
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
                  "too_complex": counts.get(R.PAGE_TOO_COMPLEX, 0),
                  "main_content_errors": counts.get("pages:main_content_error", 0)},
        "refs": {"total": sum(refs.values()), "by_status": dict(sorted(refs.items()))},
        "urls": {k[5:]: v for k, v in sorted(counts.items()) if k.startswith("urls:")},
        "images": counts.get("images", 0),
        "pairs": counts.get("pairs", 0),
        "drops": {s: dict(sorted(r.items())) for s, r in sorted(drops.items())},
        "internal_errors": dict(sorted(internal.items())),
        "lost_results": counts.get(RESULTS_LOST, 0),
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
    locations = [loc if '://' in loc else os.path.abspath(loc)  # warc_file: where the input is, not as typed
                 for loc in resolve_inputs(inputs, cfg.commoncrawl_base_url)]
    prepare_output(out, overwrite)
    allow = cfg.download.allow_private_network if allow_private is None else allow_private
    log.info("mining %d WARC file(s) → %s (runner %s)", len(locations), out, settings.profile.beam.get("runner"))
    t0 = time.perf_counter()
    with beam_logs_to_file(log_path(out)), beam_options(settings, extra_options) as options, \
            beam.Pipeline(options=options) as p:
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
    if counts.get(RESULTS_LOST):  # the output is not what the input holds: never marked complete
        raise ResultsLost(
            f"{out}: the runner lost {counts[RESULTS_LOST]} reference results between steps "
            f"({stats['internal_errors'].get('assemble', 0)} pages written to failures/ instead of pages/); the "
            "output is left unmarked (no _SUCCESS). Seen with Beam's Python FnApiRunner (DirectRunner, "
            "job_endpoint: embed) at direct_num_workers > 1 on ~1 GB per job: rerun with "
            "--set profiles.<profile>.beam.direct_num_workers=1, or on Dataflow / Flink / Spark.")
    mark_complete(out)
    return stats
