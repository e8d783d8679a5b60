"""--overwrite deletes only what semantica wrote: never a folder of other files, an input, the folder the
command runs in; and an output path that is a file is a clear error."""
from __future__ import annotations

import shutil

import pytest

from semantica.errors import UserError
from semantica.outputs import MARKER, prepare_output


def test_overwrite_refuses_a_folder_semantica_did_not_write(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="replaces only a folder that semantica wrote"):
        prepare_output(precious, overwrite=True)
    assert (precious / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_a_marked_output_and_an_older_unmarked_one(tmp_path):
    out = tmp_path / "out"
    prepare_output(out, overwrite=False)
    assert (out / MARKER).exists()  # written first: a killed run's folder can be replaced too
    (out / "old.parquet").write_text("x")
    prepare_output(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]
    older = tmp_path / "older"  # written before the marker existed: known by what mine wrote
    (older / "pairs").mkdir(parents=True)
    (older / "stats.json").write_text("{}")
    prepare_output(older, overwrite=True)
    assert sorted(p.name for p in older.iterdir()) == [MARKER]
    yours = tmp_path / "yours"  # one generic file name is not enough
    yours.mkdir()
    (yours / "manifest.json").write_text("{}")
    with pytest.raises(UserError, match="does not look like one"):
        prepare_output(yours, overwrite=True)


def test_output_may_not_be_or_hold_an_input(tmp_path):
    data = tmp_path / "data"
    (data / "warc").mkdir(parents=True)
    (data / "warc" / "a.warc.gz").write_bytes(b"x")
    (data / MARKER).write_text("")
    for inputs in ([data], [data / "warc"], [data / "warc" / "a.warc.gz"], [str(data / "warc" / "*.warc.gz")]):
        with pytest.raises(UserError, match="cannot be, or hold, the input"):
            prepare_output(data, overwrite=True, inputs=inputs)
    assert (data / "warc" / "a.warc.gz").exists()
    prepare_output(data / "warc" / "mined", overwrite=False, inputs=[data / "warc"])  # inside an input: fine
    prepare_output(tmp_path / "o", overwrite=False, inputs=["gs://b/x", "cc:CC-MAIN-2024-10"])


def test_output_that_is_a_file_or_under_one_is_a_clear_error(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(UserError, match="must be a folder, and this is a file"):
        prepare_output(f, overwrite=True)
    with pytest.raises(UserError, match="is a file"):
        prepare_output(f / "sub", overwrite=False)
    assert f.read_text() == "x"


def test_overwrite_never_deletes_the_folder_the_command_runs_in(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    (here / MARKER).write_text("")
    monkeypatch.chdir(here)
    for out in (".", str(tmp_path)):
        with pytest.raises(UserError, match="folder this command runs in"):
            prepare_output(out, overwrite=True)
    assert (here / MARKER).exists()


def test_mine_with_its_input_folder_as_output_keeps_the_input(settings, shared_warc, tmp_path):
    from semantica.mining.pipeline import run_mine
    src = next(p for p in sorted(shared_warc.iterdir()) if p.name.endswith(".warc.gz"))
    folder = tmp_path / "crawl"
    folder.mkdir()
    shutil.copy(src, folder / src.name)
    (folder / MARKER).write_text("")  # looks like an output, so only the input rule can save it
    with pytest.raises(UserError, match="cannot be, or hold, the input"):
        run_mine(settings, [str(folder)], folder, overwrite=True)
    assert (folder / src.name).stat().st_size == src.stat().st_size
