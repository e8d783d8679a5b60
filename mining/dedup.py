"""Deduplication by perceptual hash: on one page, and across the whole crawl.

Across the crawl, near duplicates are found by banded hashes (LSH), not by comparing
all pairs: the 64-bit pHash is cut into `b` bands; two hashes within Hamming distance
d < b differ in at most d bands, so (pigeonhole) they agree on at least one band and
meet in that band's bucket, where the pair is verified by its exact distance. A picture's
*neighbourhood* is itself plus its verified near duplicates; a picture whose
neighbourhood appears on more than N pages or M domains is a logo, button or banner.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator

from semantica.mining import reasons as R
from semantica.mining.decode import hamming, to_unsigned

MAX_BUCKET = 5000  # a bucket this full (e.g. blank images) is verified on its first MAX_BUCKET hashes


def bands(phash: int, n_bands: int) -> list[tuple[int, int]]:
    """[(band index, band value)] of a 64-bit hash cut into n_bands equal bands."""
    width = 64 // n_bands
    h = to_unsigned(phash)
    mask = (1 << width) - 1
    return [(i, (h >> (i * width)) & mask) for i in range(n_bands)]


def near_pairs(bucket: Iterable[tuple[str, int]], max_distance: int) -> Iterator[tuple[str, str]]:
    """Verified near-duplicate pairs (a < b) among the distinct images of one bucket."""
    items = sorted(set(bucket))[:MAX_BUCKET]
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
