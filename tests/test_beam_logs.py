"""Beam's logs and its worker processes' stderr go to a log file while a pipeline runs; the
console keeps the command's own steps (issue 10); --debug leaves everything on the console."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from semantica.beam_logs import beam_logs_to_file
from semantica.mining.pipeline import run_mine

from helpers import offline

WORKER = "import sys; sys.stderr.write('worker: No semi_persistent_directory found\\n')"


@pytest.fixture
def console_handler():
    """A handler on fd 2, as `semantica`'s own logging set-up installs one on stderr."""
    stream = open(2, "w", closefd=False)
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield handler
    root.setLevel(old_level)
    root.removeHandler(handler)
    stream.close()


@pytest.mark.parametrize("debug", [False, True])
def test_worker_stderr_and_beam_records_go_to_the_file(debug, tmp_path, capfd, console_handler):
    path = tmp_path / "out" / "beam.log"
    with beam_logs_to_file(path, debug=debug):
        subprocess.run([sys.executable, "-c", WORKER], check=True)
        logging.getLogger("apache_beam.runners.portability.local_job_service").warning("Worker: severity: WARN")
        logging.getLogger("apache_beam.runners").error("a Beam error")
        logging.getLogger("semantica.demo").warning("[2/8] mine")
    logging.getLogger("semantica.demo").warning("[3/8] after the pipeline")
    console = capfd.readouterr().err
    assert "[2/8] mine" in console and "[3/8] after the pipeline" in console and "a Beam error" in console
    if debug:
        assert not path.exists() and "semi_persistent" in console and "severity: WARN" in console
        return
    assert "semi_persistent" not in console and "severity: WARN" not in console
    text = path.read_text()
    assert "worker: No semi_persistent_directory found" in text and "Worker: severity: WARN" in text
    assert "[2/8] mine" not in text


def test_mining_keeps_beams_warnings_off_the_console(sample_web, settings, tmp_path, capfd, console_handler):
    run_mine(offline(settings), [str(sample_web / "warc")], tmp_path / "mined")
    console = capfd.readouterr().err
    assert "mining 2 WARC file(s)" in console
    assert "semi_persistent_directory" not in console and "Discarding unparseable args" not in console
    text = (tmp_path / "mined" / "beam.log").read_text()
    assert "No semi_persistent_directory found" in text
