"""Bounds on what one page may cost to parse, applied to its HTML before any parser sees it.

Why: the HTML tree builder looks down the stack of open elements for each block-level tag
(the spec's "has a p element in button scope"), so Lexbor's time grows with nesting depth
times block tags: 20,000 nested <div> take 0.6 s, 300,000 take four minutes, in C where no
Python alarm reaches. Our tag walk costs ~30 µs per <img> (resolve, prefilter), and
trafilatura ~60 µs per tag. So, on a page with more tags than a fast parse can have:

- elements nested deeper than `max_depth` are flattened: their start and end tags are
  removed, their content (images included) stays, one level up;
- tags past the first `max_tags` are cut off, as max_html_bytes cuts bytes;
- the caller skips main-content detection past `main_content_max_tags`, and where one element
  has more than MAIN_CONTENT_MAX_ATTRIBUTES attributes (`most_attributes`): libxml2, under
  trafilatura, checks each attribute against the element's earlier ones, so its parse grows with
  the square of an element's attributes (16,500 garbage attributes after a stray quote in one
  400 KB <img srcset>: 4-8 s; a fuzzing find, issue 15). Lexbor's time does not grow so.

A page with at most SAFE_TAGS '<' (and at most max_tags) parses in well under a second at any
depth and is passed through untouched, after one count of its '<' (numpy on the UTF-8 bytes: ~3× faster
than `str.count`, ~2 % of a page's read + parse).
Flattening keeps every <img> (void tags are never removed) and <picture> with its sources.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from semantica.config import ParseConfig

SAFE_TAGS = 10_000  # at most 10,000 nested <div>: 0.15 s in Lexbor (measured on one core here)
MAIN_CONTENT_MAX_ATTRIBUTES = 1_000  # lxml: 1,000 attributes on one element ~0.03 s, 16,500 ~5 s
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")

# A tag opens where the HTML tokenizer's does: '<', optional '/', an ASCII letter; the name
# runs to whitespace, '/' or '>' (so '<div<div' is one tag, named 'div<div', as in a browser).
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)")
# Tags that never hold content (void) or whose end tag is implied by a sibling (p, li, td…):
# neither deepens the tree, so neither counts toward depth.
_NO_DEPTH = frozenset("area base br col embed hr img input link meta param source track wbr keygen frame image "
                      "p li dt dd option optgroup tr td th thead tbody tfoot colgroup caption rb rt rtc rp"
                      .split())
# Never removed: they change how their content is read (picture sources, templates, raw text,
# foreign content) or hold the document together.
_KEEP = frozenset("html head body picture template script style textarea title xmp iframe noembed noframes "
                  "noscript plaintext svg math".split())


@dataclass
class Bounded:
    html: Union[str, bytes]                      # as given (text, or its UTF-8 bytes) where nothing was cut
    tags: int                                    # '<' in the page as given: an upper bound on its tags
    cuts: list[str] = field(default_factory=list)  # what was changed, for the log; empty if nothing


def count_tags(html: Union[str, bytes]) -> int:
    """The '<' in a page (an upper bound on its tags)."""
    if isinstance(html, bytes):
        # bytes.count goes a byte at a time; numpy compares 32 at once ('<' is one byte in UTF-8)
        return int(np.count_nonzero(np.frombuffer(html, np.uint8) == 60)) if len(html) > 4096 else html.count(b"<")
    return html.count("<")


def bound_html(html: Union[str, bytes], cfg: ParseConfig) -> Bounded:
    """`html`: text, or its UTF-8 bytes (decoded here only where something has to be cut)."""
    tags = count_tags(html)
    if tags <= min(SAFE_TAGS, cfg.max_tags):
        return Bounded(html, tags)
    if isinstance(html, bytes):
        html = html.decode("utf-8")
    pieces: list[str] = []
    kept_from = 0          # html[kept_from:] is not yet copied to pieces
    depth = seen = flattened = 0
    next_gt = -1           # the first '>' at or after the current tag (found once per tag at most)
    skip_until = 0         # '<x' inside a removed tag's attributes is no tag
    cuts = []
    for m in _TAG.finditer(html):
        start = m.start()
        if start < skip_until:
            continue
        seen += 1
        if seen > cfg.max_tags:
            pieces.append(html[kept_from:start])
            kept_from = len(html)
            cuts.append(f"cut after {cfg.max_tags} tags of {tags}")
            break
        name = m.group(2).lower()
        if name in _NO_DEPTH:
            continue
        closing = bool(m.group(1))
        if not closing:
            depth += 1
        if depth > cfg.max_depth and name not in _KEEP:
            if next_gt < m.end():
                next_gt = html.find(">", m.end())
            if next_gt != -1:  # no '>' left: the rest is one unfinished tag, which parsers drop
                pieces.append(html[kept_from:start])
                kept_from = skip_until = next_gt + 1
                flattened += 1
        if closing:
            depth = max(depth - 1, 0)
    if flattened:
        cuts.insert(0, f"{flattened} tags deeper than {cfg.max_depth} levels removed")
    if not cuts:
        return Bounded(html, tags)
    pieces.append(html[kept_from:])
    return Bounded("".join(pieces), tags, cuts)


def most_attributes(html: str, max_tags: int = 1 << 62) -> int:
    """An upper estimate of the attributes of the element that has most (0 where no tag is long
    enough to hold MAIN_CONTENT_MAX_ATTRIBUTES). Each attribute takes at least two characters, so
    only tags longer than twice the bound are looked into: their words outside quoted values.
    Linear: one find for each tag's end, at most `max_tags` tags."""
    most, lt, n = 0, html.find("<"), 0
    while lt != -1 and n < max_tags:
        n += 1
        gt = html.find(">", lt)
        end = len(html) if gt == -1 else gt
        if end - lt > 2 * MAIN_CONTENT_MAX_ATTRIBUTES:
            most = max(most, len(_QUOTED.sub(" ", html[lt:end]).split()) - 1)
        if gt == -1:
            break
        lt = html.find("<", gt)
    return most
