"""Inputs that once crashed or stalled the miner (issue 10), one class per test: bad charsets,
unparseable URIs."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from semantica.mining import reasons as R
from semantica.mining.extract import page_from_record, process_warc
from semantica.mining.html_refs import decode_html
from semantica.mining.warc_io import Record

from hostile_inputs import BAD_TEXT_CODECS, BAD_URIS, BYTE_TRANSFORMS, bad_uri_records, charset_records, write_warc


def _record(uri: str, body: bytes, ctype: str = "text/html") -> Record:
    return Record("test.warc.gz", 0, "response", uri, "", 200, [("Content-Type", ctype)], body, False)


# ----------------------------------------------------------------------------- charsets
@pytest.mark.parametrize("charset", BYTE_TRANSFORMS + BAD_TEXT_CODECS)
def test_a_charset_that_is_no_text_encoding_falls_back(charset):
    """hex, base64, zlib…: codecs Python knows that are byte transforms (LookupError on decode);
    `undefined` and `punycode` raise UnicodeError. Neither may stop the page."""
    body = "<p>café</p>".encode()
    assert decode_html(body, f"text/html; charset={charset}") == ("<p>café</p>", "utf-8")
    meta = f'<meta charset="{charset}"><p>café</p>'.encode()
    assert decode_html(meta, "text/html")[1] == "utf-8"


def test_every_bad_charset_page_is_parsed(tmp_path, settings):
    cfg = dataclasses.replace(settings.stages.mine, main_content=False)
    records = charset_records()
    counts: Counter = Counter()
    pages = [item for kind, item in process_warc(str(write_warc(tmp_path / "cs.warc.gz", records)), cfg, counts)
             if kind == "page"]
    assert len(pages) == len(records) == counts["pages"]
    assert {p["charset"] for p in pages} == {"utf-8"}
    assert all([r["status"] for r in p["refs"]] == [R.KEPT, R.KEPT] for p in pages)


# ----------------------------------------------------------------------------- URIs
@pytest.mark.parametrize("uri", BAD_URIS)
def test_a_page_uri_that_does_not_parse_is_a_counted_drop(uri, settings):
    counts: Counter = Counter()
    assert page_from_record(_record(uri, b"<html><img src=a.jpg></html>"), settings.stages.mine, counts) is None
    assert counts == {R.PAGE_BAD_URI: 1}


def test_bad_uri_records_in_a_warc_are_counted(tmp_path, settings):
    counts: Counter = Counter()
    items = list(process_warc(str(write_warc(tmp_path / "uri.warc.gz", bad_uri_records())), settings.stages.mine,
                              counts))
    assert counts[R.PAGE_BAD_URI] == len(BAD_URIS) and counts["pages"] == 0
    assert [kind for kind, _ in items] == ["image"] * len(BAD_URIS)  # image records are only keyed by URI
