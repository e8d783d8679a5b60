"""The miner's HTML functions: srcset, references as a browser resolves them, charset and sniffing, fast paths."""
from __future__ import annotations

from semantica.mining import reasons as R
from semantica.mining.html_charset import decode_html, is_html
from semantica.mining.html_refs import extract_refs, largest_candidate, parse_srcset
from semantica.mining.prefilter import url_reason


# ----------------------------------------------------------------------------- HTML
def test_srcset_largest_candidate_follows_the_spec():
    assert largest_candidate("a.jpg 320w, b.jpg 640w, c.jpg 480w") == "b.jpg"
    assert largest_candidate("a.jpg, b.jpg 2x, c.jpg 1.5x") == "b.jpg"
    # commas inside URLs (image CDNs) are part of the URL
    assert parse_srcset("https://cdn/w_100,h_50/a.jpg 100w, https://cdn/w_200,h_100/a.jpg 200w")[1][0] == \
        "https://cdn/w_200,h_100/a.jpg"
    assert largest_candidate("  ,, ") is None


def test_extract_refs_resolves_like_a_browser():
    html = """<html><head><base href="https://cdn.example.org/media/">
    <meta property="og:image" content="/hero.jpg"></head><body>
    <img src="a.jpg" alt=" Alt A " width="640" height="480px">
    <img src="data:image/gif;base64,R0lGOD" data-src="lazy.jpg">
    <img srcset="s.jpg 1x, l.jpg 2x" src="s.jpg" width="50%">
    <picture><source type="image/webp" srcset="p.webp 1x, p2.webp 2x"><img src="p.jpg"></picture>
    <img src="//other.example.net/x.png#frag"><img src=""><img src="http://[::1/bad">
    </body></html>"""
    refs = extract_refs(html, "https://www.example.org/a/page.html")
    assert [r.url for r in refs] == [
        "https://cdn.example.org/media/a.jpg", "https://cdn.example.org/media/lazy.jpg",
        "https://cdn.example.org/media/l.jpg", "https://cdn.example.org/media/p2.webp",
        "https://other.example.net/x.png", "", "https://cdn.example.org/hero.jpg"]
    assert refs[0].alt == "Alt A" and (refs[0].declared_width, refs[0].declared_height) == (640, 480)
    assert refs[2].declared_width is None  # "50%" is not a pixel size
    assert [r.source for r in refs] == ["img", "lazy", "srcset", "picture", "img", "img", "og:image"]
    assert [r.position for r in refs] == list(range(7))


# The fast paths (resolve without urljoin, url_reason and domain_of without urlsplit, srcset without
# the regex, UTF-8 bytes straight to Lexbor) against the plain implementations they replaced.
def _urljoin_resolve(base, raw):
    """resolve() as it was: urljoin for everything but plain absolute URLs."""
    from urllib.parse import urljoin, urlsplit
    raw = raw.strip()
    if not raw:
        return None
    if raw[:5].lower() == "data:":
        return raw
    if len(raw) > 2048:
        return None
    raw = raw.replace("\\", "/").translate(str.maketrans("", "", "\t\r\n"))
    if raw.startswith(("https://", "http://")) and "/." not in raw:
        url = raw
    else:
        try:
            url = urljoin(base, raw)
        except ValueError:
            return None
    url, hash_, _ = url.partition("#")
    if hash_ and url.endswith("?"):
        url = url[:-1]
    start = url.find("//")
    if start >= 0:
        authority = url[start + 2:].partition("/")[0].partition("?")[0]
        if ":" in authority or "[" in authority or "]" in authority:
            try:
                urlsplit(url).port
            except ValueError:
                return None
    return url.replace(" ", "%20")


_PIECES = list("aZ9/./..//?#;:@[]%= \t\n\x01é\u2100\\") + [
    "..", "./", "../", "//", "http:", "HTTPS:", "data:", ":80", "[::1]", "x.jpg", "/.", "\u3002", "ﬀ"]
_PREFIXES = ["", "/", "//", "///", "./", "../", "http://", "https://", "HTTP://", "http:", "//h", "//h:8080",
             "//[::1]", "//u@h", "?", "#", "\x01", "ftp://", "a:", "1a:", "//é.org", "https://u:p@h.org",
             "https://h.org:80/a/", "https://é.org/", "http://@h/"]
_BASES = ["https://www.example.org/a/page.html", "http://h.org", "http://h.org/", "https://h.org/a//b/c.html",
          "https://h.org/a/./b/", "https://h.org/a;p/b;q?x#y", "http://u:pw@h.org:8080/d/", "http://[::1]/x/",
          "http://h.org:bad/x", "", "ftp://h.org/a/", "https://H.ORG/A/B", "http:///x/y", "https://é.org/ü/",
          "\x01http://h.org/x/", "http://h.org/a\t/b/", "mailto:x@y", "http://[bad]/"]


def _random_url(rng):
    return rng.choice(_PREFIXES) + "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))


def test_fast_resolve_equals_urljoin():
    import random
    from semantica.mining.html_refs import resolve
    rng = random.Random(12)
    for _ in range(30_000):
        base = rng.choice(_BASES) if rng.random() < 0.8 else _random_url(rng)
        raw = _random_url(rng)
        assert resolve(base, raw) == _urljoin_resolve(base, raw), (base, raw)


def test_fast_url_reason_and_domain_equal_urlsplit(settings):
    import posixpath
    import random
    from urllib.parse import urlsplit
    from semantica.mining.extract import domain_of
    cfg = settings.stages.mine.prefilter

    def by_urlsplit(url):
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
            return R.PRE_BAD_URL
        ext = posixpath.splitext(parts.path.lower())[1]
        return R.PRE_EXTENSION if ext and ext in cfg.blocked_extensions else None

    def domain_by_urlsplit(url):
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return None
        return host[4:] if host.startswith("www.") else host

    rng = random.Random(13)
    for _ in range(30_000):
        url = _random_url(rng) + rng.choice(["", ".jpg", ".SVG", ".ico?x", "/.svg", "www."])
        assert url_reason(url, cfg) == by_urlsplit(url), url
        assert domain_of(url) == domain_by_urlsplit(url), url


def test_fast_srcset_equals_the_tokenizer_regex():
    import random
    import re
    from semantica.mining.html_refs import _largest
    pattern = re.compile(r"[\s,]*(?:([^\s,]\S*?),+(?=\s|$)|([^\s,]\S*)([^,]*))")

    def by_regex(srcset):
        out = []
        for m in pattern.finditer(srcset):
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

    pieces = list("ab/.,, ,  \t\n\x1c\xa0wx1 2.5()²٣") + ["320w", "2x", "1.5x", "https://a/b.jpg", " 768w, ", ",,", "w",
                                                       "nanx", "-1w", "1e3w", "1_0w"]
    rng = random.Random(14)
    for _ in range(30_000):
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert repr(parse_srcset(s)) == repr(by_regex(s)), s  # repr: NaN densities compare equal
        assert repr(largest_candidate(s)) == repr(max(by_regex(s), key=lambda c: (c[1], c[2]))[0]
                                                  if by_regex(s) else None), s
    assert _largest([("a", 1.0, 1.0), ("b", 1.0, 1.0)]) == "a"  # among equals, the first


def test_utf8_bytes_parse_as_their_text(settings):
    from semantica.mining.html_bounds import bound_html, count_tags
    from semantica.mining.html_charset import decode_html_utf8
    page = ('<html><head><meta charset="utf-8"></head><body><img src="/café.jpg" alt="写真" width=300>'
            '<picture><source srcset="a.webp 1x, b.webp 2x"><img src="p.jpg"></picture></body></html>')
    for body, ct in [(page.encode(), "text/html"), (page.encode("ascii", "replace"), "text/html; charset=latin-1"),
                     ("<p>café</p>".encode("cp1252"), "text/html; charset=windows-1252"), (b"", None)]:
        html, charset = decode_html_utf8(body, ct)
        text, charset2 = decode_html(body, ct)
        assert charset == charset2 and (html == text if isinstance(html, str) else html.decode("utf-8") == text)
        assert count_tags(html) == text.count("<") == count_tags(html * 1000) // 1000
        assert extract_refs(bound_html(html, settings.stages.mine.parse).html, "https://e.org/a/") == \
            extract_refs(text, "https://e.org/a/")


def test_is_html_by_type_then_sniffing():
    assert is_html("text/html; charset=utf-8", b"")
    assert is_html(None, b"\xef\xbb\xbf  <!DOCTYPE html><html>")
    assert not is_html("image/jpeg", b"<html>")
    assert not is_html(None, b"\x89PNG\r\n")


def test_charset_from_header_then_meta_then_fallback():
    body = '<html><meta charset="shift_jis"><p>写真</p></html>'.encode("shift_jis")
    assert decode_html(body, "text/html")[0].endswith("写真</p></html>")
    assert decode_html("Фото".encode("cp1251"), "text/html; charset=windows-1251") == ("Фото", "cp1251")
    text, cs = decode_html(b"caf\xe9", "text/html; charset=nonsense")
    assert text == "café" and cs == "cp1252"
