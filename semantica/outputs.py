"""One rule for every command's output folder: a non-empty one is refused unless --overwrite,
which empties it first (so a rerun never mixes old and new rows). Local folders and Beam
filesystem URLs (gs://, s3://, hdfs://) alike. A stage that finished writes COMPLETE last;
the stages that read a folder refuse one without it (a killed run's half-written output).

--overwrite deletes a folder only when semantica wrote it: MARKER is written into every output
folder first thing (so a killed run's folder can be replaced too), and folders from before the
marker are known by the files their commands wrote (OLDER_OUTPUTS). Nor is an output that is, or
holds, one of the command's inputs, or the folder the command runs in, ever emptied."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from semantica.errors import UserError

MARKER = ".semantica-output"
# Folders written before MARKER, by what their commands wrote together (one generic name such as
# manifest.json alone is not enough): mine / filter / publish, sample-web, evaluate, run / demo.
OLDER_OUTPUTS = ({"_SUCCESS"}, {"stats.json", "pairs"}, {"manifest.json", "ground_truth", "warc"},
                 {"metrics.json", "report.html"}, {"settings.json", "mined"}, {"settings.json", "sample-web"})


def check_output(out, overwrite: bool, inputs: Iterable = ()) -> list:
    """Every refusal of `prepare_output`, changing nothing; returns what the folder holds. Commands call it
    before slow work (loading a model), so that a bad output costs nothing and leaves nothing behind."""
    out = str(out).rstrip("/") or "/"
    remote = "://" in out
    if remote:
        from apache_beam.io.filesystems import FileSystems
        for given in inputs:  # a URL input under the output URL
            if str(given).rstrip("/") == out or str(given).startswith(out + "/"):
                raise UserError(f"{out}: the output cannot be, or hold, the input {given}")
        existing = [m.path for r in FileSystems.match([out + "/**"]) for m in r.metadata_list]
        names = {p[len(out) + 1:].split("/", 1)[0] for p in existing}
    else:
        check_local_output(Path(out), inputs)
        existing = list(Path(out).iterdir()) if Path(out).is_dir() else []
        names = {p.name for p in existing}
    if existing:
        if not overwrite:
            raise UserError(f"{out}: output folder is not empty (pass --overwrite to replace it)")
        cwd = Path(os.getcwd()).resolve()
        if not remote and (Path(out).resolve() == cwd or Path(out).resolve() in cwd.parents):
            raise UserError(f"{out}: --overwrite would delete the folder this command runs in")
        if MARKER not in names and not any(sig <= names for sig in OLDER_OUTPUTS):
            raise UserError(f"{out}: --overwrite replaces only a folder that semantica wrote (it holds {MARKER}), "
                            f"and this one does not look like one; remove it yourself or choose another output")
    return existing


def prepare_output(out, overwrite: bool, inputs: Iterable = ()) -> None:
    """Make `out` an empty output folder. `inputs`: the command's local input paths (files, folders or
    globs), which the output must neither be nor contain."""
    existing = check_output(out, overwrite, inputs)
    out = str(out).rstrip("/") or "/"
    remote = "://" in out
    if remote:
        from apache_beam.io.filesystems import FileSystems
        if existing:
            FileSystems.delete(existing)
    elif existing:
        shutil.rmtree(out)
    text = b"written by semantica: `--overwrite` may replace this folder\n"
    if remote:
        with FileSystems.create(f"{out}/{MARKER}") as f:
            f.write(text)
        return
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / MARKER).write_bytes(text)
    except OSError as e:  # a name too long, a read-only disk, no permission
        raise UserError(f"{out}: cannot make this output folder: {e.strerror or e}") from None


def check_local_output(out: Path, inputs: Iterable = ()) -> None:
    """A local output folder that can be made, and is neither one of `inputs` nor holds one."""
    try:
        out.exists()
    except OSError as e:  # a name too long for the file system: stat itself refuses it
        raise UserError(f"{out}: cannot make this output folder: {e.strerror or e}") from None
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: the output must be a folder, and this is a file")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{out}: cannot make this output folder: {parent} is a file")
    here = out.resolve()
    for given in inputs:
        path = local_input_path(given)
        if path is not None and (path == here or here in path.parents):
            raise UserError(f"{out}: the output cannot be, or hold, the input {given}")


def local_input_path(given) -> Path | None:
    """The local path an input names (for a glob, the folder before its first wildcard), resolved; None for
    URLs and Common Crawl names."""
    given = str(given)
    if "://" in given or given.startswith("cc:"):
        return None
    parts = Path(given).parts
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            parts = parts[:i]
            break
    return Path(*parts).resolve() if parts else Path(os.getcwd()).resolve()


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
