"""Image bytes for a URL: from an image record of the crawl when one exists, else fetched;
then decoded and hashed. The result is an ImageResult (mining/records.py), failures included."""
from __future__ import annotations

from typing import Optional

from semantica.config import MineConfig
from semantica.mining import reasons as R
from semantica.mining.decode import DecodeFailure, decode_image
from semantica.mining.fetch import Fetched, robots_forbid
from semantica.mining.records import ImageRecord, ImageResult


def result_row(url: Optional[str], status: str, source: Optional[str], detail: str = "", **kw) -> ImageResult:
    return ImageResult(url=url, status=status, detail=detail, source=source, **kw)


def decode_result(url: str, body: bytes, source: str, cfg: MineConfig,
                  **where) -> tuple[ImageResult, Optional[bytes]]:
    d = decode_image(body, cfg.decode)
    if isinstance(d, DecodeFailure):
        return result_row(url, d.reason, source, d.detail, num_bytes=len(body), **where), None
    return result_row(url, R.KEPT, source, image_id=d.image_id, phash=d.phash, width=d.width, height=d.height,
                      format=d.format, num_bytes=len(body), **where), body


def from_warc(url: str, records: list[ImageRecord], cfg: MineConfig) -> tuple[ImageResult, Optional[bytes]]:
    """The first capture (by file, then offset) of the URL, so reruns pick the same one; a capture
    under the URL itself before one reached through a revisit or redirect (`alias_of`)."""
    rec = min(records, key=lambda r: (r.alias_of is not None, r.warc_file, r.warc_offset))
    url = rec.url or url  # the URL as the crawler wrote it (the key is its canonical form)
    where = dict(warc_file=rec.warc_file, warc_offset=rec.warc_offset)
    if cfg.download.honour_noai and robots_forbid(rec.headers):
        return result_row(url, R.FETCH_NOAI, "warc", "X-Robots-Tag in the capture", **where), None
    if rec.truncated:
        return result_row(url, R.FETCH_TOO_LARGE, "warc", f"more than {cfg.download.max_bytes} bytes", **where), None
    return decode_result(url, rec.body, "warc", cfg, **where)


def not_captured(url: str) -> ImageResult:
    """Archive mode (download.enabled false): a reference none of whose candidates the crawl holds."""
    return result_row(url, R.FETCH_NOT_CAPTURED, None, "not in the crawl; downloads are off")


def from_download(f: Fetched, cfg: MineConfig) -> tuple[ImageResult, Optional[bytes]]:
    if f.reason is not None:
        return result_row(f.url, f.reason, "download", f.detail), None
    return decode_result(f.url, f.body, "download", cfg)
