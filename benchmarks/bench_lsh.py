"""Crawl-wide near-duplicate search by banded pHash (LSH), against brute force all pairs.

--n (default 1,000,000) random 64-bit hashes plus --planted (default 2,000) near copies
(1..max distance bits flipped). The LSH path is the miner's (mining/dedup.py, as the Beam
pipeline runs it): `bands` of every hash, grouping by (band, value), `near_pairs` in each
bucket. It is timed twice:
  pure Python   the project's functions; banding + grouping measured over all hashes,
                near_pairs measured on --python-buckets buckets and scaled by pair count
  numpy         the same logic vectorised (group by sort; verify each bucket's first
                MAX_BUCKET ids by XOR + popcount), measured over everything
Baseline: brute force all pairs on a --sample (default 5,000) of the hashes holding
planted pairs, timed (project `hamming` in Python, and numpy) and scaled by n^2 to the
full set. Recall of the project's LSH against brute force on the sample must be 1.0
(pigeonhole: distance < bands); recall of planted pairs on the full set is also printed.

  .venv/bin/python benchmarks/bench_lsh.py [--n 1000000] [--sample 5000]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from semantica.config import load_settings  # noqa: E402
from semantica.mining.decode import hamming, to_signed  # noqa: E402
from semantica.mining.dedup import MAX_BUCKET, bands, near_pairs  # noqa: E402


def verify_np(ids: np.ndarray, hs: np.ndarray, d: int, block: int = 64) -> np.ndarray:
    """Pairs (a < b, as a * 2**32 + b) within distance d among (ids, hashes) sorted by id."""
    out = []
    for s in range(0, len(hs), block):
        close = np.bitwise_count(hs[s:s + block, None] ^ hs[None, s:]) <= d
        i, j = np.nonzero(close)
        keep = j > i
        out.append(ids[i[keep] + s].astype(np.int64) << 32 | ids[j[keep] + s])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def lsh_np(hs: np.ndarray, ids: np.ndarray, n_bands: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct pairs, bucket sizes): band, group by sort, verify each bucket as near_pairs does."""
    width = 64 // n_bands
    keys = np.concatenate([(np.uint64(b) << np.uint64(width)) | ((hs >> np.uint64(b * width)) & np.uint64((1 << width) - 1))
                           for b in range(n_bands)])
    order = np.lexsort((np.tile(ids, n_bands), keys))  # by bucket, then id: near_pairs sorts by id
    rows = np.tile(np.arange(len(hs)), n_bands)[order]
    _, starts, sizes = np.unique(keys[order], return_index=True, return_counts=True)
    pairs = [verify_np(ids[rows[s:s + min(n, MAX_BUCKET)]], hs[rows[s:s + min(n, MAX_BUCKET)]], d)
             for s, n in zip(starts, sizes) if n > 1]
    return np.unique(np.concatenate(pairs)), sizes


def lsh_python(items: list, n_bands: int) -> dict:
    buckets: dict = {}
    for item in items:
        for b in bands(item[1], n_bands):
            buckets.setdefault(b, []).append(item)
    return buckets


def main() -> None:
    dedup = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml").stages.mine.dedup
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="random hashes (default 1,000,000)")
    ap.add_argument("--planted", type=int, default=2000, help="near copies added (default 2,000)")
    ap.add_argument("--sample", type=int, default=5000, help="brute-force sample size (default 5,000)")
    ap.add_argument("--python-buckets", type=int, default=2, help="buckets timed with near_pairs (default 2)")
    ap.add_argument("--bands", type=int, default=dedup.lsh_bands, help=f"(default {dedup.lsh_bands})")
    ap.add_argument("--max-distance", type=int, default=dedup.near_dup_hamming, help=f"(default {dedup.near_dup_hamming})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d, rng = args.max_distance, np.random.default_rng(args.seed)
    print(_common.pin_one_core())

    base = rng.integers(0, 2**64 - 1, size=args.n, dtype=np.uint64, endpoint=True)
    src = rng.choice(args.n, args.planted, replace=False)
    flips = [sum(1 << int(b) for b in rng.choice(64, rng.integers(1, d + 1), replace=False)) for _ in src]
    hs = np.concatenate([base, base[src] ^ np.array(flips, dtype=np.uint64)])
    total = len(hs)
    ids = rng.permutation(total)  # image ids in random order (sha256 in the miner): copies are not all last
    planted = {min(ids[s], ids[args.n + k]) << 32 | max(ids[s], ids[args.n + k]) for k, s in enumerate(src.tolist())}
    items = [(f"{i:09d}", to_signed(h)) for i, h in zip(ids.tolist(), hs.tolist())]
    print(f"{total:,} hashes ({args.planted:,} planted copies at distance 1..{d}), {args.bands} bands, distance <= {d}")

    t_py_group, buckets = _common.timed(lsh_python, items, args.bands)
    sizes_py = sorted((len(v) for v in buckets.values()), reverse=True)
    timed_buckets = list(buckets.values())[:args.python_buckets]
    t_py_some, _ = _common.timed(lambda: [list(near_pairs(b, d)) for b in timed_buckets])
    pairs_of = lambda m: min(m, MAX_BUCKET) * (min(m, MAX_BUCKET) - 1) // 2  # noqa: E731
    lsh_comparisons = sum(pairs_of(m) for m in sizes_py)
    t_py_verify = t_py_some / sum(pairs_of(len(b)) for b in timed_buckets) * lsh_comparisons
    del buckets, timed_buckets
    t_np, (found, sizes) = _common.timed(lsh_np, hs, ids, args.bands, d)
    print(f"buckets: {len(sizes):,}, {total * args.bands / len(sizes):.0f} hashes each on average, largest "
          f"{sizes.max():,}; {(sizes > MAX_BUCKET).sum()} over MAX_BUCKET ({MAX_BUCKET:,}), where near_pairs "
          f"compares only the first {MAX_BUCKET:,} ids")

    # brute force on a sample holding planted pairs: timed, then scaled by n^2
    k = min(args.planted, args.sample // 10)
    chosen = set(src[:k].tolist()) | set(range(args.n, args.n + k))
    others = rng.choice(args.n, args.sample, replace=False)
    sample = sorted(chosen | set(others[~np.isin(others, list(chosen))][:args.sample - len(chosen)].tolist()))
    s_items = sorted(items[i] for i in sample)  # by id: pairs come out (a < b), as near_pairs yields them
    t_bf_py, brute = _common.timed(lambda: {(a[0], b[0]) for a, b in itertools.combinations(s_items, 2)
                                            if hamming(a[1], b[1]) <= d})
    t_bf_np, _ = _common.timed(verify_np, ids[sample], hs[sample], d, 256)
    lsh_on_sample = {p for b in lsh_python(s_items, args.bands).values() for p in near_pairs(b, d)}
    scale = (total / len(sample)) ** 2
    recall_sample = len(lsh_on_sample & brute) / max(len(brute), 1)
    recall_planted = len(planted & set(found.tolist())) / len(planted)

    all_pairs = total * (total - 1) // 2
    print(f"\n{'':<38}{'pure Python':>16}{'numpy':>14}")
    print(f"{'LSH: band + group (measured)':<38}{t_py_group:>15.1f}s{'':>14}")
    print(f"{'LSH: verify buckets':<38}{t_py_verify:>15.0f}s{'':>14}   (Python: scaled from {args.python_buckets} buckets)")
    print(f"{'LSH total':<38}{t_py_group + t_py_verify:>15.0f}s{t_np:>13.1f}s   (numpy: measured end to end)")
    print(f"{'brute force on the sample (measured)':<38}{t_bf_py:>15.2f}s{t_bf_np:>13.3f}s   ({len(sample):,} hashes)")
    print(f"{'brute force, all pairs (scaled n^2)':<38}{t_bf_py * scale:>15.0f}s{t_bf_np * scale:>13.0f}s   (x{scale:,.0f})")
    print(f"{'speed-up of LSH over brute force':<38}{t_bf_py * scale / (t_py_group + t_py_verify):>15.1f}x"
          f"{t_bf_np * scale / t_np:>13.1f}x")
    print(f"comparisons: LSH {lsh_comparisons:,} vs all pairs {all_pairs:,} ({all_pairs / lsh_comparisons:.1f}x fewer)")
    print(f"recall vs brute force on the sample: {recall_sample:.3f} ({len(lsh_on_sample & brute)}/{len(brute)} pairs,"
          f" {len(lsh_on_sample - brute)} false)")
    print(f"recall of planted pairs on all {total:,}: {recall_planted:.4f}; pairs found: {len(found):,} "
          f"({len(found) - len(planted & set(found.tolist()))} chance pairs among random hashes)")


if __name__ == "__main__":
    main()
