"""`semantica mine` end to end on the Beam DirectRunner: against the sample web's ground truth,
on every shared WARC file, and on hostile input."""
from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from semantica.errors import UserError
from semantica.outputs import MARKER
from semantica.mining import reasons as R
from semantica.mining.pipeline import run_mine
from semantica.sample_web import serve_sample_web

from helpers import bomb_png, offline

pytestmark = pytest.mark.slow


def rows(out: Path, name: str) -> list[dict]:
    return pq.read_table(out / name).to_pylist()


def gt(sample_web, name):
    return pq.read_table(sample_web / "ground_truth" / f"{name}.parquet").to_pylist()


def test_every_reference_gets_the_ground_truth_status(mined, sample_web):
    got = {(r["page_url"], r["position"]): r for r in rows(mined, "refs")}
    want = {(r["page_url"], r["position"]): r for r in gt(sample_web, "refs")}
    assert set(got) == set(want)
    wrong = [(k, got[k]["url"], got[k]["status"], want[k]["expected_reason"]) for k in want
             if got[k]["status"] != want[k]["expected_reason"] or got[k]["url"] != want[k]["url"]]
    assert not wrong, wrong[:5]
    for k, r in want.items():  # alt text survives Shift_JIS and windows-1251 pages
        assert got[k]["alt"] == r["alt"]


def test_image_and_pair_precision_recall_are_one(mined, sample_web, settings):
    truth_refs = gt(sample_web, "refs")
    picture = {(r["page_url"], r["url"]): r["picture_id"] for r in truth_refs}
    want_images = {(r["page_url"], r["picture_id"]) for r in truth_refs if r["keep"]}
    got_images = {(r["page_url"], picture[(r["page_url"], r["url"])])
                  for r in rows(mined, "refs") if r["status"] == "kept"}
    tp = len(want_images & got_images)
    assert (tp / len(got_images), tp / len(want_images)) == (1.0, 1.0)

    want_pairs = {(p["page_url"], frozenset((p["url_a"], p["url_b"]))) for p in gt(sample_web, "pairs")}
    mined_pairs = rows(mined, "pairs")
    got_pairs = {(p["page_url"], frozenset((p["cond_url"], p["target_url"]))) for p in mined_pairs}
    assert got_pairs <= want_pairs  # precision 1.0
    kept_per_page = Counter(page for page, _ in want_images)
    cap = settings.stages.mine.pairs.max_pairs_per_page
    uncapped = {page for page, n in kept_per_page.items() if n * (n - 1) <= cap}
    assert {p for p in want_pairs if p[0] in uncapped} <= got_pairs  # recall 1.0 where nothing is capped
    per_page = Counter(p["page_url"] for p in mined_pairs)
    assert all(n <= cap for n in per_page.values())
    covered = {(p["page_url"], u) for p in mined_pairs for u in (p["cond_url"], p["target_url"])}
    kept_urls = {(r["page_url"], r["url"]) for r in rows(mined, "refs") if r["status"] == "kept"}
    assert covered == kept_urls  # every kept image is in a pair
    assert all(p["phash_distance"] > settings.stages.mine.pairs.min_pair_hamming for p in mined_pairs)


def test_stats_account_for_every_reference(mined, sample_web):
    stats = json.loads((mined / "stats.json").read_text())
    refs = rows(mined, "refs")
    assert stats["refs"]["total"] == len(refs) == len(gt(sample_web, "refs"))
    assert stats["refs"]["by_status"] == dict(Counter(r["status"] for r in refs))
    assert stats["images"] == len(rows(mined, "images")) and stats["pairs"] == len(rows(mined, "pairs"))
    assert stats["pages"]["parsed"] == len(rows(mined, "pages")) == len(gt(sample_web, "pages"))
    assert stats["pages"]["not_2xx"] == 2  # the redirect and the 404 page
    assert stats["internal_errors"] == {} and rows(mined, "failures") == []  # no step raised on any element
    drops = sum(n for stage in stats["drops"].values() for n in stage.values())
    assert drops == len(refs) - stats["refs"]["by_status"]["kept"] + stats["records"].get(R.WARC_READ_ERROR, 0) \
        + stats["pages"]["not_2xx"]


def test_rows_trace_back_to_their_warc_record(mined, sample_web):
    def uri_at(file, offset):
        with open(file, "rb") as f:
            f.seek(offset)
            return next(iter(ArchiveIterator(f))).rec_headers.get_header("WARC-Target-URI").strip("<>")
    for p in rows(mined, "pairs")[:40]:
        assert uri_at(p["warc_file"], p["warc_offset"]) == p["page_url"]
    images = rows(mined, "images")
    assert {i["source"] for i in images} == {"warc", "download"}
    for i in images:
        assert hashlib.sha256(i["bytes"]).hexdigest()[:32] == i["image_id"] and i["num_bytes"] == len(i["bytes"])
        if i["source"] == "warc":
            assert uri_at(i["source_warc_file"], i["source_warc_offset"]) == i["url"]


def test_same_input_same_output_and_reruns_refuse(mined, sample_web, sample_web_port, settings, tmp_path):
    again = tmp_path / "again"
    again.mkdir()
    (again / "stale.txt").write_text("from an earlier run")
    (again / MARKER).write_text("")  # an earlier run's folder: --overwrite may replace it
    with pytest.raises(UserError, match="not empty"):
        run_mine(offline(settings), [str(sample_web / "warc")], again)
    with serve_sample_web(sample_web, port=sample_web_port):
        run_mine(offline(settings), [str(sample_web / "warc")], again, overwrite=True, allow_private=True)
    assert not (again / "stale.txt").exists()
    for name, key in (("refs", ("page_url", "position")), ("pairs", ("pair_id",)), ("images", ("image_id",)),
                      ("pages", ("page_url",))):
        a = sorted(rows(mined, name), key=lambda r: tuple(r[k] for k in key))
        b = sorted(rows(again, name), key=lambda r: tuple(r[k] for k in key))
        assert a == b, name


# ----------------------------------------------------------------------------- hostile input
def _warc(path: Path, records: list[tuple[str, str, bytes]], gz: bool = True) -> Path:
    with path.open("wb") as f:
        w = WARCWriter(f, gzip=gz)
        for uri, ctype, body in records:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http))
    return path


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory, sample_web):
    d = tmp_path_factory.mktemp("hostile")
    (d / "empty.warc.gz").write_bytes(b"")
    whole = (sample_web / "warc" / "sample-00000.warc.gz").read_bytes()
    (d / "truncated.warc.gz").write_bytes(whole[: len(whole) // 2])
    (d / "garbage.warc").write_bytes(b"this is not a WARC file\r\n\r\n" * 100)
    big_head = ('<html><body><img src="http://127.0.0.1:9/a.jpg"><img src="http://localhost:9/b.jpg">'
                '<img src="bomb.png"><img src="ok.png">')
    filler = "<p>" + "lorem ipsum dolor sit amet " * 40 + "</p>\n"
    big = (big_head + filler * (50_000_000 // len(filler)) + "</body></html>").encode()
    ok_png = io.BytesIO()
    from PIL import Image
    Image.new("RGB", (64, 48), (200, 10, 10)).save(ok_png, "PNG")
    _warc(d / "big-and-hostile.warc.gz", [
        ("https://hostile.example.org/big.html", "text/html", big),
        ("https://hostile.example.org/bomb.png", "image/png", bomb_png()),
        ("https://hostile.example.org/ok.png", "image/png", ok_png.getvalue()),
    ])
    return d


@pytest.fixture(scope="module")
def mined_hostile(hostile_dir, shared_warc, settings, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined-hostile")
    stats = run_mine(offline(settings), [str(shared_warc), str(hostile_dir)], out, overwrite=True)
    return out, stats


def test_every_shared_and_hostile_file_completes(mined_hostile, shared_warc, hostile_dir):
    out, stats = mined_hostile
    files = list(shared_warc.iterdir()) + list(hostile_dir.iterdir())
    assert stats["inputs"] == len(files)
    assert stats["records"]["warc_files"] == len(files)
    assert stats["drops"]["warc"]["read_error"] >= 2  # truncated, garbage (+ shared/data's broken ones)
    assert stats["drops"]["warc"]["empty"] == 1
    assert stats["pages"]["truncated"] == 1  # the 50 MB page: its head parsed
    assert stats["internal_errors"] == {} and rows(out, "failures") == []  # no step raised on any element
    refs = {r["url"]: r for r in rows(out, "refs") if r["page_url"] == "https://hostile.example.org/big.html"}
    assert refs["http://127.0.0.1:9/a.jpg"]["status"] == R.FETCH_PRIVATE  # no --allow-private-network
    assert refs["http://localhost:9/b.jpg"]["status"] == R.FETCH_PRIVATE
    assert refs["https://hostile.example.org/bomb.png"]["status"] == R.DEC_BOMB
    assert refs["https://hostile.example.org/ok.png"]["status"] == R.PAGE_TOO_FEW
    pages = rows(out, "pages")
    assert sum(p["warc_file"].endswith("web-crawl-sample-0000.warc.gz") for p in pages) == 22
    # 16 captures of 15 page URLs: the second capture of one page is counted, not mined twice
    assert sum(p["warc_file"].endswith("iana-with-images.warc.gz") for p in pages) == 15
    assert stats["pages"]["duplicate_captures"] >= 1  # example.com is in several files too
    # nothing of the shared crawls was fetched from the network
    assert not [r for r in rows(out, "refs") if "iana.org" in r["page_url"] and r["status"].startswith("fetch:")]
