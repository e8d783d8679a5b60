"""WARC records that once crashed or stalled the miner (a fuzzing probe's findings, issue 10).

Each builder takes a size, so tests run the same code path small and a benchmark runs it at
the size that was reported (`benchmarks/bench_hostile.py`). Records are (uri, content type,
body) triples; `write_warc` stores them as HTTP 200 responses with warcio.
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

# Charsets Python knows but that are byte transforms, not text encodings, and the two text
# codecs that raise UnicodeError on HTML bytes.
BYTE_TRANSFORMS = ("hex", "base64", "rot13", "zlib", "uu", "bz2", "quopri")
BAD_TEXT_CODECS = ("undefined", "punycode")
BAD_URIS = ("http://[bad]/", "http://[::1/")
FULL_SIZE = dict(div_depth=300_000, picture_images=10_000, p_depth=300_000, image_side=6324)

_PAGE = ('<html><head><title>t</title></head><body><p>A page with two pictures.</p>'
         '<img src="/a.jpg" width="200" height="100"><img src="/b.jpg" width="200" height="100"></body></html>')


def charset_records(host: str = "charset.example.org") -> list[tuple[str, str, bytes]]:
    """One page per bad charset, declared in the Content-Type header, and one more in <meta>."""
    out = []
    for cs in BYTE_TRANSFORMS + BAD_TEXT_CODECS:
        out.append((f"http://{host}/header-{cs}.html", f"text/html; charset={cs}", _PAGE.encode()))
        meta = _PAGE.replace("<head>", f'<head><meta charset="{cs}">')
        out.append((f"http://{host}/meta-{cs}.html", "text/html", meta.encode()))
    return out


def bad_uri_records() -> list[tuple[str, str, bytes]]:
    """WARC-Target-URIs that urlsplit refuses (a page and an image record each)."""
    return [(uri, "text/html", _PAGE.encode()) for uri in BAD_URIS] + \
        [(uri + "x.png", "image/png", png((40, 40))) for uri in BAD_URIS]


def deep_divs(depth: int) -> bytes:
    """<div> nested `depth` deep, with two images at the bottom: Lexbor's time grows with depth²."""
    return (b"<html><body>" + b"<div>" * depth + b'<img src="/deep-a.jpg"><img src="/deep-b.jpg">'
            + b"</div>" * depth + b"</body></html>")


def wide_picture(images: int) -> bytes:
    """One <picture> with `images` <img> children: a per-image scan of its children is quadratic."""
    body = "".join(f'<img src="/p{i}.jpg">' for i in range(images))
    return f'<html><body><picture><source srcset="/wide.webp 800w">{body}</picture></body></html>'.encode()


def nested_paragraphs(depth: int) -> bytes:
    """<p> opened `depth` times (never closed), with images: slow in main-content extraction."""
    return (b'<html><body><img src="/np-a.jpg"><img src="/np-b.jpg">' + b"<p>x" * depth
            + b"</body></html>")


def png(size, mode: str = "RGB", color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def decode_bombs(side: int) -> dict[str, bytes]:
    """Small files with many pixels (under the pixel cap) in modes that cost many bytes a pixel."""
    out = {}
    buf = io.BytesIO()
    Image.new("RGBA", (side, side), (10, 20, 30, 128)).save(buf, "WEBP", lossless=True)
    out["bomb.webp"] = buf.getvalue()
    buf = io.BytesIO()
    Image.new("F", (side, side), 0.5).save(buf, "TIFF", compression="tiff_adobe_deflate")
    out["bomb.tif"] = buf.getvalue()
    return out


def hostile_records(div_depth: int, picture_images: int, p_depth: int, image_side: int,
                    host: str = "hostile.example.org") -> list[tuple[str, str, bytes]]:
    """Every reproducer in one list of records."""
    base = f"http://{host}"
    bombs = decode_bombs(image_side)
    bomb_page = ('<html><body><img src="/bomb.webp"><img src="/bomb.tif"><img src="/ok-1.png">'
                 '<img src="/ok-2.png"></body></html>').encode()
    return (charset_records() + bad_uri_records() + [
        (f"{base}/deep.html", "text/html", deep_divs(div_depth)),
        (f"{base}/picture.html", "text/html", wide_picture(picture_images)),
        (f"{base}/paragraphs.html", "text/html", nested_paragraphs(p_depth)),
        (f"{base}/bombs.html", "text/html", bomb_page),
        (f"{base}/ok-1.png", "image/png", png((64, 48), color=(200, 30, 30))),
        (f"{base}/ok-2.png", "image/png", png((48, 64), "L", color=90)),
    ] + [(f"{base}/{name}", "image/webp" if name.endswith("webp") else "image/tiff", data)
         for name, data in bombs.items()])


def write_warc(path: Path, records: list[tuple[str, str, bytes]]) -> Path:
    with path.open("wb") as f:
        w = WARCWriter(f, gzip=True)
        for uri, ctype, body in records:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http))
    return path
