"""Inputs that once crashed or stalled the miner (issue 10), one class per test: bad charsets,
unparseable URIs."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from semantica.mining import reasons as R
from semantica.mining import stats as S
from semantica.mining.extract import page_from_record, process_warc
from semantica.mining.html_charset import decode_html
from semantica.mining.warc_io import Record

from hostile_inputs import BAD_TEXT_CODECS, BAD_URIS, BYTE_TRANSFORMS, bad_uri_records, charset_records, write_warc

TOO_COMPLEX = S.of_reason(R.PAGE_TOO_COMPLEX)


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
    assert len(pages) == len(records) == counts[S.PAGES]
    assert {p.charset for p in pages} == {"utf-8"}
    assert all([r.status for r in p.refs] == [R.KEPT, R.KEPT] for p in pages)


# ----------------------------------------------------------------------------- URIs
@pytest.mark.parametrize("uri", BAD_URIS)
def test_a_page_uri_that_does_not_parse_is_a_counted_drop(uri, settings):
    counts: Counter = Counter()
    assert page_from_record(_record(uri, b"<html><img src=a.jpg></html>"), settings.stages.mine, counts) is None
    assert counts == {S.of_reason(R.PAGE_BAD_URI): 1}


def test_bad_uri_records_in_a_warc_are_counted(tmp_path, settings):
    counts: Counter = Counter()
    items = list(process_warc(str(write_warc(tmp_path / "uri.warc.gz", bad_uri_records())), settings.stages.mine,
                              counts))
    assert counts[S.of_reason(R.PAGE_BAD_URI)] == len(BAD_URIS) and counts[S.PAGES] == 0
    assert [kind for kind, _ in items] == ["image"] * len(BAD_URIS)  # image records are only keyed by URI


# ----------------------------------------------------------------------------- parse time
def _timed_page(body: bytes, cfg, counts: Counter):
    """The page and the CPU seconds its parse took (CPU, not wall-clock: other jobs on the machine stretch the
    latter; the unbounded parses cost 2-4 s of CPU, far above the bound)."""
    import time
    t0 = time.process_time()
    page = page_from_record(_record("http://hostile.example.org/p.html", body), cfg, counts)
    return page, time.process_time() - t0


@pytest.mark.parametrize("case", ["deep_divs", "wide_picture", "nested_paragraphs"])
def test_no_reproducer_takes_a_second_to_parse(case, settings):
    """Sizes at which the unbounded parse took 2-4 s here (40,000 nested <div>: 3.9 s in Lexbor; 5,000
    <img> in one <picture>: a quadratic walk; 40,000 open <p>: 2.4 s in trafilatura)."""
    import hostile_inputs
    body = {"deep_divs": lambda: hostile_inputs.deep_divs(40_000),
            "wide_picture": lambda: hostile_inputs.wide_picture(5_000),
            "nested_paragraphs": lambda: hostile_inputs.nested_paragraphs(40_000)}[case]()
    counts: Counter = Counter()
    page, seconds = _timed_page(body, settings.stages.mine, counts)
    assert seconds < 1.0, (case, seconds)
    assert page is not None and page.too_complex == (counts[TOO_COMPLEX] == 1)
    if case == "wide_picture":  # every <img> of the picture shows the picture's widest source
        assert {r.url for r in page.refs} == {"http://hostile.example.org/wide.webp"}
        assert len(page.refs) == 5_000 and not page.too_complex
    if case == "nested_paragraphs":  # the images before the cut are kept; main content was not looked for
        assert [r.url for r in page.refs] == ["http://hostile.example.org/np-a.jpg",
                                             "http://hostile.example.org/np-b.jpg"]
        assert {r.in_main_content for r in page.refs} == {None}


def _deep_page(depth: int) -> str:
    """Realistic references at the bottom of `depth` nested block elements."""
    refs = ('<base href="https://cdn.example.org/m/"><img src="a.jpg" alt="A" width="300" height="200">'
            '<picture><source media="(max-width: 600px)" srcset="s.webp"><source srcset="l.webp 1x, xl.webp 2x">'
            '<img src="p.jpg"></picture><img data-src="lazy.jpg" src="data:image/gif;base64,R0lGOD">'
            '<div title="<div>"><img srcset="x1.jpg 1x, x2.jpg 2x"></div><meta property="og:image" content="/og.jpg">')
    return "<html><head></head><body>" + "<div><section>" * (depth // 2) + refs + "</section></div>" * (depth // 2) \
        + "<p>after</p><img src=tail.jpg></body></html>"


def test_flattening_keeps_every_reference(settings):
    """A page just over the scan threshold, deep enough to be flattened (6,000 levels, still parseable
    as is): the references from the flattened page equal those from the page as given."""
    from semantica.mining.html_bounds import SAFE_TAGS, bound_html
    from semantica.mining.html_refs import extract_refs
    html = _deep_page(6_000)
    assert html.count("<") > SAFE_TAGS
    bounded = bound_html(html, settings.stages.mine.parse)
    assert bounded.cuts and bounded.cuts[0].endswith("deeper than 512 levels removed")
    assert len(bounded.html) < len(html) / 5
    as_given = [(r.url, r.alt, r.source, r.declared_width) for r in extract_refs(html, "https://e.org/a/p.html")]
    flattened = [(r.url, r.alt, r.source, r.declared_width) for r in extract_refs(bounded.html, "https://e.org/a/p.html")]
    assert flattened == as_given and len(as_given) == 6
    assert as_given[1][:3] == ("https://cdn.example.org/m/xl.webp", "", "picture")


def test_small_and_ordinary_pages_pass_untouched(settings):
    from semantica.mining.html_bounds import bound_html
    cfg = settings.stages.mine.parse
    for html in (_deep_page(2_000), "<p>x" * 9_000, "<html><body>" + "<b>" * 9_998):
        b = bound_html(html, cfg)
        assert b.html is html and b.cuts == []


def test_tags_past_the_limit_are_cut_and_unfinished_tags_left_alone(settings):
    from semantica.mining.html_bounds import bound_html
    cfg = dataclasses.replace(settings.stages.mine.parse, max_tags=20_000)
    b = bound_html('<img src="first.jpg">' + "<span>x</span>" * 15_000 + '<img src="last.jpg">', cfg)
    assert "first.jpg" in b.html and "last.jpg" not in b.html and b.cuts == ["cut after 20000 tags of 30002"]
    unfinished = "<div>" * 12_000 + "<div class='never closed"  # no '>' left: nothing to remove past it
    b = bound_html(unfinished, cfg)
    assert b.html.endswith("<div class='never closed") and b.html.count("<div>") == 512


def test_main_content_is_skipped_on_pages_with_many_tags(settings):
    cfg = settings.stages.mine
    body = ('<html><body><article><img src="/a.jpg"><img src="/b.jpg">' + "<p>text</p>" * 6_000
            + "</article></body></html>").encode()
    counts: Counter = Counter()
    page, seconds = _timed_page(body, cfg, counts)
    assert counts[TOO_COMPLEX] == 1 and page.too_complex
    assert [r.in_main_content for r in page.refs] == [None, None]


# ----------------------------------------------------------------------------- fuzzing finds (issue 15)
def _many_attributes(n: int) -> bytes:
    """The fuzz harness's find (page:1:7 of benchmarks/fuzz_mining.py), reduced: garbage after a stray
    quote in an <img srcset> is read as thousands of attributes of one element."""
    return ('<html><body><p>Some text.</p><img srcset="a.jpg 1w"' + "".join(f" x{i}" for i in range(n))
            + '><img src="/b.jpg" width="200" height="100"></body></html>').encode()


def test_an_element_with_many_attributes_skips_main_content(settings):
    """libxml2 (under trafilatura) is quadratic in one element's attributes: 16,500 took 4-8 s. Past
    1,000 main content is not looked for (counted too_complex); the references are still found."""
    import time
    counts: Counter = Counter()
    t0 = time.process_time()
    page = page_from_record(_record("http://hostile.example.org/p.html", _many_attributes(20_000)),
                            settings.stages.mine, counts)
    assert time.process_time() - t0 < 1.5
    assert counts[TOO_COMPLEX] == 1 and page.too_complex
    assert [r.url for r in page.refs] == ["http://hostile.example.org/a.jpg", "http://hostile.example.org/b.jpg"]
    assert {r.in_main_content for r in page.refs} == {None}


def test_long_quoted_attributes_keep_main_content(settings):
    from semantica.mining.html_bounds import MAIN_CONTENT_MAX_ATTRIBUTES, most_attributes
    props = "word " * 50_000  # one long value (inline JSON, a long alt): one attribute
    html = f'<html><body><article><p>Text.</p><div data-props="{props}" class="x">y</div><img src="/a.jpg"></article>'
    assert most_attributes(html) == 0 or most_attributes(html) <= 3
    assert most_attributes(_many_attributes(5_000).decode()) > MAIN_CONTENT_MAX_ATTRIBUTES
    assert most_attributes(_many_attributes(500).decode()) <= MAIN_CONTENT_MAX_ATTRIBUTES
    assert most_attributes("<div " + "a " * 5_000) > MAIN_CONTENT_MAX_ATTRIBUTES  # an unfinished tag
    counts: Counter = Counter()
    page = page_from_record(_record("http://hostile.example.org/p.html", html.encode()), settings.stages.mine, counts)
    assert not page.too_complex and page.refs[0].in_main_content is not None


def test_a_page_whose_main_content_detection_raises_keeps_its_references(settings):
    """A fuzzing find (page:1:1172 of benchmarks/fuzz_mining.py, reduced by delta debugging): lxml, under
    trafilatura, raises XMLSyntaxError on a tag named `s\\x7f`; the page was dropped as a parse error with
    all its references. Now it is kept, in_main_content unknown, and the failure counted."""
    from semantica.mining.extract import MAIN_CONTENT_ERROR
    body = '<a><a><article><div>f<s\x7f>e<img src="/a.jpg"><img src="/b.jpg">'.encode()
    counts: Counter = Counter()
    page = page_from_record(_record("http://hostile.example.org/p.html", body), settings.stages.mine, counts)
    assert page is not None and counts == {MAIN_CONTENT_ERROR: 1}
    assert [r.url for r in page.refs] == ["http://hostile.example.org/a.jpg", "http://hostile.example.org/b.jpg"]
    assert {r.in_main_content for r in page.refs} == {None}
