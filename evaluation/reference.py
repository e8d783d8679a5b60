"""The reference set of `semantica evaluate`: an image folder or Parquet file(s).

- A folder: every image file under it, in sorted path order. Images in sub-folders are
  labelled by their first-level folder name (the ImageFolder convention), so a dataset
  laid out by class can be conditioned one image per class.
- Parquet (a file, or a folder of *.parquet): images in a binary column `bytes` / `image` /
  `jpg` / `png` (or a Hugging Face `Image` struct with a `bytes` field); a `label`, `topic` or
  `class` column, if any, labels them. Output of `semantica mine` / `filter` (DIR/images) and
  `publish` (DIR/data/images-*.parquet) is read as it is.
Unreadable images are skipped, counted, and logged with the file (and row) at fault. Images
are kept in memory shrunk to at most 320 px a side (above both encoders' 224 and Inception's
299 input), about 0.3 MB each: use `--max-reference` for very large sets.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PIL import Image

from semantica.errors import UserError
from semantica.images import decode_rgb

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
BYTES_COLUMNS = ("bytes", "image", "jpg", "jpeg", "png")
LABEL_COLUMNS = ("label", "topic", "class")
KEEP_SIZE = 320


@dataclass
class Reference:
    images: list = field(default_factory=list)    # RGB PIL images
    names: list = field(default_factory=list)     # where each came from (path, or file#row)
    labels: list = field(default_factory=list)    # str labels, or None
    skipped: dict = field(default_factory=dict)   # reason -> count

    def skip(self, where: str, reason: str, err: Exception) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        log.warning("reference %s: skipped (%s: %s)", where, reason, str(err)[:200])


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    img = decode_rgb(data, max_pixels)  # refuses an image over max_pixels before decoding it
    img.thumbnail((KEEP_SIZE, KEEP_SIZE), Image.BICUBIC)
    return img


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    for sub in (path, path / "images", path / "data"):
        files = sorted(f for f in sub.glob("*.parquet") if not f.name.startswith("pairs"))
        if files:
            return files
    return []


def load_reference(path: Path, limit: Optional[int] = None, max_pixels: int = 64_000_000) -> Reference:
    import pyarrow.parquet as pq
    path = Path(path)
    if not path.exists():
        raise UserError(f"--reference {path}: no such file or folder")
    ref = Reference()
    files = [] if path.is_file() and path.suffix != ".parquet" else _parquet_files(path)
    if files:
        for f in files:
            if limit and len(ref.images) >= limit:
                break
            schema = pq.read_schema(f)
            col = next((c for c in BYTES_COLUMNS if c in schema.names), None)
            if col is None:
                raise UserError(f"--reference {f}: no image column (one of {', '.join(BYTES_COLUMNS)}); "
                                f"columns: {', '.join(schema.names)}")
            label_col = next((c for c in LABEL_COLUMNS if c in schema.names), None)
            rows = (row for batch in pq.ParquetFile(f).iter_batches(batch_size=256, columns=[col] + (
                [label_col] if label_col else [])) for row in batch.to_pylist())  # streamed, not the whole file
            for i, row in enumerate(rows):
                data = row[col]["bytes"] if isinstance(row[col], dict) else row[col]
                where = f"{f}#{i}"
                try:
                    ref.images.append(_decode(data, max_pixels))
                except Exception as e:  # any undecodable row is skipped, never the whole evaluation
                    ref.skip(where, "undecodable", e)
                    continue
                ref.names.append(where)
                ref.labels.append(None if not label_col or row[label_col] is None else str(row[label_col]))
                if limit and len(ref.images) >= limit:
                    break
    else:
        paths = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        for p in paths:
            try:
                ref.images.append(_decode(p.read_bytes(), max_pixels))
            except Exception as e:
                ref.skip(str(p), "undecodable", e)
                continue
            rel = p.relative_to(path) if p != path else Path(p.name)
            ref.names.append(str(p))
            ref.labels.append(rel.parts[0] if len(rel.parts) > 1 else None)
            if limit and len(ref.images) >= limit:
                break
    if len(ref.images) < 2:
        raise UserError(f"--reference {path}: {len(ref.images)} readable images (skipped: {ref.skipped or 'none'}); "
                        f"the metrics need at least 2")
    if any(lab is None for lab in ref.labels):
        ref.labels = [None] * len(ref.images)  # a partial labelling is no labelling
    log.info("reference %s: %d images%s%s", path, len(ref.images),
             f", {len(set(ref.labels))} labels" if ref.labels[0] is not None else "",
             f", skipped {ref.skipped}" if ref.skipped else "")
    return ref
