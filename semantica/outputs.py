"""One rule for every command's output folder: a non-empty one is refused unless --overwrite,
which empties it first (so a rerun never mixes old and new rows). Local folders and Beam
filesystem URLs (gs://, s3://, hdfs://) alike. A stage that finished writes COMPLETE last;
the stages that read a folder refuse one without it (a killed run's half-written output)."""
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


COMPLETE = "_SUCCESS"  # written last by mine, filter and publish (the name Hadoop and Spark use)


def mark_complete(out) -> None:
    out = str(out).rstrip("/")
    if "://" in out:
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.create(f"{out}/{COMPLETE}") as f:
            f.write(b"")
    else:
        (Path(out) / COMPLETE).write_text("")


def require_complete(folder, reader: str) -> None:
    """`reader` (a command) may read `folder` only if the command that wrote it finished. Folders written
    before the marker existed count as finished when they hold stats.json, which those wrote last."""
    folder = Path(folder)
    if (folder / COMPLETE).exists() or (folder / "stats.json").exists():
        return
    raise UserError(f"{folder}: incomplete output (no {COMPLETE}): the command that wrote it did not finish; "
                    f"rerun it with --overwrite before `semantica {reader}`")
