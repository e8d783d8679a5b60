"""Cheap filters on a page's image references, before any byte is fetched.

Each filter answers keep, or drop with a reason (mining/reasons.py). Order matters only
for which reason a reference gets: the first filter that drops it names it.
"""
from __future__ import annotations

import posixpath
from typing import Optional
from urllib.parse import urlsplit

from semantica.config import PrefilterConfig
from semantica.mining import reasons as R
from semantica.mining.html_refs import HEIGHT, URL, WIDTH, ImageRef


def url_reason(url: str, cfg: PrefilterConfig) -> Optional[str]:
    return _url_reason(url, cfg.allowed_schemes, cfg.blocked_extensions)


def _url_reason(url: str, allowed_schemes, blocked_extensions) -> Optional[str]:
    if not url:
        return R.PRE_BAD_URL
    if url[0] in "dD" and url[:5].lower() == "data:":
        return R.PRE_DATA_URI
    # http(s)://host/path as resolve() writes them, read in place: what urlsplit would find
    if url.startswith("https://"):
        scheme, at = "https", 8
    elif url.startswith("http://"):
        scheme, at = "http", 7
    else:
        return _url_reason_parsed(url, allowed_schemes, blocked_extensions)
    slash = url.find("/", at)
    netloc = url[at:] if slash < 0 else url[at:slash]
    if ("?" in netloc or "#" in netloc or "@" in netloc or "[" in netloc or "]" in netloc or not netloc.isascii()
            or "\t" in url or "\n" in url or "\r" in url):
        return _url_reason_parsed(url, allowed_schemes, blocked_extensions)  # query, userinfo, IPv6, IDNA…
    if scheme not in allowed_schemes:
        return R.PRE_SCHEME
    if netloc[:1] == ":" or not netloc:
        return R.PRE_BAD_URL  # no host
    if slash < 0:
        return None  # no path, no extension
    end = len(url)  # the path ends at the first '?' or '#'
    i = url.find("?", slash)
    if i >= 0:
        end = i
    i = url.find("#", slash, end)
    if i >= 0:
        end = i
    name = url.rfind("/", slash, end) + 1
    dot = url.rfind(".", name, end)
    if dot > name and url[name:dot].strip("."):  # as posixpath.splitext: leading dots name no extension
        # lowered alone, not with the whole path: the same answer against ASCII extensions
        if url[dot:end].lower() in blocked_extensions:
            return R.PRE_EXTENSION
    return None


def _url_reason_parsed(url: str, allowed_schemes, blocked_extensions) -> Optional[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return R.PRE_BAD_URL
    if parts.scheme.lower() not in allowed_schemes:
        return R.PRE_SCHEME
    if not parts.hostname or parts.username or parts.password:
        return R.PRE_BAD_URL  # no host, or credentials in the URL
    ext = posixpath.splitext(parts.path.lower())[1]
    if ext and ext in blocked_extensions:
        return R.PRE_EXTENSION
    return None


def prefilter_page(refs: list[ImageRef], cfg: PrefilterConfig) -> list[str]:
    """A status per reference: `kept` (a candidate to fetch) or the drop reason."""
    return prefilter_statuses([(r.url, r.raw, r.alt, r.declared_width, r.declared_height) for r in refs], cfg)


def prefilter_statuses(refs: list[tuple], cfg: PrefilterConfig) -> list[str]:
    """prefilter_page of references given as html_refs.page_refs' tuples (read at URL, WIDTH and HEIGHT)."""
    statuses, seen_urls = [], set()
    allowed, blocked = frozenset(cfg.allowed_schemes), frozenset(cfg.blocked_extensions)
    kept, min_side, max_aspect = R.KEPT, cfg.min_declared_side, cfg.max_aspect_ratio
    for ref in refs:
        url = ref[URL]
        reason = _url_reason(url, allowed, blocked)
        if reason is None:  # the declared size: an icon or pixel, a banner strip
            w, h = ref[WIDTH], ref[HEIGHT]
            if w is not None or h is not None:
                if (w is not None and w < min_side) or (h is not None and h < min_side):
                    reason = R.PRE_DECLARED_SMALL
                elif w and h and max(w / h, h / w) > max_aspect:
                    reason = R.PRE_ASPECT
        if reason is None:
            if url in seen_urls:
                reason = R.DUP_SAME_URL
            else:
                seen_urls.add(url)
        statuses.append(reason or kept)
    candidates = [i for i, s in enumerate(statuses) if s == kept]
    if len(candidates) < cfg.min_images_per_page:
        for i in candidates:
            statuses[i] = R.PAGE_TOO_FEW
    for i in candidates[cfg.max_images_per_page:]:  # galleries and spam: keep the first N
        statuses[i] = R.PRE_TOO_MANY
    return statuses
