"""The installed `semantica` command: starts, documents every command, fails in one line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from semantica.cli import COMMANDS, build_parser, main


def run(*args, check=False):
    return subprocess.run([sys.executable, "-m", "semantica.cli", *args], capture_output=True, text=True,
                          timeout=120, check=check)


def test_console_script_is_installed():
    import shutil
    exe = shutil.which("semantica") or str(__import__("pathlib").Path(sys.executable).parent / "semantica")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("semantica ")


def test_top_help_lists_every_command():
    r = run("--help", check=True)
    for name in COMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: semantica " + name)


def test_user_error_is_one_line_and_nonzero(tmp_path):
    r = run("config", "--set", "stages.mine.seed=abc")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "stages.mine.seed: expected an integer, got 'abc'" in r.stderr
    assert "Traceback" not in r.stderr


def test_debug_shows_traceback():
    r = run("config", "--debug", "--set", "stages.mine.seed=abc")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_options_after_the_command_name(capsys):
    assert main(["config", "--profile", "dataflow", "--set", "stages.mine.seed=7"]) == 0
    out = capsys.readouterr().out
    assert '"profile_name": "dataflow"' in out and '"seed": 7' in out


def test_sample_web_refuses_non_empty_output(tmp_path, capsys):
    (tmp_path / "x").write_text("keep me")
    assert main(["sample-web", str(tmp_path), "--pages", "24", "--domains", "3"]) == 2
    assert "not empty (pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "x").read_text() == "keep me"


def test_parser_builds_without_side_effects():
    assert build_parser().prog == "semantica"
