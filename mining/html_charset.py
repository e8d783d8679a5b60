"""Which HTTP responses are HTML pages, and which charset decodes them.

A page by its HTTP content type, else (none, or a generic one) by sniffing its first bytes. The
charset from the HTTP header, then `<meta>`, then UTF-8, then windows-1252 (a charset is used only
if it is a text encoding: Python also registers byte transforms such as `hex` or `zlib` as codecs).
"""
from __future__ import annotations

import codecs
import re
from functools import lru_cache
from typing import Optional, Union

HTML_TYPES = ("text/html", "application/xhtml+xml")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)


def is_html(content_type: Optional[str], body: bytes) -> bool:
    """By the HTTP content type; where there is none (or a generic one), by sniffing the bytes."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in HTML_TYPES:
        return True
    if ct and ct not in ("application/octet-stream", "unknown/unknown", "text/plain"):
        return False
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or (b"<html" in head and b"<body" in body[:4096].lower())


@lru_cache(maxsize=256)
def _codec(name: Optional[str]) -> Optional[str]:
    """Python's name of the text codec `name` names; None where it names none."""
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except LookupError:
        return None
    # hex, base64, rot13, zlib, uu…: Python registers byte transforms as codecs; they are no charset
    return info.name if info._is_text_encoding else None


def _charsets(body: bytes, content_type: Optional[str]) -> list:
    """The charsets to try, in order: HTTP header, `<meta>`, UTF-8 (None where one names no text codec)."""
    m = _HEADER_CHARSET.search(content_type) if content_type else None
    candidates = [_codec(m.group(1)) if m else None]
    m = _META_CHARSET.search(body, 0, 4096)
    candidates.append(_codec(m.group(1).decode("ascii", "replace")) if m else None)
    candidates.append("utf-8")
    return candidates


def decode_html(body: bytes, content_type: Optional[str]) -> tuple[str, str]:
    """(text, charset used). Never raises: the last resort replaces undecodable bytes."""
    for cs in _charsets(body, content_type):
        if cs is None:
            continue
        try:
            return body.decode(cs), cs
        except UnicodeError:  # also `undefined` and `punycode`, which raise the base class
            continue
    return body.decode("cp1252", errors="replace"), "cp1252"


# codecs that read every ASCII byte as that ASCII character: an ASCII body is its own text in them
_ASCII_TRANSPARENT = frozenset(("utf-8", "ascii", "cp1252", "iso8859-1", "iso8859-15", "latin-1"))


def decode_html_utf8(body: bytes, content_type: Optional[str]) -> tuple[Union[str, bytes], str]:
    """As decode_html, but where the text's UTF-8 encoding is `body` itself (the charset is UTF-8,
    or `body` is ASCII in an ASCII-compatible charset) the bytes are returned as they are: what
    Lexbor parses, without a decode and a re-encode."""
    ascii_body = body.isascii()
    for cs in _charsets(body, content_type):
        if cs is None:
            continue
        if ascii_body and cs in _ASCII_TRANSPARENT:
            return body, cs
        try:
            text = body.decode(cs)
        except UnicodeError:  # also `undefined` and `punycode`, which raise the base class
            continue
        return (body if cs == "utf-8" else text), cs
    return body.decode("cp1252", errors="replace"), "cp1252"
