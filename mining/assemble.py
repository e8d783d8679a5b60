"""The last step of a page: its fetched references' results + crawl-wide frequencies →
final statuses, the page's pairs, and its row in pages/."""
from __future__ import annotations

from semantica.config import MineConfig
from semantica.mining import reasons as R
from semantica.mining.dedup import page_dedup
from semantica.mining.pairs import make_pairs, pair_id
from semantica.mining.records import Page, Ref, RefResult

IMAGE_FROM = {"warc": "crawl", "download": "network"}  # where a reference's bytes came from (refs/ image_from)


def ref_row(page: Page, ref: Ref) -> dict:
    """A reference's row of refs/ as the read left it (prefilter status, no image yet)."""
    return dict(page_url=page.page_url, url=ref.url, raw_url=ref.raw_url, alt=ref.alt, width=ref.width,
                height=ref.height, position=ref.position, source=ref.source, in_main_content=ref.in_main_content,
                status=ref.status, detail=None, image_id=None, warc_file=page.warc_file,
                warc_offset=page.warc_offset, candidates=ref.candidates, image_url=None, image_from=None)


def page_row(page: Page, num_refs: int, num_images: int, num_pairs: int) -> dict:
    """The page's row of pages/."""
    return dict(page_url=page.page_url, domain=page.domain, warc_file=page.warc_file, warc_offset=page.warc_offset,
                fetch_time=page.fetch_time, http_status=page.http_status, content_type=page.content_type,
                charset=page.charset, html_bytes=page.html_bytes, truncated=page.truncated, num_refs=num_refs,
                num_images=num_images, num_pairs=num_pairs, too_complex=page.too_complex)


def assemble_page(page: Page, results: dict[int, RefResult], frequent: set, cfg: MineConfig) -> tuple[list, list, dict]:
    """(ref rows, pair rows, page row): dicts of refs/, pairs/ and pages/ columns.

    page: from extract.page_from_record (refs carry their prefilter status).
    results: position → RefResult, for the refs that were fetched.
    frequent: image ids whose near-duplicate neighbourhood is on too many pages or domains.
    """
    trace = dict(warc_file=page.warc_file, warc_offset=page.warc_offset)
    rows = []
    for ref in page.refs:
        row = ref_row(page, ref)
        res = results.get(ref.position)
        if ref.status == R.KEPT:
            if res is None:  # cannot happen unless the pipeline loses an element: say so loudly
                raise RuntimeError(f"{page.page_url}: no fetch result for position {ref.position}")
            image = res.image
            row.update(status=image.status, detail=image.detail or None, image_id=image.image_id,
                       image_url=image.url, image_from=IMAGE_FROM.get(image.source))
            if image.status == R.KEPT and image.image_id in frequent:
                row["status"] = R.DUP_FREQUENT
        rows.append(row)
    live = [i for i, r in enumerate(rows) if r["status"] == R.KEPT]
    decoded = {i: results[rows[i]["position"]].image for i in live}
    items = [dict(position=rows[i]["position"], image_id=rows[i]["image_id"], phash=decoded[i].phash,
                  width=decoded[i].width, height=decoded[i].height)
             for i in live]
    for i, status in zip(live, page_dedup(items, cfg.dedup.page_hamming)):
        rows[i]["status"] = status
    kept = [i for i in live if rows[i]["status"] == R.KEPT]
    if len(kept) < max(2, cfg.prefilter.min_images_per_page):  # a pair needs two images
        for i in kept:
            rows[i]["status"] = R.PAGE_TOO_FEW
        kept = []
    images = [dict(image_id=rows[i]["image_id"], phash=decoded[i].phash, url=rows[i]["image_url"] or rows[i]["url"])
              for i in kept]
    pairs = []
    for c, t, d in make_pairs(images, page.page_url, cfg.pairs, cfg.seed):
        a, b = images[c], images[t]
        pairs.append(dict(pair_id=pair_id(page.page_url, a["image_id"], b["image_id"]), page_url=page.page_url,
                          domain=page.domain, cond_image_id=a["image_id"], target_image_id=b["image_id"],
                          cond_url=a["url"], target_url=b["url"], phash_distance=d, **trace))
    return rows, pairs, page_row(page, len(rows), len(kept), len(pairs))
