"""Training data: pair manifests → (condition, target) image arrays, streamed by ray.data.

The manifests (pairs/ + images/ from `semantica mine` or `filter`, or a published
dataset's data/) are joined with pyarrow; ray.data decodes and resizes in parallel and
streams batches to the workers. Random crops and flips happen in the worker, seeded by
(pair_id, epoch, seed), so a resumed run sees exactly the batches an uninterrupted run
would have seen.
"""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from semantica.errors import UserError
from semantica.outputs import require_complete
from semantica.images import UNREADABLE
from semantica.schemas import IMAGES, PAIRS, manifest_files

log = logging.getLogger(__name__)
NEEDED_PAIRS, NEEDED_IMAGES = ["pair_id", "cond_image_id", "target_image_id"], ["image_id", "bytes"]
MARGIN = 1.125  # decode a little larger than the model's resolution: room for random crops


def _find(folder: Path, name: str) -> Path:
    for cand in (folder / name, folder / "data"):
        if cand.exists() and (cand.is_dir() and (any(cand.glob(f"{name}*.parquet")) or any(cand.glob("*.parquet")))):
            return cand
    raise UserError(f"{folder}: no {name}/ manifest (expected `semantica mine`, `filter` or `publish` output)")


def check_pairs(pairs_dir: Path) -> tuple[list[str], list[str]]:
    """That `pairs_dir` is a finished mine / filter / publish output with its manifests (cheap: no data read);
    its (pairs, images) Parquet files."""
    pairs_dir = Path(pairs_dir)
    if not pairs_dir.is_dir():
        raise UserError(f"--pairs {pairs_dir}: no such folder" if not pairs_dir.exists() else
                        f"--pairs {pairs_dir}: a file; give the folder `semantica mine`, `filter` or `publish` wrote")
    published = (pairs_dir / "data").is_dir()
    if not published and not ((pairs_dir / "pairs").is_dir() and (pairs_dir / "images").is_dir()):
        raise UserError(f"{pairs_dir}: no pairs/ and images/ manifests (expected `semantica mine`, `filter` or "
                        f"`publish` output)")  # a folder of something else, said as such
    require_complete(pairs_dir, "train")  # a killed run's half-written files: said before they are read
    if published:
        return (manifest_files(pairs_dir / "data", PAIRS, NEEDED_PAIRS, "pairs-*.parquet"),
                manifest_files(pairs_dir / "data", IMAGES, NEEDED_IMAGES, "images-*.parquet"))
    return (manifest_files(_find(pairs_dir, "pairs"), PAIRS, NEEDED_PAIRS),
            manifest_files(_find(pairs_dir, "images"), IMAGES, NEEDED_IMAGES))


def load_examples(pairs_dir: Path) -> pa.Table:
    """pair_id, cond_bytes, target_bytes: one row per pair, sorted by pair_id (a stable order)."""
    pairs_dir = Path(pairs_dir)
    pair_files, image_files = check_pairs(pairs_dir)
    pairs = _first_of_each(pq.read_table(pair_files, columns=NEEDED_PAIRS), "pair_id", pairs_dir)
    images = _first_of_each(pq.read_table(image_files, columns=NEEDED_IMAGES), "image_id", pairs_dir)
    # inner joins: pyarrow's default (left outer) would hand a pair whose image is absent to training as null bytes
    cond = pairs.join(images.rename_columns(["cond_image_id", "cond_bytes"]), "cond_image_id", join_type="inner")
    both = cond.join(images.rename_columns(["target_image_id", "target_bytes"]), "target_image_id",
                     join_type="inner")
    if both.num_rows == 0:
        raise UserError(f"{pairs_dir}: no pair has both its images")
    if both.num_rows < pairs.num_rows:
        log.warning("%s: %d of %d pairs skipped: an image of theirs is not in the images manifest", pairs_dir,
                    pairs.num_rows - both.num_rows, pairs.num_rows)
    return both.select(["pair_id", "cond_bytes", "target_bytes"]).sort_by("pair_id")


def _first_of_each(table: pa.Table, key: str, where: Path) -> pa.Table:
    """One row per `key` (the first read): a part file copied twice would otherwise train on its pairs twice as
    often, and a repeated image row multiplies every pair of that image in the joins."""
    _, first = np.unique(table.column(key).to_numpy(zero_copy_only=False), return_index=True)
    if len(first) == table.num_rows:
        return table
    log.warning("%s: %d of %d rows repeat a key already read (%s); each is used once", where,
                table.num_rows - len(first), table.num_rows, key)
    return table.take(np.sort(first))


def _decode(data: bytes, size: int) -> np.ndarray:
    """bytes → uint8 [size, size, 3]: the short side resized to `size`, centre crop."""
    from semantica.images import to_rgb
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG":  # decode in the DCT at 1/2-1/8 scale, never below `size`: web photos decode ~5x faster
        img.draft("RGB", (size, size))
    img = to_rgb(img)
    w, h = img.size
    s = size / min(w, h)
    # reducing_gap: a box pre-shrink for large downscales (Pillow: as good as plain resampling at 3)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC, reducing_gap=3.0)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_batch(batch: dict, resolution: int) -> dict:
    """ray.data map_batches: bytes → uint8 [H, W, 3] arrays a little larger than `resolution`. A pair whose
    image does not decode (corrupt, truncated, empty, a decompression bomb) is left out, with a warning in
    Ray's logs: the same pairs on every epoch and every rerun."""
    size = int(round(resolution * MARGIN))
    keep, cond, target = [], [], []
    for i, (pid, c, t) in enumerate(zip(batch["pair_id"], batch["cond_bytes"], batch["target_bytes"])):
        try:
            pair = _decode(c, size), _decode(t, size)
        except UNREADABLE as e:
            log.warning("pair %s skipped: an image does not decode (%s: %s)", pid, type(e).__name__, e)
            continue
        keep.append(i)
        cond.append(pair[0])
        target.append(pair[1])
    empty = np.zeros((0, size, size, 3), dtype=np.uint8)
    return {"pair_id": batch["pair_id"][keep], "cond": np.stack(cond) if cond else empty,
            "target": np.stack(target) if target else empty}


def _rng(pair_id: str, epoch: int, seed: int, which: str) -> np.random.Generator:
    h = hashlib.sha256(f"{seed}/{epoch}/{which}/{pair_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def augment(images: np.ndarray, pair_ids, epoch: int, seed: int, resolution: int, which: str) -> torch.Tensor:
    """Random crop + horizontal flip, reproducible per (pair, epoch); → float [-1, 1], [B, 3, r, r]."""
    out = []
    for img, pid in zip(images, pair_ids):
        rng = _rng(str(pid), epoch, seed, which)
        top = int(rng.integers(0, img.shape[0] - resolution + 1))
        left = int(rng.integers(0, img.shape[1] - resolution + 1))
        crop = img[top:top + resolution, left:left + resolution]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(np.ascontiguousarray(crop))
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


BLOCK_ROWS = 128  # pairs per ray.data block: one block would be decoded by one task, on one core
# Decoded pairs up to this size are decoded once and kept in Ray's object store. Otherwise every epoch
# runs the ray.data pipeline again, and its start (tasks, first decoded block) stalls the training loop:
# the demo's 427 pairs make 26-step epochs (200 Ray steps: 126 vs 139 s and 96 vs 119 s, README).
CACHE_DECODED_BYTES = 1 << 30


def make_dataset(pairs_dir: Path, resolution: int):
    """(ray.data Dataset of decoded pairs, number of pairs): decoded once when small (CACHE_DECODED_BYTES),
    else streamed from the manifests every epoch."""
    import ray.data
    table = load_examples(pairs_dir)
    ds = ray.data.from_arrow([table.slice(i, BLOCK_ROWS) for i in range(0, table.num_rows, BLOCK_ROWS)])
    ds = ds.map_batches(decode_batch, fn_kwargs={"resolution": resolution}, batch_size=64)
    side = int(round(resolution * MARGIN))
    if table.num_rows * 2 * side * side * 3 <= CACHE_DECODED_BYTES:
        ds = ds.materialize()
        decoded = ds.count()  # cheap once materialized: the pairs decode_batch kept
        if decoded < table.num_rows:
            log.warning("%s: %d of %d pairs skipped: an image of theirs does not decode", pairs_dir,
                        table.num_rows - decoded, table.num_rows)
        return ds, decoded
    return ds, table.num_rows
