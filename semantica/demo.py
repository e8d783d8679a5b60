"""`semantica demo`: the whole system on this machine, stage after stage, on the sample web."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from semantica.config import Settings
from semantica.errors import UserError
from semantica.sample_web import write_sample_web

log = logging.getLogger(__name__)


def run_demo(settings: Settings, out: Path, overwrite: bool = False) -> int:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out}: demo folder exists (pass --overwrite to start again)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    settings.dump(out / "settings.json")
    timings = {}

    t = time.perf_counter()
    log.info("[1/1] sample web → %s", out / "sample-web")
    manifest = write_sample_web(settings.stages.sample_web, out / "sample-web")
    timings["sample-web"] = time.perf_counter() - t

    c = manifest["counts"]
    print(f"demo: sample web with {c['pages']} pages, {c['refs']} image references, "
          f"{c['pairs']} ground-truth pairs in {out / 'sample-web'}")
    print("demo: stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return 0
