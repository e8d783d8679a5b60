"""Fetching image bytes that the WARC files do not hold, safely.

img2dataset's downloader reads whole bodies with plain urllib and no address checks, so
the fetch is ours, built on urllib with: an SSRF guard that resolves the host itself and
connects only to a vetted public address (so a redirect or a DNS answer that changes
between check and connect cannot reach loopback, private, link-local, multicast or
reserved space; an IPv6 address that embeds an IPv4 one, mapped, compatible, SIIT, NAT64 or
6to4, is judged by the IPv4 address), no environment proxies (the guard must see the real peer), a size
limit enforced while reading, a total deadline, retries on transient failures only, and
X-Robots-Tag noai / noimageai honoured with img2dataset's rule.
Failures are values: `Fetched.reason` is one of mining/reasons.py.
"""
from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Optional

from semantica.config import DownloadConfig
from semantica.mining import reasons as R

NOAI_DIRECTIVES = ("noai", "noimageai")
USER_AGENT_TOKEN = "semantica"
MAX_REDIRECTS = 5


@dataclass
class Fetched:
    url: str
    body: Optional[bytes]
    reason: Optional[str]        # None when body holds the image bytes
    detail: str = ""
    content_type: Optional[str] = None


class PrivateAddressError(OSError):
    """The host resolves to an address the guard refuses."""


class HostNotAllowedError(OSError):
    """download.allowed_hosts is set and does not name the host (also after a redirect)."""


def _host_allowed(url: str, allowed: tuple) -> bool:
    return not allowed or (urllib.parse.urlsplit(url).hostname or "").lower() in allowed


# IPv6 prefixes whose low 32 bits are an IPv4 address a packet ends up at (RFC 4291, 6052, 6145)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")         # deprecated; also holds :: and ::1
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")          # IPv4-translated
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")            # the well-known NAT64 prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")    # local-use NAT64: the IPv4 part may sit anywhere


def embedded_ipv4(addr: ipaddress.IPv6Address) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, SIIT, NAT64, 6to4), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _IPV4_COMPATIBLE or addr in _SIIT or addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address):
        # Python's is_global calls these public although they reach an internal IPv4 host
        if addr.is_site_local or addr in _NAT64_LOCAL:  # fec0::/10 is deprecated, yet routed on some LANs
            return False
        addr = embedded_ipv4(addr) or addr
    # is_global excludes private, loopback, link-local, reserved, unspecified and shared (100.64/10) space
    return addr.is_global and not addr.is_multicast


def _known_not_public(host: str) -> bool:
    """An address literal (zone ids too) or a localhost name (RFC 6761, any case, trailing dot): no lookup needed."""
    name = urllib.parse.unquote(host).strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return not is_public(name)
    except ValueError:  # a name, not an address literal
        return False


def _vetted_create_connection(allow_private: bool):
    def create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
        host, port = address
        if not allow_private and _known_not_public(host):  # an address literal (zone ids too) needs no lookup
            raise PrivateAddressError(f"{host} is a non-public address")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not allow_private:
            refused = [i[4][0] for i in infos if not is_public(i[4][0])]
            if refused:
                raise PrivateAddressError(f"{host} resolves to non-public address {refused[0]}")
        last: Optional[OSError] = None
        for family, stype, proto, _, sockaddr in infos:  # connect to the very address vetted above
            sock = socket.socket(family, stype, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                    sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                last = e
        raise last or OSError(f"cannot connect to {host}")
    return create_connection


@functools.lru_cache(maxsize=8)  # one opener per setting, shared by a worker's fetch threads
def _opener(allow_private: bool, allowed_hosts: tuple = ()) -> urllib.request.OpenerDirector:
    create = _vetted_create_connection(allow_private)

    class GuardedHTTP(http.client.HTTPConnection):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self._create_connection = create

    class GuardedHTTPS(http.client.HTTPSConnection):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self._create_connection = create

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(GuardedHTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(GuardedHTTPS, req, context=self._context)

    class Redirects(urllib.request.HTTPRedirectHandler):
        max_redirections = MAX_REDIRECTS

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not newurl.lower().startswith(("http://", "https://")):
                raise urllib.error.HTTPError(newurl, code, "redirect to a non-HTTP URL", headers, fp)
            if not _host_allowed(newurl, allowed_hosts):
                raise HostNotAllowedError(f"redirect to {newurl}")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(urllib.request.ProxyHandler({}), HTTPHandler(), HTTPSHandler(), Redirects())


def robots_forbid(headers: Iterable[tuple[str, str]]) -> bool:
    """X-Robots-Tag noai / noimageai, for all agents or for ours.

    The same rule as img2dataset's `is_disallowed` ("[agent:] directive, directive"), written
    here because importing img2dataset.downloader loads torch and albumentations (~2–3 s and
    ~380 MB in every Beam worker) for these few lines.
    """
    for name, value in headers:
        if name.lower() != "x-robots-tag":
            continue
        agent, sep, directives = value.partition(":")
        if not sep or " " in agent.strip() or "," in agent:  # no agent prefix: applies to all
            agent, directives = "", value
        if agent.strip().lower() not in ("", USER_AGENT_TOKEN):
            continue
        if any(d.strip().lower() in NOAI_DIRECTIVES for d in directives.split(",")):
            return True
    return False


def _classify(e: BaseException) -> tuple[str, bool]:
    """(reason, worth retrying)."""
    if isinstance(e, urllib.error.HTTPError):
        if e.code == 404 or e.code == 410:
            return R.FETCH_HTTP_404, False
        if "redirect" in str(e.msg).lower() or e.code in (301, 302, 303, 307, 308):
            return R.FETCH_REDIRECTS, False
        return R.FETCH_HTTP_ERROR, e.code in (429, 500, 502, 503, 504)
    reason = getattr(e, "reason", e)
    if isinstance(reason, PrivateAddressError) or isinstance(e, PrivateAddressError):
        return R.FETCH_PRIVATE, False
    if isinstance(reason, HostNotAllowedError) or isinstance(e, HostNotAllowedError):
        return R.FETCH_HOST_NOT_ALLOWED, False
    if isinstance(reason, (socket.timeout, TimeoutError)) or isinstance(e, (socket.timeout, TimeoutError)):
        return R.FETCH_TIMEOUT, True
    return R.FETCH_NETWORK, True


def fetch(url: str, cfg: DownloadConfig, allow_private: Optional[bool] = None) -> Fetched:
    allow = cfg.allow_private_network if allow_private is None else allow_private
    allowed_hosts = tuple(h.lower() for h in cfg.allowed_hosts)
    if not _host_allowed(url, allowed_hosts):  # decided before any DNS lookup
        return Fetched(url, None, R.FETCH_HOST_NOT_ALLOWED, "not in download.allowed_hosts")
    if not allow and "@" in (urllib.parse.urlsplit(url).netloc or ""):
        # credentials in an image URL are a parser-confusion trick (http://127.0.0.1:80@example.com/), never a photo
        return Fetched(url, None, R.FETCH_PRIVATE, "user info in the URL")
    opener = _opener(allow, allowed_hosts)
    reason, detail = R.FETCH_NETWORK, ""
    for attempt in range(cfg.retries + 1):
        try:
            return _fetch_once(opener, url, cfg)
        except (OSError, http.client.HTTPException, ValueError) as e:  # network, HTTP, bad URL: a reason
            reason, retry = _classify(e)
            detail = f"{type(e).__name__}: {e}"[:300]
            if not retry:
                break
            time.sleep(min(0.2 * 2 ** attempt, 2.0))
    return Fetched(url, None, reason, detail)


def _fetch_once(opener, url: str, cfg: DownloadConfig) -> Fetched:
    req = urllib.request.Request(url, headers={"User-Agent": cfg.user_agent, "Accept": "image/*,*/*;q=0.5"})
    deadline = time.monotonic() + 3 * cfg.timeout_s
    with opener.open(req, timeout=cfg.timeout_s) as resp:
        headers = list(resp.headers.items())
        ctype = resp.headers.get("Content-Type")
        if cfg.honour_noai and robots_forbid(headers):
            return Fetched(url, None, R.FETCH_NOAI, resp.headers.get("X-Robots-Tag", ""), ctype)
        if ctype and ctype.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml", "text/plain"):
            return Fetched(url, None, R.FETCH_NOT_IMAGE, ctype, ctype)
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > cfg.max_bytes:
            return Fetched(url, None, R.FETCH_TOO_LARGE, f"Content-Length {length}", ctype)
        chunks, size = [], 0
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > cfg.max_bytes:
                return Fetched(url, None, R.FETCH_TOO_LARGE, f"more than {cfg.max_bytes} bytes", ctype)
            if time.monotonic() > deadline:
                return Fetched(url, None, R.FETCH_TIMEOUT, "body too slow", ctype)
            chunks.append(chunk)
        return Fetched(url, b"".join(chunks), None, "", ctype)


def fetch_many(urls: list[str], cfg: DownloadConfig, threads: int = 16,
               allow_private: Optional[bool] = None, return_exceptions: bool = False) -> list:
    """Fetch in a thread pool (downloads wait on the network, not the CPU); order preserved.
    `return_exceptions`: an unexpected exception (a bug) takes its URL's place in the list instead of
    ending the batch, so the caller can contain it per URL."""
    if not urls:
        return []

    def one(url: str):
        try:
            return fetch(url, cfg, allow_private)
        except Exception as e:  # noqa: BLE001 (handed back, not swallowed)
            if not return_exceptions:
                raise
            return e
    with ThreadPoolExecutor(max_workers=min(threads, len(urls))) as pool:
        return list(pool.map(one, urls))
