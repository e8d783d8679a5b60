"""One logging set-up for every command, and progress bars that stay out of pipes."""
from __future__ import annotations

import logging
import sys
from typing import Iterable, Optional, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def setup_logging(debug: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    if not debug:  # Beam and Ray log every worker's life at INFO; keep ours readable
        for noisy in ("apache_beam", "ray", "urllib3", "trafilatura", "htmldate", "courlan"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_drop_optional_cloud_notices)


def _drop_optional_cloud_notices(record: logging.LogRecord) -> bool:
    """Beam warns on import that GCP client libraries are absent; only Dataflow users need them."""
    return not record.getMessage().startswith("apitools not found")


def progress(items: Iterable[T], desc: str, total: Optional[int] = None, unit: str = "it") -> Iterable[T]:
    """A tqdm bar on a terminal; silent when stderr is not a TTY (logs, CI)."""
    return tqdm(items, desc=desc, total=total, unit=unit, disable=not sys.stderr.isatty(),
                dynamic_ncols=True, leave=False)
