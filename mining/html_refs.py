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
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

HTML_TYPES = ("text/html", "application/xhtml+xml")
LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
LAZY_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset")
MAX_URL_LENGTH = 2048
_URL_CONTROLS = str.maketrans("", "", "\t\r\n")
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
    # every other URL the element may show, as written (src, lazy, srcset and <source> candidates):
    # what a crawl may have captured instead of `url`; resolve_candidates() resolves them against `base`
    candidates: list = field(default_factory=list)
    base: str = ""


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


# one srcset candidate, as the HTML spec's tokenizer reads it: a run of non-space characters (the URL);
# if it ends in commas they end the candidate, else descriptors follow up to the next comma
_SRCSET_CANDIDATE = re.compile(r"[\s,]*(?:([^\s,]\S*?),+(?=\s|$)|([^\s,]\S*)([^,]*))")


def parse_srcset(srcset: str) -> list[tuple[str, float, float]]:
    """[(url, width descriptor or 0, density or 1)] following the HTML spec's tokenizer."""
    out = []
    for m in _SRCSET_CANDIDATE.finditer(srcset):
        url = m.group(1) or m.group(2)
        if not url:
            continue
        w, x = 0.0, 1.0
        for d in (m.group(3) or "").split():
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
    return _largest(parse_srcset(srcset))


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
    if "\\" in raw:
        raw = raw.replace("\\", "/")
    if "\t" in raw or "\n" in raw or "\r" in raw:
        raw = raw.translate(_URL_CONTROLS)  # as urlsplit (and browsers) drop them
    if raw.startswith(("https://", "http://")) and "/." not in raw:
        url = raw  # already absolute, no dot segment: what urljoin would return (it parses twice)
    else:
        try:
            url = urljoin(base, raw)
        except ValueError:
            return None
    url, hash_, _ = url.partition("#")
    if hash_ and url.endswith("?"):
        url = url[:-1]  # as urldefrag: an empty query before a fragment goes with it
    start = url.find("//")
    if start >= 0:
        authority = url[start + 2:].partition("/")[0].partition("?")[0]
        if ":" in authority or "[" in authority or "]" in authority:
            try:
                urlsplit(url).port  # raises ValueError on a bad port or IPv6 literal
            except ValueError:
                return None
    return url.replace(" ", "%20") if " " in url else url


def _picture_source(picture) -> tuple[Optional[str], list[str]]:
    """(the URL a <picture> shows on the widest screen, every <source> candidate): among its
    <source srcset> children, the one for the widest screen, among equals the first (the
    preferred format); its largest candidate."""
    sources = [c.attributes for c in picture.iter() if c.tag == "source" and c.attributes.get("srcset")]
    if not sources:
        return None, ()
    best = max(enumerate(sources), key=lambda s: (_media_width(s[1].get("media")), -s[0]))[1]
    every = tuple(c[0] for s in sources[:MAX_CANDIDATES] for c in parse_srcset(s["srcset"])[:MAX_CANDIDATES])
    return largest_candidate(best["srcset"]), every


def _largest(cands: list) -> Optional[str]:
    return max(cands, key=lambda c: (c[1], c[2]))[0] if cands else None


def resolve_candidates(ref: "ImageRef") -> list[str]:
    """The reference's URL, then its other candidates resolved (unique, no data: URI, at most
    MAX_CANDIDATES). Done only for the references that reach the join with the crawl."""
    out = [ref.url] if ref.url else []
    for raw in ref.candidates:
        if len(out) >= MAX_CANDIDATES:
            break
        url = resolve(ref.base, raw)
        if url and url[:5].lower() != "data:" and url not in out:
            out.append(url)
    return out


def extract_refs(html: str, page_url: str) -> list[ImageRef]:
    """Every image reference in document order; og:image last (page metadata, not content).
    `candidates` holds the element's other URLs as written (resolve_candidates resolves them)."""
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
        raw, source, picture = None, "img", ()
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
        srcsets = [parse_srcset(a[attr])[:MAX_CANDIDATES] for attr in LAZY_SRCSET_ATTRS + ("srcset",) if a.get(attr)]
        if raw is None:
            for cands in srcsets:
                if cands:
                    raw, source = _largest(cands), "srcset"
                    break
        src = a.get("src")
        if raw is None:
            raw = src or ""
        if not raw.strip():
            continue
        others = [a[k] for k in LAZY_ATTRS if a.get(k)]
        if src:
            others.insert(0, src)
        for cands in srcsets:
            others += [c[0] for c in cands]
        refs.append(ImageRef(url=resolve(base, raw) or "", raw=raw, alt=(a.get("alt") or "").strip(),
                             declared_width=_dimension(a.get("width")), declared_height=_dimension(a.get("height")),
                             position=len(refs), source=source, candidates=others + list(picture), base=base))
    for raw in og:
        refs.append(ImageRef(url=resolve(base, raw) or "", raw=raw, alt="", declared_width=None, declared_height=None,
                             position=len(refs), source="og:image", base=base))
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
