"""The plan of the sample web: domains, pages, image references and their ground truth.

Pure data, no I/O: `build_site(config)` returns every page's HTML, every image file and,
for every image reference, what a correct miner should do with it (`expected_reason`,
with `kept` for the references that belong in `images/`). The writer turns the plan into
WARC files, a folder served over HTTP, and Parquet ground truth.

Reasons are `stage:reason` strings; the miner reports drops with the same names.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import random
from dataclasses import dataclass, field
from typing import Optional

import imagehash
from PIL import Image

from semantica.config import SampleWebConfig
from semantica.sample_web import drawing, text

# What a correct miner does with each kind of reference (default thresholds of pipelines.yaml).
from semantica.mining.reasons import (  # noqa: E402  (the miner's own names)
    KEPT, PRE_DATA_URI as R_DATA_URI, PRE_EXTENSION as R_EXTENSION, PRE_DECLARED_SMALL as R_DECLARED_SMALL,
    PRE_ASPECT as R_ASPECT, FETCH_HTTP_404 as R_HTTP_404, FETCH_NOAI as R_NOAI, DEC_CORRUPT as R_CORRUPT,
    DEC_TOO_SMALL as R_TOO_SMALL, DUP_SAME_URL as R_SAME_URL, DUP_SAME_PAGE as R_SAME_PAGE,
    DUP_FREQUENT as R_FREQUENT, PAGE_TOO_FEW as R_TOO_FEW)

# Content pictures are drawn at least this far apart in pHash bits (the miner's near-dup
# thresholds are 6–8), so ground truth does not hinge on a threshold's exact value.
MIN_PHASH_SEPARATION = 16
# Re-encodings of one picture (banner per domain, thumbnails) stay within this distance.
MAX_VARIANT_DISTANCE = 3

DOMAIN_WORDS = ("news", "blog", "shop", "travel", "recipes", "garden", "photo", "science",
                "craft", "auto", "music", "sport")


@dataclass
class Asset:
    """One file at one URL: an image, or the bytes a broken link or corrupt image returns."""
    url: str
    body: bytes
    content_type: str
    picture_id: str          # the drawn picture this file shows ('' when none)
    stored: str              # 'warc' | 'server' | 'missing'
    warc_index: int = -1     # which WARC file holds it, when stored == 'warc'
    headers: tuple = ()      # extra HTTP headers, e.g. X-Robots-Tag
    width: int = 0
    height: int = 0
    format: str = ""


@dataclass
class Ref:
    """One image reference on a page, as a miner should resolve it."""
    page_url: str
    position: int
    markup: str              # img | img-declared | lazy | srcset-w | srcset-x | picture | relative | base-href | protocol-relative | og:image | data-uri
    section: str             # header | article | aside | footer | head
    url: str                 # absolute URL a correct miner resolves (largest candidate)
    alt_urls: list
    alt: str
    declared_width: Optional[int]
    declared_height: Optional[int]
    role: str                # content | off_topic | copy | teaser | thumbnail_duplicate | logo | banner | leaderboard | icon | svg_icon | tracking_pixel | inline_data | broken_link | corrupt | noai | og_image
    topic: int               # -1 for non-content
    picture_id: str
    copy_of: str = ""
    expected_reason: str = KEPT

    @property
    def keep(self) -> bool:
        return self.expected_reason == KEPT


@dataclass
class Page:
    url: str
    domain: str
    kind: str                # article | no_images | single_image | non_utf8 | no_content_type
    topic: int
    charset: str
    http_content_type: Optional[str]
    warc_index: int
    html: str = ""
    refs: list = field(default_factory=list)


@dataclass
class OtherRecord:
    """A non-page record: robots.txt, CSS, JS, PDF, JSON, a redirect, an error page."""
    url: str
    status: str
    content_type: Optional[str]
    body: bytes
    role: str
    warc_index: int
    extra_headers: tuple = ()


@dataclass
class Site:
    config: SampleWebConfig
    pages: list
    assets: dict             # url -> Asset
    others: list
    topics: list             # names
    picture_topic: dict      # picture_id -> topic (-1 for non-content)

    def pairs(self) -> list:
        """Unordered page-level pairs of kept pictures, with their relation."""
        out = []
        for page in self.pages:
            kept = {}
            for r in page.refs:
                if r.keep:
                    kept.setdefault(r.picture_id, r)
            for a, b in itertools.combinations(sorted(kept.values(), key=lambda r: r.url), 2):
                if a.copy_of == b.picture_id or b.copy_of == a.picture_id:
                    relation = "copy"
                elif a.topic == b.topic:
                    relation = "related"
                else:
                    relation = "unrelated"
                out.append(dict(page_url=page.url, url_a=a.url, url_b=b.url, picture_a=a.picture_id,
                                picture_b=b.picture_id, topic_a=a.topic, topic_b=b.topic, relation=relation))
        return out


class _Pictures:
    """Draws content pictures and keeps them far apart in pHash space."""

    def __init__(self, rng: random.Random, cfg: SampleWebConfig):
        self.rng, self.cfg = rng, cfg
        self.hashes: list = []
        self.count = 0

    def _far(self, h) -> bool:
        return all(h - other >= MIN_PHASH_SEPARATION for other in self.hashes)

    def new(self, topic: int) -> tuple[str, Image.Image]:
        for _ in range(200):
            w, h = self._size()
            img = drawing.draw_topic_picture(self.rng, topic, self.cfg.num_topics, w, h)
            ph = imagehash.phash(img)
            if self._far(ph):
                self.hashes.append(ph)
                self.count += 1
                return f"p{self.count:05d}", img
        raise RuntimeError("could not draw a picture far enough from the others; lower num_pages")

    def mirrored(self, img: Image.Image) -> Optional[Image.Image]:
        m = drawing.mirror(img)
        ph = imagehash.phash(m)
        if not self._far(ph):
            return None
        self.hashes.append(ph)
        return m

    def _size(self) -> tuple[int, int]:
        s = self.cfg.image_size * self.rng.uniform(0.9, 1.3)
        ax, ay = self.rng.choice(((1, 1), (4, 3), (3, 4), (3, 2)))
        return int(s * ax / max(ax, ay)) // 2 * 2, int(s * ay / max(ax, ay)) // 2 * 2


def _thumbnail(img: Image.Image) -> Optional[Image.Image]:
    """The largest downscale that a perceptual hash still sees as the same picture."""
    for scale in (0.5, 0.6, 0.75):
        thumb = img.resize((int(img.width * scale), int(img.height * scale)), Image.LANCZOS)
        if imagehash.phash(thumb) - imagehash.phash(img) <= MAX_VARIANT_DISTANCE:
            return thumb
    return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def build_site(cfg: SampleWebConfig) -> Site:
    cfg.validate("sample_web")
    rng = random.Random(cfg.seed)
    pics = _Pictures(rng, cfg)
    served_base = f"http://{cfg.host}:{cfg.port}"
    assets: dict[str, Asset] = {}
    picture_topic: dict[str, int] = {}

    def store_choice() -> str:
        return "warc" if rng.random() < cfg.in_warc_fraction else "server"

    def add_asset(url: str, img: Optional[Image.Image], fmt: str, picture_id: str, stored: str,
                  body: Optional[bytes] = None, headers: tuple = (), content_type: Optional[str] = None) -> Asset:
        data = body if body is not None else drawing.encode(img, fmt, quality=rng.randint(82, 92))
        a = Asset(url=url, body=data, content_type=content_type or drawing.CONTENT_TYPES.get(fmt, "image/jpeg"),
                  picture_id=picture_id, stored=stored,
                  warc_index=rng.randrange(cfg.num_warc_files) if stored == "warc" else -1,
                  headers=headers, width=img.width if img is not None else 0,
                  height=img.height if img is not None else 0, format=fmt)
        assets[url] = a
        return a

    # ---- domains and the furniture each page carries
    domains = []
    for d in range(cfg.num_domains):
        word = DOMAIN_WORDS[d % len(DOMAIN_WORDS)]
        name = f"{word}-{d}.example" if d >= len(DOMAIN_WORDS) else f"www.{word}.example"
        scheme = "https" if d % 2 == 0 else "http"
        logo_stored = store_choice()
        logo_url = (f"{scheme}://{name}/static/logo.png" if logo_stored == "warc"
                    else f"{served_base}/{name}/static/logo.png")
        add_asset(logo_url, drawing.draw_logo(rng), "png", f"logo-{d}", logo_stored)
        picture_topic[f"logo-{d}"] = -1
        domains.append(dict(name=name, scheme=scheme, logo=logo_url, index=d))

    banner = drawing.draw_banner(rng)
    banner_ph = imagehash.phash(banner)
    banner_urls = []
    for d in domains:  # each domain's ad server re-encodes the creative a little differently
        variant = banner.resize((banner.width - rng.randint(0, 2), banner.height - rng.randint(0, 2)))
        if imagehash.phash(variant) - banner_ph > MAX_VARIANT_DISTANCE:
            variant = banner
        url = f"{served_base}/adnet/{d['index']}/creative-{_digest(d['name'].encode())}.jpg"
        add_asset(url, variant, "jpeg", "banner", "server")
        banner_urls.append(url)
    picture_topic["banner"] = -1
    leaderboard_url = f"{served_base}/adnet/leaderboard-728x90.jpg"
    add_asset(leaderboard_url, drawing.draw_banner(rng, 728, 90), "jpeg", "leaderboard", "server")
    icon_png = drawing.encode(drawing.draw_icon(rng), "png")
    pixel_url = f"{served_base}/track/p.gif"
    add_asset(pixel_url, None, "gif", "", "server", body=drawing.PIXEL_GIF, content_type="image/gif")

    # ---- pages: which special kinds go where is fixed, so every kind is always present
    n_pages = cfg.num_pages
    kinds = ["article"] * n_pages
    for i, kind in enumerate(("no_images", "single_image", "non_utf8", "non_utf8", "no_content_type")):
        kinds[(i * 7 + 3) % n_pages] = kind
    noises = ["off_topic", "copy", "duplicate_sizes", "og_image", "broken_link", "corrupt", "noai",
              "undeclared_pixel", "undeclared_icon", "teaser", "lazy", "srcset-w", "srcset-x", "picture",
              "relative", "base-href", "protocol-relative", "data-uri", "svg", "leaderboard", "noai_warc"]
    pages: list[Page] = []
    content_by_domain_topic: dict = {}
    used_teasers: set = set()
    for i in range(n_pages):
        d = domains[i % cfg.num_domains]
        topic = rng.randrange(cfg.num_topics)
        kind = kinds[i]
        slug = f"{text.slug(rng)}-{i}"
        url = f"{d['scheme']}://{d['name']}/{2020 + i % 5}/{slug}.html"
        charset, ctype = "utf-8", "text/html; charset=utf-8"
        if kind == "non_utf8":
            charset = "shift_jis" if i % 2 else "windows-1251"
            ctype = f"text/html; charset={charset}" if charset == "shift_jis" else "text/html"
        elif kind == "no_content_type":
            ctype = None
        page = Page(url=url, domain=d["name"], kind=kind, topic=topic, charset=charset,
                    http_content_type=ctype, warc_index=i % cfg.num_warc_files)
        # every article page has the baseline noise; the rest is spread so each appears
        wanted = set()
        if kind == "article":
            wanted = {noises[i % len(noises)], noises[(i * 5 + 2) % len(noises)]}
            wanted |= {n for n in noises if rng.random() < 0.12}
        _build_page(page, d, wanted, rng, cfg, pics, add_asset, assets, picture_topic, served_base,
                    banner_urls, leaderboard_url, icon_png, pixel_url, content_by_domain_topic, store_choice,
                    used_teasers)
        pages.append(page)

    _settle_page_counts(pages)
    others = _other_records(domains, served_base, rng, cfg)
    topics = [drawing.topic_name(t, cfg.num_topics) for t in range(cfg.num_topics)]
    return Site(config=cfg, pages=pages, assets=assets, others=others, topics=topics,
                picture_topic=picture_topic)


def _build_page(page, d, wanted, rng, cfg, pics, add_asset, assets, picture_topic, served_base,
                banner_urls, leaderboard_url, icon_png, pixel_url, content_by_domain_topic, store_choice,
                used_teasers):
    refs: list[Ref] = []
    body_html: list[str] = []   # article figures
    head_extra: list[str] = []
    scheme, name = d["scheme"], d["name"]
    state = {"base": None}
    if "base-href" in wanted:  # with <base href>, "../media" would resolve against the base
        wanted.discard("relative")

    def ref(**kw) -> Ref:
        r = Ref(page_url=page.url, position=-1, alt_urls=kw.pop("alt_urls", []), **kw)
        refs.append(r)
        return r

    def content_picture(topic, role="content", img=None, picture_id=None, copy_of=""):
        """Store one picture under a markup variant and return (html, Ref)."""
        if img is None:
            picture_id, img = pics.new(topic)
        picture_topic[picture_id] = topic
        stored = store_choice()
        fmt = rng.choice(("jpeg",) * 6 + ("png", "png-rgba", "gif-palette", "gif-animated", "webp", "jpeg-cmyk"))
        ext = drawing.EXTENSIONS[fmt]
        stem = f"{picture_id}-{_digest(page.url.encode())[:6]}"
        markup = next((m for m in ("lazy", "srcset-w", "srcset-x", "picture", "relative", "base-href", "protocol-relative")
                       if m in wanted), None)
        if markup:
            wanted.discard(markup)
        elif rng.random() < 0.5:
            markup = "img-declared"
        else:
            markup = "img"
        if markup == "protocol-relative" and scheme != "http":
            markup = "img"  # protocol-relative resolves to https here, which the test server does not speak
        host_base = f"{scheme}://{name}" if stored == "warc" else f"{served_base}/{name}"
        url = f"{host_base}/media/{stem}{ext}"
        alt = text.alt_text(rng, topic, cfg.num_topics, page.charset)
        declared = (None, None)
        alt_urls = []
        if markup == "img":
            src = url
        elif markup == "img-declared":
            src, declared = url, (img.width, img.height)
        elif markup == "relative":  # the page lives at /YEAR/slug.html, so ../media is /media
            src = f"../media/{stem}{ext}" if stored == "warc" else url
        elif markup == "protocol-relative":
            src = "//" + url.split("://", 1)[1]
        elif markup == "base-href":
            state["base"] = f"{host_base}/media/"
            head_extra.append(f'<base href="{state["base"]}">')
            src = f"{stem}{ext}"
        add_asset(url, img, fmt, picture_id, stored)
        if markup == "lazy":
            placeholder = "data:image/gif;base64," + base64.b64encode(drawing.PIXEL_GIF).decode()
            tag = f'<img src="{placeholder}" data-src="{url}" class="lazyload" alt="{alt}">'
        elif markup in ("srcset-w", "srcset-x"):
            small = img.resize((img.width // 2, img.height // 2), Image.LANCZOS)
            small_url = f"{host_base}/media/{stem}-small{ext}"
            add_asset(small_url, small, fmt, picture_id, stored)
            alt_urls = [small_url]
            if markup == "srcset-w":
                tag = (f'<img src="{small_url}" srcset="{small_url} {small.width}w, {url} {img.width}w" '
                       f'sizes="(max-width: 600px) 100vw, 50vw" alt="{alt}">')
            else:
                declared = (small.width, small.height)
                tag = (f'<img src="{small_url}" srcset="{small_url} 1x, {url} 2x" width="{small.width}" '
                       f'height="{small.height}" alt="{alt}">')
        elif markup == "picture":
            webp_url = f"{host_base}/media/{stem}.webp"
            fallback_url = url
            url = webp_url
            add_asset(webp_url, img, "webp", picture_id, stored)
            alt_urls = [fallback_url]
            tag = (f'<picture><source type="image/webp" srcset="{webp_url}">'
                   f'<img src="{fallback_url}" alt="{alt}"></picture>')
        else:
            dims = f' width="{declared[0]}" height="{declared[1]}"' if declared[0] else ""
            lazy = ' loading="lazy"' if rng.random() < 0.3 else ""
            tag = f'<img src="{src}"{dims}{lazy} alt="{alt}">'
        r = ref(markup=markup, section="article", url=url, alt_urls=alt_urls, alt=alt,
                declared_width=declared[0], declared_height=declared[1], role=role, topic=topic,
                picture_id=picture_id, copy_of=copy_of)
        return tag, r, img

    # header: the domain logo
    header = f'<header><a href="/"><img src="{d["logo"]}" alt="{name} logo"></a><nav>{text.nav(rng)}</nav></header>'
    if page.kind != "no_images":
        ref(markup="img", section="header", url=d["logo"], alt=f"{name} logo", declared_width=None,
            declared_height=None, role="logo", topic=-1, picture_id=f"logo-{d['index']}",
            expected_reason=R_FREQUENT)
    else:
        header = f'<header><nav>{text.nav(rng)}</nav></header>'

    n_content = {"article": rng.randint(cfg.min_content_images, cfg.max_content_images),
                 "single_image": 1, "no_images": 0}.get(page.kind, rng.randint(2, 3))
    first_content = None
    for k in range(n_content):
        tag, r, img = content_picture(page.topic)
        if first_content is None:
            first_content = (r, img)
        content_by_domain_topic.setdefault((d["name"], page.topic), []).append(r)
        thumb = _thumbnail(img) if k == 0 and "duplicate_sizes" in wanted else None
        if thumb is not None:  # a thumbnail of the same picture, earlier on the page
            turl = r.url.rsplit(".", 1)[0] + "-thumb.jpg"
            add_asset(turl, thumb, "jpeg", r.picture_id, assets[r.url].stored)
            body_html.append(f'<a href="#full"><img src="{turl}" width="{thumb.width}" height="{thumb.height}" alt="{r.alt}"></a>')
            refs.insert(len(refs) - 1, Ref(page_url=page.url, position=-1, markup="img-declared", section="article",
                                           url=turl, alt_urls=[], alt=r.alt, declared_width=thumb.width,
                                           declared_height=thumb.height, role="thumbnail_duplicate",
                                           topic=page.topic, picture_id=r.picture_id, expected_reason=R_SAME_PAGE))
        body_html.append(f"<figure>{tag}<figcaption>{text.sentence(rng, page.topic, cfg.num_topics, page.charset)}</figcaption></figure>")
    if page.kind == "article":
        if "off_topic" in wanted:
            other = (page.topic + 1 + rng.randrange(cfg.num_topics - 1)) % cfg.num_topics
            tag, _, _ = content_picture(other, role="off_topic")
            body_html.append(f"<figure>{tag}</figure>")
        if "copy" in wanted and first_content is not None:
            m = pics.mirrored(first_content[1])
            if m is not None:
                pid = first_content[0].picture_id + "m"
                tag, _, _ = content_picture(page.topic, role="copy", img=m, picture_id=pid,
                                            copy_of=first_content[0].picture_id)
                body_html.append(f"<figure>{tag}</figure>")
        if "teaser" in wanted:  # a content picture from another page of this domain and topic
            earlier = [r for r in content_by_domain_topic.get((d["name"], page.topic), [])
                       if r.page_url != page.url and r.role == "content" and r.picture_id not in used_teasers]
            if earlier:
                src = rng.choice(earlier)
                used_teasers.add(src.picture_id)  # once each: a teaser must not become "frequent"
                body_html.append(f'<aside class="related"><img src="{src.url}" alt="{src.alt}"></aside>')
                ref(markup="img", section="article", url=src.url, alt=src.alt, declared_width=None,
                    declared_height=None, role="teaser", topic=src.topic, picture_id=src.picture_id)
        _noise_refs(page, wanted, rng, cfg, refs, body_html, add_asset, served_base, name, scheme)
        if "og_image" in wanted and first_content is not None:
            head_extra.append(f'<meta property="og:image" content="{first_content[0].url}">')

    aside = []
    if page.kind != "no_images" and (rng.random() < 0.5 or page.kind == "article" and len(page.url) % 3 == 0):
        burl = banner_urls[d["index"]]
        aside.append(f'<img src="{burl}" alt="Advertisement">')
        ref(markup="img", section="aside", url=burl, alt="Advertisement", declared_width=None, declared_height=None,
            role="banner", topic=-1, picture_id="banner", expected_reason=R_FREQUENT)
    if "leaderboard" in wanted:
        aside.append(f'<img src="{leaderboard_url}" width="728" height="90" alt="">')
        ref(markup="img-declared", section="aside", url=leaderboard_url, alt="", declared_width=728,
            declared_height=90, role="leaderboard", topic=-1, picture_id="leaderboard", expected_reason=R_ASPECT)

    footer = []
    if page.kind != "no_images":
        for net in ("facebook", "x", "rss"):
            iurl = f"{scheme}://{name}/static/icons/{net}.png"
            footer.append(f'<a href="#{net}"><img src="/static/icons/{net}.png" width="16" height="16" alt="{net}"></a>')
            ref(markup="relative", section="footer", url=iurl, alt=net, declared_width=16, declared_height=16,
                role="icon", topic=-1, picture_id="", expected_reason=R_DECLARED_SMALL)
            if iurl not in assets:
                add_asset(iurl, None, "png", "", "warc", body=icon_png, content_type="image/png")
        footer.append(f'<img src="{pixel_url}?page={_digest(page.url.encode())}" width="1" height="1" alt="">')
        ref(markup="img-declared", section="footer", url=f"{pixel_url}?page={_digest(page.url.encode())}", alt="",
            declared_width=1, declared_height=1, role="tracking_pixel", topic=-1, picture_id="",
            expected_reason=R_DECLARED_SMALL)

    # og:image is page metadata: a miner lists it after the body's references
    og = []
    if "og_image" in wanted and first_content is not None:
        og.append(Ref(page_url=page.url, position=-1, markup="og:image", section="head", url=first_content[0].url,
                      alt_urls=[], alt="", declared_width=None, declared_height=None, role="og_image",
                      topic=page.topic, picture_id=first_content[0].picture_id, expected_reason=R_SAME_URL))
    order = {"header": 0, "article": 1, "aside": 2, "footer": 3}
    refs.sort(key=lambda r: order[r.section])  # stable: document order within a section
    refs.extend(og)
    for pos, r in enumerate(refs):
        r.position = pos
    page.refs = refs
    if state["base"]:
        # with <base href>, other relative URLs would resolve against it too: keep them absolute
        for r in refs:
            if r.markup == "relative":
                r.markup = "img-declared"
        footer = [f.replace('src="/static/icons/', f'src="{scheme}://{name}/static/icons/') for f in footer]
    page.html = text.page_html(rng, page, head_extra, header, body_html, aside, footer, cfg.num_topics)


def _noise_refs(page, wanted, rng, cfg, refs, body_html, add_asset, served_base, name, scheme):
    """The broken, hostile and useless references of the real web, each with its expected drop."""
    def add(markup, url, role, reason, declared=(None, None), html=None, alt=""):
        refs.append(Ref(page_url=page.url, position=-1, markup=markup, section="article", url=url, alt_urls=[],
                        alt=alt, declared_width=declared[0], declared_height=declared[1], role=role, topic=-1,
                        picture_id="", expected_reason=reason))
        body_html.append(html or f'<p><img src="{url}" alt="{alt}"></p>')

    tag = _digest(page.url.encode())
    if "broken_link" in wanted:
        add("img", f"{served_base}/{name}/media/missing-{tag}.jpg", "broken_link", R_HTTP_404)
    if "corrupt" in wanted:
        url = f"{served_base}/{name}/media/corrupt-{tag}.jpg"
        jpeg = drawing.encode(drawing.draw_banner(rng, 120, 120), "jpeg")
        add_asset(url, None, "jpeg", "", "server", body=jpeg[: len(jpeg) // 3], content_type="image/jpeg")
        add("img", url, "corrupt", R_CORRUPT)
    if "noai" in wanted:
        url = f"{served_base}/{name}/media/noai-{tag}.jpg"
        add_asset(url, drawing.draw_banner(rng, 160, 120), "jpeg", "", "server",
                  headers=(("X-Robots-Tag", "noai, noimageai"),))
        add("img", url, "noai", R_NOAI)
    if "noai_warc" in wanted:
        url = f"{scheme}://{name}/media/noai-{tag}.jpg"
        add_asset(url, drawing.draw_banner(rng, 160, 120), "jpeg", "", "warc",
                  headers=(("X-Robots-Tag", "noimageai"),))
        add("img", url, "noai", R_NOAI)
    if "undeclared_pixel" in wanted:
        add("img", f"{served_base}/track/p.gif?beacon={tag}", "tracking_pixel", R_TOO_SMALL)
    if "undeclared_icon" in wanted:
        url = f"{served_base}/{name}/static/icons/share-{tag}.png"
        add_asset(url, drawing.draw_icon(rng, 24), "png", "", "server")
        add("img", url, "icon", R_TOO_SMALL)
    if "data-uri" in wanted:
        data_uri = "data:image/png;base64," + base64.b64encode(drawing.encode(drawing.draw_icon(rng, 40), "png")).decode()
        add("data-uri", data_uri, "inline_data", R_DATA_URI)
    if "svg" in wanted:
        url = f"{scheme}://{name}/static/icons/search.svg"
        add_asset(url, None, "svg", "", "warc", body=drawing.SVG_ICON, content_type="image/svg+xml")
        add("img", url, "svg_icon", R_EXTENSION)


def _settle_page_counts(pages: list[Page]) -> None:
    """A page left with fewer than two kept pictures can give no pair: its pictures drop."""
    for page in pages:
        kept = {r.picture_id for r in page.refs if r.keep}
        if len(kept) < 2:
            for r in page.refs:
                if r.keep:
                    r.expected_reason = R_TOO_FEW


def _other_records(domains, served_base, rng, cfg) -> list[OtherRecord]:
    out = []
    for d in domains:
        base = f"{d['scheme']}://{d['name']}"
        w = d["index"] % cfg.num_warc_files
        out.append(OtherRecord(f"{base}/robots.txt", "200 OK", "text/plain", b"User-agent: *\nAllow: /\n", "robots", w))
        out.append(OtherRecord(f"{base}/static/style.css", "200 OK", "text/css", b"body{font-family:serif}\n", "css", w))
        out.append(OtherRecord(f"{base}/static/app.js", "200 OK", "application/javascript",
                               b"document.querySelectorAll('img.lazyload').forEach(function(i){i.src=i.dataset.src});\n",
                               "js", w))
    d0 = domains[0]
    base = f"{d0['scheme']}://{d0['name']}"
    out.append(OtherRecord(f"{base}/files/report.pdf", "200 OK", "application/pdf",
                           b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "pdf", 0))
    out.append(OtherRecord(f"{base}/api/items.json", "200 OK", "application/json", b'{"items": []}', "json", 0))
    out.append(OtherRecord(f"{base}/old-page.html", "301 Moved Permanently", "text/html; charset=utf-8", b"",
                           "redirect", 0, (("Location", f"{base}/"),)))
    out.append(OtherRecord(f"{base}/gone.html", "404 Not Found", "text/html; charset=utf-8",
                           f'<html><body><img src="{d0["logo"]}"><p>Not found</p></body></html>'.encode(),
                           "http_error", cfg.num_warc_files - 1))
    return out
