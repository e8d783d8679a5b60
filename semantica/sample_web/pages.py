"""One page of the sample web: its HTML and, for each image reference on it, the `Ref` a correct
miner should produce (URL, markup, section, expected drop reason).

`PageBuilder(page, domain, wanted, ctx).build()` fills in `page.refs` and `page.html`. `wanted`
names the noise this page carries (off-topic pictures, copies, teasers, markup variants, broken
and hostile references). The random draws happen in a fixed order (the order of the methods
`build` calls): the same seed gives the same page.
"""
from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass, field
from typing import Optional

from PIL import Image

from semantica.config import SampleWebConfig
from semantica.images import to_rgb
from semantica.mining.reasons import (  # the miner's own names for what it drops
    PRE_ASPECT as R_ASPECT, PRE_DATA_URI as R_DATA_URI, PRE_DECLARED_SMALL as R_DECLARED_SMALL,
    PRE_EXTENSION as R_EXTENSION, FETCH_HTTP_404 as R_HTTP_404, FETCH_NOAI as R_NOAI, DEC_CORRUPT as R_CORRUPT,
    DEC_TOO_SMALL as R_TOO_SMALL, DUP_SAME_URL as R_SAME_URL, DUP_SAME_PAGE as R_SAME_PAGE,
    DUP_FREQUENT as R_FREQUENT)
from semantica.sample_web import drawing, text
from semantica.sample_web.assets import Assets, Furniture, digest, thumbnail
from semantica.sample_web.plan import Domain, Page, Ref

# markup variants a page may ask for in `wanted`; the first one wanted is used by the next picture
MARKUP_VARIANTS = ("lazy", "srcset-w", "srcset-x", "picture", "relative", "base-href", "protocol-relative")
FORMATS = ("jpeg",) * 6 + ("png", "png-rgba", "gif-palette", "gif-animated", "webp", "jpeg-cmyk")
SECTION_ORDER = {"header": 0, "article": 1, "aside": 2, "footer": 3}


@dataclass
class SiteContext:
    """What every page is built from: the plan's random stream and config, the asset store, the
    shared furniture, and what earlier pages placed (content by (domain, topic), teasers used)."""
    rng: random.Random
    cfg: SampleWebConfig
    assets: Assets
    furniture: Furniture
    content_by_domain_topic: dict = field(default_factory=dict)
    used_teasers: set = field(default_factory=set)


@dataclass(frozen=True)
class _File:
    """Where one content picture is stored: URL without extension, extension, format, picture, store."""
    stem_url: str
    ext: str
    fmt: str
    picture_id: str
    stored: str

    @property
    def url(self) -> str:
        return self.stem_url + self.ext


class PageBuilder:
    """Builds one page: its sections in order (header, content, an article's extras, aside, footer),
    each adding its HTML and its `Ref`s, then `finish` numbers the refs and assembles the HTML."""

    def __init__(self, page: Page, domain: Domain, wanted: set, ctx: SiteContext):
        self.page, self.d, self.wanted, self.ctx = page, domain, wanted, ctx
        self.rng, self.cfg, self.assets = ctx.rng, ctx.cfg, ctx.assets
        self.refs: list[Ref] = []
        self.body_html: list[str] = []   # article figures
        self.head_extra: list[str] = []
        self.base: Optional[str] = None  # <base href> of the page, when it has one
        if "base-href" in wanted:  # with <base href>, "../media" would resolve against the base
            wanted.discard("relative")

    def build(self) -> None:
        header = self.header()
        first_content = self.content()
        if self.page.kind == "article":
            self.article_extras(first_content)
        aside = self.aside()
        footer = self.footer()
        self.finish(first_content, header, aside, footer)

    def ref(self, **kw) -> Ref:
        r = Ref(page_url=self.page.url, position=-1, alt_urls=kw.pop("alt_urls", []), **kw)
        self.refs.append(r)
        return r

    # ---------------------------------------------------------------- sections, in page order
    def header(self) -> str:
        """The domain logo (a frequent picture: dropped) and a nav bar."""
        d = self.d
        header = (f'<header><a href="/"><img src="{d.logo}" alt="{d.name} logo"></a>'
                  f'<nav>{text.nav(self.rng)}</nav></header>')
        if self.page.kind != "no_images":
            self.ref(markup="img", section="header", url=d.logo, alt=f"{d.name} logo", declared_width=None,
                     declared_height=None, role="logo", topic=-1, picture_id=f"logo-{d.index}",
                     expected_reason=R_FREQUENT)
        else:  # the nav bar above was drawn too: the random stream of every page stays the same
            header = f'<header><nav>{text.nav(self.rng)}</nav></header>'
        return header

    def content(self) -> Optional[tuple[Ref, Image.Image]]:
        """The page's content pictures, each in a figure with a caption; the first may also appear
        as a smaller thumbnail. Returns the first (Ref, picture), or None."""
        page, rng, cfg = self.page, self.rng, self.cfg
        article_count = rng.randint(cfg.min_content_images, cfg.max_content_images)
        other_count = rng.randint(2, 3)  # drawn for every kind, as both were always drawn
        n_content = {"article": article_count, "single_image": 1, "no_images": 0}.get(page.kind, other_count)
        first_content = None
        for k in range(n_content):
            tag, r, img = self.content_picture(page.topic)
            if first_content is None:
                first_content = (r, img)
            self.ctx.content_by_domain_topic.setdefault((self.d.name, page.topic), []).append(r)
            if k == 0 and "duplicate_sizes" in self.wanted:
                self.thumbnail_of(r, img)
            caption = text.sentence(rng, page.topic, cfg.num_topics, page.charset)
            self.body_html.append(f"<figure>{tag}<figcaption>{caption}</figcaption></figure>")
        return first_content

    def thumbnail_of(self, r: Ref, img: Image.Image) -> None:
        """A thumbnail of the same picture, earlier on the page (a same-page duplicate). Made from the picture as
        served and shown: a PNG with transparent corners is flattened on white first, as a page shows it (and the
        miner hashes it). A thumbnail of the unflattened picture kept the corners' hidden colours and was 16 pHash
        bits from its picture, too far to be the duplicate the ground truth said it was."""
        served = self.assets.by_url[r.url]
        if served.format == "png-rgba":
            img = to_rgb(Image.open(io.BytesIO(served.body)))
        thumb = thumbnail(img)
        if thumb is None:
            return
        turl = r.url.rsplit(".", 1)[0] + "-thumb.jpg"
        self.assets.add(turl, thumb, "jpeg", r.picture_id, served.stored)
        self.body_html.append(f'<a href="#full"><img src="{turl}" width="{thumb.width}" height="{thumb.height}" '
                              f'alt="{r.alt}"></a>')
        self.refs.insert(len(self.refs) - 1, Ref(
            page_url=self.page.url, position=-1, markup="img-declared", section="article", url=turl, alt_urls=[],
            alt=r.alt, declared_width=thumb.width, declared_height=thumb.height, role="thumbnail_duplicate",
            topic=self.page.topic, picture_id=r.picture_id, expected_reason=R_SAME_PAGE))

    def article_extras(self, first_content) -> None:
        """An article's noise: an off-topic picture, a mirrored copy, a teaser of another page,
        broken and useless references, og:image."""
        page, rng, cfg, wanted = self.page, self.rng, self.cfg, self.wanted
        if "off_topic" in wanted:
            other = (page.topic + 1 + rng.randrange(cfg.num_topics - 1)) % cfg.num_topics
            tag, _, _ = self.content_picture(other, role="off_topic")
            self.body_html.append(f"<figure>{tag}</figure>")
        if "copy" in wanted and first_content is not None:
            m = self.assets.pictures.mirrored(first_content[1])
            if m is not None:
                pid = first_content[0].picture_id + "m"
                tag, _, _ = self.content_picture(page.topic, role="copy", img=m, picture_id=pid,
                                                 copy_of=first_content[0].picture_id)
                self.body_html.append(f"<figure>{tag}</figure>")
        if "teaser" in wanted:
            self.teaser()
        self.noise_refs()
        if "og_image" in wanted and first_content is not None:
            self.head_extra.append(f'<meta property="og:image" content="{first_content[0].url}">')

    def teaser(self) -> None:
        """A content picture from another page of this domain and topic, once each (a teaser
        must not become "frequent")."""
        earlier = [r for r in self.ctx.content_by_domain_topic.get((self.d.name, self.page.topic), [])
                   if r.page_url != self.page.url and r.role == "content" and r.picture_id not in self.ctx.used_teasers]
        if not earlier:
            return
        src = self.rng.choice(earlier)
        self.ctx.used_teasers.add(src.picture_id)
        self.body_html.append(f'<aside class="related"><img src="{src.url}" alt="{src.alt}"></aside>')
        self.ref(markup="img", section="article", url=src.url, alt=src.alt, declared_width=None,
                 declared_height=None, role="teaser", topic=src.topic, picture_id=src.picture_id)

    def aside(self) -> list[str]:
        """The domain's banner (frequent: dropped) on some pages, the leaderboard ad (wrong aspect)."""
        page, furniture, aside = self.page, self.ctx.furniture, []
        if page.kind != "no_images" and (self.rng.random() < 0.5 or page.kind == "article" and len(page.url) % 3 == 0):
            burl = furniture.banner_urls[self.d.index]
            aside.append(f'<img src="{burl}" alt="Advertisement">')
            self.ref(markup="img", section="aside", url=burl, alt="Advertisement", declared_width=None,
                     declared_height=None, role="banner", topic=-1, picture_id="banner", expected_reason=R_FREQUENT)
        if "leaderboard" in self.wanted:
            aside.append(f'<img src="{furniture.leaderboard_url}" width="728" height="90" alt="">')
            self.ref(markup="img-declared", section="aside", url=furniture.leaderboard_url, alt="",
                     declared_width=728, declared_height=90, role="leaderboard", topic=-1, picture_id="leaderboard",
                     expected_reason=R_ASPECT)
        return aside

    def footer(self) -> list[str]:
        """Social icons and a tracking pixel, both declared too small."""
        if self.page.kind == "no_images":
            return []
        scheme, name, furniture, footer = self.d.scheme, self.d.name, self.ctx.furniture, []
        for net in ("facebook", "x", "rss"):
            iurl = f"{scheme}://{name}/static/icons/{net}.png"
            footer.append(f'<a href="#{net}"><img src="/static/icons/{net}.png" width="16" height="16" '
                          f'alt="{net}"></a>')
            self.ref(markup="relative", section="footer", url=iurl, alt=net, declared_width=16, declared_height=16,
                     role="icon", topic=-1, picture_id="", expected_reason=R_DECLARED_SMALL)
            if iurl not in self.assets.by_url:
                self.assets.add(iurl, None, "png", "", "warc", body=furniture.icon_png, content_type="image/png")
        pixel = f"{furniture.pixel_url}?page={digest(self.page.url.encode())}"
        footer.append(f'<img src="{pixel}" width="1" height="1" alt="">')
        self.ref(markup="img-declared", section="footer", url=pixel, alt="", declared_width=1, declared_height=1,
                 role="tracking_pixel", topic=-1, picture_id="", expected_reason=R_DECLARED_SMALL)
        return footer

    def finish(self, first_content, header: str, aside: list[str], footer: list[str]) -> None:
        """References in document order (og:image, page metadata, last), then the page's HTML."""
        page, refs = self.page, self.refs
        og = []
        if "og_image" in self.wanted and first_content is not None:
            og.append(Ref(page_url=page.url, position=-1, markup="og:image", section="head", url=first_content[0].url,
                          alt_urls=[], alt="", declared_width=None, declared_height=None, role="og_image",
                          topic=page.topic, picture_id=first_content[0].picture_id, expected_reason=R_SAME_URL))
        refs.sort(key=lambda r: SECTION_ORDER[r.section])  # stable: document order within a section
        refs.extend(og)
        for pos, r in enumerate(refs):
            r.position = pos
        page.refs = refs
        if self.base:
            # with <base href>, other relative URLs would resolve against it too: keep them absolute
            for r in refs:
                if r.markup == "relative":
                    r.markup = "img-declared"
            footer = [f.replace('src="/static/icons/', f'src="{self.d.scheme}://{self.d.name}/static/icons/')
                      for f in footer]
        page.html = text.page_html(self.rng, page, self.head_extra, header, self.body_html, aside, footer,
                                   self.cfg.num_topics)

    # ---------------------------------------------------------------- one content picture
    def content_picture(self, topic, role="content", img=None, picture_id=None, copy_of=""):
        """Store one picture under a markup variant; returns (html, Ref, picture)."""
        if img is None:
            picture_id, img = self.assets.pictures.new(topic)
        self.assets.picture_topic[picture_id] = topic
        stored = self.assets.store_choice()
        fmt = self.rng.choice(FORMATS)
        stem = f"{picture_id}-{digest(self.page.url.encode())[:6]}"
        markup = self._markup()
        host_base = (f"{self.d.scheme}://{self.d.name}" if stored == "warc"
                     else f"{self.assets.served_base}/{self.d.name}")
        file = _File(f"{host_base}/media/{stem}", drawing.EXTENSIONS[fmt], fmt, picture_id, stored)
        alt = text.alt_text(self.rng, topic, self.cfg.num_topics, self.page.charset)
        src, declared = self._src(markup, file, host_base, img)
        self.assets.add(file.url, img, fmt, picture_id, stored)
        tag, url, alt_urls, declared = self._tag(markup, src, alt, declared, img, file)
        r = self.ref(markup=markup, section="article", url=url, alt_urls=alt_urls, alt=alt,
                     declared_width=declared[0], declared_height=declared[1], role=role, topic=topic,
                     picture_id=picture_id, copy_of=copy_of)
        return tag, r, img

    def _markup(self) -> str:
        """The first markup variant the page still wants, else a plain <img> (with its size half the time)."""
        markup = next((m for m in MARKUP_VARIANTS if m in self.wanted), None)
        if markup:
            self.wanted.discard(markup)
        elif self.rng.random() < 0.5:
            markup = "img-declared"
        else:
            markup = "img"
        if markup == "protocol-relative" and self.d.scheme != "http":
            markup = "img"  # protocol-relative resolves to https here, which the test server does not speak
        return markup

    def _src(self, markup: str, file: _File, host_base: str, img) -> tuple:
        """The src attribute a plain <img> of this markup carries, and its declared (width, height)."""
        declared, src, url, file_name = (None, None), None, file.url, file.url.rsplit("/", 1)[1]
        if markup == "img":
            src = url
        elif markup == "img-declared":
            src, declared = url, (img.width, img.height)
        elif markup == "relative":  # the page lives at /YEAR/slug.html, so ../media is /media
            src = f"../media/{file_name}" if file.stored == "warc" else url
        elif markup == "protocol-relative":
            src = "//" + url.split("://", 1)[1]
        elif markup == "base-href":
            self.base = f"{host_base}/media/"
            self.head_extra.append(f'<base href="{self.base}">')
            src = file_name
        return src, declared

    def _tag(self, markup: str, src: str, alt: str, declared: tuple, img, file: _File) -> tuple:
        """The HTML of one picture; → (html, the URL a miner should pick, its other URLs, declared size).
        srcset and <picture> store their extra files here."""
        url = file.url
        if markup == "lazy":
            placeholder = "data:image/gif;base64," + base64.b64encode(drawing.PIXEL_GIF).decode()
            return f'<img src="{placeholder}" data-src="{url}" class="lazyload" alt="{alt}">', url, [], declared
        if markup in ("srcset-w", "srcset-x"):
            small = img.resize((img.width // 2, img.height // 2), Image.LANCZOS)
            small_url = f"{file.stem_url}-small{file.ext}"
            self.assets.add(small_url, small, file.fmt, file.picture_id, file.stored)
            if markup == "srcset-w":
                return (f'<img src="{small_url}" srcset="{small_url} {small.width}w, {url} {img.width}w" '
                        f'sizes="(max-width: 600px) 100vw, 50vw" alt="{alt}">'), url, [small_url], declared
            return (f'<img src="{small_url}" srcset="{small_url} 1x, {url} 2x" width="{small.width}" '
                    f'height="{small.height}" alt="{alt}">'), url, [small_url], (small.width, small.height)
        if markup == "picture":
            webp_url = f"{file.stem_url}.webp"
            self.assets.add(webp_url, img, "webp", file.picture_id, file.stored)
            return (f'<picture><source type="image/webp" srcset="{webp_url}">'
                    f'<img src="{url}" alt="{alt}"></picture>'), webp_url, [url], declared
        dims = f' width="{declared[0]}" height="{declared[1]}"' if declared[0] else ""
        lazy = ' loading="lazy"' if self.rng.random() < 0.3 else ""
        return f'<img src="{src}"{dims}{lazy} alt="{alt}">', url, [], declared

    # ---------------------------------------------------------------- broken and useless references
    def noise_refs(self) -> None:
        """The broken, hostile and useless references of the real web, each with its expected drop."""
        wanted, rng, assets = self.wanted, self.rng, self.assets
        served_base, name, scheme = assets.served_base, self.d.name, self.d.scheme
        tag = digest(self.page.url.encode())
        if "broken_link" in wanted:
            self._noise("img", f"{served_base}/{name}/media/missing-{tag}.jpg", "broken_link", R_HTTP_404)
        if "corrupt" in wanted:
            url = f"{served_base}/{name}/media/corrupt-{tag}.jpg"
            jpeg = drawing.encode(drawing.draw_banner(rng, 120, 120), "jpeg")
            assets.add(url, None, "jpeg", "", "server", body=jpeg[: len(jpeg) // 3], content_type="image/jpeg")
            self._noise("img", url, "corrupt", R_CORRUPT)
        if "noai" in wanted:
            url = f"{served_base}/{name}/media/noai-{tag}.jpg"
            assets.add(url, drawing.draw_banner(rng, 160, 120), "jpeg", "", "server",
                       headers=(("X-Robots-Tag", "noai, noimageai"),))
            self._noise("img", url, "noai", R_NOAI)
        if "noai_warc" in wanted:
            url = f"{scheme}://{name}/media/noai-{tag}.jpg"
            assets.add(url, drawing.draw_banner(rng, 160, 120), "jpeg", "", "warc",
                       headers=(("X-Robots-Tag", "noimageai"),))
            self._noise("img", url, "noai", R_NOAI)
        if "undeclared_pixel" in wanted:
            self._noise("img", f"{served_base}/track/p.gif?beacon={tag}", "tracking_pixel", R_TOO_SMALL)
        if "undeclared_icon" in wanted:
            url = f"{served_base}/{name}/static/icons/share-{tag}.png"
            assets.add(url, drawing.draw_icon(rng, 24), "png", "", "server")
            self._noise("img", url, "icon", R_TOO_SMALL)
        if "data-uri" in wanted:
            png = drawing.encode(drawing.draw_icon(rng, 40), "png")
            self._noise("data-uri", "data:image/png;base64," + base64.b64encode(png).decode(), "inline_data",
                        R_DATA_URI)
        if "svg" in wanted:
            url = f"{scheme}://{name}/static/icons/search.svg"
            assets.add(url, None, "svg", "", "warc", body=drawing.SVG_ICON, content_type="image/svg+xml")
            self._noise("img", url, "svg_icon", R_EXTENSION)

    def _noise(self, markup: str, url: str, role: str, reason: str) -> None:
        self.refs.append(Ref(page_url=self.page.url, position=-1, markup=markup, section="article", url=url,
                             alt_urls=[], alt="", declared_width=None, declared_height=None, role=role, topic=-1,
                             picture_id="", expected_reason=reason))
        self.body_html.append(f'<p><img src="{url}" alt=""></p>')
