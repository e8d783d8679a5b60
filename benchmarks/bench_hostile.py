"""The fuzzing probe's reproducers at the size they were reported (issue 10): parse time of each
hostile page, and `run_mine` over all of them together with a good real crawl.

  parse     page_from_record on each page on one core, main content on (as `local` ships):
            300,000 nested <div> (3.3 MB), 10,000 <img> in one <picture>, 300,000 open <p>
  mine      run_mine (local profile: DirectRunner, 2 worker processes; downloads off) over one WARC
            holding every reproducer (bad charsets, unparseable URIs, the pages above, a 6324x6324
            lossless WebP and 32-bit TIFF) and the good crawl, then over the good crawl alone; the
            good crawl's rows are compared
Baseline: the good crawl mined alone, in the same run. The reproducers come from
tests/hostile_inputs.py.

  .venv/bin/python benchmarks/bench_hostile.py [--scale 1.0] [--good PATH]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
import _common  # noqa: E402,F401
import hostile_inputs as H  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the reported sizes (default 1.0)")
    ap.add_argument("--good", default=str(ROOT.parent / "shared" / "data" / "warc-real" /
                                          "wget-wikipedia-sopa-blackout-homepage.warc.gz"))
    args = ap.parse_args()
    sizes = {k: max(1, int(v * args.scale)) for k, v in H.FULL_SIZE.items()}

    import pyarrow.parquet as pq
    from semantica.config import load_settings
    from semantica.mining.extract import page_from_record
    from semantica.mining.pipeline import run_mine
    from semantica.mining.warc_io import Record
    settings = load_settings(ROOT / "pipelines.yaml")
    mine = settings.stages.mine
    mine = dataclasses.replace(mine, download=dataclasses.replace(mine.download, allowed_hosts=("127.0.0.1",)))
    settings = dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, mine=mine))

    print(_common.pin_one_core())
    print(f"sizes: {sizes}")
    for name, body in (("nested <div>", H.deep_divs(sizes["div_depth"])),
                       ("<img> in one <picture>", H.wide_picture(sizes["picture_images"])),
                       ("open <p>", H.nested_paragraphs(sizes["p_depth"]))):
        rec = Record("x.warc.gz", 0, "response", "http://hostile.example.org/p.html", "", 200,
                     [("Content-Type", "text/html")], body, False)
        counts: Counter = Counter()
        t0 = time.perf_counter()
        page = page_from_record(rec, mine, counts)
        print(f"  parse {name:<24} {len(body) / 1e6:5.2f} MB  {time.perf_counter() - t0:6.2f} s  "
              f"refs {len(page.refs) if page else '-':>6}  {dict(counts)}", flush=True)

    import os
    os.sched_setaffinity(0, range(os.cpu_count() or 1))  # Beam's two workers: every core
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        t0 = time.perf_counter()
        hostile = H.write_warc(Path(tmp) / "hostile.warc.gz", H.hostile_records(**sizes))
        print(f"\nhostile WARC: {hostile.stat().st_size / 1e6:.1f} MB, written in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        both = run_mine(settings, [str(hostile), args.good], Path(tmp) / "both")
        t_both = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_mine(settings, [args.good], Path(tmp) / "alone")
        t_alone = time.perf_counter() - t0
        same = all(_good_rows(pq, Path(tmp) / "both", n, args.good) == _good_rows(pq, Path(tmp) / "alone", n, None)
                   for n in ("refs", "pairs", "images", "pages"))
        print(f"run_mine, reproducers + good crawl: {t_both:.1f} s (good crawl alone: {t_alone:.1f} s); "
              f"good crawl's rows identical: {same}")
        print(f"  internal errors {both['internal_errors']}; pages {both['pages']}")
        print(f"  refs by status: { {k: v for k, v in both['refs']['by_status'].items() if k != 'kept'} }")


def _good_rows(pq, out: Path, name: str, good) -> list:
    rows = pq.read_table(out / name).to_pylist()
    if good is not None:
        rows = [r for r in rows if r.get("warc_file", r.get("source_warc_file")) == good]
    return sorted(rows, key=lambda r: repr(sorted((k, repr(v)) for k, v in r.items())))


if __name__ == "__main__":
    main()
