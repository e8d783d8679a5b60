"""A synthetic crawl for crawl-wide dedup (`CrawlDedup`) at any size, with its ground truth.

Shared by tests/test_mining_dedup_scale.py and benchmarks/bench_dedup_beam.py. Deterministic:
every shard is drawn from its own seed, in the pipeline (a Beam worker draws its shards, so
nothing of size n is pickled into the graph) and again here for the truth.

  ordinary images   n random 64-bit pHashes, each on a page of its own (domain = page % domains)
  planted copies    `planted` near copies of random ordinary images (1..d bits flipped), each on a
                    page of its own: one pair each, not frequent (2 pages, at most 2 domains)
  popular logos     one hash each, on 6..`max_logo_pages` ordinary pages (heavy-tailed), so on many
                    pages and domains: frequent on their own spread
  logo families     a master hash and 3-6 variants within distance 3 of it (all within d = 6 of each
                    other), each member on 1-2 pages: no member is frequent on its own, each is by its
                    neighbourhood (half the families on > max pages of one domain, half on > max domains)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spec:
    n: int                   # ordinary images
    planted: int = 0         # near copies of ordinary images
    popular: int = 0         # logos on many pages
    families: int = 0        # families of near-duplicate logos, each member rare
    max_distance: int = 6
    domains: int = 10_000
    shard_size: int = 10_000
    max_logo_pages: int = 5000
    seed: int = 0

    @property
    def shards(self) -> list[int]:
        """Shard ids: 0.. for ordinary images and their planted copies, -1 for the logos."""
        return list(range(-(-self.n // self.shard_size))) + [-1]


def domain_of(spec: Spec, page: int) -> str:
    return f"www.site{page % spec.domains}.example"


def url_of(spec: Spec, page: int) -> str:
    return f"https://{domain_of(spec, page)}/{2020 + page % 5}/article-{page}.html"


def to_signed(h: np.ndarray) -> np.ndarray:
    return h.view(np.int64)


def _flip(rng, h: int, lo: int, hi: int) -> int:
    """h with lo..hi random distinct bits flipped."""
    for b in rng.choice(64, int(rng.integers(lo, hi + 1)), replace=False):
        h ^= 1 << int(b)
    return h


def shard(spec: Spec, s: int) -> dict:
    """One shard's occurrences: 'hash' (uint64) and 'page' (int64) arrays, one row an occurrence, and
    its truth: 'pairs' (planted (source, copy) uint64 rows), 'logos' (uint64), 'members' (family id per
    logo, -1 for a popular one)."""
    rng = np.random.default_rng([spec.seed, s + 1])
    if s >= 0:
        first = s * spec.shard_size
        count = min(spec.shard_size, spec.n - first)
        hs = rng.integers(0, 2**64 - 1, size=count, dtype=np.uint64, endpoint=True)
        pages = first + np.arange(count, dtype=np.int64)
        k0, k1 = spec.planted * first // spec.n, spec.planted * (first + count) // spec.n
        src = rng.choice(count, k1 - k0, replace=False)
        copies = np.array([_flip(rng, int(hs[i]), 1, spec.max_distance) for i in src], dtype=np.uint64)
        return dict(hash=np.concatenate([hs, copies]),
                    page=np.concatenate([pages, spec.n + np.arange(k0, k1, dtype=np.int64)]),
                    pairs=np.stack([hs[src], copies], axis=1) if len(src) else np.zeros((0, 2), np.uint64),
                    logos=np.zeros(0, np.uint64), members=np.zeros(0, np.int64))
    hashes, pages, logos, members = [], [], [], []
    for _ in range(spec.popular):  # heavy-tailed: most on a few dozen pages, some on thousands
        h = int(rng.integers(0, 2**64 - 1, dtype=np.uint64, endpoint=True))
        k = min(spec.max_logo_pages, 6 + int(rng.pareto(1.0) * 20))
        on = rng.choice(spec.n, min(k, spec.n), replace=False)
        hashes += [h] * len(on)
        pages += on.tolist()
        logos.append(h)
        members.append(-1)
    next_page = spec.n + spec.planted  # family pages: new ones, past every ordinary and planted page
    next_page += -next_page % spec.domains
    for f in range(spec.families):
        master = int(rng.integers(0, 2**64 - 1, dtype=np.uint64, endpoint=True))
        family = {master}
        size = int(rng.integers(3, 7))
        while len(family) < size:
            family.add(_flip(rng, master, 1, 3))
        dom = int(rng.integers(spec.domains))
        for j, h in enumerate(sorted(family)):
            if f % 2 == 0:  # two pages each on one domain: > 5 pages together (3+ members)
                on = [next_page + dom, next_page + spec.domains + dom]
                next_page += 2 * spec.domains
            else:  # one page each, on a domain of its own: > 2 domains together
                on = [next_page + (dom + j) % spec.domains]
                next_page += spec.domains
            hashes += [h] * len(on)
            pages += on
            logos.append(h)
            members.append(f)
    return dict(hash=np.array(hashes, dtype=np.uint64), page=np.array(pages, dtype=np.int64),
                pairs=np.zeros((0, 2), np.uint64), logos=np.array(logos, dtype=np.uint64),
                members=np.array(members, dtype=np.int64))


def occurrences(s: int, spec: Spec):
    """Shard s as CrawlDedup's input: (signed pHash, (page url, domain)) rows."""
    d = shard(spec, s)
    for h, page in zip(to_signed(d["hash"]).tolist(), d["page"].tolist()):
        yield h, (url_of(spec, page), domain_of(spec, page))


def truth(spec: Spec) -> dict:
    """Every shard concatenated: 'hash', 'page' (occurrences), 'distinct' (uint64, sorted), 'pairs'
    (planted, as signed (a < b) tuples), 'logos' (signed set)."""
    parts = [shard(spec, s) for s in spec.shards]
    hs = np.concatenate([p["hash"] for p in parts])
    pairs = np.concatenate([p["pairs"] for p in parts])
    signed = to_signed(np.ascontiguousarray(pairs))
    return dict(hash=hs, page=np.concatenate([p["page"] for p in parts]), distinct=np.unique(hs),
                pairs={(min(a, b), max(a, b)) for a, b in signed.tolist()},
                logos=set(to_signed(np.concatenate([p["logos"] for p in parts])).tolist()),
                members=np.concatenate([p["members"] for p in parts]))


def near(distinct: np.ndarray, queries: np.ndarray, max_distance: int, block: int = 64) -> set:
    """Brute force: every pair (a < b, signed) of a query hash and a distinct hash within max_distance
    (a hash is not its own pair)."""
    out = set()
    for i in range(0, len(queries), block):
        q = queries[i:i + block]
        qi, di = np.nonzero(np.bitwise_count(q[:, None] ^ distinct[None, :]) <= max_distance)
        keep = q[qi] != distinct[di]
        a, b = to_signed(q[qi][keep]).tolist(), to_signed(distinct[di][keep]).tolist()
        out.update((min(x, y), max(x, y)) for x, y in zip(a, b))
    return out


def read_ints(pattern: str) -> list:
    """The lines of Beam text output files (one int, or one `a b` pair, a line)."""
    import glob
    out = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            for line in f:
                parts = line.split()
                out.append(int(parts[0]) if len(parts) == 1 else tuple(map(int, parts)))
    return out


def build(p, spec: Spec, dedup_cfg, out: str):
    """The synthetic crawl → CrawlDedup → `out`/frequent-*.txt and `out`/edges-*.txt; returns CrawlDedup's
    outputs (for the caller to inspect, e.g. the coders of its PCollections)."""
    import apache_beam as beam
    from semantica.mining.steps.frequent import CrawlDedup
    occ = (p | "Shards" >> beam.Create(spec.shards) | "Spread shards" >> beam.Reshuffle()
           | "Occurrences" >> beam.FlatMap(occurrences, spec))
    res = occ | "CrawlDedup" >> CrawlDedup(dedup_cfg)
    res["frequent"] | "FrequentText" >> beam.Map(str) | "WriteFrequent" >> beam.io.WriteToText(f"{out}/frequent")
    (res["edges"] | "EdgeText" >> beam.Map(lambda e: f"{e[0]} {e[1]}")
     | "WriteEdges" >> beam.io.WriteToText(f"{out}/edges"))
    return res
