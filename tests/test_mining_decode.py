"""Decoding in bounded memory (issue 10): the peak stays under decode.max_memory_mb on a bomb set,
the pHash is bit-identical to converting the whole image, a JPEG or JPEG 2000 over the budget is
decoded at reduced size, other formats are refused with a reason that names the image."""
from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw

from semantica.config import load_settings
from semantica.errors import ConfigError
from semantica.images import hamming, to_rgb, to_signed
from semantica.mining import decode as D
from semantica.mining import reasons as R

from helpers import REPO


def test_decode_memory_stays_within_the_budget_on_the_bomb_set():
    """The benchmark's bomb set at 2000x2000 with a 40 MB budget (the 6324x6324 / 256 MB figures are
    in the README): each image decoded in a forked child, its peak RSS measured."""
    budget = 40
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_decode_memory.py"), "--side", "2000",
                          "--budget-mb", str(budget), "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) >= 10
    for r in rows:
        assert r["peak_mb"] <= budget, r
        assert r["result"].startswith("kept") or r["result"] == R.DEC_MEMORY, r
        if r["result"].startswith("kept"):
            assert r["peak_mb"] <= r["estimate_mb"], r  # the estimate is an upper bound
    by_name = {r["image"]: r for r in rows}
    assert by_name["png RGBA"]["full_decode_mb"] > 1.5 * budget  # what the bound saves
    assert by_name["webp lossless RGBA"]["result"] == R.DEC_MEMORY
    assert by_name["jpeg2000 RGB"]["result"].startswith("kept")  # at a lower resolution level


def _picture(size, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        draw.ellipse([x, y, x + size[0] // 3, y + size[1] // 4], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _encodings(size) -> dict[str, bytes]:
    base = _picture(size)
    grey = base.convert("L")
    arr = np.asarray(grey, dtype=np.int32)
    variants = {
        "rgb.png": (base, "PNG", {}), "rgba.png": (base.convert("RGBA"), "PNG", {}),
        "la.png": (Image.merge("LA", (grey, grey.point(lambda v: 255 - v))), "PNG", {}),
        "p-transparent.png": (base.convert("P"), "PNG", {"transparency": 3}), "p.gif": (base.convert("P"), "GIF", {}),
        "l.png": (grey, "PNG", {}), "1.png": (grey.convert("1"), "PNG", {}),
        "i16.png": (Image.fromarray((arr * 257).astype(np.uint16)), "PNG", {}),
        "i.tif": (Image.fromarray(arr * 1000 + 7), "TIFF", {}),
        "f.tif": (Image.fromarray(arr.astype(np.float32) / 3.0), "TIFF", {}),
        "cmyk.jpg": (base.convert("CMYK"), "JPEG", {"quality": 90}), "rgb.jpg": (base, "JPEG", {"quality": 90}),
        "rgba.webp": (base.convert("RGBA"), "WEBP", {"lossless": True}),
    }
    return {name: _encode(img, fmt, **kw) for name, (img, fmt, kw) in variants.items()}


def _whole_image_phash(data: bytes) -> int:
    """The pHash as decode_image computed it before strips: to_rgb of the whole image, as it was then."""
    img = Image.open(io.BytesIO(data))
    img.seek(0)
    img.load()
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        rgb = Image.fromarray(np.clip(arr / max(arr.max(), 1) * 255, 0, 255).astype(np.uint8), "L").convert("RGB")
    else:
        rgb = to_rgb(img)
    return to_signed(int(str(imagehash.phash(rgb)), 16))


def test_phash_is_bit_identical_to_converting_the_whole_image(settings, monkeypatch):
    monkeypatch.setattr(D, "STRIP_BYTES", 1 << 16)  # strips of a few rows even at 300x200
    cfg = settings.stages.mine.decode
    for name, data in _encodings((300, 200)).items():
        got = D.decode_image(data, cfg)
        assert isinstance(got, D.Decoded), (name, got)
        assert got.phash == _whole_image_phash(data), name
        assert got.phash not in (0, to_signed(1 << 63)), name  # a real picture, not a flat one


@pytest.mark.parametrize("fmt, scale", [("JPEG", 2), ("JPEG2000", 4)])
def test_a_jpeg_over_the_budget_is_decoded_at_reduced_size(fmt, scale, settings):
    data = _encode(_picture((2400, 1600)), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    cfg = dataclasses.replace(settings.stages.mine.decode, max_memory_mb=32)
    img = Image.open(io.BytesIO(data))
    assert D.decode_memory(img.size, img.mode, fmt.lower()) > 32 << 20
    assert D._fit_memory(img, fmt.lower(), 32 << 20) == scale
    got = D.decode_image(data, cfg)
    assert isinstance(got, D.Decoded) and (got.width, got.height) == (2400, 1600)  # the size of the file
    full = D.decode_image(data, settings.stages.mine.decode)
    assert full.phash == _whole_image_phash(data)  # under the budget: decoded whole, hash unchanged
    assert hamming(got.phash, full.phash) <= 4  # 1/2 or 1/4 scale: nearly the same picture


def test_other_formats_over_the_budget_are_refused_naming_the_image(settings):
    cfg = dataclasses.replace(settings.stages.mine.decode, max_memory_mb=32)
    got = D.decode_image(_encode(Image.new("RGBA", (3000, 2000)), "PNG"), cfg)
    assert isinstance(got, D.DecodeFailure) and got.reason == R.DEC_MEMORY
    assert got.detail.startswith("3000x2000 RGBA png: ~") and "max_memory_mb 32" in got.detail


def test_the_budget_is_configured_and_checked():
    with pytest.raises(ConfigError, match="max_memory_mb"):
        load_settings(REPO / "pipelines.yaml", "local", ["stages.mine.decode.max_memory_mb=16"])
