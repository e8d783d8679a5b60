"""Decoding image bytes and hashing them perceptually.

The pixel count is checked from the header, before any pixel is decoded, so a
decompression bomb costs nothing. Palette, alpha, CMYK, 16-bit and animated images are
brought to RGB (transparency over white, the first frame of an animation) before the
pHash (imagehash), so the same picture hashes the same whatever its encoding.
"""
from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass
from typing import Union

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError

from semantica.config import DecodeConfig
from semantica.mining import reasons as R

# The size is checked against our own limit first; Pillow's bomb check stays on behind it.


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


def to_signed(h: int) -> int:
    return h - (1 << 64) if h >= 1 << 63 else h


def to_unsigned(h: int) -> int:
    return h + (1 << 64) if h < 0 else h


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I;16"):  # 16-bit grey: keep the high byte
        return Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(arr / max(arr.max(), 1) * 255, 0, 255).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def phash_int(img: Image.Image) -> int:
    h = imagehash.phash(img)
    return int(str(h), 16)


def decode_image(data: bytes, cfg: DecodeConfig) -> Union[Decoded, DecodeFailure]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > cfg.max_pixels:
                return DecodeFailure(R.DEC_BOMB, f"{w}x{h} pixels > {cfg.max_pixels}")
            if min(w, h) < cfg.min_side:
                return DecodeFailure(R.DEC_TOO_SMALL, f"{w}x{h} < {cfg.min_side}")
            fmt = (img.format or "").lower()
            frames = getattr(img, "n_frames", 1)
            img.seek(0)
            img.load()
            rgb = to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return DecodeFailure(R.DEC_BOMB, str(e)[:200])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError,
            TypeError, struct.error) as e:
        return DecodeFailure(R.DEC_CORRUPT, f"{type(e).__name__}: {e}"[:200])
    return Decoded(image_id=image_id(data), phash=to_signed(phash_int(rgb)), width=w, height=h, format=fmt,
                   mode=img.mode, frames=frames)


def hamming(a: int, b: int) -> int:
    return bin(to_unsigned(a) ^ to_unsigned(b)).count("1")
