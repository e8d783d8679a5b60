"""Where WARC files come from, and what each profile's Beam runner is told."""
from __future__ import annotations

import functools
import gzip
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, StandardOptions

from semantica.beam import pipeline_options
from semantica.config import load_settings
from semantica.errors import UserError
from semantica.mining.pipeline import build_pipeline
from semantica.mining.warc_io import iter_records, resolve_inputs

from helpers import REPO


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def fake_commoncrawl(tmp_path, sample_web):
    """A Common Crawl look-alike on 127.0.0.1: crawl-data/CRAWL/warc.paths.gz + the WARC files."""
    crawl = tmp_path / "crawl-data" / "CC-MAIN-2099-01"
    seg = crawl / "segments" / "1700000000000.00" / "warc"
    seg.mkdir(parents=True)
    names = []
    for f in sorted((sample_web / "warc").glob("*.warc.gz")):
        shutil.copy(f, seg / f.name)
        names.append(f"crawl-data/CC-MAIN-2099-01/segments/1700000000000.00/warc/{f.name}")
    (crawl / "warc.paths.gz").write_bytes(gzip.compress(("\n".join(names) + "\n").encode()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", names
    server.shutdown()
    server.server_close()


def test_crawl_id_and_range_resolve_through_warc_paths(fake_commoncrawl, sample_web):
    base, names = fake_commoncrawl
    assert resolve_inputs(["cc:CC-MAIN-2099-01"], base) == [base + n for n in names]  # the whole crawl
    assert resolve_inputs(["cc:CC-MAIN-2099-01:0-1"], base) == [base + names[0]]
    assert resolve_inputs(["cc:CC-MAIN-2099-01:1-"], base) == [base + names[1]]
    with pytest.raises(UserError, match="selects no WARC"):
        resolve_inputs(["cc:CC-MAIN-2099-01:5-9"], base)
    with pytest.raises(UserError, match="expected cc:CC-MAIN"):
        resolve_inputs(["cc:latest"], base)
    with pytest.raises(UserError, match=r"--input 'cc:CC-MAIN-2099-02': cannot read the listing .*"
                                        r"CC-MAIN-2099-02/warc.paths.gz: HTTPError: HTTP Error 404"):
        resolve_inputs(["cc:CC-MAIN-2099-02"], base)  # a crawl the server does not have
    # records stream over HTTP exactly as from disk
    remote = [(r.uri, r.body) for r in iter_records(base + names[0], "fastwarc", 10**7, [])]
    local = [(r.uri, r.body) for r in iter_records(str(sample_web / "warc" / names[0].rsplit("/", 1)[1]),
                                                    "fastwarc", 10**7, [])]
    assert remote == local and len(remote) > 50


def test_paths_globs_folders_and_listings(tmp_path, sample_web):
    warcs = sorted(str(p) for p in (sample_web / "warc").glob("*.warc.gz"))
    assert resolve_inputs([str(sample_web / "warc" / "*.warc.gz")]) == warcs
    assert resolve_inputs([str(sample_web / "warc")]) == warcs
    listing = tmp_path / "list.txt"
    listing.write_text("# my crawl\n" + "\n".join(warcs) + "\n\n")
    assert resolve_inputs([str(listing), warcs[0]]) == warcs  # duplicates dropped, order kept
    with pytest.raises(UserError, match="no such file"):
        resolve_inputs([str(tmp_path / "absent.warc.gz")])
    with pytest.raises(UserError, match="matches no file"):
        resolve_inputs([str(tmp_path / "*.warc.gz")])


def test_an_unreadable_listing_or_crawl_index_is_a_clear_error(tmp_path):
    """A listing that cannot be fetched, is no gzip or is no text, and a cc: crawl whose warc.paths.gz
    cannot be read, each name the --input and the listing (was: an internal error with a traceback)."""
    (tmp_path / "junk.paths.gz").write_bytes(b"not gzip at all")
    good = gzip.compress(b"a.warc.gz\n" * 50)
    (tmp_path / "corrupt.paths.gz").write_bytes(good[:10] + bytes([good[10] ^ 0xFF]) + good[11:])  # bad deflate
    (tmp_path / "short.paths.gz").write_bytes(good[:20])
    (tmp_path / "latin1.txt").write_bytes("caf\xe9.warc.gz\n".encode("latin-1"))
    cases = [(str(tmp_path / "absent.paths"), "FileNotFoundError"),
             (str(tmp_path / "junk.paths.gz"), "BadGzipFile"),
             (str(tmp_path / "corrupt.paths.gz"), "error: Error -3 while decompressing"),
             (str(tmp_path / "short.paths.gz"), "EOFError"),
             (str(tmp_path / "latin1.txt"), "UnicodeDecodeError"),
             ("http://127.0.0.1:9/warc.paths.gz", "URLError")]
    for given, kind in cases:
        with pytest.raises(UserError, match=rf"--input '{given}': cannot read the listing {given}: {kind}"):
            resolve_inputs([given])
    with pytest.raises(UserError, match=r"--input 'cc:CC-MAIN-2024-10:0-2': cannot read the listing "
                                        r".*crawl-data/CC-MAIN-2024-10/warc.paths.gz: FileNotFoundError"):
        resolve_inputs(["cc:CC-MAIN-2024-10:0-2"], cc_base=str(tmp_path))
    (tmp_path / "crawl-data" / "CC-MAIN-2024-10").mkdir(parents=True)
    (tmp_path / "crawl-data" / "CC-MAIN-2024-10" / "warc.paths.gz").write_bytes(
        gzip.compress(b"crawl-data/CC-MAIN-2024-10/segments/a.warc.gz\ncrawl-data/CC-MAIN-2024-10/segments/b.warc.gz\n"))
    assert resolve_inputs(["cc:CC-MAIN-2024-10:1-2"], cc_base=str(tmp_path)) == [
        f"{tmp_path}/crawl-data/CC-MAIN-2024-10/segments/b.warc.gz"]


def test_unreachable_input_is_counted_not_fatal():
    errors: list = []
    assert list(iter_records("http://127.0.0.1:9/nothing.warc.gz", "fastwarc", 100, errors)) == []
    assert errors and errors[0][0] == "warc:open_error"


def test_unreadable_inputs_are_named_and_a_run_with_none_readable_is_an_error(tmp_path, shared_warc):
    """Each bad input is named, with its reason, in stats.json and on the console; the good one is mined.
    When no input gives a single record, the run fails (exit 2) and its output is not marked complete."""
    import json

    from semantica.mining.pipeline import run_mine
    from semantica.outputs import COMPLETE
    settings = load_settings(REPO / "pipelines.yaml", "local", ["profiles.local.beam.direct_running_mode=in_memory",
                                                                "stages.mine.download.enabled=false"])
    (tmp_path / "text.warc").write_text("hello")
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    (tmp_path / "notwarc.warc.gz").write_bytes(gzip.compress(b"hi\n"))
    bad = [str(tmp_path / n) for n in ("empty.warc.gz", "notwarc.warc.gz", "text.warc")]
    good = str(shared_warc / "iana-with-images.warc.gz")
    stats = run_mine(settings, bad + [good], tmp_path / "mixed")
    assert [(e["file"], e["reason"]) for e in stats["input_errors"]] == [
        (bad[0], "warc:empty"), (bad[1], "warc:read_error"), (bad[2], "warc:read_error")]
    assert "Invalid WARC header" in stats["input_errors"][2]["error"]
    assert stats["pages"]["parsed"] > 0 and (tmp_path / "mixed" / COMPLETE).exists()
    with pytest.raises(UserError, match=r"none of the 3 input file\(s\) could be read .*empty.warc.gz: warc:empty"):
        run_mine(settings, bad, tmp_path / "none")
    assert not (tmp_path / "none" / COMPLETE).exists()
    assert len(json.loads((tmp_path / "none" / "stats.json").read_text())["input_errors"]) == 3


@pytest.mark.parametrize("profile, runner, flags", [
    ("local", "DirectRunner", {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}),
    ("dataflow", "DataflowRunner", {"project": "my-gcp-project", "region": "us-central1",
                                    "temp_location": "gs://my-bucket/semantica/tmp", "max_num_workers": 200}),
    ("spark", "SparkRunner", {"spark_master_url": "spark://spark-master:7077"}),
    ("flink", "FlinkRunner", {"flink_master": "flink-jobmanager:8081", "parallelism": 64}),
])
def test_each_profile_builds_its_runner_options_and_graph(profile, runner, flags, tmp_path):
    settings = load_settings(REPO / "pipelines.yaml", profile)
    opts = pipeline_options(settings)
    assert opts.view_as(StandardOptions).runner == runner
    everything = opts.get_all_options(drop_default=True)
    for k, v in flags.items():
        assert everything[k] == v, k
    if profile == "dataflow":
        assert opts.view_as(GoogleCloudOptions).project == "my-gcp-project"
    assert "setup_file" not in everything  # a run stages a wheel built outside the checkout (test_mining_portable)
    # the graph constructs for the profile's options (built, not run: no cluster here)
    p = beam.Pipeline(runner="DirectRunner", options=opts)
    build_pipeline(p, ["a.warc.gz"], tmp_path / "out", settings.stages.mine, allow_private=False)
    proto = p.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    assert {"MinePairs/ReadPages/ReadWarcs", "MinePairs/ResolveImageBytes/JoinCaptures",
            "MinePairs/FlagFrequentImages/CrawlDedup/Verify", "MinePairs/AssemblePages/Assemble",
            "MinePairs/ImageRows/ImageRows", "WritePairs"} <= names
