"""Training under hard kills: SIGKILL of the whole `semantica train` process group mid-run, then a rerun of the
same command; SIGKILL of one Ray Train worker, which FailureConfig restarts. Both end with the weights, EMA and
optimizer state of an uninterrupted run, and leave no Ray process or session folder behind."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from semantica.training.trainer import RAY_TMP_PREFIX, STATE_FILE, STEP_FILE, latest_checkpoint, run_train

from helpers import REPO, same_state

pytestmark = pytest.mark.slow
STEPS, EVERY = 15, 5


@pytest.fixture(scope="module")
def reference(settings, mined, tiny_encoder, tmp_path_factory):
    """An uninterrupted run with the settings the commands below give."""
    train = dataclasses.replace(settings.stages.train, checkpoint_every=EVERY, log_every=EVERY, warmup_steps=5,
                                learning_rate=1e-3)
    run = tmp_path_factory.mktemp("whole") / "run"
    run_train(dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, train=train)), mined, run,
              encoder=str(tiny_encoder), max_steps=STEPS)
    import ray
    ray.shutdown()
    return torch.load(latest_checkpoint(run) / STATE_FILE, map_location="cpu", weights_only=False)


def _command(mined, encoder, run) -> list[str]:
    return [sys.executable, "-m", "semantica.cli", "train", "--pairs", str(mined), "--output", str(run),
            "--encoder", str(encoder), "--max-steps", str(STEPS),
            "--set", f"stages.train.checkpoint_every={EVERY}", "--set", f"stages.train.log_every={EVERY}",
            "--set", "stages.train.warmup_steps=5", "--set", "stages.train.learning_rate=0.001"]


def _start(cmd) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,  # its own process group
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(run.glob("ray/**/" + STEP_FILE)):
        if proc.poll() is not None:
            pytest.fail(f"train exited ({proc.returncode}) before its first checkpoint:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("no checkpoint within the timeout")
        time.sleep(0.2)


def _processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process (Linux /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out[int(d.name)] = (ppid, cmd)
    return out


def _descendants(root: int) -> dict[int, str]:
    procs, found, frontier = _processes(), {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmd) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = cmd
                frontier.append(pid)
    return found


def _assert_same(reference: dict, run: Path) -> None:
    got = torch.load(latest_checkpoint(run) / STATE_FILE, map_location="cpu", weights_only=False)
    assert got["step"] == STEPS
    for part in ("model", "ema", "optimizer"):
        assert same_state(reference[part], got[part]), part


def test_sigkill_of_the_whole_run_then_a_rerun_ends_as_an_uninterrupted_run(reference, mined, tiny_encoder, tmp_path):
    run = tmp_path / "run"
    cmd = _command(mined, tiny_encoder, run)
    proc = _start(cmd)
    _wait_for_checkpoint(run, proc)
    time.sleep(1.0)  # into the steps after the checkpoint
    family = _descendants(proc.pid)
    assert any("raylet" in c for c in family.values()), "the local Ray should run under the command"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    session = Path("/tmp") / f"{RAY_TMP_PREFIX}{proc.pid}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(p in _processes() for p in family):
        time.sleep(0.5)
    left = {p: c for p, c in _processes().items() if p in family}
    assert not left, f"processes of the killed run still alive: {left}"

    again = _start(cmd)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    assert "resuming from" in out, out[-3000:]
    _assert_same(reference, run)
    assert not session.exists(), "the killed run's Ray session folder should be removed by the rerun"
    assert not (Path("/tmp") / f"{RAY_TMP_PREFIX}{again.pid}").exists()  # an exiting run removes its own


def test_a_killed_ray_train_worker_is_restarted_from_the_checkpoint(reference, mined, tiny_encoder, tmp_path):
    run = tmp_path / "run"
    proc = _start(_command(mined, tiny_encoder, run))
    _wait_for_checkpoint(run, proc)
    workers = [p for p, c in _descendants(proc.pid).items() if "RayTrainWorker" in c]
    assert len(workers) == 1, _descendants(proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    _assert_same(reference, run)
