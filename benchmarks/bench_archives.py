"""Per-file figures of mining real archival crawls (../shared/data/warc-real), against an
independent oracle (tests/archive_oracle.py: warcio + html.parser, no miner code).

For each file, mined alone with no network (download.allowed_hosts = loopback only):
  pages      HTML pages the miner parsed
  refs       image references found on them
  oracle     (page, <img>) references of HTTP 200 pages with a candidate the file captured (oracle)
  captured   the miner's references with a candidate among the oracle's captured URLs
  joined     of those, the ones no prefilter dropped (they reach the join with the crawl)
  from_crawl of those, the ones whose bytes came from the crawl
  dl_captured of `joined`, the ones sent to the network instead (or failed a fetch): must be 0
  downloads  download attempts (the miner's urls:download)
  expected   (page, picture) the oracle says should end up in a pair
  in_pairs   of those, how many are in pairs/
  pairs      pair rows

  .venv/bin/python benchmarks/bench_archives.py [--files GLOB] [--json out.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "data" / "warc-real"
sys.path.insert(0, str(REPO / "tests"))


def offline(settings):
    mine = settings.stages.mine
    mine = dataclasses.replace(mine, download=dataclasses.replace(mine.download, allowed_hosts=("127.0.0.1",)))
    return dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, mine=mine))


def table(out: Path, name: str) -> list[dict]:
    files = sorted((out / name).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def measure(path: Path, settings) -> dict:
    from archive_oracle import count_file
    from semantica.mining.pipeline import run_mine
    oracle = count_file(path)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = run_mine(offline(settings), [str(path)], Path(tmp) / "out")
        seconds = time.perf_counter() - t0
        refs, pairs, images = (table(Path(tmp) / "out", n) for n in ("refs", "pairs", "images"))
    from_images = {r["image_id"] for r in images if r["source"] == "warc"}
    # the miner's references with a candidate the oracle found captured (before: the url alone)
    captured = [r for r in refs if any(c in oracle.captured_images for c in (r.get("candidates") or [r["url"]]))]
    joined = [r for r in captured if not r["status"].startswith(("prefilter:", "page:too_few", "dedup:same_url"))]
    crawl = [r for r in joined if r.get("image_from") == "crawl"
             or ("image_from" not in r and r["image_id"] in from_images)]
    in_pairs = {(p["page_url"], i) for p in pairs for i in (p["cond_image_id"], p["target_image_id"])}
    return dict(file=path.name, pages=stats["pages"]["parsed"], refs=stats["refs"]["total"],
                oracle=len(oracle.captured_refs), captured=len(captured), joined=len(joined), from_crawl=len(crawl),
                dl_captured=sum(r.get("image_from") == "network" or r["status"].startswith("fetch:") for r in joined),
                downloads=stats["urls"].get("download", 0), expected=len(oracle.expected),
                in_pairs=len(oracle.expected & in_pairs), pairs=len(pairs), seconds=round(seconds, 1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default="*.warc*", help="glob in ../shared/data/warc-real (default: all)")
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.WARNING)
    from semantica.config import load_settings
    settings = load_settings(REPO / "pipelines.yaml", "local")
    rows = []
    cols = ("pages", "refs", "oracle", "captured", "joined", "from_crawl", "dl_captured", "downloads", "expected",
            "in_pairs", "pairs", "seconds")
    print(f"{'file':58s}" + "".join(f"{c:>11s}" for c in cols), flush=True)
    for path in sorted(REAL.glob(args.files)):
        row = measure(path, settings)
        rows.append(row)
        print(f"{row['file'][:58]:58s}" + "".join(f"{row[c]:>11}" for c in cols), flush=True)
    tot = {c: sum(r[c] for r in rows) for c in cols}
    print(f"{'total':58s}" + "".join(f"{round(tot[c], 1):>11}" for c in cols))
    if tot["expected"]:
        print(f"in pairs / expected: {tot['in_pairs'] / tot['expected']:.3f};  "
              f"from crawl / oracle: {tot['from_crawl'] / max(tot['oracle'], 1):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
