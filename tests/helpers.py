"""Helpers shared by the test modules (conftest.py keeps the fixtures). Test modules import from
here, never from each other: `from helpers import REPO, offline`.

The larger generators have their own modules beside this one, shared with benchmarks/:
archive_oracle.py (an independent count of a crawl), dedup_synthetic.py (a synthetic dedup corpus),
hostile_inputs.py (hostile WARC records)."""
from __future__ import annotations

import dataclasses
import socket
import struct
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_WARC = REPO.parent / "shared" / "data" / "warc"
SHARED_WARC_REAL = REPO.parent / "shared" / "data" / "warc-real"  # archival crawls, several tools
# `--set` form of offline(): only loopback names may be fetched
OFFLINE_OVERRIDE = "stages.mine.download.allowed_hosts=[127.0.0.1, localhost]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline(settings):
    """Only loopback names may be fetched: no DNS lookup, no packet off this machine."""
    mine = settings.stages.mine
    download = dataclasses.replace(mine.download, allowed_hosts=("127.0.0.1", "localhost"))
    mine = dataclasses.replace(mine, download=download)
    return dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, mine=mine))


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A PNG whose header claims 10 G pixels, with a tiny body: refused before any decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def same_state(a, b) -> bool:
    """Exact equality of nested state (dicts, lists, tensors): a training state_dict, an optimizer's."""
    import torch
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    return a == b
