"""Peak memory of decoding one image, per image, on a "bomb set": small files with many pixels
(under the pixel cap) in modes that cost many bytes a pixel.

For each image, a child process forked from a parent that has imported everything (and decoded
nothing) decodes it and reports its peak RSS above its RSS at the start (VmHWM after resetting it
through /proc/self/clear_refs), for:
  decode_image     mining/decode.py as configured (max_memory_mb from pipelines.yaml or --budget-mb)
  full decode      the path decode_image took before its memory bound (baseline): open, load,
                   to_rgb of the whole image, imagehash.phash
and prints decode_image's estimate (decode_memory) beside both. Linux only.

  .venv/bin/python benchmarks/bench_decode_memory.py [--side 6324] [--budget-mb 256]
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (sets NO_ALBUMENTATIONS_UPDATE)


def bomb_set(side: int) -> dict[str, bytes]:
    """name → file bytes; flat colour (so the files are tiny) in every costly mode and format."""
    def save(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()
    s = (side, side)
    gradient = Image.linear_gradient("L").resize(s)
    out = {
        "webp lossless RGBA": save(Image.new("RGBA", s, (10, 20, 30, 128)), "WEBP", lossless=True),
        "tiff F (32-bit float)": save(Image.new("F", s, 0.5), "TIFF", compression="tiff_adobe_deflate"),
        "tiff I (32-bit int)": save(Image.new("I", s, 70000), "TIFF", compression="tiff_adobe_deflate"),
        "png RGBA": save(Image.new("RGBA", s, (1, 2, 3, 4)), "PNG"),
        "png I;16": save(Image.new("I;16", s, 300), "PNG"),
        "png P + transparency": save(Image.new("P", s, 1), "PNG", transparency=1),
        "png LA": save(Image.merge("LA", (gradient, gradient)), "PNG"),
        "gif P": save(Image.new("P", s, 3), "GIF"),
        "jpeg RGB": save(Image.merge("RGB", (gradient,) * 3), "JPEG", quality=50),
        "jpeg CMYK": save(Image.new("CMYK", s, (1, 2, 3, 4)), "JPEG"),
        "bmp RGB": save(Image.new("RGB", (side, side // 4), (5, 6, 7)), "BMP"),
        "jpeg2000 RGB": save(Image.new("RGB", s, (9, 8, 7)), "JPEG2000"),
    }
    return out


def _peak_over_start(fn) -> tuple[int, str]:
    """Run fn() in a forked child: (peak RSS bytes above the child's RSS at the start, fn's result)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, leave without running the parent's exit handlers
        os.close(r)
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # VmHWM := VmRSS
            start = _status("VmRSS")
            result = fn()
            os.write(w, f"{_status('VmHWM') - start}\t{result}".encode())
        except BaseException as e:  # noqa: BLE001
            os.write(w, f"-1\t{type(e).__name__}: {e}".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    peak, _, result = text.partition("\t")
    return int(peak), result


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def full_decode(data: bytes) -> str:
    """What decode_image did before its memory bound."""
    import imagehash
    from semantica.images import to_rgb
    img = Image.open(io.BytesIO(data))
    img.seek(0)
    img.load()
    return f"{img.size[0]}x{img.size[1]} {img.mode}: {imagehash.phash(to_rgb(img))}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=6324, help="image side in pixels (6324² = 40.0 M, the cap)")
    ap.add_argument("--budget-mb", type=int, default=None, help="decode.max_memory_mb (default: pipelines.yaml)")
    ap.add_argument("--skip-baseline", action="store_true", help="do not run the unbounded full decode")
    ap.add_argument("--json", action="store_true", help="one JSON object a line instead of the table (tests)")
    args = ap.parse_args()

    from semantica.config import load_settings
    from semantica.mining.decode import Decoded, decode_image, decode_memory
    cfg = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml").stages.mine.decode
    if args.budget_mb:
        cfg = dataclasses.replace(cfg, max_memory_mb=args.budget_mb)
    import imagehash  # noqa: F401  (imported before forking: children measure decoding, not imports)
    decode_image(_tiny_png(), cfg)
    full_decode(_tiny_png())
    t0 = time.perf_counter()
    images = _made_in_a_child(args.side)
    say = (lambda *a, **k: None) if args.json else print
    say(f"bomb set: {len(images)} images of {args.side}x{args.side} (bmp: a quarter of it), written in "
        f"{time.perf_counter() - t0:.1f} s; budget {cfg.max_memory_mb} MB")

    def ours(data):
        d = decode_image(data, cfg)
        return f"kept {d.width}x{d.height} {d.mode}" if isinstance(d, Decoded) else f"{d.reason}"

    say(f"\n{'image':<24}{'file KB':>9}{'estimate MB':>13}{'decode_image MB':>17}{'full decode MB':>16}  result")
    worst = 0.0
    for name, data in images.items():
        img = Image.open(io.BytesIO(data))
        estimate = decode_memory(img.size, img.mode, (img.format or "").lower()) / 2**20
        peak, result = _peak_over_start(lambda: ours(data))
        base = None if args.skip_baseline else _peak_over_start(lambda: full_decode(data))[0] / 2**20
        worst = max(worst, peak / 2**20)
        if args.json:
            print(json.dumps(dict(image=name, file_bytes=len(data), estimate_mb=estimate, peak_mb=peak / 2**20,
                                  full_decode_mb=base, result=result)), flush=True)
        say(f"{name:<24}{len(data) / 1e3:>9.1f}{estimate:>13.0f}{peak / 2**20:>17.0f}"
            f"{'-' if base is None else f'{base:.0f}':>16}  {result}", flush=True)
    say(f"\nlargest decode_image peak: {worst:.0f} MB (budget {cfg.max_memory_mb} MB); MB = 2^20 bytes")


def _made_in_a_child(side: int) -> dict[str, bytes]:
    """The bomb set, drawn in a forked child: drawing takes GBs, which the parent's heap would keep
    and the measuring children would then reuse without their RSS growing."""
    import pickle
    import tempfile
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        path = Path(tmp) / "bombs.pickle"
        pid = os.fork()
        if pid == 0:
            try:
                path.write_bytes(pickle.dumps(bomb_set(side)))
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        return pickle.loads(path.read_bytes())


def _tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


if __name__ == "__main__":
    main()
