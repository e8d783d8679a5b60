"""Deduplication by perceptual hash: on one page, and across the whole crawl.

Across the crawl, near duplicates are found by banded hashes (LSH), not by comparing
all pairs: the 64-bit pHash is cut into `b` bands; two hashes within Hamming distance
d < b differ in at most d bands, so (pigeonhole) they agree on at least k = b − d bands,
hence on every band of at least one k-subset of bands. Each hash is filed under all its
C(b, k) k-subset keys and pairs meeting in a bucket are verified by exact distance. With
b = 8, d = 6 that is 28 keys of 16 bits: buckets hold ~N/65536 hashes instead of the N/256
of single 8-bit bands (at 1 M images: ~15 instead of ~3,900), with no pair missed. A picture's
*neighbourhood* is itself plus its verified near duplicates; a picture whose
neighbourhood appears on more than N pages or M domains is a logo, button or banner.
"""
from __future__ import annotations

import itertools
import logging
from typing import Iterable, Iterator

from semantica.mining import reasons as R
from semantica.mining.decode import hamming, to_unsigned

log = logging.getLogger(__name__)

MAX_BUCKET = 5000  # a fuller bucket (e.g. thousands of blank images) is verified on its first MAX_BUCKET


def bands(phash: int, n_bands: int) -> list[tuple[int, int]]:
    """[(band index, band value)] of a 64-bit hash cut into n_bands equal bands."""
    width = 64 // n_bands
    h = to_unsigned(phash)
    mask = (1 << width) - 1
    return [(i, (h >> (i * width)) & mask) for i in range(n_bands)]


def band_keys(phash: int, n_bands: int, max_distance: int) -> list[tuple]:
    """The bucket keys of a hash: every (n_bands − max_distance)-subset of its bands."""
    k = n_bands - max_distance
    if k < 1:
        raise ValueError(f"near-duplicate distance {max_distance} needs more than {n_bands} bands")
    b = bands(phash, n_bands)
    return [tuple(b[i] for i in subset) for subset in itertools.combinations(range(n_bands), k)]


def near_pairs(bucket: Iterable[tuple[str, int]], max_distance: int) -> Iterator[tuple[str, str]]:
    """Verified near-duplicate pairs (a < b) among the distinct images of one bucket."""
    items = sorted(set(bucket))
    if len(items) > MAX_BUCKET:
        log.warning("LSH bucket of %d hashes: verifying the first %d only", len(items), MAX_BUCKET)
        items = items[:MAX_BUCKET]
    for (a, ha), (b, hb) in itertools.combinations(items, 2):
        if a != b and hamming(ha, hb) <= max_distance:
            yield (a, b) if a < b else (b, a)


def capped_union(groups: Iterable[Iterable[str]], cap: int) -> set:
    """Union, but stop growing past `cap` items: we only need to know whether a count exceeds cap-1."""
    out: set = set()
    for g in groups:
        for x in g:
            if len(out) >= cap:
                return out
            out.add(x)
    return out


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
