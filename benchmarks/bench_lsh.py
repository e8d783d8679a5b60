"""Crawl-wide near-duplicate search by LSH on pHash (the miner's `band_keys`), against brute force.

--n (default 1,000,000) random 64-bit hashes plus --planted (default 2,000) near copies
(1..max distance bits flipped). The LSH path is the miner's (mining/dedup.py, as the Beam
pipeline runs it): `band_keys` of every hash (every (bands - distance)-subset of its bands:
at 8 bands and distance 6, 28 int keys of two 8-bit bands), grouping hashes by key, `near_pairs`
on every bucket, distinct pairs (of hashes, mapped to image ids). It is timed twice, on one core:
  pure Python   the project's functions, measured end to end over all hashes (with
                --python-n, over the first N only and scaled: keys by hash count,
                verification by the comparison count of the full set)
  numpy         the same logic vectorised (per key subset: sort by (key, hash), compare each
                hash with the next ones of its bucket, MAX_BUCKET smallest of a bucket only)
Baseline: brute force all pairs on a --sample (default 5,000) of the hashes holding planted
pairs, timed (project `hamming` in Python, and numpy) and scaled by n^2 to the full set.
Recall of the project's LSH against brute force on the sample, and of the planted pairs on
the full set, must both be 1.0 (pigeonhole: distance d < bands leaves bands - d equal bands).

  .venv/bin/python benchmarks/bench_lsh.py [--n 1000000] [--sample 5000] [--python-n N]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from semantica.config import load_settings  # noqa: E402
from semantica.images import hamming, to_signed  # noqa: E402
from semantica.mining.dedup import MAX_BUCKET, band_keys, near_pairs  # noqa: E402


def verify_np(ids: np.ndarray, hs: np.ndarray, d: int, block: int = 256) -> np.ndarray:
    """Brute force: pairs (a < b, as a * 2**32 + b) within distance d among (ids, hashes)."""
    out = []
    for s in range(0, len(hs), block):
        i, j = np.nonzero(np.bitwise_count(hs[s:s + block, None] ^ hs[None, :]) <= d)
        keep = ids[i + s] < ids[j]
        out.append(ids[i[keep] + s].astype(np.int64) << 32 | ids[j[keep]])
    return np.concatenate(out)


def lsh_np(hs: np.ndarray, ids: np.ndarray, n_bands: int, d: int) -> tuple[set, int, int, int]:
    """(distinct pairs, buckets, largest bucket, comparisons): band_keys + group + near_pairs, vectorised."""
    width = 64 // n_bands
    vals = [(hs >> np.uint64(b * width)) & np.uint64((1 << width) - 1) for b in range(n_bands)]
    found, n_buckets, largest, comparisons = [], 0, 0, 0
    for subset in itertools.combinations(range(n_bands), n_bands - d):
        key = np.zeros(len(hs), np.uint64)
        for b in subset:
            key = key << np.uint64(width) | vals[b]
        o = np.lexsort((hs.view(np.int64), key))  # by bucket, then signed hash: near_pairs sorts a bucket
        key, idx, h = key[o], ids[o], hs[o]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        sizes = np.diff(np.r_[starts, len(key)])
        keep = np.arange(len(key)) - np.repeat(starts, sizes) < MAX_BUCKET  # near_pairs: MAX_BUCKET smallest
        key, idx, h = key[keep], idx[keep], h[keep]
        m = np.minimum(sizes, MAX_BUCKET).astype(np.int64)
        n_buckets, largest = n_buckets + len(sizes), max(largest, int(sizes.max()))
        comparisons += int((m * (m - 1) // 2).sum())
        cand, off = np.arange(len(key) - 1), 1
        while len(cand):
            cand = cand[cand + off < len(key)]
            cand = cand[key[cand] == key[cand + off]]  # still in the same bucket at this offset
            i = cand[np.bitwise_count(h[cand] ^ h[cand + off]) <= d]
            a, b = idx[i].astype(np.int64), idx[i + off].astype(np.int64)
            found.append(np.minimum(a, b) << 32 | np.maximum(a, b))
            off += 1
    return set(np.unique(np.concatenate(found)).tolist()), n_buckets, largest, comparisons


def lsh_python(items: list, n_bands: int, d: int) -> dict:
    """Buckets of hashes by key (items: (id, hash))."""
    buckets: dict = {}
    for _, h in items:
        for key in band_keys(h, n_bands, d):
            buckets.setdefault(key, []).append(h)
    return buckets


def main() -> None:
    dedup = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml").stages.mine.dedup
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="random hashes (default 1,000,000)")
    ap.add_argument("--planted", type=int, default=2000, help="near copies added (default 2,000)")
    ap.add_argument("--sample", type=int, default=5000, help="brute-force sample size (default 5,000)")
    ap.add_argument("--python-n", type=int, help="run the pure Python path on the first N hashes and scale "
                                                 "(default: all of them, measured end to end)")
    ap.add_argument("--bands", type=int, default=dedup.lsh_bands, help=f"(default {dedup.lsh_bands})")
    ap.add_argument("--max-distance", type=int, default=dedup.near_dup_hamming,
                    help=f"(default {dedup.near_dup_hamming})")
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
    items = [(f"{i:010d}", to_signed(h)) for i, h in zip(ids.tolist(), hs.tolist())]
    id_of = {h: int(i) for i, h in items}
    assert len(id_of) == total, "two random hashes collided: use another --seed"
    pair_int = lambda p: min(int(p[0]), int(p[1])) << 32 | max(int(p[0]), int(p[1]))  # noqa: E731 (ids)
    hash_pair = lambda p: pair_int((id_of[p[0]], id_of[p[1]]))  # noqa: E731 (near_pairs yields hashes)
    n_keys = len(band_keys(0, args.bands, d))
    print(f"{total:,} hashes ({args.planted:,} planted copies at distance 1..{d}), {args.bands} bands, "
          f"distance <= {d}: {n_keys} keys of {args.bands - d} bands per hash")

    t_np, (found_np, n_buckets, largest, comparisons) = _common.timed(lsh_np, hs, ids, args.bands, d)
    py_n = min(args.python_n or total, total)
    py_items = items if py_n == total else sorted(items[:py_n])
    t_keys, buckets = _common.timed(lsh_python, py_items, args.bands, d)
    t_verify, found_py = _common.timed(lambda bs: {hash_pair(p) for b in bs.values() for p in near_pairs(b, d)},
                                       buckets)
    py_comparisons = sum(min(len(b), MAX_BUCKET) * (min(len(b), MAX_BUCKET) - 1) // 2 for b in buckets.values())
    del buckets
    if py_n < total:
        t_keys, t_verify = t_keys * total / py_n, t_verify * comparisons / py_comparisons
        sub_found, _, _, sub_comparisons = lsh_np(hs[:py_n], ids[:py_n], args.bands, d)
        same = found_py == sub_found and sub_comparisons == py_comparisons
    else:
        same = found_py == found_np and py_comparisons == comparisons
    print(f"buckets: {n_buckets:,}, {total * n_keys / n_buckets:.1f} hashes each on average, largest {largest:,} "
          f"({'none' if largest <= MAX_BUCKET else 'some'} over MAX_BUCKET = {MAX_BUCKET:,})")
    print(f"numpy path gives the same pairs and comparison count as the project's functions"
          f"{'' if py_n == total else f' (checked on the first {py_n:,})'}: {same}")

    # brute force on a sample holding planted pairs: timed, then scaled by n^2
    k = min(args.planted, args.sample // 10)
    chosen = set(src[:k].tolist()) | set(range(args.n, args.n + k))
    others = rng.choice(args.n, args.sample, replace=False)
    sample = sorted(chosen | set(others[~np.isin(others, list(chosen))][:args.sample - len(chosen)].tolist()))
    s_items = sorted(items[i] for i in sample)
    t_bf_py, brute = _common.timed(lambda: {pair_int((a[0], b[0])) for a, b in itertools.combinations(s_items, 2)
                                            if hamming(a[1], b[1]) <= d})
    t_bf_np, brute_np = _common.timed(verify_np, ids[sample], hs[sample], d)
    lsh_on_sample = {hash_pair(p) for b in lsh_python(s_items, args.bands, d).values() for p in near_pairs(b, d)}
    scale = (total / len(sample)) ** 2
    assert brute == set(brute_np.tolist())

    all_pairs = total * (total - 1) // 2
    t_py = t_keys + t_verify
    how = "measured end to end" if py_n == total else f"measured on {py_n:,}, scaled"
    print(f"\n{'':<38}{'pure Python':>14}{'numpy':>12}")
    print(f"{'LSH: band_keys + group':<38}{t_keys:>13.1f}s{'':>12}")
    print(f"{'LSH: near_pairs on every bucket':<38}{t_verify:>13.1f}s{'':>12}")
    print(f"{'LSH total':<38}{t_py:>13.1f}s{t_np:>11.1f}s   (Python: {how}; numpy: measured)")
    print(f"{'brute force on the sample (measured)':<38}{t_bf_py:>13.2f}s{t_bf_np:>11.3f}s   ({len(sample):,} hashes)")
    print(f"{'brute force, all pairs (scaled n^2)':<38}{t_bf_py * scale:>13.0f}s{t_bf_np * scale:>11.0f}s"
          f"   (x{scale:,.0f})")
    print(f"{'speed-up of LSH over brute force':<38}{t_bf_py * scale / t_py:>13.0f}x{t_bf_np * scale / t_np:>11.0f}x"
          f"   (same-run ratio)")
    print(f"comparisons: LSH {comparisons:,} vs all pairs {all_pairs:,} ({all_pairs / comparisons:,.0f}x fewer)")
    print(f"recall vs brute force on the sample: {len(lsh_on_sample & brute) / max(len(brute), 1):.4f} "
          f"({len(lsh_on_sample & brute)}/{len(brute)} pairs, {len(lsh_on_sample - brute)} not in brute force)")
    found = found_py if py_n == total else found_np
    print(f"recall of planted pairs on all {total:,} ({'project functions' if py_n == total else 'numpy path'}): "
          f"{len(planted & found) / len(planted):.4f}; pairs found: {len(found):,} "
          f"({len(found - planted)} chance pairs among random hashes)")


if __name__ == "__main__":
    main()
