"""Each named step of MinePairs (mining/steps/) on its own: a handful of elements through a TestPipeline
on the DirectRunner, its outputs checked with assert_that (Beam's own example tests, e.g. tfidf_test)."""
from __future__ import annotations

import dataclasses
import http.server
import io
import pickle
import threading
from collections import Counter
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from semantica.mining import reasons as R
from semantica.mining import stats as S
from semantica.mining.records import (Alias, Candidate, ImageBytes, ImageRecord, ImageResult, Outcome, Page, PageRef,
                                      Ref, RefResult)
from semantica.mining.resolve import decode_result
from semantica.mining.steps.aliases import CapturesUnderEveryName
from semantica.mining.steps.assemble_pages import AssemblePages
from semantica.mining.steps.frequent import CrawlDedup, FlagFrequentImages
from semantica.mining.steps.image_bytes import Download, ResolveImageBytes
from semantica.mining.steps.image_rows import ImageRows
from semantica.mining.steps.read_pages import ReadPages

SITE = "http://ex.org"


# ----------------------------------------------------------------------------- helpers
@pytest.fixture()
def cfg(settings):
    """The shipped mine config, main content off (no trafilatura import: these tests are about the graph)."""
    return dataclasses.replace(settings.stages.mine, main_content=False)


def with_download(cfg, enabled: bool):
    return dataclasses.replace(cfg, download=dataclasses.replace(cfg.download, enabled=enabled,
                                                                 allowed_hosts=("127.0.0.1",)))


def png(seed: int, size=(96, 64)) -> bytes:
    """Blocks of noise: a picture of its own (pHash far from any other seed's)."""
    arr = np.random.default_rng(seed).integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).resize(size, Image.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def warc(path: Path, records: list[tuple]) -> str:
    """records: (uri, status line, [(header, value)], body)."""
    with path.open("wb") as f:
        w = WARCWriter(f, gzip=True)
        for uri, status, headers, body in records:
            http_headers = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http_headers))
    return str(path)


def html(*srcs: str) -> bytes:
    return ("<html><body>" + "".join(f'<img src="{s}" width="200" height="150">' for s in srcs)
            + "</body></html>").encode()


def summed(stats_pcoll):
    return stats_pcoll | "Sum" >> beam.CombinePerKey(sum)


def has_counts(want: dict):
    """A matcher: the summed ((stage, reason), n) include `want`."""
    def check(actual):
        got = dict(actual)
        assert {k: got.get(k, 0) for k in want} == want, got
    return check


def ref(position: int, url: str, status: str = R.KEPT, candidates=None) -> Ref:
    return Ref(url=url, raw_url=url, alt="", width=200, height=150, position=position, source="img",
               in_main_content=None, status=status,
               candidates=(candidates or [url]) if status == R.KEPT else None)


def page(url: str, refs: list, warc_file: str = "a.warc.gz", offset: int = 0) -> Page:
    return Page(page_url=url, domain="ex.org", warc_file=warc_file, warc_offset=offset, fetch_time="2024-01-01",
                http_status=200, content_type="text/html", charset="utf-8", html_bytes=100, truncated=False,
                too_complex=False, refs=refs)


def captured(url: str, body: bytes, offset: int = 0, digest=None) -> ImageRecord:
    return ImageRecord(url=url, body=body, truncated=False, headers=[("Content-Type", "image/png")],
                       warc_file="a.warc.gz", warc_offset=offset, digest=digest)


def decoded(image_id: str, phash: int, side: int = 100) -> ImageResult:
    return ImageResult(url=f"{SITE}/{image_id}.png", status=R.KEPT, detail="", source="warc", image_id=image_id,
                       phash=phash, width=side, height=side, format="png", num_bytes=1000, warc_file="a.warc.gz",
                       warc_offset=7)


# ----------------------------------------------------------------------------- records and counts
def test_records_survive_pickle_and_beams_coder():
    """What Beam does to an element between steps (FastPrimitivesCoder falls back to pickle for them)."""
    where = PageRef("http://ex.org/p", 0, "ex.org", "a.warc.gz", 5, "http://ex.org/a.png")
    result = decoded("a", 123)
    records = [ref(0, "http://ex.org/a.png"), page("http://ex.org/p", [ref(0, "http://ex.org/a.png")]),
               captured("http://ex.org/a.png", b"\x89PNG"), Alias("http://ex.org/b.png", None, None, "redirect"),
               where, Candidate(1, "http://ex.org/a2.png", where), Outcome(0, where, result),
               Outcome(1, where, None), RefResult.at(where, result), ImageBytes("http://ex.org/a.png", b"x", result)]
    coder = FastPrimitivesCoder()
    for r in records:
        assert pickle.loads(pickle.dumps(r)) == r
        assert coder.decode(coder.encode(("key", r))) == ("key", r)


def test_stats_json_keeps_its_layout():
    counts = {S.RECORDS: 10, S.RECORDS_IMAGE: 3, S.WARC_FILES: 2, S.of_reason(R.WARC_READ_ERROR): 1, S.PAGES: 4,
              S.PAGES_WITH_PAIRS: 2, S.of_reason(R.PAGE_HTTP_STATUS): 1, S.ref_status(R.KEPT): 5,
              S.ref_status(R.DEC_CORRUPT): 2, S.ref_status("image:internal_error"): 1, S.url_outcome("warc"): 6,
              S.url_outcome(R.DEC_CORRUPT): 2, S.internal_error("image"): 1, S.IMAGES: 5, S.PAIRS: 8}
    stats = S.summarize(counts, 1.234, 2)
    assert stats["records"] == {"records": 10, "records:image": 3, "warc_files": 2, "warc:read_error": 1}
    assert stats["pages"]["parsed"] == 4 and stats["pages"]["with_pairs"] == 2 and stats["pages"]["not_2xx"] == 1
    assert stats["refs"] == {"total": 8, "by_status": {"decode:corrupt": 2, "image:internal_error": 1, "kept": 5}}
    assert stats["urls"] == {"decode:corrupt": 2, "warc": 6}
    assert stats["drops"] == {"decode": {"corrupt": 2}, "image": {"internal_error": 1}, "page": {"http_status": 1},
                              "warc": {"read_error": 1}}
    assert stats["internal_errors"] == {"image": 1}
    assert (stats["inputs"], stats["seconds"], stats["images"], stats["pairs"]) == (2, 1.23, 5, 8)
    assert S.name(S.PAGES_DUPLICATE_CAPTURE) == "pages:duplicate_capture" and S.name(S.RECORDS) == "records"


# ----------------------------------------------------------------------------- ReadPages
def test_read_pages_keeps_the_first_capture_and_the_crawls_images(tmp_path, cfg):
    a = warc(tmp_path / "a.warc.gz", [
        (f"{SITE}/p", "200 OK", [("Content-Type", "text/html")], html("/a.png", "/old.png")),
        (f"{SITE}/a.png", "200 OK", [("Content-Type", "image/png")], png(1)),
        (f"{SITE}/old.png", "301 Moved", [("Location", "/b.png")], b""),
        (f"{SITE}/gone", "404 Not Found", [("Content-Type", "text/html")], b"<html>gone</html>"),
    ])
    b = warc(tmp_path / "b.warc.gz", [(f"{SITE}/p", "200 OK", [("Content-Type", "text/html")], html("/a.png"))])
    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create([b, a]) | ReadPages(cfg)
        assert_that(out["pages"] | "PageAt" >> beam.Map(lambda pg: (pg.page_url, pg.warc_file, len(pg.refs))),
                    equal_to([(f"{SITE}/p", a, 2)]), label="FirstCapture")
        assert_that(out["images"] | "ImageAt" >> beam.Map(lambda kv: (kv[0], kv[1].url, kv[1].body == png(1))),
                    equal_to([(f"{SITE}/a.png", f"{SITE}/a.png", True)]), label="Images")
        assert_that(out["aliases"] | "AliasTo" >> beam.Map(lambda kv: (kv[0], kv[1].to, kv[1].kind)),
                    equal_to([(f"{SITE}/old.png", f"{SITE}/b.png", "redirect")]), label="Aliases")
        assert_that(summed(out["stats"]), has_counts({
            S.WARC_FILES: 2, S.RECORDS: 5, S.PAGES: 2, S.PAGES_DUPLICATE_CAPTURE: 1, S.RECORDS_IMAGE: 1,
            S.RECORDS_REDIRECT: 1, S.of_reason(R.PAGE_HTTP_STATUS): 1}), label="Stats")
        assert_that(out["failures"], equal_to([]), label="NoFailures")


# ----------------------------------------------------------------------------- ResolveImageBytes
def test_captures_are_filed_under_every_url_that_leads_to_them():
    a, b = captured(f"{SITE}/a.png", b"A", digest="sha1:AAA"), captured(f"{SITE}/b.png", b"B", offset=9)
    aliases = [(f"{SITE}/r.png", Alias(f"{SITE}/a.png", None, None, "redirect")),
               (f"{SITE}/r2.png", Alias(f"{SITE}/r.png", None, None, "redirect")),  # a chain: r2 → r → a
               (f"{SITE}/v.png", Alias(None, "sha1:AAA", None, "revisit")),         # by payload digest
               (f"{SITE}/b.png", Alias(f"{SITE}/b.png", None, None, "revisit"))]    # of itself: nothing to add
    with test_pipeline.TestPipeline() as p:
        out = ({"images": p | "Images" >> beam.Create([(f"{SITE}/a.png", a), (f"{SITE}/b.png", b)]),
                "aliases": p | "Aliases" >> beam.Create(aliases)} | CapturesUnderEveryName())
        assert_that(out | beam.Map(lambda kv: (kv[0], kv[1].url, kv[1].alias_of)), equal_to([
            (f"{SITE}/a.png", f"{SITE}/a.png", None), (f"{SITE}/b.png", f"{SITE}/b.png", None),
            (f"{SITE}/r.png", f"{SITE}/a.png", f"{SITE}/a.png"), (f"{SITE}/r2.png", f"{SITE}/a.png", f"{SITE}/a.png"),
            (f"{SITE}/v.png", f"{SITE}/a.png", f"{SITE}/a.png")]))


def test_resolve_image_bytes_joins_candidates_with_the_crawl(cfg):
    """Archive mode: the largest captured candidate that decodes; nothing captured → fetch:not_captured."""
    cfg = with_download(cfg, False)
    bodies = {"a": png(1), "small": png(2, (64, 64)), "c": png(3, (64, 48)), "c2": png(4, (128, 96)),
              "corrupt": b"\x89PNG\r\n\x1a\nnot really", "lost": png(5)}
    refs = [ref(0, f"{SITE}/a.png"),
            ref(1, f"{SITE}/big.png", candidates=[f"{SITE}/big.png", f"{SITE}/small.png"]),  # only small captured
            ref(2, f"{SITE}/c.png", candidates=[f"{SITE}/c.png", f"{SITE}/c2.png"]),         # c2 has more pixels
            ref(3, f"{SITE}/none.png"),
            ref(4, f"{SITE}/corrupt.png"),
            ref(5, f"{SITE}/x.svg", status=R.PRE_EXTENSION)]
    images = [(f"{SITE}/{name}.png", captured(f"{SITE}/{name}.png", body, offset=i))
              for i, (name, body) in enumerate(bodies.items())]
    ids = {name: decode_result("u", body, "warc", cfg)[0].image_id for name, body in bodies.items()}
    with test_pipeline.TestPipeline() as p:
        out = ({"pages": p | "Pages" >> beam.Create([page(f"{SITE}/p", refs)]),
                "images": p | "Images" >> beam.Create(images), "aliases": p | "Aliases" >> beam.Create([])}
               | ResolveImageBytes(cfg, allow_private=False))
        assert_that(out["results"] | "Result" >> beam.Map(lambda r: (r.position, r.image.status, r.image.url)),
                    equal_to([(0, R.KEPT, f"{SITE}/a.png"), (1, R.KEPT, f"{SITE}/small.png"),
                              (2, R.KEPT, f"{SITE}/c2.png"), (3, R.FETCH_NOT_CAPTURED, f"{SITE}/none.png"),
                              (4, R.DEC_CORRUPT, f"{SITE}/corrupt.png")]), label="Results")
        assert_that(out["bytes"] | "ImageId" >> beam.Map(lambda kv: (kv[0], kv[1].url)),
                    equal_to([(ids[n], f"{SITE}/{n}.png") for n in ("a", "small", "c", "c2")]), label="Bytes")
        assert_that(summed(out["stats"]), has_counts({
            S.URLS_WARC: 5, S.url_outcome(R.DEC_CORRUPT): 1, S.url_outcome(R.FETCH_NOT_CAPTURED): 1,
            S.RECORDS_IMAGE_UNREFERENCED: 1}), label="Stats")
        assert_that(out["failures"], equal_to([]), label="NoFailures")


class _Images(http.server.BaseHTTPRequestHandler):
    body = png(7)

    def do_GET(self):  # noqa: N802 (http.server's name)
        found = self.path == "/img.png"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "image/png" if found else "text/plain")
        self.end_headers()
        self.wfile.write(self.body if found else b"missing")

    def log_message(self, *args):
        pass


@pytest.fixture()
def image_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_fetches_each_url_once_for_every_reference(image_server, cfg):
    cfg = with_download(cfg, True)
    img, missing = f"{image_server}/img.png", f"{image_server}/missing.png"
    refs = [(img, PageRef(f"{SITE}/p", 0, "ex.org", "a.warc.gz", 0, img)),
            (img, PageRef(f"{SITE}/q", 3, "ex.org", "a.warc.gz", 50, img)),
            (missing, PageRef(f"{SITE}/p", 1, "ex.org", "a.warc.gz", 0, missing))]
    image_id = decode_result(img, _Images.body, "download", cfg)[0].image_id
    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create(refs) | Download(cfg, allow_private=True)
        assert_that(out["results"] | "Result" >> beam.Map(lambda r: (r.page_url, r.position, r.image.status)),
                    equal_to([(f"{SITE}/p", 0, R.KEPT), (f"{SITE}/q", 3, R.KEPT),
                              (f"{SITE}/p", 1, R.FETCH_HTTP_404)]), label="Results")
        assert_that(out["bytes"] | "ImageId" >> beam.Map(lambda kv: (kv[0], kv[1].url, kv[1].image.source)),
                    equal_to([(image_id, img, "download")]), label="Bytes")
        assert_that(summed(out["stats"]), has_counts({S.url_outcome("download"): 2,
                                                      S.url_outcome(R.FETCH_HTTP_404): 1}), label="Stats")


# ----------------------------------------------------------------------------- FlagFrequentImages
LOGO, FAMILY, ALONE = 0x123456789ABCDEF0, 0x0FEDCBA987654321, 0x3C3C3C3C5A5A5A5A


def test_crawl_dedup_flags_logos_and_crowded_neighbourhoods(settings):
    """max 5 pages, 2 domains: a hash on 6 pages; three near duplicates on 3 domains together; one alone."""
    dedup = settings.stages.mine.dedup
    family = [FAMILY, FAMILY ^ 1, FAMILY ^ 3]
    occurrences = ([(LOGO, (f"{SITE}/{i}", "ex.org")) for i in range(6)]
                   + [(h, (f"http://d{k}.org/{i}", f"d{k}.org")) for k, h in enumerate(family) for i in range(2)]
                   + [(ALONE, (f"{SITE}/alone", "ex.org"))])
    assert min(bin(a ^ b).count("1") for a in (LOGO, FAMILY, ALONE) for b in (LOGO, FAMILY, ALONE) if a != b) > 6
    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create(occurrences) | CrawlDedup(dedup)
        assert_that(out["frequent"], equal_to([LOGO] + family), label="Frequent")
        assert_that(out["edges"], equal_to([(min(a, b), max(a, b)) for a, b in ((family[0], family[1]),
                                                                               (family[0], family[2]),
                                                                               (family[1], family[2]))]),
                    label="Edges")


def test_flag_frequent_images_marks_results_by_page(settings):
    dedup = settings.stages.mine.dedup
    logo = [RefResult(f"{SITE}/{i}", 0, "ex.org", decoded("logo", LOGO)) for i in range(6)]
    photo = RefResult(f"{SITE}/0", 1, "ex.org", decoded("photo", ALONE))
    broken = RefResult(f"{SITE}/0", 2, "ex.org", ImageResult(f"{SITE}/x.png", R.DEC_CORRUPT, "", "warc"))
    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create(logo + [photo, broken]) | FlagFrequentImages(dedup)
        assert_that(out["by_page"] | beam.Map(lambda kv: (kv[0], kv[1].position, kv[1].image.status, kv[1].frequent)),
                    equal_to([(f"{SITE}/{i}", 0, R.KEPT, True) for i in range(6)]
                             + [(f"{SITE}/0", 1, R.KEPT, False), (f"{SITE}/0", 2, R.DEC_CORRUPT, False)]))


# ----------------------------------------------------------------------------- AssemblePages, ImageRows
def test_assemble_pages_gives_final_statuses_pairs_and_rows(cfg):
    refs = [ref(0, f"{SITE}/a.png"), ref(1, f"{SITE}/b.png"), ref(2, f"{SITE}/logo.png"),
            ref(3, f"{SITE}/x.svg", status=R.PRE_EXTENSION)]
    results = [RefResult(f"{SITE}/p", 0, "ex.org", decoded("a", LOGO)),
               RefResult(f"{SITE}/p", 1, "ex.org", decoded("b", ALONE)),
               RefResult(f"{SITE}/p", 2, "ex.org", decoded("logo", FAMILY), frequent=True),
               RefResult(f"{SITE}/unread", 0, "ex.org", decoded("c", 0))]  # a page not read: nothing to assemble
    with test_pipeline.TestPipeline() as p:
        out = ({"pages": p | "Pages" >> beam.Create([page(f"{SITE}/p", refs, offset=42)]),
                "results": p | "Results" >> beam.Create(results) | beam.Map(lambda r: (r.page_url, r))}
               | AssemblePages(cfg))
        assert_that(out["refs"] | "Status" >> beam.Map(lambda r: (r["position"], r["status"], r["image_id"])),
                    equal_to([(0, R.KEPT, "a"), (1, R.KEPT, "b"), (2, R.DUP_FREQUENT, "logo"),
                              (3, R.PRE_EXTENSION, None)]), label="Refs")
        assert_that(out["pairs"] | "Pair" >> beam.Map(lambda r: (r["cond_image_id"], r["target_image_id"],
                                                                r["warc_offset"])),
                    equal_to([("a", "b", 42), ("b", "a", 42)]), label="Pairs")
        assert_that(out["pages"] | "Counts" >> beam.Map(lambda r: (r["page_url"], r["num_refs"], r["num_images"],
                                                                  r["num_pairs"])),
                    equal_to([(f"{SITE}/p", 4, 2, 2)]), label="Pages")
        assert_that(out["used"], equal_to([("a", True), ("b", True)]), label="Used")
        assert_that(summed(out["stats"]), has_counts({
            S.ref_status(R.KEPT): 2, S.ref_status(R.DUP_FREQUENT): 1, S.ref_status(R.PRE_EXTENSION): 1,
            S.PAIRS: 2, S.PAGES_WITH_PAIRS: 1}), label="Stats")


def test_a_page_whose_assembly_raises_is_written_aside(cfg):
    """A kept reference with no result (the pipeline lost an element): the page fails alone, counted."""
    with test_pipeline.TestPipeline() as p:
        out = ({"pages": p | "Pages" >> beam.Create([page(f"{SITE}/p", [ref(0, f"{SITE}/a.png")], offset=3)]),
                "results": p | "Results" >> beam.Create([])} | AssemblePages(cfg))
        assert_that(out["refs"], equal_to([]), label="NoRefs")
        assert_that(out["failures"] | beam.Map(lambda f: (f["stage"], f["error"], f["url"], f["warc_offset"])),
                    equal_to([("assemble", "RuntimeError", f"{SITE}/p", 3)]), label="Failures")
        assert_that(summed(out["stats"]), has_counts({S.internal_error("assemble"): 1}), label="Stats")


def test_image_rows_take_the_bytes_of_the_first_url(cfg):
    res = decoded("a", LOGO)
    with test_pipeline.TestPipeline() as p:
        out = ({"used": p | "Used" >> beam.Create([("a", True), ("a", True)]),
                "bytes": p | "Bytes" >> beam.Create([("a", ImageBytes("http://z.org/a.png", b"Z", res)),
                                                     ("a", ImageBytes("http://b.org/a.png", b"B", res)),
                                                     ("unused", ImageBytes("http://b.org/u.png", b"U", res))])}
               | ImageRows())
        assert_that(out["images"] | beam.Map(lambda r: (r["image_id"], r["url"], r["bytes"], r["source_warc_offset"],
                                                       sorted(r))),
                    equal_to([("a", "http://b.org/a.png", b"B", 7,
                               sorted(["image_id", "url", "phash", "width", "height", "format", "num_bytes", "source",
                                       "source_warc_file", "source_warc_offset", "bytes"]))]), label="Rows")
        assert_that(summed(out["stats"]), has_counts({S.IMAGES: 1}), label="Stats")


def test_counter_keys_are_stage_and_reason():
    """What extract.py counts into: (stage, reason) keys, no string to parse."""
    counts: Counter = Counter()
    counts[S.of_reason(R.PAGE_TRUNCATED)] += 1
    assert counts == {("page", "truncated"): 1} and S.of_reason(R.KEPT) == ("kept", None)
