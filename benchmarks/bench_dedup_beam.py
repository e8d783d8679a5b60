"""Crawl-wide dedup as a Beam graph: the miner's `CrawlDedup` transform (mining/steps/frequent.py, the chain
MinePairs runs) on the DirectRunner over a synthetic crawl of --n (default 1,000,000) pictures.

The crawl (tests/dedup_synthetic.py, drawn inside the pipeline shard by shard): n random 64-bit
pHashes each on a page of its own; --planted near copies (1..6 bits flipped) of random ones; --popular
logos on 6..5,000 pages (heavy-tailed) of many domains; --families of 3-6 near-duplicate logos
(within distance 3 of a master) whose members are each on 1-2 pages (frequent by their
neighbourhood only). The pipeline runs in a child process (peak RSS: VmHWM of the process(es) that
run the graph; --mode multi_processing adds the worker processes, polled).

Printed: wall time of the pipeline run and images/s (distinct pHashes; the synthetic crawl is
drawn inside the timed run: its cost alone is timed by --floor); shuffle volume per image from Beam's
coders for the chain's PCollections (LSH keys; keys + values; every shuffle of the chain, an upper
bound without combiner lifting), against the former tuple keys and (image id, pHash) values in the
same run (baseline ratio); recall against brute force on a --sample (default 2,000: half endpoints of
planted pairs and logo variants, half uniform) of the pictures against all; recall of every planted
pair; whether every logo and no other picture is marked frequent; `near_pairs` comparisons/s on a
full bucket; a projection to 10^9 pictures (assumptions printed).

  .venv/bin/python benchmarks/bench_dedup_beam.py [--n 1000000] [--mode in_memory|multi_processing]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
# Beam's worker processes (--mode multi_processing) import the synthetic crawl's module too
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
import numpy as np  # noqa: E402

import dedup_synthetic as S  # noqa: E402


def _kib(field: str, pid: str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def options(mode: str, workers: int):
    from apache_beam.options.pipeline_options import PipelineOptions
    return PipelineOptions([f"--direct_running_mode={mode}", f"--direct_num_workers={workers}",
                            "--default_sdk_harness_log_level=WARNING"])


def child(spec: S.Spec, out: str, mode: str, workers: int, what: str, q) -> None:
    """Build and run the graph here; report wall seconds and peak RSS (KiB) of this process and of its
    worker processes (polled: VmHWM is each one's own peak)."""
    import logging
    logging.getLogger().setLevel(logging.WARNING)
    import apache_beam as beam
    from semantica.config import load_settings
    dedup = load_settings(ROOT / "pipelines.yaml").stages.mine.dedup
    peaks: dict = {}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            for pid in _descendants(os.getpid()):
                peaks[pid] = max(peaks.get(pid, 0), _kib("VmHWM", str(pid)))
            stop.wait(0.5)

    threading.Thread(target=poll, daemon=True).start()
    rss_start = _kib("VmRSS")
    p = beam.Pipeline(options=options(mode, workers))
    if what == "floor":  # the synthetic crawl alone: drawn, counted
        (p | beam.Create(spec.shards) | beam.Reshuffle() | beam.FlatMap(S.occurrences, spec)
         | beam.combiners.Count.Globally() | beam.Map(str) | beam.io.WriteToText(f"{out}/count"))
    elif what == "former":
        build_former(p, spec, dedup, out)
    else:
        S.build(p, spec, dedup, out)
    t0 = time.perf_counter()
    p.run().wait_until_finish()
    wall = time.perf_counter() - t0
    stop.set()
    workers = sorted((k for k in peaks.values() if k > 20 * 1024), reverse=True)  # not the shells that start them
    q.put(dict(wall=wall, rss_start=rss_start, hwm=_kib("VmHWM"), workers=workers))


def run_child(spec, out, mode, workers, what="crawl_dedup") -> dict:
    ctx = mp.get_context("spawn")  # a fresh interpreter: its peak RSS is the graph's alone
    q = ctx.Queue()
    proc = ctx.Process(target=child, args=(spec, out, mode, workers, what, q))
    proc.start()
    while True:
        try:
            res = q.get(timeout=5)
            break
        except Exception:  # noqa: BLE001 (queue.Empty: still running, unless it died)
            if not proc.is_alive():
                raise SystemExit(f"the pipeline process failed (exit code {proc.exitcode})")
    proc.join()
    return res


def coders_of(spec: S.Spec, dedup) -> dict:
    """Beam's coder for each PCollection of the chain that is shuffled (as the SDK picks it at
    construction: from the element type), by name; built, not run."""
    import apache_beam as beam
    from apache_beam.pipeline import PipelineVisitor
    p = beam.Pipeline(options=options("in_memory", 1))
    S.build(p, spec, dedup, "/nonexistent")
    found: dict = {}

    class Visit(PipelineVisitor):
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            for suffix, key in (("CrawlDedup/LshKeys", "lsh"), ("Occurrences", "occurrences"),
                                ("CrawlDedup/PageSpread", "spread"), ("CrawlDedup/BothWays", "both_ways"),
                                ("CrawlDedup/Verify", "verified"), ("CrawlDedup/SpreadToNeighbours", "to_neighbours")):
                if node.full_label.endswith(suffix):
                    pc = node.outputs.get(None) or node.outputs.get("out")
                    if pc is not None:
                        found[key] = (pc.element_type, beam.coders.registry.get_coder(pc.element_type))

    p.visit(Visit())
    return found


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def old_band_keys(phash: int, n_bands: int, max_distance: int) -> list[tuple]:
    """The former keys (before issue 12): ((band index, value), ...) per (bands − distance)-subset."""
    width = 64 // n_bands
    h = phash & ((1 << 64) - 1)
    b = [(i, (h >> (i * width)) & ((1 << width) - 1)) for i in range(n_bands)]
    return [tuple(b[i] for i in s) for s in itertools.combinations(range(n_bands), n_bands - max_distance)]


# ----------------------------------------------------------------------------- the former chain (baseline)
def old_near_pairs(bucket, max_distance: int):
    """The former near_pairs: (image id, pHash) items, `hamming` per pair."""
    from semantica.images import hamming
    items = sorted(set(bucket))[:5000]
    for (a, ha), (b, hb) in itertools.combinations(items, 2):
        if a != b and hamming(ha, hb) <= max_distance:
            yield (a, b) if a < b else (b, a)


def old_capped_union(groups, cap: int) -> set:
    out: set = set()
    for g in groups:
        for x in g:
            if len(out) >= cap:
                return out
            out.add(x)
    return out


def old_neighbourhood_counts(kv, max_pages: int, max_domains: int):
    image_id, occurrences = kv
    occurrences = list(occurrences)
    pages = old_capped_union(([p for p, _ in occ] for occ in occurrences), max_pages + 1)
    domains = old_capped_union(([d for _, d in occ] for occ in occurrences), max_domains + 1)
    if len(pages) > max_pages or len(domains) > max_domains:
        yield image_id, True


def old_spread_occurrences(kv):
    _, grouped = kv
    occ = [tuple(o) for rows in grouped["occ"] for o in rows]
    for x in grouped["of"]:
        yield x, occ


def image_id_of(h: int) -> str:
    """A 64-character id (as a sha256 hex) that carries the pHash, so the former chain's output maps back."""
    return f"{h & ((1 << 64) - 1):016x}" + "0" * 48


# the former chain's cap on an image's occurrences: 4 × the larger limit, plus 4 (see cap_occurrences)
FORMER_CAP_FACTOR, FORMER_CAP_EXTRA = 4, 4


def cap_occurrences(kv, max_pages: int, max_domains: int) -> tuple:
    """An image's distinct (page, domain) occurrences → the first few, sorted (the former chain's `CapOcc`).
    A page has one domain, so any max_pages + 1 distinct rows keep the verdict "on more than max_pages
    pages"; the domain verdict needs max_domains + 1 distinct domains among the rows kept, which no row
    count guarantees (one domain's pages can fill any cap): the former chain kept 4 × the larger limit
    plus 4 as a margin, a guess, not a bound. CrawlDedup, which replaced it, caps pages and domains
    apart at max + 1 each (dedup.spread_add), which is exact."""
    image_id, occurrences = kv
    return image_id, sorted(occurrences)[: max(max_pages, max_domains) * FORMER_CAP_FACTOR + FORMER_CAP_EXTRA]


def build_former(p, spec: S.Spec, dedup, out: str) -> None:
    """The chain MinePairs ran before issue 12 (commit 7e9a933), verbatim but for its input (and its CapOcc
    lambda, now cap_occurrences): results
    (image id, pHash, page, domain) → frequent image ids; tuple keys, GroupByKey + sort + slice."""
    import apache_beam as beam
    from semantica.mining.containment import contained_step as _step
    from semantica.mining.stats import DEDUP_STAGE
    d = dedup
    ok = (p | "Shards" >> beam.Create(spec.shards) | "Spread shards" >> beam.Reshuffle()
          | "Occurrences" >> beam.FlatMap(S.occurrences, spec)
          | "Results" >> beam.Map(lambda o: dict(image_id=image_id_of(o[0]), phash=o[0], page_url=o[1][0],
                                                 domain=o[1][1])))
    distinct = (ok | "IdHash" >> beam.Map(lambda r: (r["image_id"], r["phash"])) | "DistinctImages" >> beam.Distinct())
    banded = distinct | "Bands" >> _step(
        DEDUP_STAGE, lambda kv: [(k, kv) for k in old_band_keys(kv[1], d.lsh_bands, d.near_dup_hamming)])
    verified = (banded.out | "Buckets" >> beam.GroupByKey()
                | "Verify" >> _step(DEDUP_STAGE, lambda kv: old_near_pairs(kv[1], d.near_dup_hamming)))
    edges = verified.out | "DistinctEdges" >> beam.Distinct()
    neighbours = ((edges | "BothWays" >> beam.FlatMap(lambda e: [(e[1], e[0]), (e[0], e[1])]),
                   distinct | "Self" >> beam.Map(lambda kv: (kv[0], kv[0])))
                  | "Neighbours" >> beam.Flatten())
    occ = (ok | "Occurrence" >> beam.Map(lambda r: (r["image_id"], (r["page_url"], r["domain"])))
           | "DistinctOccurrences" >> beam.Distinct()
           | "OccByImage" >> beam.GroupByKey()
           | "CapOcc" >> beam.Map(cap_occurrences, d.max_pages_per_image, d.max_domains_per_image))
    spread = ({"of": neighbours, "occ": occ} | "JoinNeighbours" >> beam.CoGroupByKey()
              | "Spread" >> _step(DEDUP_STAGE, old_spread_occurrences))
    frequent = (spread.out | "ByNeighbour" >> beam.GroupByKey()
                | "Frequent" >> _step(DEDUP_STAGE, old_neighbourhood_counts, d.max_pages_per_image,
                                      d.max_domains_per_image))
    (frequent.out | "FrequentText" >> beam.Map(lambda kv: str(int(kv[0][:16], 16)))
     | "WriteFrequent" >> beam.io.WriteToText(f"{out}/frequent"))
    (edges | "EdgeText" >> beam.Map(lambda e: f"{int(e[0][:16], 16)} {int(e[1][:16], 16)}")
     | "WriteEdges" >> beam.io.WriteToText(f"{out}/edges"))


def read_former(out: str) -> tuple[set, set]:
    """The former chain's frequent hashes and near pairs, as signed pHashes (a < b)."""
    signed = lambda x: x - (1 << 64) if x >= 1 << 63 else x  # noqa: E731
    frequent = {signed(x) for x in S.read_ints(f"{out}/frequent*")}
    edges = {(min(signed(a), signed(b)), max(signed(a), signed(b))) for a, b in S.read_ints(f"{out}/edges*")}
    return frequent, edges


def main() -> None:
    from semantica.config import load_settings
    from semantica.mining.dedup import band_keys, near_pairs
    dedup = load_settings(ROOT / "pipelines.yaml").stages.mine.dedup
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="random pictures (default 1,000,000)")
    ap.add_argument("--planted", type=int, default=2000, help="near copies of random pictures (default 2,000)")
    ap.add_argument("--popular", type=int, default=1000, help="logos on many pages (default 1,000)")
    ap.add_argument("--families", type=int, default=500, help="families of near-duplicate logos (default 500)")
    ap.add_argument("--sample", type=int, default=2000, help="pictures brute-forced against all (default 2,000)")
    ap.add_argument("--mode", choices=("in_memory", "multi_processing"), default="in_memory")
    ap.add_argument("--workers", type=int, default=1, help="direct_num_workers (default 1; 2 with multi_processing)")
    ap.add_argument("--floor", action="store_true", help="also time the synthetic crawl alone (drawn, counted)")
    ap.add_argument("--former", action="store_true", help="also run the former chain (before issue 12) on the "
                                                          "same crawl: time, peak RSS, same output")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d = dedup.near_dup_hamming
    spec = S.Spec(n=args.n, planted=args.planted, popular=args.popular, families=args.families, max_distance=d,
                  seed=args.seed)
    tmp = tempfile.mkdtemp(prefix="bench-dedup-")
    try:
        print(f"CrawlDedup on the DirectRunner ({args.mode}, {args.workers} worker(s)); "
              f"{dedup.lsh_bands} bands, distance <= {d}, logo: > {dedup.max_pages_per_image} pages or "
              f"> {dedup.max_domains_per_image} domains; machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        run = run_child(spec, tmp, args.mode, args.workers)
        floor = run_child(spec, tmp + "/floor", args.mode, args.workers, "floor") if args.floor else None
        former = run_child(spec, tmp + "/former", args.mode, args.workers, "former") if args.former else None

        truth = S.truth(spec)
        distinct = truth["distinct"]
        n_img, n_occ = len(distinct), len(truth["hash"])
        frequent = set(S.read_ints(f"{tmp}/frequent*"))
        edge_rows = S.read_ints(f"{tmp}/edges*")
        edges = set(edge_rows)
        print(f"\n{n_img:,} distinct pictures (pHashes), {n_occ:,} occurrences (picture on a page), "
              f"{len(truth['pairs']):,} planted pairs, {len(truth['logos']):,} logo hashes "
              f"({args.popular:,} popular, {len(truth['logos']) - args.popular:,} in {args.families:,} families)")
        print(f"wall time of the pipeline run: {run['wall']:.1f} s -> {n_img / run['wall']:,.0f} pictures/s, "
              f"{n_occ / run['wall']:,.0f} occurrences/s (load average now {os.getloadavg()[0]:.1f})")
        if floor:
            print(f"  of which drawing the synthetic crawl (its own run, drawn + counted): {floor['wall']:.1f} s")
        if former:
            f_frequent, f_edges = read_former(tmp + "/former")
            print(f"  the former chain (tuple keys, GroupByKey, by image id) on the same crawl: {former['wall']:.1f} s "
                  f"= {former['wall'] / run['wall']:.2f}x this one; peak RSS {former['hwm'] / 1024:.0f} MB; "
                  f"same frequent pictures: {f_frequent == frequent}, same near pairs: {f_edges == edges}")
        workers = f"; worker processes: {', '.join(f'{k / 1024:.0f}' for k in run['workers'][:4])} MB" \
            if run["workers"] else ""
        print(f"peak RSS (VmHWM) of the process running the graph: {run['hwm'] / 1024:.0f} MB "
              f"(RSS after imports {run['rss_start'] / 1024:.0f} MB){workers}")

        # --- shuffle volume, by Beam's coders for the chain's PCollections
        cod = coders_of(spec, dedup)
        lsh_type, lsh_coder = cod["lsh"]
        key_coder, value_coder = lsh_coder._coders if hasattr(lsh_coder, "_coders") else (lsh_coder, lsh_coder)
        import apache_beam as beam
        any_coder = beam.coders.registry.get_coder(beam.typehints.Any)  # untyped: the former keys' coder
        rng = np.random.default_rng(args.seed + 1)
        probe = S.to_signed(distinct[rng.choice(n_img, min(20_000, n_img), replace=False)]).tolist()
        keys = [band_keys(h, dedup.lsh_bands, d) for h in probe]
        key_b = sum(len(key_coder.encode(k)) for ks in keys for k in ks) / len(probe)
        kv_b = sum(len(lsh_coder.encode((k, h))) for h, ks in zip(probe, keys) for k in ks) / len(probe)
        image_id = "0" * 64  # sha256 hex, the former value's id
        old_keys = [old_band_keys(h, dedup.lsh_bands, d) for h in probe]
        old_key_b = sum(len(any_coder.encode(k)) for ks in old_keys for k in ks) / len(probe)
        old_kv_b = sum(len(any_coder.encode((k, (image_id, h))))
                       for h, ks in zip(probe, old_keys) for k in ks) / len(probe)
        n_keys = len(keys[0])
        print(f"\nLSH shuffle ({n_keys} keys a picture; PCollection type {lsh_type}, coder {lsh_coder}):")
        print(f"  keys:            {key_b:7.1f} bytes/picture ({key_b / n_keys:.2f} a key)   former tuple keys "
              f"{old_key_b:7.1f} ({old_key_b / n_keys:.2f} a key; FastPrimitivesCoder): {old_key_b / key_b:.1f}x less")
        print(f"  keys + values:   {kv_b:7.1f} bytes/picture (value: the pHash)    former (key, (image id, pHash)) "
              f"{old_kv_b:7.1f}: {old_kv_b / kv_b:.1f}x less")
        # every shuffle of the chain, per picture: upper bound (no combiner lifting)
        occ_coder, spread_coder = cod["occurrences"][1], cod["spread"][1]
        signed_all = S.to_signed(truth["hash"])
        pick = rng.choice(n_occ, min(20_000, n_occ), replace=False)
        occ_b = np.mean([len(occ_coder.encode((int(signed_all[i]), (S.url_of(spec, int(truth["page"][i])),
                                                                      S.domain_of(spec, int(truth["page"][i]))))))
                         for i in pick])
        spread_b = np.mean([len(spread_coder.encode((h, ((S.url_of(spec, 0),), (S.domain_of(spec, 0),)))))
                            for h in probe[:2000]])
        edge_b = len(cod["both_ways"][1].encode(next(iter(edges)) if edges else (0, 0)))
        n_edges = len(edges)
        total = (occ_b * n_occ + kv_b * n_img + spread_b * n_img + len(edge_rows) * edge_b
                 + 2 * n_edges * edge_b + 3 * n_edges * spread_b) / n_img
        print(f"  every shuffle of the chain: {total:.0f} bytes/picture (occurrences {occ_b:.0f} B each, "
              f"spreads {spread_b:.0f} B per picture, LSH {kv_b:.0f}, edges; URLs of ~{len(S.url_of(spec, n_img)):d} "
              f"chars: real ones are longer)")

        # --- recall
        planted_found = len(truth["pairs"] & edges)
        ends = np.array(sorted({x for pr in truth["pairs"] for x in pr} | truth["logos"]),
                        dtype=np.int64).view(np.uint64)
        half = min(args.sample // 2, len(ends))
        sample = np.unique(np.concatenate([rng.choice(ends, half, replace=False),
                                           rng.choice(distinct, args.sample - half, replace=False)]))
        t_bf = time.perf_counter()
        brute = S.near(distinct, sample, d)
        t_bf = time.perf_counter() - t_bf
        sample_set = set(S.to_signed(sample).tolist())
        mine = {e for e in edges if e[0] in sample_set or e[1] in sample_set}
        print(f"\nrecall vs brute force, {len(sample):,} pictures against all {n_img:,} ({t_bf:.1f} s numpy): "
              f"{len(brute & mine) / max(len(brute), 1):.4f} ({len(brute & mine):,}/{len(brute):,} pairs; "
              f"{len(mine - brute)} found that brute force has not)")
        print(f"planted pairs found: {planted_found:,}/{len(truth['pairs']):,} = "
              f"{planted_found / max(len(truth['pairs']), 1):.4f}; near pairs found in all: {len(edges):,} "
              f"(each written once: {len(edge_rows) == len(edges)})")
        logos = truth["logos"]
        logo_near = S.near(distinct, np.array(sorted(logos), dtype=np.int64).view(np.uint64), d)
        logo_ok = all(a in logos and b in logos for a, b in logo_near)
        print(f"logos marked frequent: {len(logos & frequent):,}/{len(logos):,}; other pictures marked frequent: "
              f"{len(frequent - logos):,} (brute force: the logos' near duplicates are logos only: {logo_ok})")

        # --- projection to 10^9 pictures
        N = 1e9
        n_buckets = (math.comb(dedup.lsh_bands, dedup.lsh_bands - d)
                     * 2 ** (64 // dedup.lsh_bands * (dedup.lsh_bands - d)))
        per_bucket = N / 2 ** (64 // dedup.lsh_bands * (dedup.lsh_bands - d))  # each picture: one bucket a subset
        # near_pairs on a bucket of that size: comparisons/s (the quadratic part at scale), best of 2
        size = int(round(per_bucket))
        bucket = S.to_signed(rng.integers(0, 2**64 - 1, size=size, dtype=np.uint64, endpoint=True)).tolist()
        t = min(_timed(lambda: list(near_pairs(bucket, d, size))) for _ in range(2))
        cmp_rate = size * (size - 1) / 2 / t
        cores = args.workers if args.mode == "multi_processing" else 1
        per_img = run["wall"] * cores / n_img
        scale_cap = load_settings(ROOT / "pipelines.yaml", "dataflow").stages.mine.dedup.lsh_max_bucket
        print(f"\nprojection to 10^9 pictures, from this run's figures. Assumptions: the graph's cost per picture "
              f"here ({per_img * 1e6:.0f} us of one core on the DirectRunner, which is slower than a real runner "
              f"per element) holds per core, linearly; one occurrence a picture, as here; verification is "
              f"quadratic in bucket size and measured apart:")
        print(f"  shuffle: LSH keys {key_b * N / 1e9:,.0f} GB, LSH keys + values {kv_b * N / 1e9:,.0f} GB, "
              f"every shuffle of the chain ~{total * N / 1e9:,.0f} GB (former LSH keys + values "
              f"{old_kv_b * N / 1e9:,.0f} GB)")
        print(f"  the graph, linear part: {per_img * N / 3600:,.0f} core-hours")
        print(f"  buckets: {n_buckets:,}, ~{per_bucket:,.0f} hashes each at 10^9 "
              f"(here ~{n_img * per_bucket / N:,.1f}); "
              f"near_pairs on a bucket of {size:,}: {t:.2f} s = {cmp_rate / 1e6:.0f} M comparisons/s (numpy)")
        for name, cap in (("local", dedup.lsh_max_bucket), ("dataflow/spark/flink", scale_cap)):
            m = min(per_bucket, cap)
            cmp_b = n_buckets * m * (m - 1) / 2
            print(f"  lsh_max_bucket {cap:,} ({name}): {cmp_b:.2e} comparisons, {cmp_b / cmp_rate / 3600:,.0f} "
                  f"core-hours of verification; "
                  + (f"uniform hashes' buckets (~{per_bucket:,.0f} +- {per_bucket ** 0.5:,.0f}) "
                     f"verified whole: recall 1.0 (real pHashes cluster: a bucket over the cap is cut)"
                     if per_bucket + 10 * per_bucket ** 0.5 < cap
                     else f"buckets are cut to their {cap:,} smallest hashes: pairs are missed (recall below 1.0)"))
        print(json.dumps(dict(n=n_img, occurrences=n_occ, wall_s=round(run["wall"], 1), hwm_mb=round(run["hwm"] / 1024),
                              key_bytes=round(key_b, 1), kv_bytes=round(kv_b, 1), old_key_bytes=round(old_key_b, 1),
                              old_kv_bytes=round(old_kv_b, 1), chain_bytes=round(total),
                              recall=len(brute & mine) / max(len(brute), 1),
                              planted_recall=planted_found / max(len(truth["pairs"]), 1),
                              logos_frequent=len(logos & frequent), logos=len(logos),
                              others_frequent=len(frequent - logos))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
