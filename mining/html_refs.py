"""From one HTML page to its image references.

For each image: the absolute URL a browser would fetch at full size (`<base href>`, relative and
protocol-relative URLs; lazy `data-src`; the largest `srcset` candidate; the first `<source>` of a
`<picture>` for the widest screen; `og:image` listed after the body), every other candidate URL of
the element (what a crawl may have captured instead), alt text, declared width and height,
ordinal position, and whether it lies in the page's main content (trafilatura). The tag walk uses
Lexbor (selectolax), ~2× faster than lxml here. Which records are pages, and how their bytes
decode: mining/html_charset.py.
"""
from __future__ import annotations

import re
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Optional, Union
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
LAZY_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset")
MAX_URL_LENGTH = 2048
_URL_CONTROLS = str.maketrans("", "", "\t\r\n")
MAX_CANDIDATES = 16  # per element: a real srcset has a handful; a hostile one, thousands
_MAX_WIDTH = re.compile(r"max-width\s*:\s*(\d+(?:\.\d+)?)", re.I)
_DIMENSION = re.compile(r"^\s*(\d{1,6})(?:\.\d*)?\s*(?:px)?\s*$")


@dataclass(slots=True)
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
    # raw → resolve(base, raw), shared by a page's references: resolve_candidates' memo
    resolved: Optional[dict] = field(default=None, compare=False, repr=False)


# one srcset candidate, as the HTML spec's tokenizer reads it: a run of non-space characters (the URL);
# if it ends in commas they end the candidate, else descriptors follow up to the next comma
_SRCSET_CANDIDATE = re.compile(r"[\s,]*(?:([^\s,]\S*?),+(?=\s|$)|([^\s,]\S*)([^,]*))")


def _descriptors(url: str, descriptors) -> tuple[str, float, float]:
    w, x = 0.0, 1.0
    for d in descriptors:
        try:
            if d.endswith("w"):
                w = float(d[:-1])
            elif d.endswith("x"):
                x = float(d[:-1])
        except ValueError:
            pass
    return url, w, x


def parse_srcset(srcset: str) -> list[tuple[str, float, float]]:
    """[(url, width descriptor or 0, density or 1)] following the HTML spec's tokenizer."""
    if "," not in srcset or srcset.count(",") == srcset.count(", "):
        # every comma followed by a space (or none): no URL holds a comma, so the candidates are
        # what lies between commas, each a URL and its descriptors (what the regex below finds)
        out = []
        for candidate in srcset.split(","):
            words = candidate.split()
            if not words:
                continue
            if len(words) == 1:
                out.append((words[0], 0.0, 1.0))
            elif len(words) == 2 and words[1][-1:] == "w" and words[1][:-1].isdecimal():
                out.append((words[0], float(words[1][:-1]), 1.0))  # `url 768w`, the usual form
            else:
                out.append(_descriptors(words[0], words[1:]))
        return out
    out = []
    for url, url_then_descriptors, descriptors in _SRCSET_CANDIDATE.findall(srcset):
        url = url or url_then_descriptors
        if url:
            out.append(_descriptors(url, descriptors.split()))
    return out


def largest_candidate(srcset: str) -> Optional[str]:
    return _largest(parse_srcset(srcset))


def _media_width(media: Optional[str]) -> float:
    """How wide a screen a <source media=…> serves: no media or min-width → any; max-width: N → N."""
    if not media:
        return float("inf")
    m = _MAX_WIDTH.search(media)
    return float(m.group(1)) if m else float("inf")


_DIMENSIONS: dict = {}  # declared width / height as written → its value: a page repeats a few


def _dimension(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        return _DIMENSIONS[value]
    except KeyError:
        pass
    m = _DIMENSION.match(value)
    out = int(m.group(1)) if m else None
    if len(_DIMENSIONS) < 4096:
        _DIMENSIONS[value] = out
    return out


# a scheme as urlsplit finds one: an ASCII letter, then letters, digits, '+', '-', '.', then ':'
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_BASES: dict = {}  # base URL → (scheme, "scheme://netloc", directory or None), or None: see _join


def _base(base: str):
    """What urljoin takes from an http(s) base: its scheme, "scheme://netloc", and the directory its
    path ends in (None where that has an empty or dot segment, which urljoin rewrites); None for a
    base that is not http(s) with a host, or does not parse."""
    try:
        return _BASES[base]
    except KeyError:
        pass
    out = None
    try:
        s = urlsplit(base) if base else None
    except ValueError:
        s = None
    if s is not None and s.scheme in ("http", "https") and s.netloc:
        directory = s.path[:s.path.rfind("/") + 1] or "/"
        out = (s.scheme, s.scheme + "://" + s.netloc,
               None if "//" in directory or "/." in directory else directory)
    if len(_BASES) >= 1024:
        _BASES.clear()
    _BASES[base] = out
    return out


def _join(base: str, raw: str) -> Optional[str]:
    """urljoin(base, raw) without parsing either again, for the common relative forms: `//host/path`,
    `/path` and `path` (no dot segment, no empty segment, no `;params`) against an http(s) base;
    None where it does not apply (the caller then asks urljoin)."""
    b = _base(base)
    if b is None or raw[0] <= " ":  # urlsplit strips leading C0 controls
        return None
    before, _, fragment = raw.partition("#")
    path, _, query = before.partition("?")
    if ";" in path:
        return None
    if path[:1] == "/":
        if path[1:2] == "/":  # network-path: the base gives the scheme only; urljoin keeps the path as is
            i = path.find("/", 2)
            netloc = path[2:] if i < 0 else path[2:i]
            if not netloc or not netloc.isascii() or "[" in netloc or "]" in netloc:
                return None
            url = b[0] + ":" + path
        elif "/." in path:
            return None
        else:
            url = b[1] + path
    elif not path or path[0] == "." or "/." in path or "//" in path or b[2] is None or (
            ":" in raw and _SCHEME.match(raw)):
        return None
    else:
        url = b[1] + b[2] + path
    if query:  # as urlunsplit: an empty query or fragment is dropped
        url += "?" + query
    return url + "#" + fragment if fragment else url


def resolve(base: str, raw: str) -> Optional[str]:
    """Absolute URL without fragment; None for URLs no browser would fetch."""
    raw = raw.strip()
    if not raw:
        return None
    if raw[0] in "dD" and raw[:5].lower() == "data:":
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
        url = _join(base, raw)  # the common relative forms, without urljoin's two parses
        if url is None:
            try:
                url = urljoin(base, raw)
            except ValueError:
                return None
    if "#" in url:
        url, hash_, _ = url.partition("#")
        if hash_ and url.endswith("?"):
            url = url[:-1]  # as urldefrag: an empty query before a fragment goes with it
    start = url.find("//")
    # (no ':', '[' or ']' after the '//': no port or IPv6 literal to check)
    if start >= 0 and (url.find(":", start) >= 0 or url.find("[", start) >= 0 or url.find("]", start) >= 0):
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
    source_id = _tag_id("source")
    sources = []
    for c in picture.iter():
        if c.tag_id == source_id and c.tag == "source":
            a = c.attributes
            if a.get("srcset"):
                sources.append(a)
    if not sources:
        return None, ()
    parsed = [parse_srcset(a["srcset"]) for a in sources[:MAX_CANDIDATES]]
    if any(a.get("media") for a in sources):
        i = max(range(len(sources)), key=lambda i: (_media_width(sources[i].get("media")), -i))
    else:
        i = 0  # no media query: every source serves any screen, the first wins
    best = parsed[i] if i < len(parsed) else parse_srcset(sources[i]["srcset"])
    every = tuple(c[0] for cands in parsed for c in cands[:MAX_CANDIDATES])
    return _largest(best), every


_WIDTH_DENSITY = itemgetter(1, 2)


def _largest(cands: list) -> Optional[str]:
    if len(cands) == 1:
        return cands[0][0]
    return max(cands, key=_WIDTH_DENSITY)[0] if cands else None


def resolve_candidates(ref: "ImageRef") -> list[str]:
    """The reference's URL, then its other candidates resolved (unique, no data: URI, at most
    MAX_CANDIDATES). Done only for the references that reach the join with the crawl."""
    return candidate_urls(ref.url, ref.candidates, ref.base, ref.resolved)


def candidate_urls(url: str, others: list, base: str, memo: Optional[dict]) -> list[str]:
    """resolve_candidates of a reference given as its URL, its other URLs as written, its base and
    the page's memo (raw → resolve(base, raw), or None)."""
    out = [url] if url else []
    if len(others) == 1 and memo is not None and memo.get(others[0], _MISSING) == url:
        return out  # the common <img>: its only other URL is its src, already resolved to `url`
    for raw in others:
        if len(out) >= MAX_CANDIDATES:
            break
        if memo is None:
            resolved = resolve(base, raw)
        else:
            resolved = memo.get(raw, _MISSING)
            if resolved is _MISSING:
                resolved = memo[raw] = resolve(base, raw)
        if resolved and (resolved[0] not in "dD" or resolved[:5].lower() != "data:") and resolved not in out:
            out.append(resolved)
    return out


_MISSING = object()
# attributes that make an <img> more than its src: lazy-loading and srcset ones
_SPECIAL_ORDER = LAZY_ATTRS + LAZY_SRCSET_ATTRS + ("srcset",)
_SPECIAL_ATTRS = frozenset(_SPECIAL_ORDER)
_SRCSET_ATTRS = frozenset(LAZY_SRCSET_ATTRS + ("srcset",))
_TAG_IDS: dict = {}


def _tag_id(name: str) -> int:
    """Lexbor's id of a tag name (the same whatever the namespace)."""
    if name not in _TAG_IDS:
        _TAG_IDS[name] = LexborHTMLParser(f"<{name}>", is_fragment=True).css_first(name).tag_id
    return _TAG_IDS[name]


WALK_SELECTOR = "img, meta, base[href], picture"  # what _walk reads of a page


def _walk(html: Union[str, bytes], page_url: str) -> tuple[list, list[str], str, bool]:
    """Parse the page, walk it once: (its <img> nodes in order, its og:image URLs as written, its
    references' base, whether it has a <picture>)."""
    tree = LexborHTMLParser(html)
    nodes = tree.css(WALK_SELECTOR)  # one walk of the tree, in document order
    meta_id, base_id, picture_id = _tag_id("meta"), _tag_id("base"), _tag_id("picture")
    imgs, og = [], []
    base_node = None
    has_picture = False
    for node in nodes:
        tag_id = node.tag_id
        if tag_id == meta_id and node.tag == "meta":
            a = node.attributes
            if (a.get("property") or a.get("name") or "").lower() in ("og:image", "og:image:url") and a.get("content"):
                og.append(a["content"])
        elif tag_id == base_id:
            if base_node is None:
                base_node = node
        elif tag_id == picture_id:
            has_picture = True
        else:
            imgs.append(node)
    if base_node is None:
        return imgs, og, page_url, has_picture
    return imgs, og, resolve(page_url, base_node.attributes.get("href") or "") or page_url, has_picture


def _img_refs(imgs: list, base: str, memo: dict, has_picture: bool) -> list[tuple]:
    """The reference (a tuple: see page_refs) of each <img> node that shows a URL, in order (the hot
    loop: no per-element helper calls). Without `has_picture`, no <img> has a <picture> parent to look at."""
    picture_id = _tag_id("picture")
    refs: list[tuple] = []
    picture_choice: dict[int, tuple] = {}  # one look at a <picture>'s children, however many <img> it has
    for node in imgs:
        a = node.attributes
        raw, source, picture = None, "img", ()
        parent = node.parent if has_picture else None
        if parent is not None and parent.tag_id == picture_id and parent.tag == "picture":
            if parent.mem_id not in picture_choice:
                picture_choice[parent.mem_id] = _picture_source(parent)
            best, picture = picture_choice[parent.mem_id]
            if best is not None:
                raw, source = best, "picture"
        src = a.get("src")
        if a.keys().isdisjoint(_SPECIAL_ATTRS):  # the common <img>: its src, nothing else
            if raw is None:
                raw = src or ""
            if not raw.strip():
                continue
            others = [src] if src else []
        else:
            special = [k for k in _SPECIAL_ORDER if a.get(k)]  # present and not empty, in LAZY, srcset order
            if raw is None:
                for attr in special:
                    if attr in LAZY_ATTRS and not a[attr].startswith("data:"):
                        raw, source = a[attr], "lazy"
                        break
            srcsets = [parse_srcset(a[attr])[:MAX_CANDIDATES] for attr in special if attr in _SRCSET_ATTRS]
            if raw is None:
                for cands in srcsets:
                    if cands:
                        raw, source = _largest(cands), "srcset"
                        break
            if raw is None:
                raw = src or ""
            if not raw.strip():
                continue
            others = [src] if src else []
            others += [a[k] for k in special if k in LAZY_ATTRS]
            for cands in srcsets:
                others += [c[0] for c in cands]
        url = memo.get(raw, _MISSING)
        if url is _MISSING:
            url = memo[raw] = resolve(base, raw)
        alt = a.get("alt")
        refs.append((url or "", raw, alt.strip() if alt else "", _dimension(a.get("width")),
                     _dimension(a.get("height")), source, others + list(picture) if picture else others))
    return refs


# page_refs' reference: (url, raw, alt, declared width, declared height, source, others), where `url` is
# absolute ("" for one no browser would fetch), `raw` as written and `others` every other URL of the
# element as written. A tuple, not an ImageRef: the mining path makes its output row from it directly.
URL, RAW, ALT, WIDTH, HEIGHT, SOURCE, OTHERS = range(7)


def page_refs(html: Union[str, bytes], page_url: str) -> tuple[list[tuple], str, dict]:
    """(every image reference in document order as a tuple (above), og:image last; the base they
    resolve against; the memo raw → resolve(base, raw) that candidate_urls reuses). `html`: text,
    or its UTF-8 bytes."""
    imgs, og, base, has_picture = _walk(html, page_url)
    memo: dict = {}  # raw → resolve(base, raw): candidate_urls meets the same URLs again
    refs = _img_refs(imgs, base, memo, has_picture)
    for raw in og:
        url = memo.get(raw, _MISSING)
        if url is _MISSING:
            url = memo[raw] = resolve(base, raw)
        refs.append((url or "", raw, "", None, None, "og:image", []))
    return refs, base, memo


def extract_refs(html: Union[str, bytes], page_url: str) -> list[ImageRef]:
    """page_refs' references as ImageRefs (their position is their index): every image reference in
    document order; og:image last (page metadata, not content). `candidates` holds the element's
    other URLs as written (resolve_candidates resolves them)."""
    refs, base, memo = page_refs(html, page_url)
    return [ImageRef(url, raw, alt, w, h, i, source, None, others, base, memo)
            for i, (url, raw, alt, w, h, source, others) in enumerate(refs)]


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
