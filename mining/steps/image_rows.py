"""ImageRows: the images a kept reference uses, with their bytes → images/ rows."""
from __future__ import annotations

import apache_beam as beam

from semantica import schemas
from semantica.mining import stats as S
from semantica.mining.containment import contained_step
from semantica.mining.records import ImageBytes


def source_url(b: ImageBytes) -> str:
    return b.url


def image_row(kv):
    """image id → {'used': [True…] if a kept reference uses it, 'bytes': [ImageBytes…], one per source URL}
    → its images/ row: the bytes of the first URL (sorted), so reruns agree."""
    image_id, grouped = kv
    if not list(grouped["used"]):
        return
    b = min(grouped["bytes"], key=source_url)
    res = b.image
    yield schemas.project(dict(image_id=image_id, url=b.url, phash=res.phash, width=res.width, height=res.height,
                               format=res.format, num_bytes=res.num_bytes, source=res.source,
                               source_warc_file=res.warc_file, source_warc_offset=res.warc_offset, bytes=b.body),
                          schemas.IMAGES)
    yield S.count(S.IMAGES)


def image_at(kv) -> dict:
    b = min(kv[1]["bytes"], key=source_url)
    return dict(warc_file=b.image.warc_file, warc_offset=b.image.warc_offset, url=b.url)


class ImageRows(beam.PTransform):
    """{'used': (image id, True), 'bytes': (image id, ImageBytes)} → {'images': images/ rows (dicts of
    schemas.IMAGES's columns), one per used image; 'stats'; 'failures'}."""

    def expand(self, inputs):
        out = ({"used": inputs["used"], "bytes": inputs["bytes"]} | "JoinImages" >> beam.CoGroupByKey()
               | "ImageRows" >> contained_step(S.IMAGES_STAGE, image_row, main="images", where=image_at))
        return {"images": out.images, "stats": out.stats, "failures": out.failures}
