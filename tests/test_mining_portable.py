"""The portable path: mining (and filtering) through Beam's Runner API / Fn API, as Dataflow v2, Flink and
Spark run them, here with Beam's Python job server and 2 SDK worker processes (the `portable` profile);
staging for remote workers without touching the checkout; what the mining workers import."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from semantica.beam import beam_options, pipeline_options
from semantica.config import load_settings
from semantica.portable import needs_staging, worker_pool
from semantica.sample_web import serve_sample_web

from helpers import OFFLINE_OVERRIDE as OFFLINE, REPO

pytestmark = pytest.mark.slow


def _cell(v):
    return v.hex() if isinstance(v, bytes) else repr(v)


def row_hashes(out: Path) -> dict[str, Counter]:
    """Every Parquet output under `out` (pages/, refs/, images/, pairs/, failures/, …) as a multiset of row
    hashes: equal when the rows are, whatever their order and sharding."""
    names = sorted({p.parent.relative_to(out).as_posix() for p in out.rglob("*.parquet")})
    return {name: Counter(hashlib.sha256(json.dumps(row, sort_keys=True, default=_cell).encode()).hexdigest()
                          for f in sorted((out / name).glob("*.parquet")) for row in pq.read_table(f).to_pylist())
            for name in names}


def stats_of(out: Path) -> dict:
    stats = json.loads((out / "stats.json").read_text())
    stats.pop("seconds")  # the only timing; stats.json names no runner
    return stats


def pids_in_beam_log(out: Path) -> tuple[int, list[int]]:
    """The worker pool's pid and its SDK workers' pids, as the pool writes them to Beam's log."""
    text = (out / "beam.log").read_text()
    pool = [int(p) for p in re.findall(r"semantica worker pool: pid (\d+) on 127\.0\.0\.1:\d+", text)]
    workers = [int(p) for p in re.findall(r"semantica worker pool: SDK worker \S+ is pid (\d+)", text)]
    assert len(pool) == 1, text[-3000:]
    return pool[0], workers


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ----------------------------------------------------------------------------- mining through the portable path
@pytest.fixture(scope="module")
def mined_portable(sample_web, sample_web_port, tmp_path_factory):
    """`semantica mine --profile portable` on the sample web, its input typed as a relative path."""
    out = tmp_path_factory.mktemp("mined-portable") / "out"
    t0 = time.perf_counter()
    with serve_sample_web(sample_web, port=sample_web_port):
        r = subprocess.run([sys.executable, "-m", "semantica.cli", "--config", str(REPO / "pipelines.yaml"),
                            "--profile", "portable", "mine", "--input", "warc", "--output", str(out),
                            "--allow-private-network", "--set", OFFLINE],
                           cwd=sample_web, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, time.perf_counter() - t0


def test_portable_mine_equals_direct(mined_portable, mined):
    out, seconds = mined_portable
    print(f"portable mine (CLI, sample web): {seconds:.1f}s wall; stats.json seconds "
          f"portable {json.loads((out / 'stats.json').read_text())['seconds']}, "
          f"direct {json.loads((mined / 'stats.json').read_text())['seconds']}")
    got, want = row_hashes(out), row_hashes(mined)
    assert {"pages", "refs", "images", "pairs"} <= set(want)
    assert set(got) == set(want)
    for name in want:
        assert got[name] == want[name], name
    assert stats_of(out) == stats_of(mined)
    assert (out / "_SUCCESS").exists()


def test_portable_mine_ran_in_two_sdk_worker_processes_that_are_gone(mined_portable):
    out, _ = mined_portable
    settings = json.loads((out / "settings.json").read_text())
    assert settings["profile"]["beam"]["runner"] == "PortableRunner"
    pool, workers = pids_in_beam_log(out)
    assert len(set(workers)) >= 2 and os.getpid() not in workers
    assert all(gone(pid) for pid in [pool, *workers])  # stopped with the run


def test_warc_file_is_the_absolute_location(mined_portable, sample_web):
    """The input was typed as `warc` (relative, run from the sample web's folder): the lineage columns
    and inputs.txt name where the files are."""
    out, _ = mined_portable
    want = {str((sample_web / "warc" / p.name).resolve()) for p in (sample_web / "warc").glob("*.warc.gz")}
    for name, column in (("pages", "warc_file"), ("refs", "warc_file"), ("images", "source_warc_file"),
                         ("pairs", "warc_file")):
        files = set(pq.read_table(out / name, columns=[column]).column(column).to_pylist()) - {None}
        assert files and files <= want, name
    assert set((out / "inputs.txt").read_text().split()) == want


# ----------------------------------------------------------------------------- filtering through the portable path
def test_portable_filter_equals_direct(mined, tiny_encoder, tmp_path):
    from semantica.curation.filter import run_filter
    outs = {}
    for profile in ("local", "portable"):
        outs[profile] = tmp_path / profile
        run_filter(load_settings(REPO / "pipelines.yaml", profile), mined, outs[profile], encoder=str(tiny_encoder))
    got, want = row_hashes(outs["portable"]), row_hashes(outs["local"])
    assert {"pairs", "rejected", "images", "embeddings"} <= set(want) and set(got) == set(want)
    for name in want:
        assert got[name] == want[name], name
    assert stats_of(outs["portable"]) == stats_of(outs["local"])
    pool, workers = pids_in_beam_log(outs["portable"])
    assert len(set(workers)) >= 2 and all(gone(pid) for pid in [pool, *workers])


# ----------------------------------------------------------------------------- the worker pool's life
def test_worker_pool_and_its_workers_stop_when_the_run_fails(tmp_path):
    """A worker that never gets a job (its control endpoint is dead) is killed with the pool when the block
    raises."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc, endpoints_pb2
    log = tmp_path / "stderr.log"
    saved = os.dup(2)
    with open(log, "w") as f:
        os.dup2(f.fileno(), 2)  # the pool writes its pids to its stderr, as under beam_logs_to_file
    try:
        with pytest.raises(RuntimeError, match="the job failed"):
            with worker_pool() as address:
                assert address.startswith("127.0.0.1:")
                with grpc.insecure_channel(address) as channel:
                    stub = beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolStub(channel)
                    for i in range(2):
                        dead = endpoints_pb2.ApiServiceDescriptor(url="127.0.0.1:9")
                        assert not stub.StartWorker(beam_fn_api_pb2.StartWorkerRequest(
                            worker_id=f"w{i}", control_endpoint=dead), timeout=30).error
                raise RuntimeError("the job failed")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    (tmp_path / "beam.log").write_text(log.read_text())
    pool, workers = pids_in_beam_log(tmp_path)
    assert len(workers) == 2 and all(gone(pid) for pid in [pool, *workers])


def test_worker_pool_exits_when_its_launcher_is_killed(tmp_path):
    code = ("import os, sys, time\nfrom semantica.portable import worker_pool\n"
            "with worker_pool() as address:\n    print(address, flush=True)\n    time.sleep(600)\n")
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        assert launcher.stdout.readline().startswith("127.0.0.1:")
        pool = next(int(m.group(1)) for line in iter(launcher.stderr.readline, "")
                    if (m := re.search(r"worker pool: pid (\d+)", line)))
        assert not gone(pool)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 30
        while not gone(pool) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gone(pool)  # the pool noticed its launcher had died and exited
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


# ----------------------------------------------------------------------------- staging
def _checkout_state() -> tuple[str, dict]:
    """git status, and every file of the checkout (tracked, untracked, ignored build metadata such as
    semantica.egg-info/) with its size and mtime; Python's and pytest's caches aside."""
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    files = {}
    for p in REPO.rglob("*"):
        rel = p.relative_to(REPO).parts
        if rel[0] in (".git", ".venv", ".pytest_cache") or "__pycache__" in rel or not p.is_file():
            continue
        st = p.stat()
        files[p.relative_to(REPO).as_posix()] = (st.st_size, st.st_mtime_ns)
    return status, files


def test_staging_for_remote_workers_leaves_the_checkout_unchanged(tmp_path):
    from apache_beam.runners.portability.stager import Stager
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    settings = load_settings(REPO / "pipelines.yaml", "dataflow")
    assert "setup_file" not in pipeline_options(settings).get_all_options(drop_default=True)
    before = _checkout_state()
    with beam_options(settings, ["--sdk_location=container"]) as options:
        everything = options.get_all_options(drop_default=True)
        assert everything.get("setup_file") is None
        [wheel] = everything["extra_packages"]
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
        assert {"semantica/__init__.py", "semantica/mining/pipeline.py", "semantica/portable.py",
                "semantica/curation/publish.py", "semantica/curation/templates/dataset_card.md",
                "semantica/mining/steps/read_pages.py", "semantica/mining/records.py",
                "semantica/training/trainer.py", "semantica/evaluation/evaluate.py"} <= names
        assert not any("__pycache__" in n for n in names)
        staged = Stager.create_job_resources(options, str(tmp_path), log_submission_env_dependencies=False)
        assert any(Path(wheel).name.encode() in a.role_payload for a in staged)  # Beam stages it
    assert not Path(wheel).exists()  # the temporary folder is gone
    assert _checkout_state() == before


@pytest.mark.parametrize("profile, staged", [("local", False), ("portable", False), ("dataflow", True),
                                             ("spark", True), ("flink", True)])
def test_only_workers_outside_this_environment_get_the_package(profile, staged):
    """DirectRunner and the portable profile's local worker pool import semantica from this environment;
    Dataflow's and DOCKER workers need it, unless an image with semantica is named."""
    beam = dict(load_settings(REPO / "pipelines.yaml", profile).profile.beam)
    assert needs_staging(beam) is staged
    assert needs_staging(dict(beam, sdk_container_image="registry/semantica:0.2")) is False
    assert needs_staging(dict(beam, runner="PortableRunner", environment_type="LOOPBACK")) is False


def test_portable_profile_differs_from_local_only_in_its_runner():
    local, portable = (load_settings(REPO / "pipelines.yaml", p) for p in ("local", "portable"))
    assert (portable.stages, portable.profile.ray, portable.model) == (local.stages, local.profile.ray, local.model)


def test_spark_and_flink_profiles_reach_their_job_servers():
    """Beam picks each profile's way to the cluster from its options (built, not started: no Maven here)."""
    from apache_beam.runners.portability.flink_runner import FlinkRunner
    from apache_beam.runners.portability.spark_runner import SparkRunner
    spark = SparkRunner().default_job_server(pipeline_options(load_settings(REPO / "pipelines.yaml", "spark")))
    try:
        assert type(spark).__name__ == "SparkUberJarJobServer" and spark._rest_url.startswith("http://")
    finally:
        shutil.rmtree(spark._temp_dir, ignore_errors=True)
    flink = FlinkRunner().default_job_server(pipeline_options(load_settings(REPO / "pipelines.yaml", "flink")))
    assert type(flink).__name__ == "StopOnExitJobServer"  # Beam's Flink job server, pointed at flink_master


# ----------------------------------------------------------------------------- what the mining workers import
def test_mining_imports_no_torch_transformers_ray_or_diffusers():
    """What a mining SDK worker imports to run the DoFns: the pipeline and every module its steps load."""
    code = ("import sys\nimport semantica.mining.pipeline\n"
            "import semantica.mining.extract, semantica.mining.warc_io, semantica.mining.html_refs, "
            "semantica.mining.html_charset, "
            "semantica.mining.prefilter, semantica.mining.resolve, semantica.mining.fetch, semantica.mining.decode, "
            "semantica.mining.dedup, semantica.mining.pairs, semantica.mining.assemble, semantica.portable, "
            "semantica.mining.records, semantica.mining.stats, semantica.mining.steps.read_pages, "
            "semantica.mining.steps.aliases, semantica.mining.steps.image_bytes, semantica.mining.steps.frequent, "
            "semantica.mining.steps.assemble_pages, semantica.mining.steps.image_rows\n"
            "import trafilatura, fastwarc.warc, warcio.archiveiterator\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers', 'ray', 'diffusers'}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert r.stdout.strip() == "[]", r.stdout


# ----------------------------------------------------------------------------- the runner's input streams
def _count_through_workers(options) -> int:
    """20 stages' outputs (100 elements of 20 KB each) flattened into one stage on the profile's SDK
    workers: its input reaches a worker as 20 chunks written one by one."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter
    seen = Metrics.counter("race", "seen")
    p = beam.Pipeline(options=options)
    parts = [p | f"Create{i}" >> beam.Create([(i, j, "x" * 20_000) for j in range(100)])
             | f"Pass{i}" >> beam.Map(lambda e: e) for i in range(20)]
    parts | beam.Flatten() | beam.Map(lambda e: seen.inc())
    result = p.run()
    result.wait_until_finish()
    return sum(c.committed for c in result.metrics().query(MetricsFilter().with_name("seen"))["counters"])


def test_runner_input_streams_lose_no_chunk_written_while_a_timer_flushes(monkeypatch):
    """Beam's runner flushes each bundle's input stream from a timer thread (every 1 s), and clears what a
    write added during the flush (close_input_flush_race): 4 runs in 9 of a 1 GB job lost results. A 1 ms
    timer makes the race show in seconds: without the fix this pipeline loses 10-20 % of its elements."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    monkeypatch.setattr(worker_handlers, "DATA_BUFFER_TIME_LIMIT_MS", 1)
    settings = load_settings(REPO / "pipelines.yaml", "local")  # the DirectRunner, 2 SDK worker processes
    for _ in range(2):
        with beam_options(settings) as options:
            assert _count_through_workers(options) == 20 * 100


def test_grouped_inputs_reach_the_workers_in_pieces_and_whole(monkeypatch):
    """stream_bundle_inputs cuts each worker's share of a grouped stage at element boundaries (here at
    64 KB: ~70 pieces a share) and sends the pieces from a thread: every group arrives whole, once."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter
    from semantica import portable
    monkeypatch.setattr(portable, "INPUT_PIECE_BYTES", 64 << 10)
    sizes = Metrics.distribution("pieces", "group_size")
    with beam_options(load_settings(REPO / "pipelines.yaml", "local")) as options:
        p = beam.Pipeline(options=options)
        (p | beam.Create([(k % 50, f"{k:06d}" + "x" * 3_000) for k in range(3_000)]) | beam.GroupByKey()
         | beam.Map(lambda kv: sizes.update(len({v[:6] for v in kv[1]}))))
        result = p.run()
        result.wait_until_finish()
    got = result.metrics().query(MetricsFilter().with_name("group_size"))["distributions"]
    d = got[0].committed
    assert (d.count, d.sum, d.min, d.max) == (50, 3_000, 60, 60)


def test_sdk_workers_cap_malloc_arenas_unless_told_otherwise():
    """The pool starts each SDK worker with MALLOC_ARENA_MAX=2 (a lower peak RSS: README, worker memory);
    a value the user set is kept."""
    from semantica.portable import worker_env
    assert worker_env({"PATH": "/bin"}) == {"PATH": "/bin", "MALLOC_ARENA_MAX": "2"}
    assert worker_env({"MALLOC_ARENA_MAX": "8"})["MALLOC_ARENA_MAX"] == "8"
