"""Ordered (condition, target) pairs from the kept images of one page.

All ordered pairs whose pHash distance is above `min_pair_hamming` (near-identical pairs
teach copying, not variation) are candidates. Past the per-page cap, a deterministic
sample (seeded by the run seed and the page URL, so it does not depend on workers or
order) is taken that still puts every image into at least one pair: a random matching
first, then random further pairs.
The cap is raised to ⌈n/2⌉ where it is too low to cover n images at all.
"""
from __future__ import annotations

import hashlib
import random

from semantica.config import PairsConfig
from semantica.images import hamming


def pair_id(page_url: str, cond_id: str, target_id: str) -> str:
    return hashlib.sha256(f"{page_url}\x00{cond_id}\x00{target_id}".encode()).hexdigest()[:24]


def make_pairs(images: list[dict], page_url: str, cfg: PairsConfig, seed: int) -> list[tuple[int, int, int]]:
    """[(cond index, target index, pHash distance)] into `images` (dicts with image_id, phash)."""
    n = len(images)
    allowed = {}
    for i in range(n):
        for j in range(n):
            if i != j:
                d = hamming(images[i]["phash"], images[j]["phash"])
                if d > cfg.min_pair_hamming:
                    allowed[(i, j)] = d
    if len(allowed) <= cfg.max_pairs_per_page:
        return sorted((i, j, d) for (i, j), d in allowed.items())
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}\x00{page_url}".encode()).digest()[:8], "big"))
    cap = max(cfg.max_pairs_per_page, (n + 1) // 2)
    order = sorted(range(n), key=lambda i: images[i]["image_id"])
    rng.shuffle(order)
    chosen: list = []
    covered: set = set()
    for k in range(0, n, 2):  # a random matching: ⌈n/2⌉ pairs put every image in one
        i = order[k]
        j = order[k + 1] if k + 1 < n else order[0]
        pair = (i, j) if (i, j) in allowed else next(((i, x) for x in order if (i, x) in allowed), None)
        if pair:
            chosen.append(pair)
            covered |= set(pair)
    for i in order:  # images only near-identical partners could have paired: as targets
        if i not in covered:
            pair = next(((x, i) for x in order if (x, i) in allowed), None)
            if pair:
                chosen.append(pair)
                covered |= set(pair)
    rest = sorted(set(allowed) - set(chosen))
    rng.shuffle(rest)
    chosen += rest[: max(0, cap - len(chosen))]
    return sorted((i, j, allowed[(i, j)]) for i, j in chosen)
