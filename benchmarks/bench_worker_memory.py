"""Peak RSS of each Beam SDK worker process while the whole mining job runs on Beam's portable
path (the `portable` profile: Beam's Python job server, 2 SDK worker processes, as Dataflow v2,
Flink and Spark run a job) over one large .warc.gz.

The WARC is bench_memory.py's: realistic pages padded with inline base64 blobs (they compress
only ~1.4x), heavy-tailed page sizes (1 in 100 is 1-4 MB), 1 record in 10 a JPEG-like image of
30-500 KB. References point at hosts that are not fetched (download.allowed_hosts = loopback).
A sampler thread reads /proc/PID/status (VmHWM, the per-process peak) of every descendant
process every 0.2 s; the figure per SDK worker is its last VmHWM seen. The job server (the
runner, which holds the shuffle in this process, as a Dataflow shuffle service would outside
the workers) is reported apart.

  .venv/bin/python benchmarks/bench_worker_memory.py [--size-mb 1024] [--main-content] [--keep DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401
import bench_memory  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _status(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "PPid", "Name"):
                out[k] = v.strip()
        out["cmd"] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        pass
    return out


def descendants(root: int) -> list[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = [], [root]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier]
        out += frontier
    return out


class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak: dict[int, tuple[int, str]] = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for pid in descendants(os.getpid()):
                s = _status(pid)
                if "VmHWM" in s:
                    kb = int(s["VmHWM"].split()[0])
                    self.peak[pid] = (max(kb, self.peak.get(pid, (0, ""))[0]), s["cmd"])
            self.stop.wait(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="compressed size of the WARC (default 1024)")
    ap.add_argument("--main-content", action="store_true", help="with trafilatura (as pipelines.yaml ships; slow)")
    ap.add_argument("--keep", type=Path, help="write the WARC and the output here and keep them")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a settings override")
    args = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    from semantica.config import load_settings
    from semantica.mining.pipeline import run_mine
    settings = load_settings(REPO / "pipelines.yaml", "portable", args.set)
    mine = settings.stages.mine
    mine = dataclasses.replace(mine, main_content=args.main_content,
                               download=dataclasses.replace(mine.download, allowed_hosts=("127.0.0.1",)))
    settings = dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, mine=mine))
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-worker-memory-"))
    tmp.mkdir(parents=True, exist_ok=True)
    warc = tmp / "big.warc.gz"
    if not warc.exists():
        t0 = time.perf_counter()
        _common.write_warc(warc, bench_memory.records(args.size_mb << 20, warc))
        print(f"wrote {warc} ({warc.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s", flush=True)
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    stats = run_mine(settings, [str(warc)], tmp / "out", overwrite=True)
    seconds = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    me = int(_status(os.getpid())["VmHWM"].split()[0])
    workers = {p: v for p, v in sampler.peak.items() if "sdk_worker" in v[1] or "worker" in v[1].lower()}
    print(f"\nWARC {warc.stat().st_size / 1e6:.0f} MB compressed; {stats['records']['records']} records, "
          f"{stats['pages']['parsed']} pages, {stats['refs']['total']} references; job {seconds:.0f} s "
          f"(main_content={args.main_content})")
    print(f"{'process':<60}{'peak RSS (MB)':>14}")
    for pid, (kb, cmd) in sorted(sampler.peak.items(), key=lambda x: -x[1][0]):
        print(f"{(str(pid) + ' ' + cmd)[:58]:<60}{kb / 1024:>14.0f}")
    print(f"{'(this process: job server / runner, holds the shuffle)':<60}{me / 1024:>14.0f}")
    if workers:
        worst = max(kb for kb, _ in workers.values()) / 1024
        print(f"largest SDK worker peak: {worst:.0f} MB ({'within' if worst <= 1024 else 'OVER'} the 1 GB goal); "
              f"{len(workers)} worker processes")
    if not args.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
