"""The installed `semantica` command: starts, documents every command, fails in one line."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from semantica.cli import COMMANDS, build_parser, main


def run(*args, check=False, env=None):
    return subprocess.run([sys.executable, "-m", "semantica.cli", *args], capture_output=True, text=True,
                          timeout=120, check=check, env={**os.environ, **(env or {})})


def test_console_script_is_installed():
    import shutil
    exe = shutil.which("semantica") or str(__import__("pathlib").Path(sys.executable).parent / "semantica")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("semantica ")


def _subcommands() -> dict:
    return build_parser()._subparsers._group_actions[0].choices


def _words(text: str) -> str:
    return " ".join(text.split())


def test_top_help_lists_every_command():
    r = run("--help", check=True, env={"COLUMNS": "100"})
    # argparse lists each command on a line of its own, indented 4, with the start of its summary
    listed = dict(re.findall(r"^    (\S+) +(\S.*)$", r.stdout, re.M))
    assert set(listed) == set(COMMANDS), r.stdout  # not a substring anywhere: "run", "config" are in other words
    for name, start in listed.items():
        assert _words(_subcommands()[name].description).startswith(_words(start)), name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: semantica " + name)
    description = _subcommands()[name].description or ""
    assert len(description.split()) >= 5, description  # a sentence that says what the command does
    assert _words(description) in _words(out)


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


def test_every_command_has_help(capsys):
    """Every command the parser offers has a handler and the other way round (a parser entry without one
    fails only when a user runs it), and every option of every command says what it is for."""
    commands = _subcommands()
    assert set(commands) == set(COMMANDS)
    assert {"mine", "filter", "publish", "train", "generate", "evaluate", "run", "demo"} <= set(commands)
    undocumented = [(name, a.option_strings or a.dest) for name, sp in commands.items() for a in sp._actions
                    if not a.help]
    undocumented += [("semantica", a.option_strings) for a in build_parser()._actions
                     if not a.help and a.option_strings]
    assert undocumented == []
    for name in commands:  # each option's help is printed (no help=SUPPRESS hides a required one)
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = _words(capsys.readouterr().out)
        for a in commands[name]._actions:
            if a.required:
                assert _words(a.help) in out, (name, a.dest)


@pytest.mark.slow
def test_run_goes_from_warcs_to_an_evaluation(sample_web, sample_web_port, tiny_encoder, tmp_path, capsys):
    """`semantica run` end to end on the sample web: mine → filter → publish → train → evaluate."""
    from PIL import Image
    from semantica.sample_web import serve_sample_web
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, colour in enumerate(("red", "green", "blue", "orange", "purple")):
        Image.new("RGB", (40, 40), colour).save(ref / f"{i}.png")
    sets = ["stages.mine.download.allowed_hosts=[127.0.0.1, localhost]", f"stages.filter.encoder={tiny_encoder}",
            f"stages.train.encoder={tiny_encoder}", "stages.train.max_steps=2", "stages.train.checkpoint_every=2",
            "stages.evaluate.shots=[1]", "stages.evaluate.num_samples=4", "stages.evaluate.repeats=1",
            "stages.evaluate.steps=2", "stages.evaluate.guidance_scales=[]"]
    with serve_sample_web(sample_web, port=sample_web_port):
        # --debug: an error raises with its traceback instead of one line on stderr (this test failed once in a CI
        # run with rc 1 and nothing to say why)
        rc = main(["--debug", "run", "--input", str(sample_web / "warc"), "-o", str(tmp_path / "all"),
                   "--allow-private-network", "--reference", str(ref)] + [x for s in sets for x in ("--set", s)])
    out, err = capsys.readouterr()
    assert rc == 0, out + err[-3000:]
    for stage in ("mined/stats.json", "filtered/stats.json", "published/README.md", "run/pipeline/model_index.json",
                  "evaluation/metrics.json", "evaluation/report.html"):
        assert (tmp_path / "all" / stage).exists(), stage
    assert "k=1:" in out


def test_flags_are_set_overrides():
    """A flag that sets a pipelines.yaml value is `--set KEY=VALUE` and has no default of its own."""
    from helpers import REPO
    from semantica.cli import FLAG_KEYS, _overrides_from_flags
    from semantica.config import load_settings
    yaml_path, parser = REPO / "pipelines.yaml", build_parser()
    args = parser.parse_args(["evaluate", "--model", "m", "--reference", "r", "-o", "o", "--guidance", "3",
                              "--shots", "1,3", "--inception-weights", "w: 1.pt", "--no-per-class"])
    flags = load_settings(yaml_path, "local", _overrides_from_flags(args)).stages.evaluate
    sets = load_settings(yaml_path, "local", ["stages.evaluate.guidance=3", "stages.evaluate.shots=[1, 3]",
                                              "stages.evaluate.inception_weights='w: 1.pt'",
                                              "stages.evaluate.per_class=false"]).stages.evaluate
    assert flags == sets and flags.guidance == 3.0
    train = parser.parse_args(["--profile", "dataflow", "train", "--pairs", "p", "-o", "o", "--num-workers", "2",
                               "--model", "tiny", "--encoder", "123"])
    s = load_settings(yaml_path, "dataflow", _overrides_from_flags(train))
    assert (s.profile.ray.num_workers, s.model, s.stages.train.encoder) == (2, s.models["tiny"], "123")
    commands = parser._subparsers._group_actions[0].choices
    for name, keys in FLAG_KEYS.items():  # left out: pipelines.yaml's value, not one written in the parser
        defaults = {a.dest: a.default for a in commands[name]._actions}
        assert all(defaults[flag] is None for flag in keys), name


def test_mine_output_keeps_a_filesystem_url_and_local_outputs_refuse_one(capsys):
    """Path() folds 'gs://b/x' into 'gs:/b/x', which Beam would write to a local folder `gs:`."""
    parser = build_parser()
    for url in ("gs://my-bucket/semantica/mined", "hdfs:///semantica/mined", "s3://b/m/"):
        assert parser.parse_args(["mine", "--input", "x.warc.gz", "--output", url]).output == url
    assert parser.parse_args(["mine", "-i", "x.warc.gz", "-o", "out//mined"]).output == "out/mined"
    with pytest.raises(SystemExit):  # no Beam filesystem: refused here, not an internal error in the job
        parser.parse_args(["mine", "-i", "x.warc.gz", "-o", "https://h/x"])
    assert "'https://h/x': a local folder or a gs://" in capsys.readouterr().err
    for argv in (["filter", "--pairs", "p", "--output", "gs://b/f"], ["run", "-i", "x.warc.gz", "-o", "gs://b/r"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        err = capsys.readouterr().err
        assert "'gs://b/" in err and "only `semantica mine --output`" in err


def test_readme_lists_every_flag_of_every_command():
    """The README's table of commands and flags is the parser's: a flag added or renamed fails here."""
    from helpers import REPO
    common = {"--config", "--profile", "--set", "--debug", "-h", "--help"}
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (.*) \|$", readme, re.M))
    for name, sp in _subcommands().items():
        listed = set(re.findall(r"`([^`]+)`", rows.get(name, "")))
        flags = {"/".join(a.option_strings) for a in sp._actions
                 if a.option_strings and not set(a.option_strings) & common}
        flags |= {a.metavar or a.dest.upper() for a in sp._actions if not a.option_strings and a.dest != "help"}
        assert flags <= listed, (name, sorted(flags - listed))


def test_set_before_and_after_the_command_both_apply(capsys):
    """argparse replaces the list of an `append` option given before the command when the command's own
    parser sees it again: both must reach the settings, the later one winning on the same key."""
    import json
    assert main(["--set", "stages.mine.seed=5", "--set", "stages.filter.low=0.2", "config",
                 "--set", "stages.mine.main_content=false", "--set", "stages.filter.low=0.25"]) == 0
    stages = json.loads(capsys.readouterr().out)["stages"]
    assert (stages["mine"]["seed"], stages["mine"]["main_content"], stages["filter"]["low"]) == (5, False, 0.25)


def test_out_of_range_flags_binary_config_and_a_file_as_run_output_are_clear_errors(tmp_path, capsys):
    parser = build_parser()
    for argv, message in ((["serve", "sw", "--port", "99999"], "a TCP port is 1..65535"),
                          (["evaluate", "--model", "m", "--reference", "r", "-o", "o", "--max-reference", "0"],
                           "--max-reference: 0: at least 1")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert message in capsys.readouterr().err
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe")
    assert main(["--config", str(binary), "config"]) == 2
    assert "bin.yaml: not UTF-8 text" in capsys.readouterr().err
    assert main(["evaluate", "--model", "m", "--reference", "r", "-o", "o", "--steps", "0"]) == 2
    assert "error: --steps 0: stages.evaluate.steps: 0 is invalid" in capsys.readouterr().err  # the flag, not --set
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["run", "-i", "x.warc.gz", "-o", str(afile)]) == 2
    assert "the output must be a folder, and this is a file" in capsys.readouterr().err


def test_a_reader_that_stops_early_is_no_error():
    """`semantica config | head`: the pipe closes before the output is written. Exit 141 (128 + SIGPIPE, as a
    shell reports for a C tool), nothing on stderr (was: "internal error: BrokenPipeError")."""
    import os
    import subprocess
    import sys
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    proc = subprocess.run([sys.executable, "-m", "semantica.cli", "config"], stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write)
    assert proc.returncode == 141 and "error" not in proc.stderr.lower(), proc.stderr
