"""Half-written outputs: a stage marks its folder complete last, the stages that read it refuse one without the
mark, and a `semantica mine` killed mid-run then rerun with --overwrite gives exactly a clean run's rows."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from semantica.errors import UserError
from semantica.outputs import COMPLETE

from helpers import REPO


def test_readers_refuse_a_folder_its_writer_did_not_finish(settings, tmp_path):
    from semantica.curation.filter import run_filter
    from semantica.curation.publish import run_publish
    from semantica.training.data import load_examples
    half = tmp_path / "half"
    for sub in ("pairs", "images"):
        (half / sub).mkdir(parents=True)
    for read in (lambda: run_filter(settings, half, tmp_path / "f"),
                 lambda: run_publish(settings, half, tmp_path / "p"),
                 lambda: load_examples(half)):
        with pytest.raises(UserError, match=f"incomplete output \\(no {COMPLETE}\\).*--overwrite"):
            read()


def test_every_stage_marks_its_output_complete(mined):
    assert (mined / COMPLETE).exists() and (mined / "stats.json").exists()


def _rows(folder: Path) -> dict[str, list[str]]:
    """Order-free row hashes of every Parquet output."""
    out = {}
    for sub in ("pages", "refs", "images", "pairs"):
        table = pq.read_table(folder / sub)
        out[sub] = sorted(hashlib.sha256(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()
                          for r in table.to_pylist())
    return out


def _stats(folder: Path) -> dict:
    stats = json.loads((folder / "stats.json").read_text())
    return {k: v for k, v in stats.items() if "second" not in k and "time" not in k}


@pytest.mark.slow
def test_a_killed_mine_rerun_with_overwrite_equals_a_clean_run(mined, sample_web, sample_web_port, tmp_path):
    from semantica.sample_web import serve_sample_web
    out = tmp_path / "mined"
    cmd = [sys.executable, "-m", "semantica.cli", "mine", "--input", str(sample_web / "warc"), "--output", str(out),
           "--allow-private-network", "--set", "stages.mine.download.allowed_hosts=[127.0.0.1,localhost]"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    with serve_sample_web(sample_web, port=sample_web_port):
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not any(out.glob("*")):
            time.sleep(0.1)
        time.sleep(1.0)  # the pipeline is running: its log and temporary files are there
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert not (out / COMPLETE).exists(), "killed before it finished"
        rerun = subprocess.run(cmd + ["--overwrite"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (out / COMPLETE).exists()
    assert _rows(out) == _rows(mined)
    assert _stats(out) == _stats(mined)
