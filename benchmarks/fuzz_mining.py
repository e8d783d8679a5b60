"""A seeded fuzz harness for the miner's per-element functions (issue 15, item 1).

Seeds: the real WARC files of ../shared/data/ (warc/, and the smaller ones of warc-real/), the
pages they hold, WARCs written here (chunked, gzip-encoded, charset-declaring), hostile pages
(deep nesting, 10^5 <img>, garbage srcset, giant attributes, NUL bytes) and images made here
(PNG, JPEG, GIF, WebP, BMP, TIFF; animated GIF/WebP with many frames; headers declaring huge
sizes). Each input is one seed under a few mutations (byte flips, truncation, inserted runs,
NUL bytes, gzip-member corruption, a lying Content-Length or chunk size, an invalid charset),
chosen by `random.Random(f"{seed}:{i}")`: input i of a seed is the same on every run.

Targets: what the containment (mining/containment.py, extract.process_warc) wraps, called as
the pipeline calls it, so that an exception is visible (not counted `internal_error`):

  warc   iter_records(file, reader, limit, errors) → record_items(rec, cfg, counts) per record
         (the reader alternates between fastwarc and warcio)
  page   record_items on one HTML response record (→ page_from_record)
  image  from_warc(url, [image record], cfg) (what join_bytes calls; → decode_image), and on
         every fifth input from_download(Fetched(...), cfg) (what FetchBatch._one calls)

Each input runs in a pool of worker processes; a worker that spends more than --timeout (5 s) of
CPU on one input, or 6 times that of wall-clock, is killed and the input counted a hang (CPU
time, because on a shared machine wall-clock counts the neighbours' load too). An exception
escaping the target is a crash, grouped by (target, exception class, innermost frame). Peak
memory: each worker's VmHWM (workers are spawned, so a big parent, such as a pytest process that
has loaded torch, does not count; nor do the parent's other children, which
getrusage(RUSAGE_CHILDREN) would include). The pure-Python mutator is used rather than
atheris: the targets are mostly C (Lexbor, Pillow, FastWARC) without coverage
instrumentation, so coverage guidance would see little.

  .venv/bin/python benchmarks/fuzz_mining.py --inputs 10000 --workers 2 --seed 0 [--json out.json]
  .venv/bin/python benchmarks/fuzz_mining.py --replay TARGET:SEED:I   # one input, in process
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import json
import multiprocessing as mp
import os
import random
import re
import resource
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
TARGETS = ("warc", "page", "image")
WEIGHTS = (0.2, 0.4, 0.4)
MAX_SEED_WARC = 400_000  # bytes: larger real WARCs are too slow to read whole per input


# ----------------------------------------------------------------------------- seeds
def _warc(records, gz=True, http_extra=()) -> bytes:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=gz)
    for uri, ctype, body, extra in records:
        http = StatusAndHeaders("200 OK", [("Content-Type", ctype)] + list(extra) + list(http_extra),
                                protocol="HTTP/1.1")
        w.write_record(w.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http,
                                            length=len(body)))
    return buf.getvalue()


def _chunked(body: bytes, size: int = 100) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def make_images() -> dict[str, bytes]:
    from PIL import Image
    rng = random.Random(1)
    out = {}
    base = Image.new("RGB", (64, 48))
    base.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(64 * 48)])
    for fmt, kw in (("PNG", {}), ("JPEG", {"quality": 80}), ("JPEG", {"progressive": True}), ("GIF", {}),
                    ("WEBP", {}), ("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {})):
        buf = io.BytesIO()
        base.save(buf, fmt, **kw)
        out[f"{fmt.lower()}-{len(out)}"] = buf.getvalue()
    for mode in ("RGBA", "LA", "P", "I;16", "1", "CMYK"):
        buf = io.BytesIO()
        img = base.convert(mode) if mode not in ("I;16",) else Image.new("I;16", (40, 40), 300)
        img.save(buf, "TIFF" if mode == "CMYK" else "PNG")
        out[f"mode-{mode}"] = buf.getvalue()
    frames = [Image.new("P", (48, 48), i % 256) for i in range(300)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10, loop=0)
    out["gif-300-frames"] = buf.getvalue()
    frames = [Image.new("RGB", (40, 40), (i % 256, 0, 0)) for i in range(60)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=10)
    out["webp-60-frames"] = buf.getvalue()
    png = out["png-0"]  # huge declared size in IHDR (with a matching CRC): no pixel is decoded
    ihdr = b"IHDR" + (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big") + png[24:29]
    out["png-huge-ihdr"] = png[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + png[33:]
    gif = bytearray(out["gif-3"])
    gif[6:10] = b"\xff\xff\xff\xff"  # logical screen 65535x65535
    out["gif-huge-screen"] = bytes(gif)
    jpg = bytearray(out["jpeg-1"])
    sof = jpg.find(b"\xff\xc0")
    if sof > 0:
        jpg[sof + 5:sof + 9] = b"\xff\xf0\xff\xf0"
        out["jpeg-huge-sof"] = bytes(jpg)
    return out


def hostile_pages(rng: random.Random) -> bytes:
    """One of the page shapes that once cost the parser (sizes drawn, bounded)."""
    k = rng.randrange(9)
    if k == 0:
        d = rng.choice((1000, 20_000, 60_000))
        return b"<html><body>" + b"<div>" * d + b'<img src="/a.jpg"><img src="/b.jpg">' + b"</div>" * d
    if k == 1:
        n = rng.choice((1000, 10_000, 100_000))
        return b"<html><body>" + b"".join(b'<img src="/i%d.jpg" width="200" height="100">' % i for i in range(n))
    if k == 2:
        junk = "".join(rng.choice(' ,x1w0.9e99-\t\n"') for _ in range(rng.choice((50, 5000, 200_000))))
        return f'<html><body><img srcset="{junk}"><img data-srcset="{junk}" src="/s.jpg"></body></html>'.encode()
    if k == 3:
        big = "a" * rng.choice((10_000, 1_000_000, 4_000_000))
        return f'<html><body><img src="/{big}.jpg" alt="{big}" width="{big}"><img src="/b.jpg"></body></html>'.encode()
    if k == 4:
        return b"<html>\x00<body>" + b'<img src="/a\x00.jpg" alt="\x00">' * 50 + b"\x00" * 1000
    if k == 5:
        n = rng.choice((5000, 50_000))
        return b"<html><body><picture>" + b'<source srcset="/w.webp 800w">' * 3 + b'<img src="/p.jpg">' * n
    if k == 6:
        return b"<html><body>" + b"<p>x" * rng.choice((10_000, 100_000)) + b'<img src="/a.jpg"><img src="/b.jpg">'
    if k == 7:
        return (b'<html><head><base href="' + bytes(rng.choice(b"[]:/%@\\?#") for _ in range(40))
                + b'"></head><body><img src="//[::1/x.jpg"><img src="http://a:99999999/x.jpg">'
                b'<img src="http://\xff\xfe/x.jpg"><meta property="og:image" content="javascript:1"></body></html>')
    return b"<svg><math>" * 3000 + b"<img src=a.jpg><table><td><template>" * 2000


def load_seeds() -> dict:
    """{'warc': [bytes], 'page': [(content type, bytes)], 'image': [bytes]}: real files first."""
    warcs, pages = [], []
    for folder in ("warc", "warc-real"):
        d = SHARED / folder
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.name.endswith((".warc", ".warc.gz", ".arc", ".arc.gz")) and p.stat().st_size <= MAX_SEED_WARC:
                warcs.append((p.name, p.read_bytes()))
    images = make_images()
    from semantica.mining.html_charset import is_html
    from semantica.mining.warc_io import iter_records
    for name, data in warcs[:12]:
        with tempfile.NamedTemporaryFile(suffix="-" + name) as f:
            f.write(data)
            f.flush()
            for rec in iter_records(f.name, "warcio", 2_000_000, []):
                if is_html(rec.header("Content-Type"), rec.body) and len(pages) < 40:
                    pages.append((rec.header("Content-Type") or "text/html", rec.body[:300_000]))
    page = (b'<html><head><meta charset="utf-8"><title>t</title></head><body><p>caf\xc3\xa9</p>'
            b'<img src="/a.png" width="200" height="100"><img src="/b.gif" srcset="/b1.gif 1x, /b2.gif 2x">'
            b'<picture><source srcset="/c.webp 800w"><img src="/c.jpg"></picture></body></html>')
    pages.append(("text/html; charset=utf-8", page))
    img_recs = [(f"http://fuzz.example.org/{k}", "image/" + k.split("-")[0].replace("mode", "png"), v, ())
                for k, v in sorted(images.items())]
    made = [
        ("made-plain.warc.gz", _warc([("http://fuzz.example.org/p.html", "text/html", page, ())] + img_recs)),
        ("made-plain.warc", _warc([("http://fuzz.example.org/p.html", "text/html", page, ())] + img_recs[:4],
                                  gz=False)),
        ("made-chunked.warc.gz", _warc([("http://fuzz.example.org/c.html", "text/html", _chunked(page),
                                         (("Transfer-Encoding", "chunked"),))])),
        ("made-gzip.warc.gz", _warc([("http://fuzz.example.org/g.html", "text/html", gzip.compress(page),
                                      (("Content-Encoding", "gzip"),)),
                                     ("http://fuzz.example.org/gc.html", "text/html", _chunked(gzip.compress(page), 37),
                                      (("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")))])),
        ("made-charset.warc.gz", _warc([("http://fuzz.example.org/cs.html", "text/html; charset=utf-16", page, ()),
                                        ("http://fuzz.example.org/meta.html", "text/html",
                                         page.replace(b"utf-8", b"shift_jis"), ())])),
    ]
    return {"warc": [d for _, d in sorted(warcs)] + [d for _, d in made],
            "page": pages, "image": [v for _, v in sorted(images.items())]}


# ----------------------------------------------------------------------------- mutations
CHARSETS = ("hex", "base64", "rot13", "zlib", "undefined", "punycode", "utf-7", "utf-16", "utf-32", "idna",
            "x-nonsense", "", "\x00", "utf-8\"; charset=latin1", "mbcs", "cp65001", "raw_unicode_escape")


def _flip(rng, b: bytearray, n: int) -> None:
    for _ in range(n):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        if op == 0:
            _flip(rng, b, rng.choice((1, 2, 8, 64)))
        elif op == 1 and b:  # truncate
            del b[rng.randrange(len(b)):]
        elif op == 2:  # overwrite a run with one interesting byte
            if b:
                i = rng.randrange(len(b))
                n = min(len(b) - i, rng.choice((1, 4, 64, 4096)))
                b[i:i + n] = bytes([rng.choice((0, 0xff, 0x7f, 0x80, ord("<"), ord(">")))]) * n
        elif op == 3 and b:  # duplicate a slice (repeat a header, a chunk, a frame)
            i = rng.randrange(len(b))
            j = min(len(b), i + rng.choice((4, 64, 1024)))
            b[i:i] = b[i:j] * rng.choice((1, 2, 16))
        elif op == 4 and b:  # cut a slice out
            i = rng.randrange(len(b))
            del b[i:i + rng.choice((1, 8, 512))]
        elif op == 5:  # NUL bytes
            i = rng.randrange(len(b) + 1)
            b[i:i] = b"\x00" * rng.choice((1, 3, 100))
        elif op == 6 and len(b) >= 4:  # an interesting 32-bit integer (sizes, counts, lengths)
            i = rng.randrange(len(b) - 3)
            value = rng.choice((0, 1, 0x7fffffff, 0xffffffff, 0x10000, 0xffff))
            b[i:i + 4] = value.to_bytes(4, rng.choice(("big", "little")))
    return bytes(b)


def _lie_lengths(rng: random.Random, data: bytes) -> bytes:
    """Lying Content-Length (WARC and HTTP headers) and chunk sizes, in an uncompressed WARC."""
    def cl(m):
        n = int(m.group(2))
        return m.group(1) + str(rng.choice((0, n + 1, max(0, n - 1), n * 2, 2 ** 31, 2 ** 63))).encode()
    data = re.sub(rb"(?i)(content-length:\s*)(\d+)", cl, data, count=rng.randint(1, 4))
    return re.sub(rb"\r\n([0-9a-f]{1,6})\r\n", lambda m: b"\r\n" + rng.choice((b"0", b"ffffffff", b"zz", b"-1",
                                                                                 b"7fffffffffffffff")) + b"\r\n",
                  data, count=rng.randint(0, 3))


def mutate_warc(rng: random.Random, data: bytes) -> bytes:
    gz = data[:2] == b"\x1f\x8b"
    op = rng.randrange(6)
    if op == 0 or not gz:
        if gz:  # mutate the records themselves, then store them uncompressed or re-gzipped
            try:
                data = gzip.decompress(data)
            except Exception:  # noqa: BLE001
                pass
            gz = rng.random() < 0.5
        data = _lie_lengths(rng, data) if rng.random() < 0.5 else data
        if rng.random() < 0.3:
            data = re.sub(rb"(?i)charset=[\w-]+", b"charset=" + rng.choice(CHARSETS).encode("latin-1"), data)
        if rng.random() < 0.5:
            data = mutate_bytes(rng, data)
        return gzip.compress(data, compresslevel=1) if gz else data
    if op == 1:  # corrupt one gzip member (a record) in place, in its header or compressed bytes
        starts = [m.start() for m in re.finditer(b"\x1f\x8b\x08", data)]
        s = rng.choice(starts)
        b = bytearray(data)
        end = min(len(b), s + rng.choice((10, 40, 400)))
        for _ in range(rng.choice((1, 4))):
            b[rng.randrange(s, end)] ^= 1 << rng.randrange(8)
        return bytes(b)
    if op == 2:  # a gzip member cut short, the rest of the file after it
        starts = [m.start() for m in re.finditer(b"\x1f\x8b\x08", data)] + [len(data)]
        k = rng.randrange(len(starts) - 1)
        cut = rng.randrange(starts[k], starts[k + 1])
        return data[:cut] + data[starts[k + 1]:]
    return mutate_bytes(rng, data)


def mutate_page(rng: random.Random, ctype: str, body: bytes) -> tuple[str, bytes]:
    if rng.random() < 0.15:
        return ctype, hostile_pages(rng)
    if rng.random() < 0.25:
        cs = rng.choice(CHARSETS)
        if rng.random() < 0.5:
            ctype = f"text/html; charset={cs}"
        else:
            body = f'<meta charset="{cs}">'.encode("latin-1") + body
    if rng.random() < 0.2:
        ctype = rng.choice(("", "text/plain", "application/octet-stream", "text/html;;charset", "TEXT/HTML"))
    if rng.random() < 0.7:
        body = mutate_bytes(rng, body)
    return ctype, body


def mutate_image(rng: random.Random, data: bytes) -> bytes:
    return mutate_bytes(rng, data) if rng.random() < 0.9 else data[: rng.randrange(len(data) + 1)]


# ----------------------------------------------------------------------------- targets
def _settings():
    from semantica.config import load_settings
    s = load_settings(ROOT / "pipelines.yaml", "local")
    mine = s.stages.mine
    return dataclasses.replace(mine, download=dataclasses.replace(mine.download, allowed_hosts=("127.0.0.1",)))


def make_input(seeds: dict, target: str, seed: int, i: int):
    rng = random.Random(f"{seed}:{target}:{i}")
    if target == "warc":
        return mutate_warc(rng, rng.choice(seeds["warc"]))
    if target == "page":
        return mutate_page(rng, *rng.choice(seeds["page"]))
    return mutate_image(rng, rng.choice(seeds["image"])), rng.random() < 0.2, rng.random() < 0.1


def run_target(target: str, data, cfg, tmpdir: str, i: int) -> Counter:
    """The functions the containment wraps, as the pipeline calls them; returns the counts."""
    from semantica.mining.extract import record_items
    from semantica.mining.stats import name, of_reason
    from semantica.mining.warc_io import Record, iter_records
    counts: Counter = Counter()
    if target == "warc":
        path = os.path.join(tmpdir, "in.warc.gz" if data[:2] == b"\x1f\x8b" else
                            ("in.arc" if data[:8] == b"filedesc" else "in.warc"))
        with open(path, "wb") as f:
            f.write(data)
        errors: list = []
        limit = max(cfg.max_html_bytes, cfg.download.max_bytes)
        reader = ("fastwarc", "warcio")[i % 2]
        for rec in iter_records(path, reader, limit, errors):
            for _ in record_items(rec, cfg, counts):
                pass
        for reason, _ in errors:
            counts[of_reason(reason)] += 1  # keyed (stage, reason), as record_items counts
        os.unlink(path)
    elif target == "page":
        ctype, body = data
        rec = Record("fuzz.warc.gz", 0, "response", "http://fuzz.example.org/dir/page.html", "", 200,
                     [("Content-Type", ctype)] if ctype else [], body, False)
        for _ in record_items(rec, cfg, counts):
            pass
    else:
        from semantica.mining.fetch import Fetched
        from semantica.mining.records import ImageRecord
        from semantica.mining.resolve import from_download, from_warc
        body, download, noai = data
        url = "http://fuzz.example.org/i.png"
        if download:
            res, _ = from_download(Fetched(url, body, None, content_type="image/png"), cfg)
        else:
            headers = [("Content-Type", "image/png")] + ([("X-Robots-Tag", "noai, \x00")] if noai else [])
            res, _ = from_warc(url, [ImageRecord(url=url, body=body, truncated=False, headers=headers,
                                                 warc_file="f.warc.gz", warc_offset=0, digest=None)], cfg)
        counts[of_reason(res.status)] += 1
    return Counter({name(key): n for key, n in counts.items()})  # flat names: the report is JSON


def _vm_hwm_kb(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if pid == "self" else 0


def crash_key(target: str, e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
    return f"{target}:{type(e).__name__}@{where}"


def worker(conn, seed: int, mem_limit_mb: int) -> None:
    import logging
    logging.disable(logging.CRITICAL)
    devnull = os.open(os.devnull, os.O_WRONLY)  # warcio and zlib print to stderr
    os.dup2(devnull, 2)
    import warnings
    warnings.simplefilter("ignore")
    if mem_limit_mb:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit_mb << 20, mem_limit_mb << 20))
    seeds, cfg = load_seeds(), _settings()
    tmpdir = tempfile.mkdtemp(prefix="fuzz-mining-")
    conn.send(("ready", _vm_hwm_kb()))
    while True:
        job = conn.recv()
        if job is None:
            break
        target, i = job
        t0 = time.perf_counter()
        try:
            counts = run_target(target, make_input(seeds, target, seed, i), cfg, tmpdir, i)
            out = ("ok", dict(counts))
        except Exception as e:  # noqa: BLE001 (what the harness is here to find)
            out = ("crash", crash_key(target, e), f"{type(e).__name__}: {str(e)[:300]}",
                   "".join(traceback.format_exception(e))[-3000:])
        except MemoryError as e:  # noqa: B014
            out = ("crash", crash_key(target, e), "MemoryError", "")
        conn.send((out, time.perf_counter() - t0, _vm_hwm_kb()))


# ----------------------------------------------------------------------------- the driver
def schedule(seed: int, n: int) -> list[tuple[str, int]]:
    rng = random.Random(f"schedule:{seed}")
    return [(rng.choices(TARGETS, WEIGHTS)[0], i) for i in range(n)]


class Pool:
    """Worker processes fed one input at a time; a worker past the time limit is killed and replaced."""

    def __init__(self, n: int, seed: int, mem_limit_mb: int):
        self.ctx = mp.get_context("spawn")  # a clean interpreter, like an SDK worker
        self.seed, self.mem = seed, mem_limit_mb
        self.slots = [self._start() for _ in range(n)]
        for s in self.slots:
            s["conn"].recv()  # ready (seeds loaded)

    def _start(self) -> dict:
        a, b = self.ctx.Pipe()
        p = self.ctx.Process(target=worker, args=(b, self.seed, self.mem), daemon=True)
        p.start()
        b.close()
        return {"proc": p, "conn": a, "job": None, "t0": 0.0}

    def close(self):
        for s in self.slots:
            try:
                s["conn"].send(None)
            except OSError:
                pass
        for s in self.slots:
            s["proc"].join(5)
            if s["proc"].is_alive():
                s["proc"].kill()
                s["proc"].join()


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run(n: int, seed: int, workers: int, timeout: float, mem_limit_mb: int = 3072, log=print,
        wall_timeout: float = 0.0, max_seconds: float = 0.0) -> dict:
    """`timeout`: CPU seconds an input may take (wall-clock on a shared machine would count the
    neighbours' load); past `wall_timeout` (default 6 x timeout) of wall-clock it is a hang as well
    (one blocked without using CPU). `max_seconds`: no new input after this long (0: none)."""
    wall_timeout = wall_timeout or 6 * timeout
    from multiprocessing.connection import wait
    jobs = schedule(seed, n)
    t_start = time.perf_counter()
    pool = Pool(workers, seed, mem_limit_mb)
    t_ready = time.perf_counter()
    crashes: dict = {}
    hangs: list = []
    by_target: Counter = Counter()
    reasons: Counter = Counter()
    slowest = (0.0, None)
    peak_kb = 0
    done = logged = 0
    it = iter(jobs)

    def feed(s):
        job = next(it, None) if not (max_seconds and time.perf_counter() - t_ready > max_seconds) else None
        if job is None:
            return
        s["job"], s["t0"], s["cpu0"] = job, time.perf_counter(), _cpu_s(s["proc"].pid)
        s["conn"].send(job)

    for s in pool.slots:
        feed(s)
    while any(s["job"] is not None for s in pool.slots):
        busy = [s for s in pool.slots if s["job"] is not None]
        ready = wait([s["conn"] for s in busy], timeout=0.2)
        now = time.perf_counter()
        for s in busy:
            if s["conn"] in ready:
                try:
                    out, secs, hwm = s["conn"].recv()
                except EOFError:  # the worker died (a segfault in C, or the kernel's OOM killer)
                    out, secs, hwm = ("crash", f"{s['job'][0]}:worker died (exit {s['proc'].exitcode})", "", ""), \
                        now - s["t0"], 0
                    s["proc"].join(1)
                    s.update(pool._start())
                    s["conn"].recv()
                peak_kb = max(peak_kb, hwm)
                target, i = s["job"]
                by_target[target] += 1
                done += 1
                if secs > slowest[0]:
                    slowest = (secs, f"{target}:{seed}:{i}")
                if out[0] == "ok":
                    reasons.update(out[1])
                else:
                    c = crashes.setdefault(out[1], {"count": 0, "first": f"{target}:{seed}:{i}", "message": out[2],
                                                    "traceback": out[3]})
                    c["count"] += 1
                s["job"] = None
                feed(s)
            elif now - s["t0"] > timeout and (_cpu_s(s["proc"].pid) - s["cpu0"] > timeout
                                               or now - s["t0"] > wall_timeout):
                target, i = s["job"]
                hangs.append(f"{target}:{seed}:{i}")
                if log:
                    log(f"  hang: {target}:{seed}:{i} ({now - s['t0']:.1f} s wall, "
                        f"{_cpu_s(s['proc'].pid) - s['cpu0']:.1f} s CPU)", flush=True)
                by_target[target] += 1
                done += 1
                peak_kb = max(peak_kb, _vm_hwm_kb(s["proc"].pid))
                s["proc"].kill()
                s["proc"].join()
                s["conn"].close()
                s.update(pool._start())
                s["conn"].recv()
                s["job"] = None
                feed(s)
        if done >= logged + 1000 and log:
            logged = done // 1000 * 1000
            log(f"  {done}/{n} inputs, {done / (time.perf_counter() - t_ready):.1f}/s, "
                f"crashes {sum(c['count'] for c in crashes.values())}, hangs {len(hangs)}", flush=True)
    pool.close()
    elapsed = time.perf_counter() - t_ready
    return {
        "inputs": done, "inputs_asked": n, "seed": seed, "workers": workers,
        "timeout_cpu_s": timeout, "timeout_wall_s": wall_timeout,
        "by_target": dict(by_target), "crashes": crashes,
        "crash_count": sum(c["count"] for c in crashes.values()), "hangs": hangs,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "seconds": round(elapsed, 1), "startup_s": round(t_ready - t_start, 1),
        "inputs_per_s": round(done / elapsed, 2) if elapsed else None,
        "slowest": {"seconds": round(slowest[0], 2), "input": slowest[1]},
        "outcomes": dict(reasons.most_common(40)),
    }


def replay(spec: str) -> None:
    """Run one input (TARGET:SEED:I) in this process, with its traceback."""
    target, seed, i = spec.split(":")
    seeds, cfg = load_seeds(), _settings()
    data = make_input(seeds, target, int(seed), int(i))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        print(dict(run_target(target, data, cfg, tmp, int(i))), f"{time.perf_counter() - t0:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0, help="CPU seconds before an input counts as a hang")
    ap.add_argument("--wall-timeout", type=float, default=0.0, help="wall-clock seconds (default 6 x --timeout)")
    ap.add_argument("--mem-limit-mb", type=int, default=3072, help="RLIMIT_AS of each worker (0: none)")
    ap.add_argument("--max-seconds", type=float, default=0.0, help="stop feeding inputs after this long")
    ap.add_argument("--json", help="write the summary here")
    ap.add_argument("--replay", help="TARGET:SEED:I: run that one input here, with its traceback")
    args = ap.parse_args()
    if args.replay:
        return replay(args.replay)
    print(f"fuzzing {args.inputs} inputs, seed {args.seed}, {args.workers} workers, timeout {args.timeout} s",
          flush=True)
    summary = run(args.inputs, args.seed, args.workers, args.timeout, args.mem_limit_mb,
                  wall_timeout=args.wall_timeout, max_seconds=args.max_seconds)
    brief = {k: v for k, v in summary.items() if k != "crashes"}
    brief["crashes"] = {k: {kk: vv for kk, vv in c.items() if kk != "traceback"} for k, c in summary["crashes"].items()}
    print(json.dumps(brief, indent=2))
    for k, c in summary["crashes"].items():
        print(f"\n=== {k} ×{c['count']} (first {c['first']})\n{c['traceback']}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    sys.exit(1 if summary["crash_count"] or summary["hangs"] else 0)


if __name__ == "__main__":
    main()
