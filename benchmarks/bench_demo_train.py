"""The demo's training under Ray Train before and after issue 14's speed work, interleaved in one run:
`tiny` with the decoded pairs streamed again every epoch (before) vs `tiny_fast` with them decoded once
(after, the local profile). Prints one JSON row per run: steady-state samples/s (median of the 10-step
windows of metrics.jsonl) and samples/s over the whole `trainer.fit()` (Ray Train start included).

  .venv/bin/python benchmarks/bench_demo_train.py --demo-out demo-out [--steps 150] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import semantica.training.data as data
from semantica.config import load_settings
from semantica.training.trainer import run_train

REPO = Path(__file__).resolve().parent.parent


def one_run(which: str, demo_out: Path, steps: int, out: Path) -> dict:
    settings = load_settings(REPO / "pipelines.yaml", "local").with_stage("train", checkpoint_every=100_000)
    data.CACHE_DECODED_BYTES = 0 if which == "before" else 1 << 30
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    summary = run_train(settings, demo_out / "filtered", out, encoder=str((demo_out / "tiny-encoder").resolve()),
                        max_steps=steps, model_name="tiny" if which == "before" else settings.profile.model)
    windows = sorted(r["samples_per_s"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                     if r["step"] > 1)
    batch = settings.stages.train.batch_size
    return {"which": which, "steps": steps, "wall_s": round(time.perf_counter() - t, 1), "fit_s": summary["seconds"],
            "samples_per_s_median": round(windows[len(windows) // 2], 1),
            "samples_per_s_whole_fit": round(steps * batch / summary["seconds"], 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-out", type=Path, required=True, help="a demo's output (filtered/, tiny-encoder/)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for which in ("before", "after"):
                print(json.dumps(one_run(which, args.demo_out, args.steps, Path(tmp) / which)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
