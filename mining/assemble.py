"""The last step of a page: its fetched references' results + crawl-wide frequencies →
final statuses, the page's pairs, and its row in pages/."""
from __future__ import annotations

from semantica.config import MineConfig
from semantica.mining import reasons as R
from semantica.mining.dedup import page_dedup
from semantica.mining.pairs import make_pairs, pair_id

IMAGE_FROM = {"warc": "crawl", "download": "network"}  # where a reference's bytes came from (refs/ image_from)


def assemble_page(page: dict, results: dict, frequent: set, cfg: MineConfig) -> tuple[list, list, dict]:
    """(ref rows, pair rows, page row).

    page: from extract.page_from_record (refs carry their prefilter status).
    results: position → resolve result dict, for the refs that were fetched.
    frequent: image ids whose near-duplicate neighbourhood is on too many pages or domains.
    """
    trace = dict(warc_file=page["warc_file"], warc_offset=page["warc_offset"])
    rows = []
    for ref in page["refs"]:
        row = dict(ref, page_url=page["page_url"], detail=None, image_id=None, image_url=None, image_from=None, **trace)
        res = results.get(ref["position"])
        if ref["status"] == R.KEPT:
            if res is None:  # cannot happen unless the pipeline loses an element: say so loudly
                raise RuntimeError(f"{page['page_url']}: no fetch result for position {ref['position']}")
            row.update(status=res["status"], detail=res["detail"] or None, image_id=res["image_id"],
                       image_url=res["url"], image_from=IMAGE_FROM.get(res["source"]))
            if res["status"] == R.KEPT and res["image_id"] in frequent:
                row["status"] = R.DUP_FREQUENT
        rows.append(row)
    live = [i for i, r in enumerate(rows) if r["status"] == R.KEPT]
    items = [dict(position=rows[i]["position"], image_id=rows[i]["image_id"], phash=results[rows[i]["position"]]["phash"],
                  width=results[rows[i]["position"]]["width"], height=results[rows[i]["position"]]["height"])
             for i in live]
    for i, status in zip(live, page_dedup(items, cfg.dedup.page_hamming)):
        rows[i]["status"] = status
    kept = [i for i in live if rows[i]["status"] == R.KEPT]
    if len(kept) < max(2, cfg.prefilter.min_images_per_page):
        for i in kept:
            rows[i]["status"] = R.PAGE_TOO_FEW
        kept = []
    images = [dict(image_id=rows[i]["image_id"], phash=results[rows[i]["position"]]["phash"],
                   url=rows[i]["image_url"] or rows[i]["url"])
              for i in kept]
    pairs = []
    for c, t, d in make_pairs(images, page["page_url"], cfg.pairs, cfg.seed):
        a, b = images[c], images[t]
        pairs.append(dict(pair_id=pair_id(page["page_url"], a["image_id"], b["image_id"]), page_url=page["page_url"],
                          domain=page["domain"], cond_image_id=a["image_id"], target_image_id=b["image_id"],
                          cond_url=a["url"], target_url=b["url"], phash_distance=d, **trace))
    page_row = {k: v for k, v in page.items() if k != "refs"}
    page_row.update(num_refs=len(rows), num_images=len(kept), num_pairs=len(pairs))
    return rows, pairs, page_row
