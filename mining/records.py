"""The records that flow between the mining steps (mining/steps/), declared in one place.

  ReadPages ─ Page (with its Refs), (URL, ImageRecord), (URL, Alias)
  ResolveImageBytes ─ Candidate → Outcome → RefResult (an ImageResult at a PageRef), (image id, ImageBytes)
  FlagFrequentImages ─ RefResult with `frequent` set
  AssemblePages, ImageRows ─ output rows: dicts of schemas.py's columns (what WriteToParquet takes)

Beam codes these with pickle (the fallback of its FastPrimitivesCoder), on the DirectRunner and on
portable workers alike: they are plain dataclasses of a module every worker imports, pickled as their
class and field values (`CompactPickle`). None of them is ever a grouping key (keys are strings, ints
or tuples of them), so none needs a deterministic coder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


class CompactPickle:
    """Base of the records: pickled as (class, field values in order). Pickle's default for a slots
    dataclass names every field in every element: 1.3-1.8x the bytes in each shuffle (a 12-reference
    Page 2,164 bytes against 1,623; a RefResult 412 against 234, where a dict took 274), slower to read."""
    __slots__ = ()

    def __reduce__(self):
        return type(self), tuple(getattr(self, name) for name in self.__slots__)


@dataclass(slots=True)
class Ref(CompactPickle):
    """One image reference of a page (extract.page_from_record), with its prefilter status."""
    url: str                        # absolute: the URL a browser fetches at full size (or a data: URI)
    raw_url: str                    # as written in the HTML (first 2,048 characters)
    alt: str
    width: Optional[int]            # declared in the HTML
    height: Optional[int]
    position: int                   # its ordinal among the page's references
    source: str                     # img | lazy | srcset | picture | og:image
    in_main_content: Optional[bool]  # None: main content not looked for
    status: str                     # reasons.KEPT, or the prefilter's reason
    candidates: Optional[list]      # every URL that may hold its bytes, `url` first; kept references only


@dataclass(slots=True)
class Page(CompactPickle):
    """One HTML response of the crawl and its references (the columns of pages/, less the counts)."""
    page_url: str
    domain: str
    warc_file: str
    warc_offset: int
    fetch_time: str
    http_status: Optional[int]
    content_type: Optional[str]
    charset: Optional[str]
    html_bytes: int
    truncated: bool
    too_complex: bool
    refs: list                      # [Ref]


@dataclass(slots=True)
class ImageRecord(CompactPickle):
    """A 2xx response of the crawl whose body is an image, keyed by its canonical URL."""
    url: str                        # as the crawler wrote it
    body: bytes
    truncated: bool                 # the body was longer than the reader's limit
    headers: list                   # [(name, value)] of the HTTP response
    warc_file: str
    warc_offset: int
    digest: Optional[str]           # WARC-Payload-Digest
    alias_of: Optional[str] = None  # set where it is filed under a URL that revisits or redirects to `url`


@dataclass(slots=True)
class Alias(CompactPickle):
    """A revisit or a redirect record: where the bytes of its URL are to be found."""
    to: Optional[str]               # the canonical URL it names (a revisit's original, a redirect's target)
    digest: Optional[str]           # a revisit's payload digest, for one that names no URL
    date: Optional[str]
    kind: str                       # revisit | redirect


@dataclass(frozen=True, slots=True)
class PageRef(CompactPickle):
    """A kept reference as the steps after the read carry it: the page it is on, its place, its URL."""
    page_url: str
    position: int
    domain: str
    warc_file: str
    warc_offset: int
    url: str


@dataclass(slots=True)
class Candidate(CompactPickle):
    """One candidate URL of a kept reference (filed under the URL's canonical form)."""
    index: int                      # 0 is the reference's own URL; then srcset, <source>, lazy…
    url: str
    ref: PageRef


@dataclass(slots=True)
class ImageResult(CompactPickle):
    """What became of one image URL: decoded (status kept: id, pHash, size, format) or why not."""
    url: Optional[str]
    status: str                     # reasons.KEPT or a fetch / decode reason (or `<stage>:internal_error`)
    detail: str
    source: Optional[str]           # warc | download | None (not fetched)
    image_id: Optional[str] = None  # sha256 of the bytes, first 32 hex digits
    phash: Optional[int] = None     # signed 64-bit
    width: Optional[int] = None
    height: Optional[int] = None
    format: Optional[str] = None
    num_bytes: Optional[int] = None
    warc_file: Optional[str] = None  # the capture the bytes came from (source warc)
    warc_offset: Optional[int] = None


@dataclass(slots=True)
class Outcome(CompactPickle):
    """What the crawl holds for one candidate of a reference: its capture's result, or None (not captured)."""
    index: int
    ref: PageRef
    result: Optional[ImageResult]


@dataclass(slots=True)
class RefResult(CompactPickle):
    """An ImageResult at one kept reference; `frequent` once FlagFrequentImages has looked at it."""
    page_url: str
    position: int
    domain: str
    image: ImageResult
    frequent: bool = False

    @classmethod
    def at(cls, ref, image: ImageResult) -> "RefResult":
        """`image` at `ref` (a PageRef or a RefResult: anything with page_url, position, domain)."""
        return cls(ref.page_url, ref.position, ref.domain, image)


@dataclass(slots=True)
class ImageBytes(CompactPickle):
    """The bytes of a decoded image, with the URL they came from and its result."""
    url: str
    body: bytes
    image: ImageResult
