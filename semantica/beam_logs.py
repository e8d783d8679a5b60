"""Beam's logs go to a file while a pipeline runs; the console keeps the command's own steps.

Beam's worker processes (the DirectRunner starts them with the console as their stderr) print
their start-up warnings there ("No semi_persistent_directory found", "Discarding unparseable
args", "apitools not found…"), and the runner relays every worker record to the main process's
`apache_beam` loggers. While a pipeline runs, unless the command runs with --debug (root logger
at DEBUG): file descriptor 2 points at the log file, so the workers inherit it; our console
handlers write to a duplicate of the console instead; `apache_beam` records below ERROR go to
the file only. Everything is put back when the pipeline ends.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional

log = logging.getLogger(__name__)


def log_path(out: str) -> Path:
    """`OUT/beam.log` for a local output folder; a temporary file for gs://, s3://, hdfs://."""
    if "://" in out:
        return Path(tempfile.gettempdir()) / f"semantica-beam-{os.getpid()}.log"
    return Path(out) / "beam.log"


class _BeamBelowError(logging.Filter):
    def __init__(self, keep: bool):
        super().__init__()
        self.keep = keep  # True: only Beam's records below ERROR pass (the file); False: all others (console)

    def filter(self, record: logging.LogRecord) -> bool:
        beams = record.name.startswith("apache_beam") and record.levelno < logging.ERROR
        return beams == self.keep


@contextlib.contextmanager
def beam_logs_to_file(path: Path, debug: Optional[bool] = None) -> Iterator[Optional[Path]]:
    """Route Beam's logs and its workers' stderr to `path` for the duration (see the module doc)."""
    if debug is None:
        debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    if debug:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with open(path, "a", buffering=1, encoding="utf-8", errors="replace") as logfile:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        console = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
        saved_fd = os.dup(2)
        swapped = [(h, h.setStream(console)) for h in root.handlers
                   if type(h) is logging.StreamHandler and _is_fd(h.stream, 2)]
        to_console = _BeamBelowError(keep=False)
        for h in root.handlers:
            h.addFilter(to_console)
        to_file = logging.StreamHandler(logfile)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        to_file.addFilter(_BeamBelowError(keep=True))
        root.addHandler(to_file)
        real_stderr = sys.stderr
        if _is_fd(sys.stderr, 2):
            sys.stderr = console  # our own prints and progress bars stay on the console
        os.dup2(logfile.fileno(), 2)  # worker processes started from here on write to the file
        log.info("Beam's logs: %s", path)
        try:
            yield path
        except BaseException:
            log.error("the pipeline failed; Beam's logs: %s", path)
            raise
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sys.stderr = real_stderr
            root.removeHandler(to_file)
            for h in root.handlers:
                h.removeFilter(to_console)
            for h, old in swapped:
                h.setStream(old)
            console.close()


def _is_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False
