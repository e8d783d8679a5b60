"""AssemblePages: a page and its references' results → its rows of refs/, pairs/ and pages/ (assemble.py)."""
from __future__ import annotations

from collections import Counter

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from semantica.config import MineConfig
from semantica.mining import reasons as R
from semantica import schemas
from semantica.mining import stats as S
from semantica.mining.assemble import assemble_page
from semantica.mining.containment import contained_step, failure_outputs
from semantica.mining.failures import failure_row
from semantica.mining.records import Page
from semantica.mining.steps.read_pages import by_page_url, page_at


def assemble(kv, cfg: MineConfig):
    """page URL → {'page': [Page], 'results': its RefResults} → refs/ rows (main), 'pairs' and 'pages'
    rows, the image ids it uses ('used'), its counts. A kept reference without a result (lost by the runner)
    fails its page, and results without their page fail theirs: counted and written aside, never dropped."""
    page_url, grouped = kv
    pages = list(grouped["page"])
    if not pages:
        # every result comes from a reference of a parsed page: results alone mean the runner
        # delivered them apart from their page. Counted and written aside, never dropped silently.
        n = sum(1 for _ in grouped["results"])
        if n:
            raise RuntimeError(f"{page_url}: {n} results arrived without their page")
        return
    results = {r.position: r for r in grouped["results"]}
    page = pages[0]
    lost = [ref.position for ref in page.refs if ref.status == R.KEPT and ref.position not in results]
    if lost:  # every kept reference gets a result upstream: a missing one was lost between steps
        yield S.count(S.RESULTS_LOST, len(lost))
        error = RuntimeError(f"{page_url}: no result for reference position(s) {lost[:20]} (lost between steps)")
        yield from failure_outputs(failure_row(S.ASSEMBLE_STAGE, error, warc_file=page.warc_file,
                                               warc_offset=page.warc_offset, url=page_url))
        return
    frequent = {r.image.image_id for r in results.values() if r.frequent}
    rows, pairs, page_row = assemble_page(page, results, frequent, cfg)
    status_counts = Counter(r["status"] for r in rows)
    for row in rows:
        yield schemas.project(row, schemas.REFS)
    for p in pairs:
        yield TaggedOutput("pairs", schemas.project(p, schemas.PAIRS))
    yield TaggedOutput("pages", schemas.project(page_row, schemas.PAGES))
    for image_id in {r["image_id"] for r in rows if r["status"] == R.KEPT}:
        yield TaggedOutput("used", (image_id, True))
    for status, n in status_counts.items():
        yield S.count(S.ref_status(status), n)
    yield S.count(S.PAIRS, len(pairs))
    if pairs:
        yield S.count(S.PAGES_WITH_PAIRS)


def assembled_at(kv) -> dict:
    page: Page = next(iter(kv[1]["page"]))
    return page_at(page)


class AssemblePages(beam.PTransform):
    """{'pages': Page, 'results': (page URL, RefResult)} → {'refs', 'pairs', 'pages': rows of those
    tables (dicts of schemas.py's columns); 'used': (image id, True) for each image in a kept reference;
    'stats'; 'failures'}. Final statuses: frequent, near-identical on the page, too few on the page."""

    def __init__(self, cfg: MineConfig):
        super().__init__()
        self.cfg = cfg

    def expand(self, inputs):
        out = ({"page": inputs["pages"] | "PageKey" >> beam.Map(by_page_url), "results": inputs["results"]}
               | "JoinPage" >> beam.CoGroupByKey()
               | "Assemble" >> contained_step(S.ASSEMBLE_STAGE, assemble, self.cfg, outputs=("pairs", "pages", "used"),
                                              main="refs", where=assembled_at))
        return {"refs": out.refs, "pairs": out.pairs, "pages": out.pages, "used": out.used, "stats": out.stats,
                "failures": out.failures}
