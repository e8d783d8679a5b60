"""Helpers shared by the benchmarks: realistic HTML pages, WARC writing, CPU pinning, timing.

The sample web's pages are ~4.5 KB; real pages (Common Crawl's median HTML) are tens of
KB with inline scripts and styles, long navigation, many links and a few dozen images,
so the throughput benchmarks write their own pages of 20-100 KB (gzip ratio ~4-5x).
"""
from __future__ import annotations

import io
import os
import random
import socket
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations, which phones home

from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

_SYL = ("ka", "to", "ri", "men", "sa", "lo", "ver", "an", "el", "cu", "dro", "is", "pe", "ul", "tra", "mo",
        "ne", "ar", "gi", "fo", "bel", "son", "ta", "xi", "or", "pla", "du", "ce", "ha", "wen")


def vocabulary(rng: random.Random, n: int = 3000) -> list[str]:
    return ["".join(rng.choice(_SYL) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def _words(rng: random.Random, vocab: list[str], n: int) -> str:
    # mostly the 100 commonest words, some from the whole vocabulary: about the entropy of real text
    top = len(vocab) if rng.random() < 0.3 else 100
    return " ".join(vocab[int(rng.random() ** 2 * top)] for _ in range(n))


def _img(rng: random.Random, host: str, k: int) -> str:
    name = f"{rng.getrandbits(48):012x}-{k}"
    kind = rng.random()
    w, h = rng.choice(((800, 600), (1200, 800), (640, 480), (300, 300), (1024, 768)))
    if kind < 0.45:
        return (f'<img src="https://{host}/wp-content/uploads/2024/{k % 12 + 1:02d}/{name}.jpg" width="{w}" '
                f'height="{h}" alt="photo {name}" class="wp-image-{k} size-large" loading="lazy" decoding="async">')
    if kind < 0.6:
        return (f'<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="/media/{name}.webp" '
                f'class="lazyload" alt="">')
    if kind < 0.75:
        return (f'<img src="https://cdn.{host}/i/{name}-320.jpg" srcset="https://cdn.{host}/i/{name}-320.jpg 320w, '
                f'https://cdn.{host}/i/{name}-768.jpg 768w, https://cdn.{host}/i/{name}-1536.jpg 1536w" '
                f'sizes="(max-width: 768px) 100vw, 768px" alt="">')
    if kind < 0.85:
        return (f'<picture><source type="image/avif" srcset="//img.{host}/{name}.avif">'
                f'<source type="image/webp" srcset="//img.{host}/{name}.webp"><img src="//img.{host}/{name}.jpg" '
                f'alt="{name}"></picture>')
    if kind < 0.95:
        return f'<img src="/static/icons/{name}.svg" width="24" height="24" alt="">'
    return f'<img src="https://pixel.tracker{k % 7}.example/p.gif?u={name}" width="1" height="1" alt="">'


def realistic_page(rng: random.Random, vocab: list[str], host: str, target: int) -> str:
    """One page of about `target` characters: head with scripts and styles, nav, article, sidebar, footer."""
    head = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>{_words(rng, vocab, 8)}</title>",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta property="og:image" content="https://{host}/og/{rng.getrandbits(32):08x}.jpg">',
            f'<link rel="stylesheet" href="/assets/site.{rng.getrandbits(32):08x}.css">',
            "<style>" + "".join(f".c{rng.getrandbits(20):x}"
                                f"{{margin:{rng.randint(0, 40)}px;color:#{rng.getrandbits(24):06x}}}"
                                for _ in range(rng.randint(40, 200))) + "</style>",
            "<script>window.dataLayer=window.dataLayer||[];" + ";".join(
                f'dataLayer.push({{"event":"{_words(rng, vocab, 1)}","id":{rng.getrandbits(30)}}})'
                for _ in range(rng.randint(20, 120))) + "</script></head><body>"]
    nav = ["<header><nav><ul>"] + [f'<li><a href="/{_words(rng, vocab, 1)}/">{_words(rng, vocab, 2)}</a></li>'
                                   for _ in range(rng.randint(30, 90))] + ["</ul></nav></header>"]
    parts = head + nav + ['<main><div class="container"><article class="post">',
                          f"<h1>{_words(rng, vocab, 10)}</h1>"]
    k, size = 0, sum(map(len, parts))
    n_images = rng.randint(5, 45)
    while size < target * 0.85:
        para = (f'<div class="row"><div class="col"><p>{_words(rng, vocab, rng.randint(40, 140))} '
                f'<a href="https://{host}/{_words(rng, vocab, 1)}">{_words(rng, vocab, 3)}</a> '
                f"<strong>{_words(rng, vocab, 4)}</strong> {_words(rng, vocab, 30)}</p></div></div>")
        if k < n_images and rng.random() < 0.5:
            para += f"<figure>{_img(rng, host, k)}<figcaption>{_words(rng, vocab, 8)}</figcaption></figure>"
            k += 1
        parts.append(para)
        size += len(para)
    parts.append('</article><aside class="sidebar"><ul>')
    while k < n_images:
        parts.append(f'<li><a href="/p/{k}">{_img(rng, host, k)}<span>{_words(rng, vocab, 6)}</span></a></li>')
        k += 1
    parts.append("</ul></aside></div></main><footer>")
    parts += [f'<a href="/{_words(rng, vocab, 1)}">{_words(rng, vocab, 2)}</a> ' for _ in range(rng.randint(20, 60))]
    parts.append("<!-- cache: hit --></footer></body></html>\n")
    return "".join(parts)


def write_warc(path: Path, records, gzip: bool = True) -> None:
    """records: iterable of (url, body[, content type]), HTML by default; written Common Crawl
    style (request + response + metadata, one gzip member each)."""
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=gzip)
        for url, body, *ctype in records:
            ctype = ctype[0] if ctype else "text/html; charset=utf-8"
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Server", "nginx"),
                                               ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
            resp = w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
            w.write_record(resp)
            req = StatusAndHeaders("GET / HTTP/1.1", [("Host", url.split("/")[2]), ("User-Agent", "bench")],
                                   is_http_request=True)
            w.write_record(w.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=req))
            meta = w.create_warc_record(url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 120\n"),
                                        warc_content_type="application/warc-fields")
            w.write_record(meta)


def page_records(n_pages: int, seed: int = 0, n_domains: int = 40, min_kb: int = 20, max_kb: int = 100):
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    for i in range(n_pages):
        host = f"www.site{i % n_domains}.example"
        html = realistic_page(rng, vocab, host, rng.randint(min_kb, max_kb) * 1000)
        yield f"https://{host}/{2020 + i % 5}/article-{i}.html", html.encode()


def pin_one_core() -> str:
    """Run on one CPU (single-core figures); returns what was done."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn, *args, **kw):
    """(seconds, result) of fn(*args, **kw), by perf_counter."""
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out
