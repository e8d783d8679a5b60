"""Wall time of the whole `run_mine` on the sample web, split by stage.

Writes the default sample web (pipelines.yaml's stages.sample_web, on a free port), serves
its images on 127.0.0.1 and runs `run_mine` (the local profile's Beam DirectRunner; downloads
restricted to 127.0.0.1). Then, on the same data and in this one process, times the stage
functions the pipeline calls, outside Beam:
  read + parse    process_warc over every WARC file (main_content as configured)
  fetch           fetch_many over the URLs that are not in a WARC (batches of 64, as BatchElements)
  decode + hash   from_warc / from_download (decode_image: decode, to_rgb, pHash, sha256)
  dedup + pairs   LSH band keys, near_pairs, neighbourhood counts, assemble_page (page dedup, pairs)
  one-time imports  img2dataset (imported by the first fetch) and trafilatura, done before
                  run_mine; counted in the sum when Beam runs worker processes (each pays
                  it again), shown apart in --mode in_memory (run_mine then reuses them)
Baseline: the sum of the stages; Beam overhead = run_mine wall time - sum (pipeline start,
worker processes, pickling, shuffles, Parquet writing).

  .venv/bin/python benchmarks/bench_mine.py [--pages 48] [--mode profile|in_memory]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
logging.basicConfig(level=logging.ERROR)  # Beam and its workers log every step at INFO / WARNING
import _common  # noqa: E402

from semantica.config import load_settings  # noqa: E402
from semantica.mining import reasons as R  # noqa: E402
from semantica.mining.assemble import assemble_page  # noqa: E402
from semantica.mining.dedup import band_keys, is_frequent, near_pairs, spread_add  # noqa: E402
from semantica.mining.extract import process_warc  # noqa: E402
from semantica.mining.fetch import fetch_many  # noqa: E402
from semantica.mining.pipeline import run_mine  # noqa: E402
from semantica.mining.records import RefResult  # noqa: E402
from semantica.mining.resolve import from_download, from_warc  # noqa: E402
from semantica.sample_web import serve_sample_web, write_sample_web  # noqa: E402


def stages(warcs: list[str], cfg) -> tuple[dict, int]:
    """The pipeline's work, stage by stage, in one process: (seconds per stage, pairs)."""
    sec, t0 = {}, time.perf_counter()
    pages, images = {}, defaultdict(list)
    for w in warcs:
        for kind, item in process_warc(w, cfg, Counter()):
            if kind == "page":
                old = pages.get(item.page_url)
                if old is None or (item.warc_file, item.warc_offset) < (old.warc_file, old.warc_offset):
                    pages[item.page_url] = item
            elif kind == "image":
                images[item[0]].append(item[1])
    refs = defaultdict(list)
    for p in pages.values():
        for r in p.refs:
            if r.status == R.KEPT:
                refs[r.url].append(dict(page_url=p.page_url, position=r.position, domain=p.domain))
    sec["read + parse"], t0 = time.perf_counter() - t0, time.perf_counter()
    to_fetch = sorted(u for u in refs if u not in images)
    fetched = [f for i in range(0, len(to_fetch), 64)
               for f in fetch_many(to_fetch[i:i + 64], cfg.download, cfg.download_threads, True)]
    sec["fetch"], t0 = time.perf_counter() - t0, time.perf_counter()
    results = [(u, from_warc(u, images[u], cfg)[0]) for u in refs if u in images]
    results += [(f.url, from_download(f, cfg)[0]) for f in fetched]
    sec["decode + hash"], t0 = time.perf_counter() - t0, time.perf_counter()
    by_page, ok = defaultdict(dict), []
    for url, res in results:
        for ref in refs[url]:
            row = RefResult(ref["page_url"], ref["position"], ref["domain"], res)
            by_page[ref["page_url"]][ref["position"]] = row
            if res.status == R.KEPT:
                ok.append(row)
    dd = cfg.dedup
    spreads: dict = defaultdict(lambda: ([], []))  # per pHash, as CrawlDedup computes it
    for r in ok:
        spread_add(spreads[r.image.phash], (r.page_url,), (r.domain,), dd.max_pages_per_image,
                   dd.max_domains_per_image)
    buckets = defaultdict(list)
    for h in spreads:
        for b in band_keys(h, dd.lsh_bands, dd.near_dup_hamming):
            buckets[b].append(h)
    neighbours = {h: {h} for h in spreads}
    for bucket in buckets.values():
        for a, b in near_pairs(bucket, dd.near_dup_hamming):
            neighbours[a].add(b)
            neighbours[b].add(a)
    crowded = set()
    for h, near in neighbours.items():
        acc: tuple = ([], [])
        for n in near:
            spread_add(acc, *spreads[n], dd.max_pages_per_image, dd.max_domains_per_image)
        if is_frequent(acc, dd.max_pages_per_image, dd.max_domains_per_image):
            crowded.add(h)
    frequent = {r.image.image_id for r in ok if r.image.phash in crowded}
    n_pairs = sum(len(assemble_page(p, by_page.get(url, {}), frequent, cfg)[1]) for url, p in pages.items())
    sec["dedup + pairs"] = time.perf_counter() - t0
    return sec, n_pairs


def imports(cfg) -> None:
    """What the stages import on first use: every Beam worker process pays this too."""
    from img2dataset.downloader import is_disallowed  # noqa: F401  (fetch's X-Robots-Tag check)
    if cfg.main_content:
        import trafilatura  # noqa: F401


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, help="sample web pages (default: pipelines.yaml, 48)")
    ap.add_argument("--domains", type=int, help="sample web domains (default: pipelines.yaml, 4)")
    ap.add_argument("--mode", choices=("profile", "in_memory"), default="profile",
                    help="profile: the local profile's DirectRunner settings; in_memory: one process")
    args = ap.parse_args()
    s = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml", "local")
    port = _common.free_port()
    web_cfg = dataclasses.replace(s.stages.sample_web, port=port, num_pages=args.pages or s.stages.sample_web.num_pages,
                                  num_domains=args.domains or s.stages.sample_web.num_domains)
    mine = s.stages.mine
    mine = dataclasses.replace(mine, download=dataclasses.replace(mine.download, allowed_hosts=("127.0.0.1",)))
    s = dataclasses.replace(s, stages=dataclasses.replace(s.stages, sample_web=web_cfg, mine=mine))
    extra = ["--direct_running_mode=in_memory", "--direct_num_workers=1"] if args.mode == "in_memory" else []
    beam = {**s.profile.beam, **({"direct_running_mode": "in_memory", "direct_num_workers": 1} if extra else {})}

    with tempfile.TemporaryDirectory(prefix="bench-mine-") as tmp:
        web = Path(tmp) / "web"
        manifest = write_sample_web(web_cfg, web)
        warcs = sorted(str(p) for p in (web / "warc").glob("*.warc.gz"))
        print(f"sample web: {manifest['counts']['pages']} pages, {manifest['counts']['refs']} refs, "
              f"{len(warcs)} WARC files, served on 127.0.0.1:{port}; Beam {beam}")
        t_imports, _ = _common.timed(imports, mine)  # before run_mine: in_memory mode would pay it in-process
        with serve_sample_web(web, port=port):
            wall, stats = _common.timed(run_mine, s, [str(web / "warc")], Path(tmp) / "out",
                                        overwrite=True, allow_private=True, extra_options=extra)
            sec, n_pairs = stages(warcs, mine)
    workers = beam.get("direct_running_mode") != "in_memory"
    if workers:
        sec = {"one-time imports": t_imports, **sec}
    total = sum(sec.values())
    print(f"\nrun_mine: {wall:.2f} s wall (stats.json seconds {stats['seconds']}), {stats['pairs']} pairs; "
          f"stages outside Beam: {n_pairs} pairs")
    print(f"{'stage':<30}{'seconds':>9}{'share of run_mine':>19}")
    if not workers:
        print(f"{'(imports, paid before run)':<30}{t_imports:>9.2f}{'-':>18} ")
    for name, v in sec.items():
        print(f"{name:<30}{v:>9.2f}{v / wall:>18.1%}")
    print(f"{'sum of stages (baseline)':<30}{total:>9.2f}{total / wall:>18.1%}")
    print(f"{'Beam overhead (wall - sum)':<30}{wall - total:>9.2f}{(wall - total) / wall:>18.1%}")
    print(f"{'run_mine wall':<30}{wall:>9.2f}{1:>18.1%}")
    print(f"run_mine takes {wall / total:.1f}x the sum of its stages")
    if n_pairs != stats["pairs"]:
        print(f"WARNING: stage-by-stage pairs ({n_pairs}) differ from run_mine's ({stats['pairs']})")


if __name__ == "__main__":
    main()
