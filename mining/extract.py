"""One WARC file → pages with their prefiltered image references, and in-WARC image records.

Plain functions: the Beam DoFn in steps/read_pages.py only forwards what these yield. Counts go
into a Counter keyed by (stage, reason) (mining/stats.py) that the caller turns into stats.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Iterator, Optional
from urllib.parse import urlsplit

from semantica.config import MineConfig
from semantica.mining import reasons as R
from semantica.mining import stats as S
from semantica.mining.failures import failure_row
from semantica.mining.html_bounds import MAIN_CONTENT_MAX_ATTRIBUTES, bound_html, most_attributes
from semantica.mining.html_charset import decode_html_utf8, is_html
from semantica.mining.html_refs import candidate_urls, main_content_urls, page_refs, resolve
from semantica.mining.urls import canonical_url
from semantica.mining.prefilter import prefilter_statuses
from semantica.mining.records import Alias, ImageRecord, Page, Ref
from semantica.mining.warc_io import Record, iter_records

log = logging.getLogger(__name__)
MAIN_CONTENT_MAX_CHARS = 2_000_000
READ_STAGE = S.READ_STAGE  # the stage name of a record's failures
# a page whose main-content detection raised (e.g. lxml's XMLSyntaxError on a tag named `s\x7f`, a
# fuzzing find): kept, with its references, their in_main_content unknown (None)
MAIN_CONTENT_ERROR = S.PAGES_MAIN_CONTENT_ERROR
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def domain_of(url: str) -> Optional[str]:
    """The host without a leading www. (what 'seen on M domains' counts); None if the URL does not
    parse (e.g. `http://[bad]/`)."""
    at = 8 if url.startswith("https://") else 7 if url.startswith("http://") else 0
    end = len(url)
    for sep in "/?#":
        i = url.find(sep, at, end)
        if i >= 0:
            end = i
    netloc = url[at:end]
    if at and netloc.isascii() and "@" not in netloc and "[" not in netloc and "]" not in netloc and not (
            "\t" in url or "\n" in url or "\r" in url):
        host = netloc.partition(":")[0].lower()  # what urlsplit(url).hostname gives, without its parse
    else:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return None
    return host[4:] if host.startswith("www.") else host


def looks_like_image(rec: Record) -> bool:
    ct = (rec.header("Content-Type") or "").split(";")[0].strip().lower()
    if ct.startswith("image/"):
        return True
    head = rec.body[:16]
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def page_from_record(rec: Record, cfg: MineConfig, counts: Counter) -> Optional[Page]:
    """A Page (its Refs carrying their prefilter status), or None if dropped (counted)."""
    domain = domain_of(rec.uri)
    if domain is None:
        counts[S.of_reason(R.PAGE_BAD_URI)] += 1
        log.warning("%s @%d: page URI %r does not parse: dropped", rec.warc_file, rec.offset, rec.uri[:200])
        return None
    # text, or its UTF-8 bytes where those are the body itself: Lexbor parses UTF-8, so no decode and re-encode
    content_type = rec.header("Content-Type")
    html, charset = decode_html_utf8(rec.body[:cfg.max_html_bytes], content_type)
    truncated = rec.truncated or len(rec.body) > cfg.max_html_bytes
    if truncated:
        counts[S.of_reason(R.PAGE_TRUNCATED)] += 1
    bounded = bound_html(html, cfg.parse)  # no nesting or tag count that makes a parser slow
    cuts = bounded.cuts
    try:
        refs, base, memo = page_refs(bounded.html, rec.uri)
        use_main = bool(cfg.main_content and refs)
        if use_main:
            text = html if isinstance(html, str) else html.decode("utf-8")
            main_html = bounded.html if isinstance(bounded.html, str) else text
        # trafilatura costs ~15 ms per ordinary page and grows with tags and size: skip it on huge pages
        if use_main and (bounded.tags > cfg.parse.main_content_max_tags or len(text) > MAIN_CONTENT_MAX_CHARS):
            use_main = False
            cuts = cuts + [f"main content not looked for ({bounded.tags} tags, {len(text)} characters)"]
        elif use_main and (attrs := most_attributes(main_html)) > MAIN_CONTENT_MAX_ATTRIBUTES:
            use_main = False  # lxml (in trafilatura) is quadratic in one element's attributes
            cuts = cuts + [f"main content not looked for (an element with ~{attrs} attributes)"]
    except Exception as e:  # noqa: BLE001 (a parser bug on one page must not stop the file)
        counts[S.of_reason(R.PAGE_PARSE_ERROR)] += 1
        log.warning("%s @%d: cannot parse %s: %s: %s", rec.warc_file, rec.offset, rec.uri, type(e).__name__, e)
        return None
    main: set = set()
    if use_main:
        try:
            main = main_content_urls(main_html, rec.uri)
        except Exception as e:  # noqa: BLE001 (lxml, under trafilatura, refuses some tag names: keep the refs)
            use_main = False
            counts[MAIN_CONTENT_ERROR] += 1
            log.warning("%s @%d: %s: main content not found: %s: %s", rec.warc_file, rec.offset, rec.uri[:200],
                        type(e).__name__, str(e)[:200])
    if cuts:
        counts[S.of_reason(R.PAGE_TOO_COMPLEX)] += 1
        log.info("%s @%d: %s: %s", rec.warc_file, rec.offset, rec.uri[:200], "; ".join(cuts))
    statuses = prefilter_statuses(refs, cfg.prefilter)
    kept = R.KEPT
    # positional: Ref's fields in order (url, raw_url, alt, width, height, position, source, in_main_content,
    # status, candidates); only the references that reach the join need their other URLs resolved
    out_refs = [Ref(url, raw[:2048], alt[:1000], width, height, position, source,
                    (url in main) if use_main else None, status,
                    candidate_urls(url, others, base, memo) if status == kept else None)
                for position, ((url, raw, alt, width, height, source, others), status)
                in enumerate(zip(refs, statuses))]
    return Page(page_url=rec.uri, domain=domain, warc_file=rec.warc_file, warc_offset=rec.offset,
                fetch_time=rec.date, http_status=rec.http_status, content_type=content_type,
                charset=charset, html_bytes=len(rec.body), truncated=truncated, too_complex=bool(cuts),
                refs=out_refs)


def record_items(rec: Record, cfg: MineConfig, counts: Counter) -> Iterator[tuple[str, object]]:
    """What one record gives: ('page', Page), ('image', (canonical url, ImageRecord)),
    ('alias', (canonical url, Alias)) for a revisit or a redirect, or nothing."""
    counts[S.RECORDS] += 1
    if not rec.uri:
        counts[S.RECORDS_NO_URI] += 1
        return
    status = rec.http_status or 0
    if rec.rec_type == "revisit":
        # the payload is that of an earlier capture: by its URI (and date), else by its digest
        counts[S.RECORDS_REVISIT] += 1
        target = canonical_url(rec.refers_to) if rec.refers_to else None
        yield "alias", (canonical_url(rec.uri), Alias(to=target, digest=rec.digest, date=rec.refers_to_date,
                                                      kind="revisit"))
        return
    if 300 <= status < 400 and (location := rec.header("Location")):
        # a redirect the crawler followed: the image a page names may be captured under its target
        target = resolve(rec.uri, location)
        if target and target[:5] != "data:":
            counts[S.RECORDS_REDIRECT] += 1
            yield "alias", (canonical_url(rec.uri), Alias(to=canonical_url(target), digest=None, date=None,
                                                          kind="redirect"))
    if is_html(rec.header("Content-Type"), rec.body):
        if not 200 <= status < 300:
            counts[S.of_reason(R.PAGE_HTTP_STATUS)] += 1
            return
        page = page_from_record(rec, cfg, counts)
        if page is not None:
            counts[S.PAGES] += 1
            yield "page", page
    elif 200 <= status < 300 and looks_like_image(rec):
        counts[S.RECORDS_IMAGE] += 1
        yield "image", (canonical_url(rec.uri), ImageRecord(url=rec.uri, body=rec.body, truncated=rec.truncated,
                                                            headers=rec.headers, warc_file=rec.warc_file,
                                                            warc_offset=rec.offset, digest=rec.digest))
    else:
        counts[S.RECORDS_OTHER] += 1


def process_warc(location: str, cfg: MineConfig, counts: Counter) -> Iterator[tuple[str, object]]:
    """Yield ('page', Page), ('image', (url, ImageRecord)), ('alias', (url, Alias)), for a record that
    raised ('failure', failures/ row), and for a file that could not be opened, read to its end or held
    no record ('input_error', (location, reason, error)), for one WARC file: one record's bug does not
    stop the file, nor one file's the job."""
    errors: list = []
    limit = max(cfg.max_html_bytes, cfg.download.max_bytes)
    counts[S.WARC_FILES] += 1
    n = 0
    for rec in iter_records(location, cfg.reader, limit, errors):
        n += 1
        try:
            items = list(record_items(rec, cfg, counts))
        except Exception as e:  # noqa: BLE001 (contained per record: counted and written aside)
            counts[S.internal_error(READ_STAGE)] += 1
            log.warning("%s @%d: %s: %s: %s", rec.warc_file, rec.offset, S.name(S.internal_error(READ_STAGE)),
                        type(e).__name__, e)
            yield "failure", failure_row(READ_STAGE, e, rec.warc_file, rec.offset, rec.uri,
                                         dict(uri=rec.uri, headers=rec.headers, body=rec.body))
            continue
        yield from items
    if n == 0 and not errors:
        counts[S.of_reason(R.WARC_EMPTY)] += 1
        yield "input_error", (location, R.WARC_EMPTY, "no WARC or ARC record in the file")
    for reason, detail in errors:
        counts[S.of_reason(reason)] += 1
        first = detail.splitlines()[0] if detail else reason
        log.warning("%s", first)
        yield "input_error", (location, reason, first.removeprefix(f"{location}: "))
