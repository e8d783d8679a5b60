"""One canonical form of a URL, for joining a page's references with a crawl's captures.

A page writes `HTTP://Example.org:80/a%7eb/café.jpg?#top`; the crawler stored
`http://example.org/a~b/caf%C3%A9.jpg`. Both address the same resource, and the key must say
so. What is normalised (RFC 3986 section 6.2.2, and what browsers do before a request):
  - the fragment (never sent to a server) and a trailing `?` with no query;
  - scheme and host case; an IDNA host to its ASCII (punycode) form; a trailing dot of the host;
  - the scheme's default port (`:80` for http, `:443` for https), and an empty port;
  - percent-encoding: hex digits in upper case, escapes of unreserved characters decoded
    (`%7E` → `~`), characters a browser would escape escaped (spaces, non-ASCII as UTF-8);
  - an empty path as `/`.
What is not: the scheme (http and https are different servers), `www.`, path case,
trailing slashes, dot segments beyond what urljoin resolved, query order, `+` versus `%20`:
each can change which resource, or which server, answers.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional
from urllib.parse import SplitResult, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# what stays literal in a path or query: RFC 3986 unreserved, sub-delims, ':' '@' '/' '?', and '%' of escapes
_KEEP = _UNRESERVED | frozenset(b"!$&'()*+,;=:@/?%")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def _normalise_part(part: str) -> str:
    """Escapes of unreserved bytes decoded, the rest upper-cased; bytes a browser escapes, escaped."""
    if part.isascii() and "%" not in part and all(ord(c) in _KEEP for c in part):
        return part  # the common case: nothing to do
    raw = part.encode("utf-8", "surrogatepass")

    def unescape(m: re.Match) -> bytes:
        byte = int(m.group(1), 16)
        return bytes([byte]) if byte in _UNRESERVED else b"%" + m.group(1).upper()

    raw = _ESCAPE.sub(unescape, raw)
    out = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        if b == 0x25 and _ESCAPE.match(raw, i):  # an escape, already normalised
            out += raw[i:i + 3]
            i += 3
            continue
        out += bytes([b]) if b in _KEEP and b != 0x25 else b"%%%02X" % b
        i += 1
    return out.decode("ascii")


def canonical_host(host: str) -> Optional[str]:
    host = host.rstrip(".").lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return None  # not a valid IDNA name: the caller keeps the URL as it is


@lru_cache(maxsize=1 << 16)
def canonical_url(url: str) -> str:
    """The join key of an absolute http(s) URL; any other string (data:, a bad URL) is returned unchanged."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.netloc:
            return url
        port = parts.port  # ValueError on a port that is not a number
        host = canonical_host(parts.hostname or "")
    except ValueError:
        return url
    if host is None:
        return url
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = _normalise_part(parts.path) or "/"
    query = _normalise_part(parts.query)
    return urlunsplit(SplitResult(scheme, netloc, path, query, ""))
