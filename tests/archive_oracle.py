"""An independent count of what a real crawl holds, for the miner's tests and benchmarks.

It shares no code with the miner: records come from warcio (its own gzip and chunked readers;
br bodies through the `brotli` package, since warcio 1.8's br path fails with it), pages are
read with the standard library's html.parser, URLs joined with urllib alone, images opened with
Pillow and hashed with imagehash. Per file it finds the content images that an HTTP 200 HTML page
references (`src`, any `srcset` candidate, lazy-loading attributes, `<picture><source>`) and that
the same file captured (an image/* 200 response, or a revisit of one), then applies the miner's
documented rules in its own words (pipelines.yaml: declared size, decoded size, one picture per
page, a picture on too many pages, at least two pictures a page) to say which should end up in a pair.
"""
from __future__ import annotations

import hashlib
import io
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

IMG_ATTRS = ("src", "data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
SRCSET_ATTRS = ("srcset", "data-srcset", "data-lazy-srcset")


def _srcset_urls(value: str) -> list[str]:
    # "a.jpg 1x, b.jpg 2x": a plain split is enough for an oracle (commas inside URLs are rare)
    return [part.split()[0] for part in value.split(",") if part.split()]


class _Images(HTMLParser):
    def __init__(self, page_url: str):
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.refs: list[dict] = []       # one per <img>: its candidate URLs and declared size
        self._picture: list[str] | None = None

    def _join(self, raw: str):
        raw = raw.strip()
        if not raw or raw.startswith("data:"):
            return None
        try:
            return urldefrag(urljoin(self.base, raw))[0]
        except ValueError:
            return None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "base" and a.get("href") and self.base:
            self.base = self._join(a["href"]) or self.base
        elif tag == "picture":
            self._picture = []
        elif tag == "source" and self._picture is not None:
            self._picture += _srcset_urls(a.get("srcset", ""))
        elif tag == "img":
            raws = [a[k] for k in IMG_ATTRS if a.get(k)]
            for k in SRCSET_ATTRS:
                raws += _srcset_urls(a.get(k, ""))
            raws += self._picture or []
            urls = [u for u in (self._join(r) for r in raws) if u]
            self.refs.append(dict(urls=list(dict.fromkeys(urls)), width=a.get("width"), height=a.get("height")))

    def handle_endtag(self, tag):
        if tag == "picture":
            self._picture = None


def _dechunk(data: bytes) -> bytes:
    out, i = [], 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return data
        try:
            n = int(data[i:j].split(b";")[0], 16)
        except ValueError:
            return data
        if n == 0:
            return b"".join(out)
        out.append(data[j + 2:j + 2 + n])
        i = j + 2 + n + 2


def _body(rec) -> bytes:
    h = rec.http_headers
    raw = rec.raw_stream.read()
    if h is None:
        return raw
    if "chunked" in (h.get_header("Transfer-Encoding") or "").lower():
        raw = _dechunk(raw)
    enc = (h.get_header("Content-Encoding") or "").strip().lower()
    try:
        if enc == "br":
            import brotli
            return brotli.decompress(raw)
        if enc in ("gzip", "x-gzip"):
            return zlib.decompress(raw, 47)
        if enc == "deflate":
            return zlib.decompress(raw)
    except Exception:  # noqa: BLE001 (stored already decoded, despite the header)
        return raw
    return raw


@dataclass
class Capture:
    url: str
    sha: str
    width: int
    height: int
    phash: object


@dataclass
class FileCount:
    pages: int = 0                                      # HTTP 200 HTML responses (first capture of a URL)
    refs: int = 0                                       # <img> elements on them
    captured_refs: set = field(default_factory=set)     # (page, position) with a captured candidate
    captured_images: set = field(default_factory=set)   # distinct captured URLs those refs reach
    expected: set = field(default_factory=set)          # (page, image sha) that should end up in a pair


def _open_image(body: bytes):
    from PIL import Image
    import imagehash
    try:
        im = Image.open(io.BytesIO(body))
        w, h = im.size
        if w * h > 40_000_000:
            return None
        im.load()
        return w, h, imagehash.phash(im.convert("RGB"))
    except Exception:  # noqa: BLE001 (not an image Pillow reads: SVG, corrupt)
        return None


def count_file(path, min_side: int = 32, max_aspect: float = 4.0, near: int = 6, max_pages: int = 5,
               max_domains: int = 2) -> FileCount:
    from warcio.archiveiterator import ArchiveIterator
    pages: dict[str, str] = {}
    captures: dict[str, bytes] = {}
    by_digest: dict[str, bytes] = {}
    revisits: list[tuple[str, str]] = []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f, arc2warc=True):
            uri = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<>")
            if rec.rec_type == "revisit":
                revisits.append((uri, rec.rec_headers.get_header("WARC-Payload-Digest") or ""))
                continue
            if rec.rec_type != "response" or rec.http_headers is None:
                continue
            if rec.http_headers.get_statuscode() != "200":
                continue
            ct = (rec.http_headers.get_header("Content-Type") or "").split(";")[0].strip().lower()
            body = _body(rec)
            if ct.startswith("image/"):
                captures.setdefault(urldefrag(uri)[0], body)
                by_digest.setdefault(rec.rec_headers.get_header("WARC-Payload-Digest") or "", body)
            elif ct == "text/html" and uri not in pages:
                pages[uri] = body.decode("utf-8", "replace")
    for uri, digest in revisits:
        if digest in by_digest:
            captures.setdefault(urldefrag(uri)[0], by_digest[digest])

    decoded: dict[str, Capture] = {}
    for url, body in captures.items():
        got = _open_image(body)
        if got:
            decoded[url] = Capture(url, hashlib.sha256(body).hexdigest()[:32], *got)
    out = FileCount(pages=len(pages))
    per_page: dict[str, list[Capture]] = {}
    for page, html in pages.items():
        parser = _Images(page)
        try:
            parser.feed(html)
        except Exception:  # noqa: BLE001
            continue
        out.refs += len(parser.refs)
        kept: list[Capture] = []
        for pos, ref in enumerate(parser.refs):
            hits = [u for u in ref["urls"] if u in captures]
            if not hits:
                continue
            out.captured_refs.add((page, pos))
            out.captured_images.update(hits)
            usable = [decoded[u] for u in hits if u in decoded]
            if not usable or not _declared_ok(ref, min_side, max_aspect):
                continue
            best = max(usable, key=lambda c: c.width * c.height)
            short_side, long_side = min(best.width, best.height), max(best.width, best.height)
            if short_side < min_side or long_side > max_aspect * short_side:
                continue
            if all(best.sha != k.sha and best.phash - k.phash > near for k in kept):
                kept.append(best)
        per_page[page] = kept
    pages_of, domains_of = defaultdict(set), defaultdict(set)
    for page, kept in per_page.items():
        host = page.split("/")[2].lower().removeprefix("www.") if page.count("/") >= 2 else page
        for c in kept:
            pages_of[c.sha].add(page)
            domains_of[c.sha].add(host)
    for page, kept in per_page.items():
        kept = [c for c in kept if len(pages_of[c.sha]) <= max_pages and len(domains_of[c.sha]) <= max_domains]
        if len(kept) >= 2:
            out.expected.update((page, c.sha) for c in kept)
    return out


def _declared_ok(ref: dict, min_side: int, max_aspect: float) -> bool:
    dims = []
    for k in ("width", "height"):
        v = (ref[k] or "").strip().removesuffix("px")
        dims.append(int(float(v)) if v.replace(".", "", 1).isdigit() else None)
    w, h = dims
    if (w is not None and w < min_side) or (h is not None and h < min_side):
        return False
    return not (w and h and max(w / h, h / w) > max_aspect)
