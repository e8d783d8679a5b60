"""Decoding image bytes and hashing them perceptually, in bounded memory.

Before any pixel is decoded, the header's size is checked against the pixel cap (a
decompression bomb costs nothing) and the decode's memory is estimated (pixels x bytes per
pixel in Pillow, plus what the decoder holds beside the image) against `max_memory_mb`: over
it, a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Image.draft), a JPEG 2000
at a lower resolution level (OpenJPEG), any other format is refused: the others decode whole or
not at all, so reducing after the decode would not lower the peak. Palette, alpha, CMYK, 16-bit,
32-bit and animated images are brought to RGB (transparency over white, the first frame of an
animation), then grey, before the pHash
(imagehash), so the same picture hashes the same whatever its encoding. A large image goes
to grey a strip of rows at a time: no full-size RGB or RGBA copy (to_rgb, semantica/images.py, costs
up to 16 bytes a pixel), and the same grey pixels, so the same hash, as converting it whole.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Optional, Union

import imagehash
import numpy as np
from PIL import Image, ImageMode

from semantica.config import DecodeConfig
from semantica.images import BOMB, CORRUPT, bombs_refused, open_capped, to_rgb, to_signed
from semantica.mining import reasons as R

# The size is checked against our own limit first; Pillow's bomb check stays on behind it.
PHASH_SIDE = 32           # imagehash.phash shrinks to hash_size 8 x highfreq_factor 4 before its DCT
STRIP_BYTES = 8 << 20     # a strip of rows goes through to_rgb and back to grey in about this much
STRIP_COST = 32           # bytes a pixel of a strip costs at most (RGBA: crop, RGBA, white, composite, RGB, L)
# What a decoder holds beside the image, in image sizes (measured: benchmarks/bench_decode_memory.py):
# Pillow's own decoders write into the image; libwebp keeps its own canvas and hands Pillow the frame
# as bytes; OpenJPEG decodes into 32-bit planes. A format not measured is assumed to hold one copy.
DECODER_COPIES = {"jpeg": 0.0, "mpo": 0.0, "png": 0.0, "gif": 0.0, "tiff": 0.0, "bmp": 0.0,
                  "webp": 3.0, "jpeg2000": 4.0}


@dataclass
class Decoded:
    image_id: str        # sha256 of the bytes: stable across runs and crawls
    phash: int           # 64-bit pHash as a signed int64 (Parquet has no uint64 in every reader)
    width: int
    height: int
    format: str
    mode: str
    frames: int


@dataclass
class DecodeFailure:
    reason: str
    detail: str


def image_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def to_grey(img: Image.Image) -> Image.Image:
    """`to_rgb(img).convert("L")`, pixel for pixel, a strip of rows at a time when the image is large."""
    w, h = img.size
    rows = max(1, STRIP_BYTES // (STRIP_COST * w))
    if rows >= h:
        return to_rgb(img).convert("L")
    value_max = img.getextrema()[1] if img.mode in ("I", "F") else None
    grey = Image.new("L", (w, h))
    for y in range(0, h, rows):
        grey.paste(to_rgb(img.crop((0, y, w, min(y + rows, h))), value_max).convert("L"), (0, y))
    return grey


def phash_int(img: Image.Image) -> int:
    """imagehash's pHash. A grey image is shrunk first, as phash itself does (convert("L") then
    resize to 32x32, LANCZOS), which spares phash's full-size copy of it: the same hash."""
    if img.mode == "L":
        img = img.resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS)
    return int(str(imagehash.phash(img)), 16)


def bytes_per_pixel(mode: str) -> int:
    """Pillow stores one-band images in their own width (1, 2 or 4 bytes), all others in 4 bytes."""
    desc = ImageMode.getmode(mode)
    return np.dtype(desc.typestr).itemsize if len(desc.bands) == 1 else 4


def decode_memory(size: tuple[int, int], mode: str, fmt: str) -> int:
    """Peak bytes of decoding an image of this size and mode, and hashing it: the image, the
    decoder's own copies, the grey image pHash reads, and a strip in flight (twice: allocator slack)."""
    w, h = size
    return int(w * h * (bytes_per_pixel(mode) * (1 + DECODER_COPIES.get(fmt, 1.0)) + 1)) + 2 * STRIP_BYTES


def _fit_memory(img: Image.Image, fmt: str, budget: int) -> Optional[int]:
    """Make the decode fit `budget` bytes: the scale chosen (1 = full size), or None. Only JPEG
    (libjpeg's DCT scaling) and JPEG 2000 (OpenJPEG's resolution levels) decode smaller than whole."""
    if decode_memory(img.size, img.mode, fmt) <= budget:
        return 1
    w, h = img.size
    scales = {"jpeg": (2, 4, 8), "jpeg2000": (2, 4, 8, 16, 32)}.get(fmt, ())
    for scale in scales:
        if decode_memory((math.ceil(w / scale), math.ceil(h / scale)), img.mode, fmt) > budget:
            continue
        if fmt == "jpeg2000":
            img.reduce = scale.bit_length() - 1  # Pillow's J2K plugin: decode at 1/2**reduce
        elif img.draft(img.mode, (max(1, w // scale), max(1, h // scale))) is None:
            return None  # not a JPEG of one tile: no DCT scaling
        return scale
    return None


def decode_image(data: bytes, cfg: DecodeConfig) -> Union[Decoded, DecodeFailure]:
    try:
        with bombs_refused():
            img = open_capped(data, cfg.max_pixels)
            w, h = img.size
            if min(w, h) < cfg.min_side:
                return DecodeFailure(R.DEC_TOO_SMALL, f"{w}x{h} < {cfg.min_side}")
            fmt = (img.format or "").lower()
            frames = getattr(img, "n_frames", 1)
            img.seek(0)
            if _fit_memory(img, fmt, cfg.max_memory_mb << 20) is None:
                need = decode_memory((w, h), img.mode, fmt) >> 20
                return DecodeFailure(R.DEC_MEMORY, f"{w}x{h} {img.mode} {fmt}: ~{need} MB to decode > "
                                                   f"max_memory_mb {cfg.max_memory_mb}")
            img.load()
            phash = phash_int(to_grey(img))
    except BOMB as e:
        return DecodeFailure(R.DEC_BOMB, str(e)[:200])
    except CORRUPT as e:
        return DecodeFailure(R.DEC_CORRUPT, f"{type(e).__name__}: {e}"[:200])
    return Decoded(image_id=image_id(data), phash=to_signed(phash), width=w, height=h, format=fmt,
                   mode=img.mode, frames=frames)
