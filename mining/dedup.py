"""Deduplication by perceptual hash: on one page, and across the whole crawl.

Across the crawl, near duplicates are found by banded hashes (LSH), not by comparing
all pairs: the 64-bit pHash is cut into `b` bands; two hashes within Hamming distance
d < b differ in at most d bands, so (pigeonhole) they agree on at least k = b − d bands,
hence on every band of at least one k-subset of bands. Each hash is filed under all its
C(b, k) k-subset keys and pairs meeting in a bucket are verified by exact distance. With
b = 8, d = 6 that is 28 keys of 16 bits: buckets hold ~N/65536 hashes instead of the N/256
of single 8-bit bands (at 1 M images: ~15 instead of ~3,900), with no pair missed while a
bucket holds at most dedup.lsh_max_bucket hashes (its smallest are verified past that). A key is
one integer, the subset's index above the subset's band bits (`subset << 16 | bits`: 3 bytes
as a varint), so the shuffle carries a few bytes per key, not nested tuples.

The crawl-wide verdict depends on the hash only, so it is computed per distinct pHash: a
hash's *spread* is the distinct pages and domains it appears on, kept capped (the smallest
max+1 of each: enough to tell "more than max"), so no state grows with a logo's popularity.
A hash's *neighbourhood* is itself plus its verified near duplicates; a hash whose
neighbourhood's spread is over N pages or M domains is a logo, button or banner, and every
image with that hash is frequent.
"""
from __future__ import annotations

import functools
import itertools
import logging
from typing import Iterable, Iterator

from semantica.images import hamming
from semantica.mining import reasons as R

log = logging.getLogger(__name__)

MAX_BUCKET = 5000  # default of dedup.lsh_max_bucket: a fuller bucket is verified on its smallest hashes only
MASK64 = (1 << 64) - 1


@functools.lru_cache(maxsize=None)
def key_layout(n_bands: int, max_distance: int) -> tuple[int, int, tuple]:
    """(band width, key bits, the band-index subsets in key order) of the LSH keys."""
    k = n_bands - max_distance
    if k < 1:
        raise ValueError(f"near-duplicate distance {max_distance} needs more than {n_bands} bands")
    width = 64 // n_bands
    return width, k * width, tuple(itertools.combinations(range(n_bands), k))


def bands(phash: int, n_bands: int) -> list[int]:
    """The band values of a 64-bit hash cut into n_bands equal bands, lowest bits first."""
    width = 64 // n_bands
    h, mask = phash & MASK64, (1 << width) - 1
    return [(h >> (i * width)) & mask for i in range(n_bands)]


def band_keys(phash: int, n_bands: int, max_distance: int) -> list[int]:
    """The bucket keys of a hash: for every (n_bands − max_distance)-subset of its bands (in
    itertools.combinations order), `subset index << key bits | the subset's bands concatenated`.
    Two hashes share a key exactly when they agree on every band of one subset."""
    width, key_bits, subsets = key_layout(n_bands, max_distance)
    b = bands(phash, n_bands)
    if len(subsets[0]) == 2:  # the shipped layout (8 bands, distance 6): unrolled
        return [s << key_bits | b[i] << width | b[j] for s, (i, j) in enumerate(subsets)]
    keys = []
    for s, subset in enumerate(subsets):
        bits = 0
        for i in subset:
            bits = bits << width | b[i]
        keys.append(s << key_bits | bits)
    return keys


def smallest_distinct(kept: list, items: Iterable, cap: int) -> list:
    """`kept` (a list) with `items` added, trimmed to its `cap` smallest distinct values whenever it
    passes 2·cap (amortised); `sorted(set(result))[:cap]` is the cap smallest of everything seen."""
    for x in items:
        kept.append(x)
        if len(kept) > 2 * cap:
            kept[:] = sorted(set(kept))[:cap]
    return kept


def near_pairs(bucket: Iterable[int], max_distance: int, max_bucket: int = MAX_BUCKET) -> Iterator[tuple[int, int]]:
    """Verified near-duplicate pairs (a < b) among the distinct hashes of one bucket (its `max_bucket`
    smallest, when fuller), in order of a then b. Buckets of more than VECTOR_FROM hashes are compared
    with numpy (the same pairs, 10-20x faster than this loop's ~10 M comparisons/s)."""
    hashes = sorted(set(bucket))
    if len(hashes) > max_bucket:
        log.warning("LSH bucket of %d hashes: verifying the %d smallest only", len(hashes), max_bucket)
        hashes = hashes[:max_bucket]
    if len(hashes) > VECTOR_FROM:
        yield from _near_pairs_np(hashes, max_distance)
        return
    for n, a in enumerate(hashes):
        for b in hashes[n + 1:]:
            if ((a ^ b) & MASK64).bit_count() <= max_distance:
                yield a, b


VECTOR_FROM = 64  # bucket size from which near_pairs compares with numpy
_BYTE_BITS = None


def _popcount64(x):
    """Set bits per element of a uint64 array (numpy ≥ 2: bitwise_count; else a byte table)."""
    import numpy as np
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    global _BYTE_BITS
    if _BYTE_BITS is None:
        _BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return _BYTE_BITS[np.ascontiguousarray(x).view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.uint8)


def _near_pairs_np(hashes: list, max_distance: int) -> Iterator[tuple[int, int]]:
    import numpy as np
    h = np.array(hashes, dtype=np.int64).view(np.uint64)
    m = len(h)
    block = max(1, (1 << 21) // m)  # rows compared at once: ≤ 2 M cells (16 MB)
    for s in range(0, m, block):
        rows = h[s:s + block]
        i, j = np.nonzero(_popcount64(rows[:, None] ^ h[None, s:]) <= max_distance)
        keep = j > i  # columns start at row s: j > i is b after a
        for a, b in zip((i[keep] + s).tolist(), (j[keep] + s).tolist()):
            yield hashes[a], hashes[b]


def capped_add(kept: list, item, cap: int) -> None:
    """Add `item` to `kept` (distinct values, at most `cap`: the smallest seen)."""
    if item in kept:
        return
    if len(kept) < cap:
        kept.append(item)
        return
    top = max(kept)
    if item < top:
        kept[kept.index(top)] = item


def spread_add(spread: tuple[list, list], pages: Iterable[str], domains: Iterable[str], max_pages: int,
               max_domains: int) -> tuple[list, list]:
    """A (pages, domains) spread with more pages and domains added, each capped at max + 1 (the
    smallest): the capped union of capped sets tells "more than max" exactly as the full union."""
    for p in pages:
        capped_add(spread[0], p, max_pages + 1)
    for d in domains:
        capped_add(spread[1], d, max_domains + 1)
    return spread


def is_frequent(spread: tuple, max_pages: int, max_domains: int) -> bool:
    """On more than max_pages pages or max_domains domains."""
    return len(spread[0]) > max_pages or len(spread[1]) > max_domains


def page_dedup(items: list[dict], max_distance: int) -> list[str]:
    """Status per image of one page: the largest of each near-identical group is kept.

    items: dicts with position, image_id, phash, width, height (in page order).
    """
    order = sorted(range(len(items)), key=lambda i: (-items[i]["width"] * items[i]["height"], items[i]["position"]))
    kept: list[int] = []
    status = [R.KEPT] * len(items)
    for i in order:
        it = items[i]
        if any(items[k]["image_id"] == it["image_id"] or hamming(items[k]["phash"], it["phash"]) <= max_distance
               for k in kept):
            status[i] = R.DUP_SAME_PAGE
        else:
            kept.append(i)
    return status
