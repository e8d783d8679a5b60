"""A small seeded run of the fuzz harness (benchmarks/fuzz_mining.py): mutated WARC files, pages
and images through the functions the pipeline's containment wraps, each in a worker process with
a time limit. No exception may escape them, none may take 5 s, and no worker may reach 1 GB."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import fuzz_mining  # noqa: E402

N_INPUTS = 500


def test_inputs_are_deterministic_for_a_seed():
    seeds = fuzz_mining.load_seeds()
    for target in fuzz_mining.TARGETS:
        assert fuzz_mining.make_input(seeds, target, 7, 3) == fuzz_mining.make_input(seeds, target, 7, 3)
    assert fuzz_mining.schedule(7, 50) == fuzz_mining.schedule(7, 50)


def test_seeded_fuzz_run_finds_no_crash_hang_or_memory_blowup():
    summary = fuzz_mining.run(N_INPUTS, seed=0, workers=2, timeout=5.0, log=None)
    crashes = {k: (c["first"], c["message"], c["traceback"][-600:]) for k, c in summary["crashes"].items()}
    assert summary["inputs"] == N_INPUTS
    assert crashes == {}, "replay one with: .venv/bin/python benchmarks/fuzz_mining.py --replay TARGET:SEED:I"
    assert summary["hangs"] == []
    assert summary["peak_rss_mb"] < 1024
    assert set(summary["by_target"]) == set(fuzz_mining.TARGETS)


def test_peak_rss_counts_the_workers_not_a_big_parent():
    # CI runs the whole suite in one pytest process that has loaded torch and run training
    # subprocesses; neither its memory nor its other children's may count as a fuzz worker's.
    ballast = b"\x01" * (1200 << 20)  # 1.2 GB resident in this process
    summary = fuzz_mining.run(20, seed=1, workers=2, timeout=5.0, log=None)
    assert len(ballast) and summary["inputs"] == 20
    assert 0 < summary["peak_rss_mb"] < 1024
