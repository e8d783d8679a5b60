"""The plan of the sample web: domains, pages, image references and their ground truth.

Pure data, no I/O: `build_site(config)` returns every page's HTML, every image file and,
for every image reference, what a correct miner should do with it (`expected_reason`,
with `kept` for the references that belong in `images/`). The writer turns the plan into
WARC files, a folder served over HTTP, and Parquet ground truth.

Reasons are `stage:reason` strings; the miner reports drops with the same names.
The plan's data types are in plan.py, its files in assets.py, one page's HTML and references
in pages.py. All draw from one `random.Random(seed)` in a fixed order: the same seed gives the
same bytes.
"""
from __future__ import annotations

import random

from semantica.config import SampleWebConfig
from semantica.mining.reasons import PAGE_TOO_FEW as R_TOO_FEW
from semantica.sample_web import drawing, text
from semantica.sample_web.assets import Assets, make_domains, make_furniture
from semantica.sample_web.pages import PageBuilder, SiteContext
from semantica.sample_web.plan import (MAX_VARIANT_DISTANCE, MIN_PHASH_SEPARATION, Asset, Domain, OtherRecord,
                                       Page, Ref, Site)

# the plan's types stay importable from here
__all__ = ["build_site", "Asset", "Domain", "OtherRecord", "Page", "Ref", "Site", "MIN_PHASH_SEPARATION",
           "MAX_VARIANT_DISTANCE"]

# The noise an article page can carry; which page gets which is drawn in `_wanted`.
NOISES = ("off_topic", "copy", "duplicate_sizes", "og_image", "broken_link", "corrupt", "noai",
          "undeclared_pixel", "undeclared_icon", "teaser", "lazy", "srcset-w", "srcset-x", "picture",
          "relative", "base-href", "protocol-relative", "data-uri", "svg", "leaderboard", "noai_warc")
LAZY_JS = b"document.querySelectorAll('img.lazyload').forEach(function(i){i.src=i.dataset.src});\n"
SPECIAL_KINDS = ("no_images", "single_image", "non_utf8", "non_utf8", "no_content_type")


def build_site(cfg: SampleWebConfig) -> Site:
    cfg.validate("sample_web")
    rng = random.Random(cfg.seed)
    assets = Assets(rng, cfg)
    domains = make_domains(assets)
    ctx = SiteContext(rng=rng, cfg=cfg, assets=assets, furniture=make_furniture(assets, domains))
    # which special kinds go where is fixed, so every kind is always present
    kinds = ["article"] * cfg.num_pages
    for i, kind in enumerate(SPECIAL_KINDS):
        kinds[(i * 7 + 3) % cfg.num_pages] = kind
    pages = []
    for i in range(cfg.num_pages):
        d = domains[i % cfg.num_domains]
        page = _new_page(i, d, kinds[i], rng, cfg)
        PageBuilder(page, d, _wanted(i, kinds[i], rng), ctx).build()
        pages.append(page)
    _settle_page_counts(pages)
    topics = [drawing.topic_name(t, cfg.num_topics) for t in range(cfg.num_topics)]
    return Site(config=cfg, pages=pages, assets=assets.by_url, others=_other_records(domains, cfg), topics=topics,
                picture_topic=assets.picture_topic)


def _new_page(i: int, d: Domain, kind: str, rng: random.Random, cfg: SampleWebConfig) -> Page:
    """Page i of domain d: its topic, URL, charset and Content-Type (refs and HTML come later)."""
    topic = rng.randrange(cfg.num_topics)
    url = f"{d.scheme}://{d.name}/{2020 + i % 5}/{text.slug(rng)}-{i}.html"
    charset, ctype = "utf-8", "text/html; charset=utf-8"
    if kind == "non_utf8":
        charset = "shift_jis" if i % 2 else "windows-1251"
        ctype = f"text/html; charset={charset}" if charset == "shift_jis" else "text/html"
    elif kind == "no_content_type":
        ctype = None
    return Page(url=url, domain=d.name, kind=kind, topic=topic, charset=charset, http_content_type=ctype,
                warc_index=i % cfg.num_warc_files)


def _wanted(i: int, kind: str, rng: random.Random) -> set:
    """The noise page i carries: every article has two kinds by its index, the rest at random, so
    each kind appears."""
    if kind != "article":
        return set()
    wanted = {NOISES[i % len(NOISES)], NOISES[(i * 5 + 2) % len(NOISES)]}
    return wanted | {n for n in NOISES if rng.random() < 0.12}


def _settle_page_counts(pages: list[Page]) -> None:
    """A page left with fewer than two kept pictures can give no pair: its pictures drop."""
    for page in pages:
        kept = {r.picture_id for r in page.refs if r.keep}
        if len(kept) < 2:
            for r in page.refs:
                if r.keep:
                    r.expected_reason = R_TOO_FEW


def _other_records(domains: list[Domain], cfg: SampleWebConfig) -> list[OtherRecord]:
    """robots.txt, CSS and JS of every domain; a PDF, JSON, a redirect and an error page on the first."""
    out = []
    for d in domains:
        base = f"{d.scheme}://{d.name}"
        w = d.index % cfg.num_warc_files
        out.append(OtherRecord(f"{base}/robots.txt", "200 OK", "text/plain", b"User-agent: *\nAllow: /\n", "robots", w))
        out.append(OtherRecord(f"{base}/static/style.css", "200 OK", "text/css", b"body{font-family:serif}\n",
                               "css", w))
        out.append(OtherRecord(f"{base}/static/app.js", "200 OK", "application/javascript", LAZY_JS, "js", w))
    d0 = domains[0]
    base = f"{d0.scheme}://{d0.name}"
    out.append(OtherRecord(f"{base}/files/report.pdf", "200 OK", "application/pdf",
                           b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "pdf", 0))
    out.append(OtherRecord(f"{base}/api/items.json", "200 OK", "application/json", b'{"items": []}', "json", 0))
    out.append(OtherRecord(f"{base}/old-page.html", "301 Moved Permanently", "text/html; charset=utf-8", b"",
                           "redirect", 0, (("Location", f"{base}/"),)))
    out.append(OtherRecord(f"{base}/gone.html", "404 Not Found", "text/html; charset=utf-8",
                           f'<html><body><img src="{d0.logo}"><p>Not found</p></body></html>'.encode(),
                           "http_error", cfg.num_warc_files - 1))
    return out
