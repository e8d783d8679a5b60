"""Image helpers every stage uses: any mode to RGB, a decode that refuses too many pixels before
decoding any, and the pHash as a signed 64-bit int with the Hamming distance between two.

Mining's own decode (memory budget, reduced-scale JPEG, strip-wise grey, the pHash itself) is
`mining/decode.py`; it opens images through `open_capped` here, so the pixel cap is one piece of code.
"""
from __future__ import annotations

import contextlib
import io
import struct
import warnings
from typing import Iterator, Optional

import numpy as np
from PIL import Image


class TooManyPixels(ValueError):
    """The header declares more pixels than the cap: refused before any pixel is decoded."""


# What Pillow raises for image bytes it refuses: a decompression bomb, and bytes that are no image or a broken
# one (UnidentifiedImageError is an OSError). Mining tells the two apart; the later stages skip either.
BOMB = (TooManyPixels, Image.DecompressionBombError, Image.DecompressionBombWarning)
CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)
UNREADABLE = BOMB + CORRUPT


@contextlib.contextmanager
def bombs_refused() -> Iterator[None]:
    """Pillow's DecompressionBombWarning raised as an error while the block runs. Pillow checks a
    size at open, and at seek or load for some formats (a GIF frame), so decode inside the block too."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def open_capped(data: bytes, max_pixels: int) -> Image.Image:
    """The image of `data`, opened (its header read, no pixel decoded); TooManyPixels over `max_pixels`.
    Call it, and decode what it returns, inside `bombs_refused()`."""
    img = Image.open(io.BytesIO(data))
    w, h = img.size
    if w * h > max_pixels:
        raise TooManyPixels(f"{w}x{h} pixels > {max_pixels}")
    return img


def decode_rgb(data: bytes, max_pixels: int) -> Image.Image:
    """Image bytes → an RGB image, whatever the mode; TooManyPixels over `max_pixels`, Pillow's own
    errors for bytes that are no image or a broken one."""
    with bombs_refused():
        return to_rgb(open_capped(data, max_pixels))


def to_rgb(img: Image.Image, value_max: Optional[float] = None) -> Image.Image:
    """RGB for any mode. `value_max`: the largest value of a 32-bit (I, F) image, when `img` is a
    strip of it (it scales to 0-255); by default the image's own."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I;16"):  # 16-bit grey: keep the high byte
        return Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if value_max is None else value_max
        arr /= max(top, 1)  # in place: the same values as arr / top * 255, without two more copies
        arr *= 255
        return Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


# ----------------------------------------------------------------------------- pHash as an int
def to_signed(h: int) -> int:
    """A 64-bit pHash as Parquet's int64 stores it (Parquet has no uint64 in every reader)."""
    return h - (1 << 64) if h >= 1 << 63 else h


def to_unsigned(h: int) -> int:
    return h + (1 << 64) if h < 0 else h


def hamming(a: int, b: int) -> int:
    """Bits that differ between two pHashes, signed or not."""
    return bin(to_unsigned(a) ^ to_unsigned(b)).count("1")
