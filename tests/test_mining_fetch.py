"""Fetching image bytes: failures as reasons, the SSRF guard (no connection to a non-public
address, IPv4 embedded in IPv6 included, also after a redirect), X-Robots-Tag."""
from __future__ import annotations

import dataclasses
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from semantica.mining import reasons as R
from semantica.mining.fetch import fetch, is_public, robots_forbid


def _png(size):
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, "PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- fetch
class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Handler.routes
    server.shutdown()
    server.server_close()


def test_fetch_results_are_reasons(local_server, settings):
    base, routes = local_server
    png = _png((64, 64))
    routes.update({"/ok.png": (200, {"Content-Type": "image/png"}, png),
                   "/noai.png": (200, {"X-Robots-Tag": "semantica: noindex, noimageai"}, png),
                   "/page.png": (200, {"Content-Type": "text/html"}, b"<html>"),
                   "/big.png": (200, {}, b"x" * 5000),
                   "/err.png": (503, {}, b""),
                   "/loop": (302, {"Location": "/loop"}, b"")})
    cfg = dataclasses.replace(settings.stages.mine.download, retries=0, max_bytes=4000, timeout_s=5)
    got = {p: fetch(base + p, cfg, allow_private=True) for p in
           ("/ok.png", "/noai.png", "/page.png", "/big.png", "/err.png", "/missing.png", "/loop")}
    assert got["/ok.png"].reason is None and got["/ok.png"].body == png
    assert got["/noai.png"].reason == R.FETCH_NOAI
    assert got["/page.png"].reason == R.FETCH_NOT_IMAGE
    assert got["/big.png"].reason == R.FETCH_TOO_LARGE
    assert got["/err.png"].reason == R.FETCH_HTTP_ERROR
    assert got["/missing.png"].reason == R.FETCH_HTTP_404
    assert got["/loop"].reason == R.FETCH_REDIRECTS


# IPv6 forms that embed an IPv4 address Python's is_global calls public, and deprecated site-local
EMBEDDED_IPV4 = ["[::127.0.0.1]",          # IPv4-compatible (::/96)
                 "[::ffff:0:7f00:1]",      # SIIT (::ffff:0:0:0/96) of 127.0.0.1
                 "[64:ff9b::a9fe:a9fe]",   # NAT64 (64:ff9b::/96) of 169.254.169.254, the cloud metadata address
                 "[64:ff9b::7f00:1]",      # NAT64 of 127.0.0.1
                 "[2002:a9fe:a9fe::]",     # 6to4 (2002::/16) of 169.254.169.254
                 "[2002:7f00:1::]",        # 6to4 of 127.0.0.1
                 "[fec0::1]",              # deprecated site-local (fec0::/10)
                 "[64:ff9b:1::a9fe:a9fe]"]  # local-use NAT64 (64:ff9b:1::/48)


@pytest.fixture
def connects(monkeypatch):
    """Every connection attempt the process makes (the test's own server's accepts are not connects)."""
    seen: list = []
    real_connect = socket.socket.connect
    real_create = socket.create_connection

    def connect(sock, address):
        seen.append(address)
        return real_connect(sock, address)

    def create_connection(address, *a, **kw):
        seen.append(address)
        return real_create(address, *a, **kw)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "169.254.169.254", "10.1.2.3", "0.0.0.0",
                                  "2130706433", "[::ffff:127.0.0.1]", "224.0.0.1"] + EMBEDDED_IPV4)
def test_ssrf_guard_refuses_non_public_addresses(host, settings, connects):
    """Refused before a connection is opened: no packet leaves the machine."""
    f = fetch(f"http://{host}:9/x.jpg", dataclasses.replace(settings.stages.mine.download, retries=0))
    assert f.reason == R.FETCH_PRIVATE, f
    assert connects == []


@pytest.mark.parametrize("target", ["127.0.0.2", "[64:ff9b::a9fe:a9fe]"])
def test_ssrf_guard_applies_after_redirects(target, local_server, settings, monkeypatch, connects):
    """127.0.0.1 stands in for a public host; it redirects to loopback or to NAT64 of the metadata
    address: refused, and the only connections made are to the first host."""
    import semantica.mining.fetch as fetch_module
    real = fetch_module.is_public
    monkeypatch.setattr(fetch_module, "is_public", lambda ip: ip == "127.0.0.1" or real(ip))
    base, routes = local_server
    port = int(base.rsplit(":", 1)[1])
    routes["/hop"] = (302, {"Location": f"http://{target}:{port}/ok"}, b"")
    routes["/ok"] = (200, {"Content-Type": "image/png"}, _png((40, 40)))
    cfg = dataclasses.replace(settings.stages.mine.download, retries=0)
    assert fetch(base + "/ok", cfg).reason is None
    assert fetch(base + "/hop", cfg).reason == R.FETCH_PRIVATE
    assert connects == [("127.0.0.1", port)] * 2


def test_allowed_hosts_decides_before_dns(settings):
    cfg = dataclasses.replace(settings.stages.mine.download, allowed_hosts=("127.0.0.1",))
    assert fetch("http://images.example.com/a.jpg", cfg).reason == R.FETCH_HOST_NOT_ALLOWED


def test_public_address_rules():
    assert is_public("93.184.216.34") and is_public("2606:4700::1111")
    assert not any(is_public(ip) for ip in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.1.1",
                                            "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "100.64.0.1"))
    # an IPv4 address inside IPv6 is judged by the IPv4 rules: public ones stay public
    assert all(is_public(ip) for ip in ("::ffff:93.184.216.34", "64:ff9b::5db8:d822", "2002:5db8:d822::1",
                                        "::ffff:0:5db8:d822", "::93.184.216.34"))
    assert not any(is_public(h.strip("[]")) for h in EMBEDDED_IPV4)
    assert not any(is_public(ip) for ip in ("::", "64:ff9b::a00:1", "2002:c0a8:101::", "fec0::1"))


ROBOTS_CASES = ["noai", "noindex, NoImageAI", "otherbot: noai", "semantica: noimageai", "SEMANTICA: noai",
                "noindex, nofollow", "otherbot: noindex", "unavailable_after: 25 Jun 2030 15:00:00 PST",
                "noimageai ", ""]


@pytest.mark.parametrize("value", ROBOTS_CASES)
def test_robots_header_parsing_agrees_with_img2dataset(value):
    """img2dataset's is_disallowed is the oracle for the X-Robots-Tag rule we reimplement."""
    import email.message
    from img2dataset.downloader import is_disallowed
    msg = email.message.Message()
    msg["X-Robots-Tag"] = value
    assert robots_forbid([("X-Robots-Tag", value)]) == is_disallowed(msg, "semantica", ["noai", "noimageai"])
    assert not robots_forbid([("Content-Type", "image/png")])


# ----------------------------------------------------------------------------- the SSRF suite (OWASP's forms)
FAKE_DNS = {"metadata.google.internal": ["169.254.169.254"], "example.com": ["93.184.216.34"],
            "rebind.example": ["93.184.216.34", "10.0.0.1"], "v6.example": ["2606:4700::1111", "fd00::1"]}
SSRF_FORMS = [
    "http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/",
    "http://0x7f000001/", "http://0/", "http://[::ffff:127.0.0.1]/", "http://[::1]/", "http://[::]/",
    "http://[fe80::1%25eth0]/", "http://localhost./", "http://LOCALHOST/", "http://a@127.0.0.1/",
    "http://127.0.0.1:80@example.com/", "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://0.0.0.0/", "http://10.0.0.1/",
    "http://172.16.0.1/", "http://172.31.255.254/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[fe80::1]/", "http://224.0.0.1/", "http://[ff02::1]/",
    "http://255.255.255.255/", "http://[64:ff9b::7f00:1]/", "http://rebind.example/", "http://v6.example/",
]


@pytest.fixture
def fake_dns(monkeypatch):
    """Names resolve from FAKE_DNS (no query leaves the machine); address literals and /etc/hosts as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *a, **kw):
        if host in FAKE_DNS:
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                    for ip in FAKE_DNS[host]]
        return real(host, port, *a, **kw)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("url", SSRF_FORMS)
def test_ssrf_suite_refuses_every_form_before_connecting(url, settings, connects, fake_dns):
    """With the private-network flag off, each form is refused as fetch:private_address and no connection is
    attempted; a host with several addresses is refused when any one of them is private."""
    cfg = dataclasses.replace(settings.stages.mine.download, retries=0, allow_private_network=False, allowed_hosts=())
    f = fetch(url, cfg)
    assert (f.reason, connects) == (R.FETCH_PRIVATE, []), f
