"""FlagFrequentImages: the crawl-wide dedup. An image whose near-duplicate neighbourhood is on too many
pages or domains (a logo, a banner, a button) is marked frequent (dedup.py holds the maths)."""
from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from semantica.config import DedupConfig
from semantica.mining import reasons as R
from semantica.mining import stats as S
from semantica.mining.containment import contained, contained_step
from semantica.mining.dedup import band_keys, is_frequent, key_layout, near_pairs, smallest_distinct, spread_add
from semantica.mining.records import RefResult
from semantica.mining.steps.image_bytes import failed_result


# ----------------------------------------------------------------------------- CrawlDedup's combiners
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
        if len(acc) > 2 * self.cap:  # trimmed back to `cap` only past twice that: amortised O(1) per hash
            acc[:] = sorted(set(acc))[:self.cap]
        return acc

    def merge_accumulators(self, accumulators):
        out: list = []
        for acc in accumulators:
            smallest_distinct(out, acc, self.cap)
        return out

    def extract_output(self, acc):
        return sorted(set(acc))[:self.cap]


# ----------------------------------------------------------------------------- CrawlDedup's element functions
def lsh_keys(kv, n_bands: int, max_distance: int) -> list:
    """A hash with its spread → (LSH key, hash) for each bucket it is filed in."""
    phash = kv[0]
    return [(k, phash) for k in band_keys(phash, n_bands, max_distance)]


def verify_bucket(kv, max_distance: int, max_bucket: int):
    """An LSH bucket → its verified near-duplicate pairs (a < b)."""
    return near_pairs(kv[1], max_distance, max_bucket)


def both_ways(edge: tuple) -> list:
    """A near-duplicate pair (a, b) → a is b's neighbour and b is a's."""
    a, b = edge
    return [(a, b), (b, a)]


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


def crowded(kv, max_pages: int, max_domains: int) -> bool:
    """A hash whose neighbourhood's spread is over the limits."""
    return is_frequent(kv[1], max_pages, max_domains)


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
        # int keys and signed 64-bit hashes: typed, so the shuffle codes them as varints (VarIntCoder),
        # when the largest key (the last subset's index above all-ones band bits) fits in 63 bits
        self.typed_keys = (len(subsets) - 1) << key_bits | ((1 << key_bits) - 1) < 1 << 63

    def expand(self, occurrences):
        d = self.cfg
        max_p, max_d = d.max_pages_per_image, d.max_domains_per_image
        spread = occurrences | "PageSpread" >> beam.CombinePerKey(PageSpread(max_p, max_d))
        keys = beam.FlatMap(lsh_keys, d.lsh_bands, d.near_dup_hamming)
        bands = spread | "LshKeys" >> (keys.with_output_types(beam.typehints.KV[int, int]) if self.typed_keys else keys)
        verified = (bands | "Buckets" >> beam.CombinePerKey(SmallestHashes(d.lsh_max_bucket))
                    | "Verify" >> contained_step(S.DEDUP_STAGE, verify_bucket, d.near_dup_hamming, d.lsh_max_bucket))
        edges = verified.out | "DistinctEdges" >> beam.Distinct()
        spread_out = ({"spread": spread, "to": edges | "BothWays" >> beam.FlatMap(both_ways)}
                      | "JoinEdges" >> beam.CoGroupByKey()
                      | "SpreadToNeighbours" >> contained_step(S.DEDUP_STAGE, spread_to_neighbours, max_p, max_d,
                                                               outputs=("frequent",)))
        crowded_hashes = (spread_out.out | "Neighbourhoods" >> beam.CombinePerKey(NeighbourhoodSpread(max_p, max_d))
                          | "Crowded" >> beam.Filter(crowded, max_p, max_d)
                          | "CrowdedHash" >> beam.Keys())
        frequent = (spread_out.frequent, crowded_hashes) | "Frequent" >> beam.Flatten()
        return {"frequent": frequent, "edges": edges,
                "stats": (verified.stats, spread_out.stats) | "DedupStats" >> beam.Flatten(),
                "failures": (verified.failures, spread_out.failures) | "DedupFailures" >> beam.Flatten()}


# ----------------------------------------------------------------------------- the step
def is_decoded(result: RefResult) -> bool:
    return result.image.status == R.KEPT


def is_not_decoded(result: RefResult) -> bool:
    return result.image.status != R.KEPT


def occurrence(result: RefResult) -> tuple:
    """A decoded image at a reference → (its pHash, (page, domain)): what CrawlDedup counts."""
    return result.image.phash, (result.page_url, result.domain)


def by_phash(result: RefResult) -> tuple:
    return result.image.phash, result


def flagged(phash: int) -> tuple:
    return phash, True


def by_page(result: RefResult) -> tuple:
    return result.page_url, result


def mark_frequent(result: RefResult, frequent: bool):
    """One result, marked, by page."""
    yield result.page_url, dataclasses.replace(result, frequent=frequent)


def mark_failed(result: RefResult):
    yield result.page_url, failed_result(result, S.DEDUP_STAGE)


class MarkFrequent(beam.DoFn):
    """pHash → its results and whether it is frequent → each result by page, marked. Each result is
    contained on its own and yielded as it is read: a logo's results (one per page it is on) are
    streamed, never listed."""

    def process(self, kv):
        _, grouped = kv
        frequent = any(True for _ in grouped["freq"])
        for r in grouped["refs"]:
            yield from contained(S.DEDUP_STAGE, lambda r=r: mark_frequent(r, frequent), element=r,
                                 fallback=lambda r=r: mark_failed(r))


class FlagFrequentImages(beam.PTransform):
    """RefResult of every kept reference → {'by_page': (page URL, RefResult), the decoded ones with
    `frequent` set by CrawlDedup over the whole crawl, the others as they came; 'stats'; 'failures'}."""

    def __init__(self, cfg: DedupConfig):
        super().__init__()
        self.cfg = cfg

    def expand(self, results):
        ok = results | "Decoded" >> beam.Filter(is_decoded)
        crawl = ok | "Occurrence" >> beam.Map(occurrence) | "CrawlDedup" >> CrawlDedup(self.cfg)
        marked = ({"refs": ok | "ByHash" >> beam.Map(by_phash),
                   "freq": crawl["frequent"] | "FrequentKey" >> beam.Map(flagged)}
                  | "JoinFrequent" >> beam.CoGroupByKey()
                  | "MarkFrequent" >> beam.ParDo(MarkFrequent()).with_outputs("stats", "failures", main="out"))
        failed = results | "Failed" >> beam.Filter(is_not_decoded) | "FailedByPage" >> beam.Map(by_page)
        return {"by_page": (marked.out, failed) | "ResultsByPage" >> beam.Flatten(),
                "stats": (crawl["stats"], marked.stats) | "Stats" >> beam.Flatten(),
                "failures": (crawl["failures"], marked.failures) | "Failures" >> beam.Flatten()}
