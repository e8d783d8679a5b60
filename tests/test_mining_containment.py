"""No single element fails a mining job (issue 10): a step that raises on one record, image or
page is contained there, counted as `<stage>:internal_error` and written aside to failures/;
the reproducers of the fuzzing probe and a good real crawl mine together as the good crawl does
alone."""
from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from semantica.mining import reasons as R
from semantica.mining.containment import contained
from semantica.mining.failures import failure_row
from semantica.mining.pipeline import run_mine
from semantica.sample_web import serve_sample_web

from helpers import REPO, offline
from hostile_inputs import BAD_URIS, charset_records, hostile_records, write_warc

pytestmark = pytest.mark.slow
REAL_CRAWLS = REPO.parent / "shared" / "data" / "warc-real"
GOOD_CRAWL = "wget-wikipedia-sopa-blackout-homepage.warc.gz"  # one page, 17 of its images in the file


def rows(out: Path, name: str) -> list[dict]:
    return pq.read_table(out / name).to_pylist()


def test_contained_outputs_are_all_or_nothing():
    def half_then_raise():
        yield "first output"
        raise KeyError("the second")
    out = contained("assemble", half_then_raise, element={"page": "p"}, where=lambda: dict(url="http://a/p"),
                    fallback=lambda: ["fallback"])
    assert "first output" not in out and out[-1] == "fallback"
    stats, failure = out[0].value, out[1].value
    assert stats == (("assemble", "internal_error"), 1)
    assert (failure["stage"], failure["error"], failure["url"]) == ("assemble", "KeyError", "http://a/p")
    assert "half_then_raise" in failure["traceback"] and failure["element"] == "{'page': 'p'}"
    assert contained("assemble", lambda: iter([1, 2])) == [1, 2]


def test_a_long_traceback_keeps_its_start_and_end():
    def deep(n):
        if n == 0:
            raise ValueError("at the bottom")
        deep(n - 1)
    try:
        deep(200)
    except ValueError as e:
        row = failure_row("read", e, "a.warc.gz", 12, "http://a/", b"x" * 10**6)
    assert len(row["traceback"]) < 4100 and row["traceback"].startswith("Traceback")
    assert row["traceback"].rstrip().endswith("ValueError: at the bottom")
    assert row["element"].endswith("(1000000 bytes)")


# ----------------------------------------------------------------------------- injected bugs
def _poison(mined: Path) -> dict:
    """A page to fail on reading, another on assembling, an in-WARC image and a downloaded one (each
    kept, on one page only, on pages of their own)."""
    refs = rows(mined, "refs")
    images = {i["url"]: i for i in rows(mined, "images")}
    pages_of: dict = {}
    for r in refs:
        pages_of.setdefault(r["url"], set()).add(r["page_url"])
    single = sorted((r for r in refs if r["status"] == R.KEPT and len(pages_of[r["url"]]) == 1 and r["url"] in images),
                    key=lambda r: (r["page_url"], r["position"]))  # Parquet row order is the runner's
    warc_img = next(r for r in single if images[r["url"]]["source"] == "warc")
    dl_img = next(r for r in single if images[r["url"]]["source"] == "download"
                  and r["page_url"] != warc_img["page_url"])
    used = {warc_img["page_url"], dl_img["page_url"]}
    with_pairs = sorted({p["page_url"] for p in rows(mined, "pairs")} - used)
    return dict(read=with_pairs[0], assemble=with_pairs[1], warc_image=warc_img["url"], download_image=dl_img["url"],
                image_pages=used, warc_ref=(warc_img["page_url"], warc_img["position"]),
                download_ref=(dl_img["page_url"], dl_img["position"]))


def test_injected_bugs_are_contained_counted_and_written_aside(mined, sample_web, sample_web_port, settings,
                                                               tmp_path, monkeypatch):
    """Steps made to raise on chosen elements (monkeypatched in this process: the in-memory runner)."""
    import semantica.mining.extract as extract
    import semantica.mining.steps.assemble_pages as assemble_pages
    import semantica.mining.steps.image_bytes as image_bytes
    poison = _poison(mined)

    def raising(real, bad, arg):
        def f(*a, **kw):
            if arg(*a) == bad:
                raise RuntimeError(f"injected for {bad}")
            return real(*a, **kw)
        return f
    monkeypatch.setattr(extract, "page_from_record", raising(extract.page_from_record, poison["read"],
                                                             lambda rec, *_: rec.uri))
    monkeypatch.setattr(image_bytes, "from_warc", raising(image_bytes.from_warc, poison["warc_image"],
                                                          lambda url, *_: url))
    monkeypatch.setattr(image_bytes, "from_download", raising(image_bytes.from_download, poison["download_image"],
                                                              lambda f, *_: f.url))
    monkeypatch.setattr(assemble_pages, "assemble_page", raising(assemble_pages.assemble_page, poison["assemble"],
                                                                 lambda page, *_: page.page_url))
    out = tmp_path / "mined"
    with serve_sample_web(sample_web, port=sample_web_port):
        stats = run_mine(offline(settings), [str(sample_web / "warc")], out, allow_private=True,
                         extra_options=["--direct_running_mode=in_memory"])
    assert stats["internal_errors"] == {"assemble": 1, "fetch": 1, "image": 1, "read": 1}
    failures = {f["stage"]: f for f in rows(out, "failures")}
    assert set(failures) == {"read", "image", "fetch", "assemble"}
    for stage, f in failures.items():
        assert f["error"] == "RuntimeError" and f["message"].startswith("injected for "), f
        assert "Traceback" in f["traceback"] and "injected for" in f["traceback"]
        assert f["warc_file"].endswith(".warc.gz") and f["warc_offset"] is not None, f
    assert failures["read"]["url"] == poison["read"] and failures["assemble"]["url"] == poison["assemble"]
    assert failures["image"]["url"] == poison["warc_image"] and failures["fetch"]["url"] == poison["download_image"]

    got, want = rows(out, "refs"), rows(mined, "refs")
    gone = {poison["read"], poison["assemble"]}
    assert {r["page_url"] for r in got} == {r["page_url"] for r in want} - gone
    at = {(r["page_url"], r["position"]): r for r in got}
    assert at[poison["warc_ref"]]["status"] == "image:internal_error"
    assert at[poison["download_ref"]]["status"] == "fetch:internal_error"
    untouched = gone | poison["image_pages"]
    key = lambda r: (r["page_url"], r["position"])  # noqa: E731
    assert sorted((r for r in got if r["page_url"] not in untouched), key=key) == \
        sorted((r for r in want if r["page_url"] not in untouched), key=key)
    assert stats["refs"]["by_status"]["image:internal_error"] == 1


# ----------------------------------------------------------------------------- the fuzzing probe's inputs
@pytest.fixture(scope="module")
def good_crawl() -> Path:
    path = REAL_CRAWLS / GOOD_CRAWL
    if not path.is_file():
        pytest.skip(f"{path} not present (the shared real crawls live beside the checkout)")
    return path


def test_reproducers_and_a_good_crawl_mine_as_the_good_crawl_alone(good_crawl, settings, tmp_path):
    """Every reproducer in one WARC (sizes reduced where the same code path runs: 40,000 nested <div>,
    5,000 <img> in a <picture>, 40,000 open <p>, 2000x2000 bombs under a 32 MB decode budget) with a
    good real crawl: the job finishes, the good crawl's rows are those of a run on it alone, every bad
    element is counted, and nothing raised."""
    hostile = write_warc(tmp_path / "hostile.warc.gz", hostile_records(
        div_depth=40_000, picture_images=5_000, p_depth=40_000, image_side=2000))
    s = offline(settings)
    s = dataclasses.replace(s, stages=dataclasses.replace(s.stages, mine=dataclasses.replace(
        s.stages.mine, decode=dataclasses.replace(s.stages.mine.decode, max_memory_mb=32))))
    t0 = time.perf_counter()
    both = run_mine(s, [str(hostile), str(good_crawl)], tmp_path / "both")
    seconds = time.perf_counter() - t0
    alone = run_mine(s, [str(good_crawl)], tmp_path / "alone")
    assert seconds < 60

    assert both["internal_errors"] == {} == alone["internal_errors"]
    assert rows(tmp_path / "both", "failures") == []
    assert both["pages"]["bad_uri"] == len(BAD_URIS)
    assert both["pages"]["too_complex"] == 2  # the <div> nest (flattened, cut) and the open <p> (cut)
    assert both["pages"]["parse_errors"] == 0
    hostile_refs = [r for r in rows(tmp_path / "both", "refs") if r["warc_file"] == str(hostile)]
    charset_pages = {uri for uri, _, _ in charset_records()}
    assert charset_pages <= {r["page_url"] for r in hostile_refs}  # every bad-charset page parsed
    status = {r["url"].rsplit("/", 1)[-1]: r["status"] for r in hostile_refs}
    assert status["bomb.webp"] == status["bomb.tif"] == R.DEC_MEMORY
    assert both["refs"]["by_status"][R.DEC_MEMORY] == 2

    for name, key in (("refs", ("page_url", "position")), ("pairs", ("pair_id",)), ("images", ("image_id",)),
                      ("pages", ("page_url",))):
        good = lambda r: r.get("warc_file", r.get("source_warc_file")) == str(good_crawl)  # noqa: E731
        a = sorted((r for r in rows(tmp_path / "both", name) if good(r)), key=lambda r: tuple(r[k] for k in key))
        b = sorted(rows(tmp_path / "alone", name), key=lambda r: tuple(r[k] for k in key))
        assert a == b and (b or name == "images"), name
    assert alone["pairs"] > 0
    stats_file = json.loads((tmp_path / "both" / "stats.json").read_text())
    assert stats_file["internal_errors"] == {} and Counter(stats_file["drops"]["page"])["too_complex"] == 2


def test_no_real_crawl_raises_anywhere(good_crawl, settings, tmp_path):
    """Every crawl in ../shared/data/warc-real (16 files by 9 crawlers): no step raises on any element."""
    stats = run_mine(offline(settings), [str(REAL_CRAWLS)], tmp_path / "real")
    assert stats["internal_errors"] == {} and rows(tmp_path / "real", "failures") == []
    assert stats["pages"]["parse_errors"] == 0 and stats["pages"]["parsed"] >= 70 and stats["pairs"] > 0


# ----------------------------------------------------------------------------- the fuzz harness's WARCs
def _nasty_warcs(folder: Path) -> list[Path]:
    """Ten WARC files from the fuzz harness (benchmarks/fuzz_mining.py), one per kind of damage: a
    corrupt and a cut gzip member, lying Content-Lengths and chunk sizes, flipped bytes, a file cut
    mid-record, invalid charsets, NUL runs, 10^5 <img> with garbage srcset, and broken images
    (truncated PNG/JPEG/GIF/WebP, huge declared sizes, a 300-frame GIF)."""
    import gzip
    import random
    import sys
    sys.path.insert(0, str(REPO / "benchmarks"))
    import fuzz_mining as F
    seeds = F.load_seeds()
    page = seeds["page"][-1][1]  # the page written by the harness, with four references
    images = F.make_images()
    img_recs = [(f"http://nasty.example.org/{k}", "image/png", v, ()) for k, v in sorted(images.items())]
    plain = F._warc([("http://nasty.example.org/p.html", "text/html", page, ())] + img_recs)
    raw = gzip.decompress(plain)
    rng = random.Random(15)
    members = [m.start() for m in __import__("re").finditer(b"\x1f\x8b\x08", plain)]
    corrupt = bytearray(plain)
    corrupt[members[3] + 30] ^= 0x55
    made = {
        "gzip-member-corrupt.warc.gz": bytes(corrupt),
        "gzip-member-cut.warc.gz": plain[:members[5] + 50] + plain[members[6]:],
        "lying-lengths.warc": F._lie_lengths(random.Random(1), raw),
        "lying-chunks.warc.gz": F._warc([("http://nasty.example.org/c.html", "text/html",
                                          b"ffffffff\r\n" + page + b"\r\nzz\r\n", (("Transfer-Encoding", "chunked"),)),
                                         ("http://nasty.example.org/g.html", "text/html", b"\x1f\x8b\x08junk" + page,
                                          (("Content-Encoding", "gzip"),))]),
        "byte-flips.warc": F.mutate_bytes(rng, raw),
        "cut-mid-record.warc.gz": plain[: len(plain) * 2 // 3],
        "bad-charsets.warc.gz": F._warc([(f"http://nasty.example.org/cs-{i}.html", f"text/html; charset={cs}",
                                          page, ()) for i, cs in enumerate(F.CHARSETS)]),
        "nul-runs.warc": raw.replace(b"<img", b"\x00\x00<img\x00", 3).replace(b"HTTP/1.1 200", b"HTTP/1.1\x00200", 2),
        "huge-html.warc.gz": F._warc([("http://nasty.example.org/many.html", "text/html",
                                       b"<html><body>" + b'<img src="/m.jpg" srcset=", ,,x 9e999w ,">' * 100_000, ()),
                                      ("http://nasty.example.org/deep.html", "text/html",
                                       b"<div>" * 60_000 + b'<img src="/a.jpg"><img src="/b.jpg">', ())]),
        "broken-images.warc.gz": F._warc([("http://nasty.example.org/img.html", "text/html",
                                           b"<html><body>" + b"".join(b'<img src="/%s">' % k.encode()
                                                                      for k in sorted(images)), ())]
                                         + [(f"http://nasty.example.org/{k}", "image/png", v[: len(v) // 2], ())
                                            for k, v in sorted(images.items())]),
    }
    out = []
    for name, data in made.items():
        (folder / name).write_bytes(data)
        out.append(folder / name)
    return out


def test_the_fuzz_harness_nastiest_warcs_and_a_good_crawl_mine_as_the_good_crawl_alone(good_crawl, settings,
                                                                                           tmp_path):
    """Ten damaged WARCs with one good real crawl: the job completes, the good crawl's rows are those of
    a run on it alone, nothing raised, and every record the reader finds in a damaged file is counted
    (the same number as reading that file alone, record by record, as the harness does)."""
    import sys
    sys.path.insert(0, str(REPO / "benchmarks"))
    import fuzz_mining as F
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _nasty_warcs(bad_dir)
    s = offline(settings)
    cfg = s.stages.mine
    expected: Counter = Counter()
    for path in bad:  # what the harness sees per file, in this process
        expected.update(F.run_target("warc", path.read_bytes(), cfg, str(tmp_path),
                                     0 if cfg.reader == "fastwarc" else 1))
    both = run_mine(s, [str(bad_dir), str(good_crawl)], tmp_path / "both")
    alone = run_mine(s, [str(good_crawl)], tmp_path / "alone")
    assert both["internal_errors"] == {} and rows(tmp_path / "both", "failures") == []
    assert both["inputs"] == len(bad) + 1 == both["records"]["warc_files"]
    for key in ("records", "records:image", "records:other", "warc:read_error"):
        assert both["records"].get(key, 0) == alone["records"].get(key, 0) + expected.get(key, 0), key
    assert both["pages"]["parsed"] == alone["pages"]["parsed"] + expected["pages"]
    assert expected["warc:read_error"] >= 3 and expected["records"] > 20
    for name, key in (("refs", ("page_url", "position")), ("pairs", ("pair_id",)), ("images", ("image_id",)),
                      ("pages", ("page_url",))):
        good = lambda r: r.get("warc_file", r.get("source_warc_file")) == str(good_crawl)  # noqa: E731
        a = sorted((r for r in rows(tmp_path / "both", name) if good(r)), key=lambda r: tuple(r[k] for k in key))
        b = sorted(rows(tmp_path / "alone", name), key=lambda r: tuple(r[k] for k in key))
        assert a == b and b, name


def test_results_lost_between_steps_leave_the_output_unmarked(mined, sample_web, sample_web_port, settings,
                                                              tmp_path, monkeypatch):
    """A runner that drops elements between steps (as Beam's Python FnApiRunner did with 2 workers on 1 GB,
    README "Mining at crawl scale") is simulated by losing one downloaded URL's references after the
    shuffle: the pages missing a result are written aside, the loss is counted, and the run fails
    without _SUCCESS, so no later stage reads a partial output as complete."""
    import semantica.mining.pipeline as pipeline
    import semantica.mining.steps.image_bytes as image_bytes
    victim = _poison(mined)["download_image"]
    real = image_bytes.listed
    monkeypatch.setattr(image_bytes, "listed", lambda kv: [] if kv[0] == victim else real(kv))
    out = tmp_path / "lossy"
    with serve_sample_web(sample_web, port=sample_web_port), pytest.raises(pipeline.ResultsLost, match="lost 1 "):
        run_mine(offline(settings), [str(sample_web / "warc")], out, allow_private=True,
                 extra_options=["--direct_running_mode=in_memory"])
    assert not (out / "_SUCCESS").exists()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["lost_results"] == 1 and stats["internal_errors"] == {"assemble": 1}
    (failure,) = rows(out, "failures")
    assert failure["stage"] == "assemble" and "lost between steps" in failure["message"]
    assert stats["pages"]["parsed"] == len(rows(out, "pages")) + 1  # only the page that lost a result
