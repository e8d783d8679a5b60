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
from semantica.mining.html_refs import ImageRef


def url_reason(url: str, cfg: PrefilterConfig) -> Optional[str]:
    if not url:
        return R.PRE_BAD_URL
    if url[:5].lower() == "data:":
        return R.PRE_DATA_URI
    try:
        parts = urlsplit(url)
    except ValueError:
        return R.PRE_BAD_URL
    if parts.scheme.lower() not in cfg.allowed_schemes:
        return R.PRE_SCHEME
    if not parts.hostname or parts.username or parts.password:
        return R.PRE_BAD_URL  # no host, or credentials in the URL
    ext = posixpath.splitext(parts.path.lower())[1]
    if ext and ext in cfg.blocked_extensions:
        return R.PRE_EXTENSION
    return None


def declared_reason(ref: ImageRef, cfg: PrefilterConfig) -> Optional[str]:
    w, h = ref.declared_width, ref.declared_height
    if (w is not None and w < cfg.min_declared_side) or (h is not None and h < cfg.min_declared_side):
        return R.PRE_DECLARED_SMALL
    if w and h and max(w / h, h / w) > cfg.max_aspect_ratio:
        return R.PRE_ASPECT
    return None


def prefilter_page(refs: list[ImageRef], cfg: PrefilterConfig) -> list[str]:
    """A status per reference: `kept` (a candidate to fetch) or the drop reason."""
    statuses, seen_urls = [], set()
    for ref in refs:
        reason = url_reason(ref.url, cfg) or declared_reason(ref, cfg)
        if reason is None and ref.url in seen_urls:
            reason = R.DUP_SAME_URL
        if reason is None:
            seen_urls.add(ref.url)
        statuses.append(reason or R.KEPT)
    candidates = [i for i, s in enumerate(statuses) if s == R.KEPT]
    if len(candidates) < cfg.min_images_per_page:
        for i in candidates:
            statuses[i] = R.PAGE_TOO_FEW
    for i in candidates[cfg.max_images_per_page:]:  # galleries and spam: keep the first N
        statuses[i] = R.PRE_TOO_MANY
    return statuses
