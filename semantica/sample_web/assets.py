"""The sample web's files: drawn pictures kept apart in pHash space, the asset store every URL
goes through, and the furniture every domain shares (logos, the ad banner, icons, a pixel).

Every random draw comes from the one `random.Random` of the plan, in a fixed order: the same
seed gives the same files (see site.py).
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Optional

import imagehash
from PIL import Image

from semantica.config import SampleWebConfig
from semantica.sample_web import drawing
from semantica.sample_web.plan import MAX_VARIANT_DISTANCE, MIN_PHASH_SEPARATION, Asset, Domain

DOMAIN_WORDS = ("news", "blog", "shop", "travel", "recipes", "garden", "photo", "science",
                "craft", "auto", "music", "sport")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


class Pictures:
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


def thumbnail(img: Image.Image) -> Optional[Image.Image]:
    """The largest downscale that a perceptual hash still sees as the same picture."""
    for scale in (0.5, 0.6, 0.75):
        thumb = img.resize((int(img.width * scale), int(img.height * scale)), Image.LANCZOS)
        if imagehash.phash(thumb) - imagehash.phash(img) <= MAX_VARIANT_DISTANCE:
            return thumb
    return None


class Assets:
    """Every file of the sample web by URL, the drawn pictures, and which topic each picture shows."""

    def __init__(self, rng: random.Random, cfg: SampleWebConfig):
        self.rng, self.cfg = rng, cfg
        self.pictures = Pictures(rng, cfg)
        self.served_base = f"http://{cfg.host}:{cfg.port}"
        self.by_url: dict[str, Asset] = {}
        self.picture_topic: dict[str, int] = {}

    def store_choice(self) -> str:
        return "warc" if self.rng.random() < self.cfg.in_warc_fraction else "server"

    def add(self, url: str, img: Optional[Image.Image], fmt: str, picture_id: str, stored: str,
            body: Optional[bytes] = None, headers: tuple = (), content_type: Optional[str] = None) -> Asset:
        """Store `img` encoded as `fmt` (or `body` as it is) at `url`."""
        data = body if body is not None else drawing.encode(img, fmt, quality=self.rng.randint(82, 92))
        a = Asset(url=url, body=data, content_type=content_type or drawing.CONTENT_TYPES.get(fmt, "image/jpeg"),
                  picture_id=picture_id, stored=stored,
                  warc_index=self.rng.randrange(self.cfg.num_warc_files) if stored == "warc" else -1,
                  headers=headers, width=img.width if img is not None else 0,
                  height=img.height if img is not None else 0, format=fmt)
        self.by_url[url] = a
        return a


@dataclass(frozen=True)
class Furniture:
    """What pages carry besides their content: one banner URL per domain, the leaderboard ad,
    the social icons' PNG bytes and the tracking pixel's URL."""
    banner_urls: list
    leaderboard_url: str
    icon_png: bytes
    pixel_url: str


def make_domains(assets: Assets) -> list[Domain]:
    """The domains, each with its logo stored (in the WARC files or on the test server)."""
    cfg, rng = assets.cfg, assets.rng
    domains = []
    for d in range(cfg.num_domains):
        word = DOMAIN_WORDS[d % len(DOMAIN_WORDS)]
        name = f"{word}-{d}.example" if d >= len(DOMAIN_WORDS) else f"www.{word}.example"
        scheme = "https" if d % 2 == 0 else "http"
        logo_stored = assets.store_choice()
        logo_url = (f"{scheme}://{name}/static/logo.png" if logo_stored == "warc"
                    else f"{assets.served_base}/{name}/static/logo.png")
        assets.add(logo_url, drawing.draw_logo(rng), "png", f"logo-{d}", logo_stored)
        assets.picture_topic[f"logo-{d}"] = -1
        domains.append(Domain(name=name, scheme=scheme, logo=logo_url, index=d))
    return domains


def make_furniture(assets: Assets, domains: list[Domain]) -> Furniture:
    rng, served_base = assets.rng, assets.served_base
    banner = drawing.draw_banner(rng)
    banner_ph = imagehash.phash(banner)
    banner_urls = []
    for d in domains:  # each domain's ad server re-encodes the creative a little differently
        variant = banner.resize((banner.width - rng.randint(0, 2), banner.height - rng.randint(0, 2)))
        if imagehash.phash(variant) - banner_ph > MAX_VARIANT_DISTANCE:
            variant = banner
        url = f"{served_base}/adnet/{d.index}/creative-{digest(d.name.encode())}.jpg"
        assets.add(url, variant, "jpeg", "banner", "server")
        banner_urls.append(url)
    assets.picture_topic["banner"] = -1
    leaderboard_url = f"{served_base}/adnet/leaderboard-728x90.jpg"
    assets.add(leaderboard_url, drawing.draw_banner(rng, 728, 90), "jpeg", "leaderboard", "server")
    icon_png = drawing.encode(drawing.draw_icon(rng), "png")
    pixel_url = f"{served_base}/track/p.gif"
    assets.add(pixel_url, None, "gif", "", "server", body=drawing.PIXEL_GIF, content_type="image/gif")
    return Furniture(banner_urls=banner_urls, leaderboard_url=leaderboard_url, icon_png=icon_png,
                     pixel_url=pixel_url)
