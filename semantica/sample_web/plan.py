"""The sample web's plan as data: its files (`Asset`), pages and their image references (`Page`,
`Ref`, with what a correct miner should do with each), other records, and the whole `Site`.
Built by site.py (`build_site`), written by writer.py."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional

from semantica.config import SampleWebConfig
from semantica.mining.reasons import KEPT

# Content pictures are drawn at least this far apart in pHash bits (the miner's near-dup
# thresholds are 6–8), so ground truth does not hinge on a threshold's exact value.
MIN_PHASH_SEPARATION = 16
# Re-encodings of one picture (banner per domain, thumbnails) stay within this distance.
MAX_VARIANT_DISTANCE = 3


@dataclass(frozen=True)
class Domain:
    """One site of the sample web: its host, scheme, logo URL and index."""
    name: str
    scheme: str
    logo: str
    index: int


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
    # img | img-declared | lazy | srcset-w | srcset-x | picture | relative | base-href | protocol-relative | og:image
    # | data-uri
    markup: str
    section: str             # header | article | aside | footer | head
    url: str                 # absolute URL a correct miner resolves (largest candidate)
    alt_urls: list
    alt: str
    declared_width: Optional[int]
    declared_height: Optional[int]
    # content | off_topic | copy | teaser | thumbnail_duplicate | logo | banner | leaderboard | icon | svg_icon
    # | tracking_pixel | inline_data | broken_link | corrupt | noai | og_image
    role: str
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
