"""From one HTML response to its image references.

Which records are pages (HTTP content type, else sniffing), which charset decodes them
(HTTP header, then `<meta>`, then UTF-8, then windows-1252), and for each image:
the absolute URL a browser would fetch at full size (`<base href>`, relative and
protocol-relative URLs; lazy `data-src`; the largest `srcset` candidate; the first
`<source>` of a `<picture>` for the widest screen; `og:image` listed after the body), every
other candidate URL of the element (what a crawl may have captured instead), alt text, declared width
and height, ordinal position, and whether it lies in the page's main content
(trafilatura). The tag walk uses Lexbor (selectolax), ~2× faster than lxml here.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urldefrag, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

HTML_TYPES = ("text/html", "application/xhtml+xml")
LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
LAZY_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset")
MAX_URL_LENGTH = 2048
MAX_CANDIDATES = 16  # per element: a real srcset has a handful; a hostile one, thousands
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)
_MAX_WIDTH = re.compile(r"max-width\s*:\s*(\d+(?:\.\d+)?)", re.I)
_DIMENSION = re.compile(r"^\s*(\d{1,6})(?:\.\d*)?\s*(?:px)?\s*$")


@dataclass
class ImageRef:
    url: str                       # absolute (or the data: URI itself)
    raw: str                       # as written in the HTML
    alt: str
    declared_width: Optional[int]
    declared_height: Optional[int]
    position: int
    source: str                    # img | lazy | srcset | picture | og:image
    in_main_content: Optional[bool] = None
    # every URL the element may show (url first, then src, srcset, lazy and <source> candidates in
    # document order): what a crawl may have captured instead of `url`
    candidates: list = field(default_factory=list)


def is_html(content_type: Optional[str], body: bytes) -> bool:
    """By the HTTP content type; where there is none (or a generic one), by sniffing the bytes."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in HTML_TYPES:
        return True
    if ct and ct not in ("application/octet-stream", "unknown/unknown", "text/plain"):
        return False
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or (b"<html" in head and b"<body" in body[:4096].lower())


def _codec(name: Optional[str]) -> Optional[str]:
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except LookupError:
        return None
    # hex, base64, rot13, zlib, uu…: Python registers byte transforms as codecs; they are no charset
    return info.name if info._is_text_encoding else None


def decode_html(body: bytes, content_type: Optional[str]) -> tuple[str, str]:
    """(text, charset used). Never raises: the last resort replaces undecodable bytes."""
    m = _HEADER_CHARSET.search(content_type or "")
    candidates = [_codec(m.group(1)) if m else None]
    m = _META_CHARSET.search(body[:4096])
    candidates.append(_codec(m.group(1).decode("ascii", "replace")) if m else None)
    candidates += ["utf-8"]
    for cs in candidates:
        if cs is None:
            continue
        try:
            return body.decode(cs), cs
        except UnicodeError:  # also `undefined` and `punycode`, which raise the base class
            continue
    return body.decode("cp1252", errors="replace"), "cp1252"


def parse_srcset(srcset: str) -> list[tuple[str, float, float]]:
    """[(url, width descriptor or 0, density or 1)] following the HTML spec's tokenizer."""
    out, i, n = [], 0, len(srcset)
    while i < n:
        while i < n and (srcset[i].isspace() or srcset[i] == ","):
            i += 1
        start = i
        while i < n and not srcset[i].isspace():
            i += 1
        url = srcset[start:i]
        descriptor = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = i
            while i < n and srcset[i] != ",":
                i += 1
            descriptor = srcset[start:i].strip()
        if not url:
            continue
        w, x = 0.0, 1.0
        for d in descriptor.split():
            try:
                if d.endswith("w"):
                    w = float(d[:-1])
                elif d.endswith("x"):
                    x = float(d[:-1])
            except ValueError:
                pass
        out.append((url, w, x))
    return out


def largest_candidate(srcset: str) -> Optional[str]:
    cands = parse_srcset(srcset)
    if not cands:
        return None
    return max(cands, key=lambda c: (c[1], c[2]))[0]


def _media_width(media: Optional[str]) -> float:
    """How wide a screen a <source media=…> serves: no media or min-width → any; max-width: N → N."""
    if not media:
        return float("inf")
    m = _MAX_WIDTH.search(media)
    return float(m.group(1)) if m else float("inf")


def _dimension(value: Optional[str]) -> Optional[int]:
    m = _DIMENSION.match(value or "")
    return int(m.group(1)) if m else None


def resolve(base: str, raw: str) -> Optional[str]:
    """Absolute URL without fragment; None for URLs no browser would fetch."""
    raw = raw.strip()
    if not raw:
        return None
    if raw[:5].lower() == "data:":
        return raw
    if len(raw) > MAX_URL_LENGTH:
        return None
    try:
        url = urldefrag(urljoin(base, raw.replace("\\", "/")))[0]
        urlsplit(url).port  # raises ValueError on a bad port or IPv6 literal
    except ValueError:
        return None
    return url.replace(" ", "%20")


def _picture_source(picture) -> tuple[Optional[str], list[str]]:
    """(the URL a <picture> shows on the widest screen, every <source> candidate): among its
    <source srcset> children, the one for the widest screen, among equals the first (the
    preferred format); its largest candidate."""
    sources = [c.attributes for c in picture.iter() if c.tag == "source" and c.attributes.get("srcset")]
    if not sources:
        return None, []
    best = max(enumerate(sources), key=lambda s: (_media_width(s[1].get("media")), -s[0]))[1]
    every = [c[0] for s in sources[:MAX_CANDIDATES] for c in parse_srcset(s["srcset"])[:MAX_CANDIDATES]]
    return largest_candidate(best["srcset"]), every


def _candidates(a, picture: list[str]) -> list[str]:
    """Every URL written on an <img> (and its <picture>), in document order."""
    raws = [a[k] for k in ("src",) + LAZY_ATTRS if a.get(k)]
    for k in ("srcset",) + LAZY_SRCSET_ATTRS:
        if a.get(k):
            raws += [c[0] for c in parse_srcset(a[k])[:MAX_CANDIDATES]]
    return raws + picture


def extract_refs(html: str, page_url: str) -> list[ImageRef]:
    """Every image reference in document order; og:image last (page metadata, not content)."""
    tree = LexborHTMLParser(html)
    base = page_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = resolve(page_url, base_node.attributes.get("href") or "") or page_url
    refs: list[ImageRef] = []
    og: list[str] = []
    picture_choice: dict[int, tuple] = {}  # one look at a <picture>'s children, however many <img> it has
    for node in tree.css("img, meta"):
        a = node.attributes
        if node.tag == "meta":
            if (a.get("property") or a.get("name") or "").lower() in ("og:image", "og:image:url") and a.get("content"):
                og.append(a["content"])
            continue
        raw, source, picture = None, "img", []
        parent = node.parent
        if parent is not None and parent.tag == "picture":
            if parent.mem_id not in picture_choice:
                picture_choice[parent.mem_id] = _picture_source(parent)
            best, picture = picture_choice[parent.mem_id]
            if best is not None:
                raw, source = best, "picture"
        if raw is None:
            for attr in LAZY_ATTRS:
                if a.get(attr) and not a[attr].startswith("data:"):
                    raw, source = a[attr], "lazy"
                    break
        if raw is None:
            for attr in LAZY_SRCSET_ATTRS + ("srcset",):
                if a.get(attr):
                    raw = largest_candidate(a[attr])
                    if raw:
                        source = "srcset"
                        break
        if raw is None:
            raw = a.get("src") or ""
        if not raw.strip():
            continue
        url = resolve(base, raw)
        cands = [url] if url else []
        for other in _candidates(a, picture):
            if other != raw and len(cands) < MAX_CANDIDATES and (u := resolve(base, other)) and u[:5] != "data:" \
                    and u not in cands:
                cands.append(u)
        refs.append(ImageRef(url=url or "", raw=raw, alt=(a.get("alt") or "").strip(),
                             declared_width=_dimension(a.get("width")), declared_height=_dimension(a.get("height")),
                             position=len(refs), source=source, candidates=cands))
    for raw in og:
        url = resolve(base, raw)
        refs.append(ImageRef(url=url or "", raw=raw, alt="", declared_width=None, declared_height=None,
                             position=len(refs), source="og:image", candidates=[url] if url else []))
    return refs


def main_content_urls(html: str, page_url: str) -> set[str]:
    """URLs of the images trafilatura keeps in the page's main content."""
    import trafilatura
    xml = trafilatura.extract(html, url=page_url, include_images=True, output_format="xml",
                              include_comments=False, include_tables=True)
    if not xml:
        return set()
    out = set()
    for m in re.finditer(r'<graphic[^>]*\bsrc="([^"]+)"', xml):
        src = m.group(1).replace("&amp;", "&")
        url = resolve(page_url, src)
        if url:
            out.add(url)
    return out
