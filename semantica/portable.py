"""What a Beam stage needs to run outside the DirectRunner: SDK workers, and semantica on them.

Dataflow (runner v2), Flink, Spark and Beam's own portable job server run a Python pipeline
through the Runner API / Fn API: the pipeline travels as a proto, and separate SDK worker
processes run the DoFns. Two things depend on where those workers are:

- A profile whose `beam:` says `environment_type: EXTERNAL` and `environment_config: local`
  (the `portable` profile) runs them here: `worker_pool()` starts a pool of SDK worker
  processes on 127.0.0.1 for the run (`python -m semantica.portable`, this Python, in
  its own process group), and stops it and every worker it started afterwards, on failure
  too; a pool whose launcher died exits by itself. Its workers import semantica from this
  environment, so nothing is staged.
- `job_endpoint: local` (the `portable` profile) is Beam's Python job server (the one
  `job_endpoint: embed` starts), started here on localhost for the run, whose runner asks each
  environment for `direct_num_workers` SDK workers: the one `embed` starts asks for one
  (Beam 2.77's BeamJob builds its FnApiRunner with a single worker; direct_num_workers is
  read only on the DirectRunner's path).
- Workers elsewhere (DOCKER, PROCESS, a remote EXTERNAL pool) need the package, unless the
  profile names an `sdk_container_image` that has it: `build_wheel()` copies the source to a
  temporary folder and builds a wheel there (offline, no build isolation), which is staged
  with `--extra_package`. The checkout is never written to (Beam's `--setup_file` would run
  `setup.py sdist` in it and rewrite its egg-info).
- The runners that run in this process (the DirectRunner's multi-process mode, the local job
  server) are Beam's FnApiRunner, patched for every run: `close_input_flush_race()` stops a timer
  flush from dropping bundle input, and `stream_bundle_inputs()` sends a grouped share in ~16 MB
  messages instead of one (a 1 GB WARC: ~1 GB per worker instead of ~2).
"""
from __future__ import annotations

import configparser
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Optional

from semantica.errors import UserError

LOCAL = "local"  # job_endpoint / environment_config: the job server / worker pool started here for the run
DIRECT_RUNNERS = ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")
SOURCE_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "pipelines.yaml")


def uses_local_pool(beam: dict) -> bool:
    return str(beam.get("environment_type", "")).upper() == "EXTERNAL" and beam.get("environment_config") == LOCAL


def needs_staging(beam: dict) -> bool:
    """Workers that do not share this environment and run no image with semantica in it."""
    return not (beam.get("runner") in DIRECT_RUNNERS or beam.get("sdk_container_image")
                or str(beam.get("environment_type", "")).upper() == "LOOPBACK" or uses_local_pool(beam))


def close_input_flush_race() -> None:
    """Beam's FnApiRunner (the DirectRunner's multi-process mode and the local job server, in this process)
    sends each bundle's input to its SDK worker through a stream that a background thread flushes every
    DATA_BUFFER_TIME_LIMIT_MS (1 s): the flush sends the buffer and then clears it, and `write`, on the
    bundle's thread, takes no lock, so chunks written in between are cleared unsent. The worker reads a
    shorter input without an error. It hits inputs whose write loop outlasts the interval: on a 1 GB
    WARC, 4 runs of 9 lost 9,759 to 57,720 references' results before AssemblePages (Beam 2.77, data_plane.py
    TimeBasedBufferingClosableOutputStream). At 0 the runner's streams are size-based, flushed only on
    the writing thread (the whole input goes on close, as it did when no tick came)."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0  # read when the runner creates its gRPC data servicer


INPUT_PIECE_BYTES = 8 << 20  # a grouped share is cut into pieces of about this size


def _cut_at_elements(blob: bytes, coder) -> list:
    """Encoded grouped elements → pieces of whole elements, each closed once it holds INPUT_PIECE_BYTES."""
    from apache_beam.coders.coder_impl import create_InputStream
    if len(blob) <= INPUT_PIECE_BYTES:
        return [blob]
    stream, pieces, start = create_InputStream(blob), [], 0
    while stream.size() > 0:
        coder.decode_from_stream(stream, True)  # one grouped element: where the next one starts
        end = len(blob) - stream.size()
        if end - start >= INPUT_PIECE_BYTES:
            pieces.append(blob[start:end])
            start = end
    return pieces + ([blob[start:]] if start < len(blob) else [])


def stream_bundle_inputs() -> None:
    """Beam's FnApiRunner hands a worker its share of a grouped stage as one message (at 1 GB: 300 MB for
    JoinPage), held at once as bytes, protobuf and elements: ~2 GB per worker. Here a grouped share is cut at
    element boundaries into INPUT_PIECE_BYTES pieces, and each bundle's input is written piece by piece from
    a thread of its own, a message going out whenever the stream holds over Beam's 10 MB (so ~16 MB).
    The thread matters: the runner reads a bundle's output only after it has queued all of its input, and
    its receive queue holds 5 messages, so written inline the pieces deadlock once the worker's output fills
    that queue (2 runs of 3 at 1 GB hung until the job timeout)."""
    from apache_beam.runners.portability.fn_api_runner import execution, fn_runner
    manager, grouping = fn_runner.BundleManager, execution.GroupingBuffer
    if getattr(manager, "_semantica_streams", False):
        return
    for cls, name in ((manager, "_send_input_to_worker"), (grouping, "partition")):
        if not hasattr(cls, name):
            raise RuntimeError(f"this Beam's {cls.__name__} has no {name}: semantica.portable needs updating")
    beam_partition = grouping.partition

    def partition(self, n: int) -> list:
        parts = beam_partition(self, n)  # computed once, then cached by Beam: cut once too
        if not getattr(self, "_semantica_cut", False):
            coder = self._post_grouped_coder.get_impl()
            parts[:] = [[piece for blob in part for piece in _cut_at_elements(blob, coder)] for part in parts]
            self._semantica_cut = True
        return parts

    def send_input(self, process_bundle_id: str, read_transform_id: str, byte_streams) -> None:
        out = self._worker_handler.data_conn.output_stream(process_bundle_id, read_transform_id)
        pieces = list(byte_streams or [])  # kept alive here whatever the runner does with its buffer

        def write() -> None:
            for piece in pieces:
                out.write(piece)
                out.maybe_flush()  # on this thread: no timer races it (close_input_flush_race)
            out.close()
        threading.Thread(target=write, name=f"input-{process_bundle_id}", daemon=True).start()


    grouping.partition = partition
    manager._send_input_to_worker = send_input
    manager._semantica_streams = True


@contextlib.contextmanager
def runner_flags(beam: dict) -> Iterator[list[str]]:
    """Flags a run of this `beam:` mapping adds for its workers, valid until the block ends."""
    close_input_flush_race()
    stream_bundle_inputs()
    with contextlib.ExitStack() as stack:
        flags: list[str] = []
        if beam.get("job_endpoint") == LOCAL:
            flags.append(f"--job_endpoint={stack.enter_context(job_server())}")
        if uses_local_pool(beam):
            flags.append(f"--environment_config={stack.enter_context(worker_pool())}")
        elif needs_staging(beam):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="semantica-stage-")))
            flags.append(f"--extra_package={build_wheel(tmp)}")
        yield flags


# ----------------------------------------------------------------------------- staging
def source_root() -> Optional[Path]:
    """The checkout semantica runs from (this file is semantica/portable.py), or None for an installed copy."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "setup.cfg").is_file() and (root / "setup.py").is_file() else None


def build_wheel(dest: Path) -> Path:
    """semantica as a wheel in `dest`, built from a copy of the source in `dest` (offline)."""
    root = source_root()
    if root is None:
        raise UserError("cannot stage semantica for the Beam workers: it does not run from a source checkout; "
                        "name an image with semantica installed in the profile's beam.sdk_container_image")
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    folders = sorted({line.split("=", 1)[1].strip() for line in cfg["options"]["package_dir"].splitlines()
                      if "=" in line})
    src, dist = dest / "src", dest / "dist"
    src.mkdir(parents=True)
    for name in SOURCE_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, src / name)
    for folder in folders:
        shutil.copytree(root / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
           "--quiet", "--wheel-dir", str(dist), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=dest)
    wheels = sorted(dist.glob("semantica-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise UserError(f"building semantica's wheel for the Beam workers failed ({' '.join(cmd)}): "
                        f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return wheels[0]


# ----------------------------------------------------------------------------- the local job server
@contextlib.contextmanager
def job_server() -> Iterator[str]:
    """Beam's Python job server (local_job_service) on localhost for the block; yields its address."""
    from apache_beam.runners.portability import local_job_service
    servicer = local_job_service.LocalJobServicer(beam_job_type=_job_class())
    port = servicer.start_grpc_server(0)
    try:
        yield f"localhost:{port}"
    finally:
        servicer.stop()


def _job_class():
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.portability.api import beam_job_api_pb2
    from apache_beam.runners.portability import local_job_service
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    class Job(local_job_service.BeamJob):
        """Beam's local job, whose runner asks each environment for direct_num_workers SDK workers."""

        def _invoke_runner(self):
            self.set_state(beam_job_api_pb2.JobState.RUNNING)
            options = self.pipeline_options()
            runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
            if not hasattr(runner, "_num_workers"):  # what run_pipeline sets from direct_num_workers
                raise RuntimeError("this Beam's FnApiRunner has no _num_workers: semantica.portable "
                                   "needs updating")
            runner._num_workers = max(1, int(options.view_as(DirectOptions).direct_num_workers or 1))  # a string here
            return runner.run_via_runner_api(self._pipeline_proto, options)

    return Job


# ----------------------------------------------------------------------------- the local worker pool
def worker_env(environ=None) -> dict:
    """An SDK worker's environment: this one, with glibc's malloc arenas capped at 2 unless set already.
    A worker's gRPC and bundle threads each get an arena of their own by default (up to 8 a core), and the
    freed memory of large messages stays spread over them: over a 1 GB .warc.gz the cap took the peak RSS
    of a worker from 971-1,069 MB to 873-1,020 MB (5 interleaved runs each, bench_worker_memory.py)."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("MALLOC_ARENA_MAX", "2")
    return env


@contextlib.contextmanager
def worker_pool(start_timeout_s: float = 120.0, stop_timeout_s: float = 20.0) -> Iterator[str]:
    """A pool of SDK worker processes on 127.0.0.1 for the block: yields its address (Beam's
    `environment_config` for `environment_type: EXTERNAL`). The pool and its workers are one process
    group, killed when the block ends however it ends."""
    proc = subprocess.Popen([sys.executable, "-m", "semantica.portable", str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout_s)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            raise RuntimeError(f"the SDK worker pool did not start within {start_timeout_s:.0f}s "
                               f"(exit status {proc.poll()}; its messages are in Beam's log)")
        yield f"127.0.0.1:{line}"
    finally:
        _stop_group(proc, stop_timeout_s)


def _stop_group(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM to the pool (it stops its workers and exits), then SIGKILL to whatever of its group is left."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group is the pool's own session (start_new_session)
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


def serve(launcher_pid: int) -> None:
    """The pool process: an SDK worker pool on 127.0.0.1 (Beam's BeamFnExternalWorkerPool service; each
    StartWorker starts one SDK worker process of this Python), its port printed on stdout. Ends on SIGTERM or
    SIGINT, or when its launcher is gone, stopping its workers first."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import (BeamFnExternalWorkerPoolServicer,
                                                             kill_process_gracefully)
    from apache_beam.utils import thread_pool_executor

    class Pool(BeamFnExternalWorkerPoolServicer):
        """Beam's pool in process mode starts `python` from PATH with its stdout a pipe nobody reads;
        this one starts this interpreter, its output on the pool's stderr (Beam's log)."""

        def StartWorker(self, request, context):
            code = ("from apache_beam.runners.worker.sdk_worker import SdkHarness; "
                    f"SdkHarness({request.control_endpoint.url!r}, worker_id={request.worker_id!r}, "
                    "state_cache_size=0, data_buffer_time_limit_ms=-1).run()")
            try:
                worker = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                          stdout=sys.stderr, close_fds=True, env=worker_env())
                self._worker_processes[request.worker_id] = worker
                print(f"semantica worker pool: SDK worker {request.worker_id} is pid {worker.pid}",
                      file=sys.stderr, flush=True)
                return beam_fn_api_pb2.StartWorkerResponse()
            except Exception as e:  # noqa: BLE001 (reported to the runner, which fails the job)
                return beam_fn_api_pb2.StartWorkerResponse(error=f"{type(e).__name__}: {e}")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    pool = Pool(use_process=True)
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                         options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)])
    port = server.add_insecure_port("127.0.0.1:0")
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    print(f"semantica worker pool: pid {os.getpid()} on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    print(port, flush=True)
    try:
        while not stop.wait(1.0):
            if os.getppid() != launcher_pid:
                break
    finally:
        server.stop(0)
        for worker in list(pool._worker_processes.values()):
            kill_process_gracefully(worker, timeout=5)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
