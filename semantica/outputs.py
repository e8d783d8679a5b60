"""One rule for every command's output folder: a non-empty one is refused unless --overwrite,
which empties it first (so a rerun never mixes old and new rows). Local folders and Beam
filesystem URLs (gs://, s3://, hdfs://) alike."""
from __future__ import annotations

import shutil
from pathlib import Path

from semantica.errors import UserError


def prepare_output(out, overwrite: bool) -> None:
    out = str(out).rstrip("/")
    remote = "://" in out
    if remote:
        from apache_beam.io.filesystems import FileSystems
        existing = [m.path for r in FileSystems.match([out + "/**"]) for m in r.metadata_list]
    else:
        existing = list(Path(out).iterdir()) if Path(out).is_dir() else []
    if existing:
        if not overwrite:
            raise UserError(f"{out}: output folder is not empty (pass --overwrite to replace it)")
        if remote:
            FileSystems.delete(existing)
        else:
            shutil.rmtree(out)
    if not remote:
        Path(out).mkdir(parents=True, exist_ok=True)
