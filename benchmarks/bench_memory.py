"""Peak memory (RSS) of the miner's per-file path, process_warc, over one large .warc.gz.

Writes a .warc.gz of at least --size-mb (default 200) MB compressed: realistic pages
(_common.py) padded with inline base64 blobs (a JSON <script> and a data: URI image, as
Next.js pages and inlined pictures carry), so they compress only ~1.4x; page sizes are
heavy-tailed (1 page in 100 is 1-4 MB), and 1 record in 10 is a JPEG-like image.
Each case runs in a fresh child process that reports its own peak RSS (VmHWM from
/proc/self/status, which is per process, unlike ru_maxrss after a fork) and its RSS after
imports, before the first record:
  warcio baseline   warcio ArchiveIterator, every response body read, nothing kept
  process_warc      the miner's path with pipelines.yaml's config (reader, main_content)
The figure is process_warc's peak RSS and its growth over start, against the baseline's.

  .venv/bin/python benchmarks/bench_memory.py [--size-mb 200] [--keep] [--no-main-content]
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: the peak only, in KB (macOS: bytes)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def records(target_bytes: int, path: Path, seed: int = 0):
    """(url, body[, type]) until the file being written reaches target_bytes."""
    rng = random.Random(seed)
    vocab = _common.vocabulary(rng)
    i = 0
    while not path.exists() or path.stat().st_size < target_bytes:
        host = f"www.site{i % 50}.example"
        if i % 10 == 9:
            body = b"\xff\xd8\xff\xe0" + os.urandom(rng.randint(30, 500) * 1000)
            yield f"https://{host}/img/{i}.jpg", body, "image/jpeg"
        else:
            size = rng.randint(1000, 4000) * 1000 if rng.random() < 0.01 else int(rng.uniform(50, 300) * 1000)
            blob = base64.b64encode(os.urandom(size * 3 // 4)).decode()
            half = len(blob) // 2
            html = _common.realistic_page(rng, vocab, host, rng.randint(20, 60) * 1000).replace(
                "</article>", f'<script type="application/json">{{"props":"{blob[:half]}"}}</script>'
                              f'<img src="data:image/jpeg;base64,{blob[half:]}" alt=""></article>')
            yield f"https://{host}/{2020 + i % 5}/article-{i}.html", html.encode()
        i += 1


def child(mode: str, path: str, main_content: bool) -> None:
    from semantica.config import load_settings
    from semantica.mining.extract import process_warc
    from warcio.archiveiterator import ArchiveIterator
    if main_content:
        import trafilatura  # noqa: F401  (imported before the start figure, like the other modules)
    mine = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml").stages.mine
    mine = dataclasses.replace(mine, main_content=main_content)
    start, t0, n = rss_mb("VmRSS"), time.perf_counter(), 0
    if mode == "warcio":
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response":
                    rec.content_stream().read()
                    n += 1
    else:
        for _kind, _item in process_warc(path, mine, Counter()):
            n += 1
    print(json.dumps(dict(start=start, peak=rss_mb("VmHWM"), end=rss_mb("VmRSS"), records=n,
                          seconds=time.perf_counter() - t0, reader=mine.reader)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=200, help="compressed size of the WARC (default 200)")
    ap.add_argument("--warc", help="use this .warc.gz instead of writing one (never deleted)")
    ap.add_argument("--keep", action="store_true", help="keep the generated file (its path is printed)")
    ap.add_argument("--no-main-content", action="store_true", help="process_warc with main_content=False")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], not args.no_main_content)

    path = Path(args.warc) if args.warc else Path(tempfile.mkdtemp(prefix="bench-memory-")) / "big.warc.gz"
    if not args.warc:
        t0 = time.perf_counter()
        _common.write_warc(path, records(int(args.size_mb * 1e6), path))
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    size = path.stat().st_size / 1e6
    print(f"WARC: {size:.1f} MB compressed")
    try:
        results = {}
        for mode in ("warcio", "process_warc"):
            cmd = ([sys.executable, __file__, "--child", mode, str(path)]
                   + (["--no-main-content"] * args.no_main_content))
            results[mode] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            print(f"  ran {mode}: {results[mode]}", flush=True)
    finally:
        if not args.warc and not args.keep:
            path.unlink()
            path.parent.rmdir()
    base, ours = results["warcio"], results["process_warc"]
    print(f"\n{'case':<46}{'start MB':>9}{'peak MB':>9}{'growth MB':>10}{'end MB':>8}{'seconds':>9}{'MB/s':>7}")
    for name, r in (("warcio baseline", base),
                    (f"process_warc ({ours['reader']}, main_content={not args.no_main_content})", ours)):
        print(f"{name:<46}{r['start']:>9.1f}{r['peak']:>9.1f}{r['peak'] - r['start']:>10.1f}{r['end']:>8.1f}"
              f"{r['seconds']:>9.1f}{size / r['seconds']:>7.1f}")
    print(f"file {size:.1f} MB; process_warc peak / baseline peak = {ours['peak'] / base['peak']:.2f}x; "
          f"growth over start {ours['peak'] - ours['start']:.1f} MB vs {base['peak'] - base['start']:.1f} MB")
    if args.keep and not args.warc:
        print(f"kept {path}")


if __name__ == "__main__":
    main()
