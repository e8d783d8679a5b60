"""Read + parse throughput of one WARC file on ONE core: pages/s and compressed MB/s.

Measured on the same .warc.gz of realistic pages (20-100 KB of HTML each, written by
_common.py, Common Crawl style request + response + metadata records, one gzip member each):
  warcio floor         warcio ArchiveIterator, every response body read, nothing parsed (baseline)
  fastwarc             FastWARC ArchiveIterator, the same
  iter_records         the miner's reader (mining/warc_io.py, reader from pipelines.yaml)
  process_warc         the miner's per-file path: read, charset, Lexbor tag walk, prefilter
  process_warc+main    the same with main_content=True (trafilatura), as pipelines.yaml ships
  naive bs4            warcio + BeautifulSoup(html, 'html.parser'), every <img src> (baseline)
Figures are ratios of throughput against the warcio floor and the naive extractor, both
measured in the same run.

  .venv/bin/python benchmarks/bench_extract.py [--pages 2000]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def warcio_floor(path: str) -> int:
    from warcio.archiveiterator import ArchiveIterator
    n = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type == "response":
                rec.content_stream().read()
                n += 1
    return n


def fastwarc_floor(path: str) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    n = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=True):
            rec.reader.read()
            n += 1
    return n


def miner_reader(path: str, cfg) -> int:
    from semantica.mining.warc_io import iter_records
    return sum(1 for _ in iter_records(path, cfg.reader, max(cfg.max_html_bytes, cfg.download.max_bytes), []))


def miner(path: str, cfg) -> int:
    from semantica.mining.extract import process_warc
    return sum(kind == "page" for kind, _ in process_warc(path, cfg, Counter()))


def naive_bs4(path: str) -> int:
    from bs4 import BeautifulSoup
    from warcio.archiveiterator import ArchiveIterator
    n = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response" or "html" not in (rec.http_headers.get_header("Content-Type") or ""):
                continue
            html = rec.content_stream().read().decode("utf-8", errors="replace")
            _srcs = [img.get("src") for img in BeautifulSoup(html, "html.parser").find_all("img")]
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=2000, help="pages in the generated WARC (default 2000)")
    ap.add_argument("--domains", type=int, default=40, help="distinct hosts (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-main-content", action="store_true", help="skip the slow trafilatura case")
    args = ap.parse_args()

    from semantica.config import load_settings
    mine = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml").stages.mine
    print(_common.pin_one_core())
    import bs4, fastwarc.warc, trafilatura, semantica.mining.extract  # noqa: F401,E401  (imports are not timed)
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        path = str(Path(tmp) / "pages.warc.gz")
        t0 = time.perf_counter()
        records = list(_common.page_records(args.pages, args.seed, args.domains))
        html_mb = sum(len(b) for _, b in records) / 1e6
        _common.write_warc(Path(path), records)
        del records
        mb = Path(path).stat().st_size / 1e6
        print(f"WARC: {args.pages} pages, {html_mb:.1f} MB of HTML ({html_mb * 1e3 / args.pages:.0f} KB/page), "
              f"{mb:.1f} MB compressed; written in {time.perf_counter() - t0:.1f} s")
        Path(path).read_bytes()  # warm the page cache: every case reads from memory

        cases = [("warcio floor", warcio_floor, ()), ("fastwarc", fastwarc_floor, ()),
                 (f"iter_records ({mine.reader})", miner_reader, (mine,)),
                 ("process_warc", miner, (dataclasses.replace(mine, main_content=False),))]
        if not args.skip_main_content:
            cases.append(("process_warc+main", miner, (dataclasses.replace(mine, main_content=True),)))
        cases.append(("naive bs4", naive_bs4, ()))
        rows = []
        for name, fn, extra in cases:
            seconds, pages = _common.timed(fn, path, *extra)
            rows.append((name, seconds, pages))
            print(f"  ran {name}: {seconds:.2f} s, {pages} pages", flush=True)

    floor = next(r for r in rows if r[0] == "warcio floor")
    naive = next(r for r in rows if r[0] == "naive bs4")
    print(f"\n{'case':<24}{'seconds':>9}{'pages':>7}{'pages/s':>10}{'MB/s (gz)':>11}"
          f"{'vs warcio floor':>17}{'vs naive bs4':>14}")
    for name, seconds, pages in rows:
        print(f"{name:<24}{seconds:>9.2f}{pages:>7}{pages / seconds:>10.1f}{mb / seconds:>11.2f}"
              f"{(pages / seconds) / (floor[2] / floor[1]):>16.3f}x{(pages / seconds) / (naive[2] / naive[1]):>13.2f}x")
    print("(throughput ratios: >1 is faster than the baseline; one core, same file, same run)")


if __name__ == "__main__":
    main()
