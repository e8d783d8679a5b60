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
measured in the same run. Times are CPU seconds of this process (`time.process_time`; the
process is pinned to one core, which other processes may share), the best of `--repeat` runs.

`--profile` adds where process_warc's time goes, per page (CPU µs, the best of `--repeat`), each
phase timed on its own over all the pages: read (iter_records), charset (decode_html_utf8), bound
(the '<' count), parse (Lexbor alone), walk (page_refs less parse and resolve: Lexbor's CSS walk
for img/meta/base/picture, the attributes, srcset and <picture>, a tuple per reference), resolve (every
reference's URL), prefilter, candidates (the kept references' other URLs), other (process_warc
less the sum: the Page and its Ref rows, record_items, domain_of, the cyclic GC, and the
phases' running page by page rather than each over all the pages). Main content excluded. Then the
C floor (read + Lexbor's parse and CSS match, what no Python rewrite removes), the Python rest per
reference, of it the least a Python walk costs (reading each element's tag and attributes) and
page_refs' own share, and what 2,500 pages/s would leave Python per reference.

  .venv/bin/python benchmarks/bench_extract.py [--pages 2000] [--repeat 3] [--profile]
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


def cpu_timed(repeat: int, fn, *args):
    """(CPU seconds, result) of the fastest of `repeat` calls of fn(*args)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn(*args)
        best = min(best, time.process_time() - t0)
    return best, out


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


def phase_split(path: str, cfg, repeat: int) -> tuple[int, dict]:
    """(pages, {phase: CPU seconds}) for process_warc's phases on `path` (see the module's docstring)."""
    from selectolax.lexbor import LexborHTMLParser
    from semantica.mining import reasons as R
    from semantica.mining.extract import process_warc
    from semantica.mining.html_bounds import bound_html
    from semantica.mining.html_charset import decode_html_utf8, is_html
    from semantica.mining.html_refs import OTHERS, RAW, URL, WALK_SELECTOR, candidate_urls, page_refs, resolve
    from semantica.mining.prefilter import prefilter_statuses
    from semantica.mining.warc_io import iter_records
    limit = max(cfg.max_html_bytes, cfg.download.max_bytes)
    clock = time.process_time

    def read():
        for _ in iter_records(path, cfg.reader, limit, []):  # streamed, as process_warc reads
            pass

    records = list(iter_records(path, cfg.reader, limit, []))
    pages = [r for r in records if r.uri and is_html(r.header("Content-Type"), r.body)
             and 200 <= (r.http_status or 0) < 300]
    texts = [decode_html_utf8(r.body[:cfg.max_html_bytes], r.header("Content-Type"))[0] for r in pages]
    bounded = [bound_html(t, cfg.parse).html for t in texts]
    found = [page_refs(h, r.uri) for h, r in zip(bounded, pages)]  # (refs, base, memo) a page
    refs = [rs for rs, _, _ in found]
    statuses = [prefilter_statuses(rs, cfg.prefilter) for rs in refs]
    kept = [(ref[URL], ref[OTHERS], base, memo) for (rs, base, memo), ss in zip(found, statuses)
            for ref, s in zip(rs, ss) if s == R.KEPT]

    def each(fn, args):  # nothing kept: a list of 1,000 parsed trees would time the allocator
        for a in args:
            fn(*a)

    # the arguments are built before the clock starts
    args = {"charset": [(r.body[:cfg.max_html_bytes], r.header("Content-Type")) for r in pages],
            "bound": [(t, cfg.parse) for t in texts], "parse": [(h,) for h in bounded],
            "page_refs": [(h, r.uri) for h, r in zip(bounded, pages)],
            "resolve": [(base, ref[RAW]) for rs, base, _ in found for ref in rs],
            "prefilter": [(rs, cfg.prefilter) for rs in refs], "candidates": kept}
    def select(html):  # the C part of the walk: Lexbor's parse and page_refs' CSS match, no Python per element
        LexborHTMLParser(html).css(WALK_SELECTOR)

    def touch(html):  # the least Python can do per element: read its tag and its attributes
        for node in LexborHTMLParser(html).css(WALK_SELECTOR):
            node.tag_id
            node.attributes

    args["select"] = args["touch"] = args["parse"]
    fns = {"charset": decode_html_utf8, "bound": bound_html, "parse": LexborHTMLParser, "select": select,
           "touch": touch,
           "page_refs": page_refs,
           "resolve": resolve, "prefilter": prefilter_statuses, "candidates": candidate_urls}
    steps = {"read": read}
    steps.update({name: (lambda fn, a: lambda: each(fn, a))(fns[name], args[name]) for name in fns})
    steps["process_warc"] = lambda: sum(kind == "page" for kind, _ in process_warc(path, cfg, Counter()))
    best = {}
    for _ in range(repeat):
        for name, fn in steps.items():
            if name == "candidates":  # back to what page_refs leaves: each reference's own URL
                for rs, _, memo in found:
                    memo.clear()
                    memo.update((ref[RAW], ref[URL] or None) for ref in rs)
            t0 = clock()
            fn()
            best[name] = min(best.get(name, float("inf")), clock() - t0)
    split = {"read": best["read"], "charset": best["charset"], "bound": best["bound"], "parse": best["parse"],
             "walk": best["page_refs"] - best["parse"] - best["resolve"], "resolve": best["resolve"],
             "prefilter": best["prefilter"], "candidates": best["candidates"]}
    split["other"] = best["process_warc"] - sum(split.values())
    split["process_warc"] = best["process_warc"]
    # what no Python rewrite removes: FastWARC's read, Lexbor's parse and its CSS match
    split["c_floor"] = best["read"] + best["select"]
    split["touch"] = best["touch"] - best["select"]  # Python's floor of reading each element
    split["refs_python"] = best["page_refs"] - best["select"]  # page_refs' Python: walk and resolve
    split["refs"] = sum(len(rs) for rs in refs)
    return len(pages), split


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
    ap.add_argument("--repeat", type=int, default=3, help="runs of each case; the fastest counts (default 3)")
    ap.add_argument("--profile", action="store_true", help="also print process_warc's time split by phase")
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
        rows, split = [], None
        for name, fn, extra in cases:
            seconds, pages = cpu_timed(args.repeat, fn, path, *extra)
            rows.append((name, seconds, pages))
            print(f"  ran {name}: {seconds:.2f} s, {pages} pages", flush=True)
        if args.profile:
            split = phase_split(path, dataclasses.replace(mine, main_content=False), args.repeat)

    floor = next(r for r in rows if r[0] == "warcio floor")
    naive = next(r for r in rows if r[0] == "naive bs4")
    print(f"\n{'case':<24}{'seconds':>9}{'pages':>7}{'pages/s':>10}{'MB/s (gz)':>11}"
          f"{'vs warcio floor':>17}{'vs naive bs4':>14}")
    for name, seconds, pages in rows:
        print(f"{name:<24}{seconds:>9.2f}{pages:>7}{pages / seconds:>10.1f}{mb / seconds:>11.2f}"
              f"{(pages / seconds) / (floor[2] / floor[1]):>16.3f}x{(pages / seconds) / (naive[2] / naive[1]):>13.2f}x")
    print("(throughput ratios: >1 is faster than the baseline; one core, same file, same run; CPU time, "
          f"best of {args.repeat})")
    if split:
        n, phases = split
        total = phases["process_warc"]
        print(f"\nprocess_warc by phase ({n} pages, main content excluded; CPU, best of {args.repeat} each)")
        print(f"{'phase':<14}{'µs/page':>9}{'share':>8}")
        c_floor, n_refs = phases.pop("c_floor"), phases.pop("refs")
        touch, refs_python = phases.pop("touch"), phases.pop("refs_python")
        for name, seconds in phases.items():
            print(f"{name:<14}{seconds / n * 1e6:>9.1f}{seconds / total:>8.1%}")
        us = lambda seconds: seconds / n * 1e6  # noqa: E731
        python = total - c_floor
        print(f"\nC floor (read + Lexbor parse + its CSS match, no Python per element): {us(c_floor):.1f} µs/page, "
              f"at most {n / c_floor:,.0f} pages/s")
        print(f"Python (everything else): {us(python):.1f} µs/page = {python / n_refs * 1e6:.2f} µs per reference "
              f"({n_refs / n:.1f} references/page)")
        print(f"of which reading each element's tag and attributes from Lexbor (the least a Python walk does): "
              f"{touch / n_refs * 1e6:.2f} µs per reference; page_refs above the CSS match (choosing, resolving "
              f"and recording each reference): {refs_python / n_refs * 1e6:.2f}")
        budget = 1e6 / 2500 - us(c_floor)  # the goal, 2,500 pages/s per core
        print(f"2,500 pages/s leaves Python {budget:.1f} µs/page = {budget * n / n_refs:.2f} µs per reference "
              f"({us(python) / budget:.2f}x less than now)" if budget > 0 else "2,500 pages/s: below the C floor")


if __name__ == "__main__":
    main()
