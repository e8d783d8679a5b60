"""Mining archival crawls (issue 11): every candidate of a reference joined with the crawl,
revisits and redirects, bodies as crawlers store them, archive mode.

The real crawls in ../shared/data/warc-real are checked against an independent oracle
(tests/archive_oracle.py: warcio + html.parser, none of the miner's code).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import zlib
from base64 import b32encode
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archive_oracle import count_file
from helpers import REPO, SHARED_WARC_REAL, offline
from semantica.mining import reasons as R
from semantica.mining.pipeline import run_mine
from semantica.mining.warc_io import decode_http_body, iter_records, sniff

REAL = SHARED_WARC_REAL


def rows(out: Path, name: str) -> list[dict]:
    return [r for f in sorted((out / name).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def noise_png(seed: int, size=(96, 64)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).resize(size, Image.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def sha1_digest(body: bytes) -> str:
    return "sha1:" + b32encode(hashlib.sha1(body).digest()).decode()


def write(path: Path, records: list[dict], compress: bool = True) -> Path:
    """records: dicts with uri, and type (response | revisit), status, headers, body, warc_headers."""
    with path.open("wb") as f:
        w = WARCWriter(f, gzip=compress)
        for r in records:
            http = StatusAndHeaders(r.get("status", "200 OK"), r.get("headers", []), protocol="HTTP/1.1")
            kind = r.get("type", "response")
            rec = w.create_warc_record(r["uri"], kind, payload=io.BytesIO(r.get("body", b"")), http_headers=http,
                                       warc_headers_dict=r.get("warc_headers", {}))
            w.write_record(rec)
    return path


def page(uri: str, body: str) -> dict:
    return dict(uri=uri, headers=[("Content-Type", "text/html; charset=utf-8")], body=body.encode())


def image(uri: str, body: bytes) -> dict:
    return dict(uri=uri, headers=[("Content-Type", "image/png")], body=body)


def no_network(settings, download: bool = True):
    s = offline(settings)
    mine = s.stages.mine
    mine = dataclasses.replace(mine, download=dataclasses.replace(mine.download, enabled=download))
    return dataclasses.replace(s, stages=dataclasses.replace(s.stages, mine=mine))


# ----------------------------------------------------------------------------- bodies as stored
HTML = b"<!doctype html><html><body>" + b"<img src='/a.png'>" * 50 + b"</body></html>"


def _chunked(data: bytes, size: int = 100) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("encoding,encode", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some servers send it
    ("br", lambda d: __import__("brotli").compress(d)),
    ("zstd", lambda d: __import__("zstandard").ZstdCompressor().compress(d)),
    ("gzip, br", lambda d: __import__("brotli").compress(gzip.compress(d))),
])
def test_every_content_encoding_is_decoded(encoding, encode):
    body, truncated = decode_http_body(encode(HTML), [("Content-Encoding", encoding)], 1 << 20)
    assert body == HTML and not truncated
    chunked, _ = decode_http_body(_chunked(encode(HTML)), [("Content-Encoding", encoding),
                                                           ("Transfer-Encoding", "chunked")], 1 << 20)
    assert chunked == HTML


@pytest.mark.parametrize("encoding,encode", [
    ("gzip", gzip.compress), ("br", lambda d: __import__("brotli").compress(d)),
    ("zstd", lambda d: __import__("zstandard").ZstdCompressor().compress(d)),
])
def test_a_compression_bomb_stops_at_the_limit(encoding, encode):
    bomb = encode(b"\0" * (64 << 20))
    body, truncated = decode_http_body(bomb, [("Content-Encoding", encoding)], 1 << 20)
    assert len(body) == 1 << 20 and truncated


def test_a_body_stored_decoded_is_kept_as_stored():
    # Browsertrix renames the header (x-orig-content-encoding); others keep it on a decoded body
    assert decode_http_body(HTML, [("X-Orig-Content-Encoding", "br")], 1 << 20) == (HTML, False)
    assert decode_http_body(HTML, [("Content-Encoding", "br")], 1 << 20) == (HTML, False)
    assert decode_http_body(HTML, [("Content-Encoding", "gzip")], 1 << 20) == (HTML, False)


def test_brotli_pages_of_a_real_crawl_give_their_references(settings, tmp_path):
    path = REAL / "webrecorder-4.9.0-brotli-iana-collection-with-lists.warc"
    br_pages = [r for r in iter_records(str(path), "fastwarc", 1 << 22, [])
                if r.header("Content-Encoding") == "br" and b"<html" in r.body[:2000].lower()]
    assert len(br_pages) == 5
    stats = run_mine(offline(settings), [str(path)], tmp_path / "out")
    assert stats["pages"]["parsed"] == 6 and stats["refs"]["total"] == 6  # 0 before: br bodies were not decoded


# ----------------------------------------------------------------------------- file formats
def test_compression_and_format_come_from_the_bytes(tmp_path):
    real = REAL / "webrecorder-5.0.0-aut-issue-493.warc"  # uncompressed WARC/1.0
    data = real.read_bytes()
    plain_named_gz = tmp_path / "plain.warc.gz"
    plain_named_gz.write_bytes(data)
    gz_named_plain = tmp_path / "gz.warc"  # a gzip member per record, as WARC writers do
    with gz_named_plain.open("wb") as f:
        from warcio.archiveiterator import ArchiveIterator
        w = WARCWriter(f, gzip=True)
        for rec in ArchiveIterator(real.open("rb")):
            w.write_record(rec)
    v017 = tmp_path / "old.warc"
    v017.write_bytes(data.replace(b"WARC/1.0\r\n", b"WARC/0.17\r\n"))
    expected = [(r.uri, r.rec_type, len(r.body)) for r in iter_records(str(real), "warcio", 1 << 22, [])]
    assert len(expected) == 15
    for path in (plain_named_gz, gz_named_plain, v017):
        for reader in ("fastwarc", "warcio"):
            errors: list = []
            got = [(r.uri, r.rec_type, len(r.body)) for r in iter_records(str(path), reader, 1 << 22, errors)]
            assert (got, errors) == (expected, []), (path.name, reader)
    assert sniff(data[:4096]) == ("none", "warc") and sniff(gzip.compress(data)[:4096]) == ("gzip", "warc")


def _arc(records: list[tuple[str, str, bytes]]) -> list[bytes]:
    """A version-1 ARC file's records: the filedesc header, then one per (url, type, HTTP body)."""
    desc = b"1 0 Semantica\nURL IP-address Archive-date Content-type Archive-length\n"
    head = b"filedesc://test.arc 0.0.0.0 20120101000000 text/plain %d\n%s" % (len(desc), desc)
    out = [head + b"\n"]
    for url, ctype, body in records:
        http = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
            ctype.encode(), len(body), body)
        out.append(b"%s 93.184.216.34 20120101000000 %s %d\n%s\n" % (url.encode(), ctype.encode(), len(http), http))
    return out


def test_arc_and_zstd_files_are_read_whatever_their_names(tmp_path, settings):
    import zstandard
    imgs = {f"http://arc.example.org/{i}.png": noise_png(i) for i in range(3)}
    html = "".join(f'<img src="/{i}.png" width="96" height="64">' for i in range(3))
    recs = [("http://arc.example.org/", "text/html", f"<html><body>{html}</body></html>".encode())]
    recs += [(u, "image/png", b) for u, b in imgs.items()]
    arc = b"".join(gzip.compress(r) for r in _arc(recs))  # a gzip member per record, as .arc.gz files are
    (tmp_path / "a.warc.gz").write_bytes(arc)  # an ARC file misnamed
    assert sniff(arc) == ("gzip", "arc")
    # zstd WARC (one frame a record, as the IIPC zstd proposal), with and without a dictionary
    write(plain_path := tmp_path / "p.warc", [dict(uri=u, headers=[("Content-Type", t)], body=b)
                                              for u, t, b in recs], compress=False)
    data = plain_path.read_bytes()
    (tmp_path / "z.warc.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    dict_data = zstandard.train_dictionary(4096, [data[i:i + 2000] for i in range(0, len(data) - 2000, 300)] * 4)
    framed = (b"\x5d\x2a\x4d\x18" + len(dict_data.as_bytes()).to_bytes(4, "little") + dict_data.as_bytes()
              + zstandard.ZstdCompressor(dict_data=dict_data).compress(data))
    (tmp_path / "zd.warc").write_bytes(framed)
    plain_path.unlink()
    for name in ("a.warc.gz", "z.warc.zst", "zd.warc"):
        errors: list = []
        got = list(iter_records(str(tmp_path / name), "fastwarc", 1 << 22, errors))
        assert errors == [] and [r.uri for r in got] == [u for u, _, _ in recs], name
        assert got[1].body == imgs["http://arc.example.org/0.png"]
    stats = run_mine(no_network(settings), [str(tmp_path / "a.warc.gz")], tmp_path / "out")
    assert stats["pairs"] == 6 and stats["urls"] == {"warc": 3}


# ----------------------------------------------------------------------------- joining with the crawl
def test_every_candidate_is_joined_and_the_largest_capture_wins(settings, tmp_path):
    """srcset's largest candidate was not captured, src and a smaller candidate were: the larger
    of the two captured is used, with no download. <picture> sources count too."""
    big, small, alt = noise_png(1, (160, 120)), noise_png(1, (80, 60)), noise_png(2, (120, 90))
    other = noise_png(3, (100, 100))
    html = ('<img src="/img/a-small.png" srcset="/img/a-small.png 80w, /img/a-big.png 160w, /img/a-huge.png 1600w">'
            '<picture><source srcset="/img/b.webp" type="image/webp"><img src="/img/b.png"></picture>'
            '<img data-src="/img/c.png" src="/img/placeholder.gif">')
    warc = write(tmp_path / "c.warc.gz", [
        page("https://shop.example.org/p", f"<html><body>{html}</body></html>"),
        image("https://shop.example.org/img/a-small.png", small),
        image("https://shop.example.org:443/img/a-big.png", big),          # another spelling of the URL
        image("https://shop.example.org/img/b.png#", alt),
        image("https://shop.example.org/img/c.png", other),
    ])
    stats = run_mine(no_network(settings), [str(warc)], tmp_path / "out")
    refs = {r["position"]: r for r in rows(tmp_path / "out", "refs")}
    assert refs[0]["url"] == "https://shop.example.org/img/a-huge.png"   # what a browser would ask for
    assert refs[0]["image_url"] == "https://shop.example.org:443/img/a-big.png" and refs[0]["image_from"] == "crawl"
    assert refs[0]["candidates"][:2] == ["https://shop.example.org/img/a-huge.png",
                                         "https://shop.example.org/img/a-small.png"]
    assert refs[1]["image_url"] == "https://shop.example.org/img/b.png#" and refs[1]["image_from"] == "crawl"
    assert refs[2]["image_url"] == "https://shop.example.org/img/c.png" and refs[2]["image_from"] == "crawl"
    assert stats["urls"].get("download", 0) == 0 and stats["pairs"] == 6
    pairs = rows(tmp_path / "out", "pairs")
    assert {p["cond_url"] for p in pairs} == {refs[i]["image_url"] for i in range(3)}


def test_a_captured_reference_is_never_downloaded_and_archive_mode_downloads_nothing(settings, tmp_path):
    a, b, c = noise_png(4), noise_png(5), noise_png(10)
    warc = write(tmp_path / "d.warc.gz", [
        page("http://news.example.org/", '<img src="/a.png"><img src="/b.png"><img src="/gone.png">'
                                         '<img src="/gone2.png" srcset="/gone2.png 2x, /c.png 1x">'),
        image("http://news.example.org/a.png", a), image("http://news.example.org/b.png", b),
        image("http://news.example.org/c.png", c)])
    stats = run_mine(no_network(settings), [str(warc)], tmp_path / "on")
    by_pos = {r["position"]: r for r in rows(tmp_path / "on", "refs")}
    assert [by_pos[i]["image_from"] for i in range(4)] == ["crawl", "crawl", "network", "crawl"]
    assert by_pos[2]["status"] == R.FETCH_HOST_NOT_ALLOWED and stats["urls"]["download"] == 1
    stats = run_mine(no_network(settings, download=False), [str(warc)], tmp_path / "off")
    by_pos = {r["position"]: r for r in rows(tmp_path / "off", "refs")}
    assert by_pos[2]["status"] == R.FETCH_NOT_CAPTURED and by_pos[2]["image_from"] is None
    assert "download" not in stats["urls"] and stats["urls"][R.FETCH_NOT_CAPTURED] == 1
    assert stats["refs"]["by_status"][R.FETCH_NOT_CAPTURED] == 1


def test_revisits_and_redirects_resolve_to_captured_payloads(settings, tmp_path):
    """Within one file: a revisit naming its original (WARC-Refers-To-Target-URI) and a redirect.
    Across two files of one job: a revisit naming only the payload digest."""
    a, b, c, d = (noise_png(i) for i in (6, 7, 8, 9))
    html = '<img src="/a.png"><img src="/b-copy.png"><img src="/c-old.png"><img src="/d-again.png">'
    first = write(tmp_path / "1.warc.gz", [
        page("https://blog.example.org/post", f"<html><body>{html}</body></html>"),
        image("https://blog.example.org/a.png", a),
        image("https://cdn.example.org/b.png", b),
        dict(uri="https://blog.example.org/b-copy.png", type="revisit", headers=[("Content-Type", "image/png")],
             warc_headers={"WARC-Refers-To-Target-URI": "https://cdn.example.org/b.png",
                           "WARC-Refers-To-Date": "2024-01-01T00:00:00Z", "WARC-Payload-Digest": sha1_digest(b),
                           "WARC-Profile": "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest"}),
        dict(uri="https://blog.example.org/c-old.png", status="301 Moved Permanently",
             headers=[("Location", "/c.png")]),
        image("https://blog.example.org/c.png", c)])
    second = write(tmp_path / "2.warc.gz", [
        image("https://cdn2.example.org/d.png", d),
        dict(uri="https://blog.example.org/d-again.png", type="revisit", headers=[("Content-Type", "image/png")],
             warc_headers={"WARC-Payload-Digest": sha1_digest(d),
                           "WARC-Profile": "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest"})])
    stats = run_mine(no_network(settings, download=False), [str(first), str(second)], tmp_path / "out")
    refs = sorted(rows(tmp_path / "out", "refs"), key=lambda r: r["position"])
    assert [(r["status"], r["image_from"]) for r in refs] == [("kept", "crawl")] * 4
    assert [r["image_url"] for r in refs] == ["https://blog.example.org/a.png", "https://cdn.example.org/b.png",
                                              "https://blog.example.org/c.png", "https://cdn2.example.org/d.png"]
    assert stats["records"]["records:revisit"] == 2 and stats["records"]["records:redirect"] == 1
    assert stats["pairs"] == 12


# ----------------------------------------------------------------------------- the real crawls
# Per file, mined together in one job with no network: (pages, references, references with a
# captured candidate that no prefilter dropped (all of them joined with the crawl), pairs).
# Before issue 11 the brotli file gave 0 references and srcset-only captures were downloaded.
PINNED = {
    "archivewebpage-0.8.1-replaywebpage-example.warc.gz": (1, 6, 5, 12),
    "browsertrix-1.1.1-solidaritenum.warc.gz": (4, 43, 3, 6),
    "commoncrawl-single-record-cc.warc.gz": (1, 8, 0, 0),
    "heritrix-3.1.1-gov.uk-BL-20140325121225068-00000-32090-opera-8443.warc.gz": (32, 74, 6, 20),
    "perma-warcprox-1.4-screenshot-resource.warc.gz": (1, 0, 0, 0),
    "perma-warcprox-2.4.17-lil-projects.warc.gz": (2, 8, 7, 20),
    "wail-parseMe.warc.gz": (1, 2, 0, 0),
    "warcprox-2.4.17-transfer-compression-gzip-chunked.warc.gz": (1, 63, 0, 0),
    "warcreate-frogTest.warc": (1, 1, 0, 0),
    "webrecorder-4.4.0-netpreserve-twitter.warc": (9, 56, 23, 20),
    "webrecorder-4.9.0-brotli-iana-collection-with-lists.warc": (6, 6, 0, 0),
    "webrecorder-4.9.0-single-page-test.warc": (2, 11, 8, 20),
    "webrecorder-5.0.0-aut-issue-493.warc": (4, 10, 0, 0),
    "wget-1.20.3-transfer-compression-brotli.warc.gz": (1, 0, 0, 0),
    "wget-wikipedia-sopa-blackout-homepage.warc.gz": (1, 17, 13, 20),
    "zimit-browsertrix-kiwix-with-redirects.warc.gz": (3, 282, 3, 6),
}


@pytest.fixture(scope="module")
def real_mined(settings, tmp_path_factory):
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not present")
    out = tmp_path_factory.mktemp("real") / "out"
    stats = run_mine(no_network(settings), [str(REAL)], out)
    return out, stats


def test_real_crawls_use_every_captured_image(real_mined):
    out, stats = real_mined
    refs, pairs, pages = rows(out, "refs"), rows(out, "pairs"), rows(out, "pages")
    # stats account for every reference
    assert sum(stats["refs"]["by_status"].values()) == len(refs) == stats["refs"]["total"]
    in_pairs = {(p["page_url"], i) for p in pairs for i in (p["cond_image_id"], p["target_image_id"])}
    expected = found = 0
    got = {}
    for path in sorted(REAL.glob("*.warc*")):
        oracle = count_file(path)
        mine = [r for r in refs if Path(r["warc_file"]).name == path.name]
        captured = [r for r in mine if any(c in oracle.captured_images for c in r["candidates"] or [r["url"]])]
        joined = [r for r in captured if not r["status"].startswith(("prefilter:", "page:too_few", "dedup:same_url"))]
        # zero download attempts for a reference the crawl captured
        assert [r for r in joined if r["image_from"] != "crawl"] == [], path.name
        n_pairs = sum(Path(p["warc_file"]).name == path.name for p in pairs)
        n_pages = sum(Path(p["warc_file"]).name == path.name for p in pages)
        got[path.name] = (n_pages, len(mine), len(joined), n_pairs)
        expected += len(oracle.expected)
        found += len(oracle.expected & in_pairs)
    assert found >= 0.95 * expected and expected >= 60, (found, expected)
    assert got == PINNED


# ----------------------------------------------------------------------------- CLI
def test_input_takes_several_values_and_repeated_flags():
    """`--input crawl/*.warc.gz` as an unquoted shell glob gives several values after one flag."""
    from semantica.cli import build_parser
    p = build_parser()
    one_flag = p.parse_args(["mine", "--input", "a.warc.gz", "b.warc.gz", "c.arc", "--output", "o", "--no-download"])
    repeated = p.parse_args(["mine", "-i", "a.warc.gz", "-i", "b.warc.gz", "--input", "c.arc", "--output", "o"])
    mixed = p.parse_args(["run", "-i", "a.warc.gz", "b.warc.gz", "-i", "c.arc", "-o", "o"])
    assert one_flag.inputs == repeated.inputs == mixed.inputs == ["a.warc.gz", "b.warc.gz", "c.arc"]
    assert one_flag.download is False and repeated.download is None


def test_no_download_reaches_the_settings():
    from semantica.cli import _overrides_from_flags, build_parser
    from semantica.config import load_settings
    args = build_parser().parse_args(["mine", "-i", "x.warc", "-o", "y", "--no-download"])
    settings = load_settings(REPO / "pipelines.yaml", "local", _overrides_from_flags(args))
    assert settings.stages.mine.download.enabled is False
