"""ReadPages: WARC locations → pages and the crawl's image records (extract.py does the work)."""
from __future__ import annotations

from collections import Counter

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from semantica.config import MineConfig
from semantica.mining import stats as S
from semantica.mining.containment import contained_step, failure_outputs
from semantica.mining.failures import failure_row
from semantica.mining.records import Page

READ_OUTPUTS = {"image": "images", "alias": "aliases", "failure": "failures"}  # process_warc's kinds → outputs


class ReadWarcs(beam.DoFn):
    """One WARC location → pages (main output), in-WARC image records ('images') and revisits /
    redirects ('aliases'); a record that raises is contained in process_warc ('failures')."""

    def __init__(self, cfg: MineConfig):
        self.cfg = cfg

    def process(self, location: str):
        from semantica.mining.extract import process_warc
        counts: Counter = Counter()
        try:
            for kind, item in process_warc(location, self.cfg, counts):
                if kind == "input_error":  # this file, named in stats.json
                    yield S.input_error(*item)
                else:
                    yield item if kind == "page" else TaggedOutput(READ_OUTPUTS[kind], item)
        except Exception as e:  # noqa: BLE001 (outside any record: the rest of this file is lost, the job goes on)
            yield from failure_outputs(failure_row(S.READ_STAGE, e, warc_file=location))
        for key, n in counts.items():
            yield S.count(key, n)


def page_at(page: Page) -> dict:
    """Where a page came from (a failures/ row's warc_file, warc_offset, url)."""
    return dict(warc_file=page.warc_file, warc_offset=page.warc_offset, url=page.page_url)


def capture_order(record) -> tuple:
    """Captures (pages, image records, references) in crawl order: by WARC file, then offset."""
    return record.warc_file, record.warc_offset


def by_page_url(page: Page) -> tuple:
    return page.page_url, page


def first_capture(kv):
    """Several captures of one page URL: the first by (file, offset), so reruns agree."""
    _, pages = kv
    pages = list(pages)
    yield min(pages, key=capture_order)
    if len(pages) > 1:
        yield S.count(S.PAGES_DUPLICATE_CAPTURE, len(pages) - 1)


def first_capture_at(kv) -> dict:
    return page_at(min(kv[1], key=capture_order))


class ReadPages(beam.PTransform):
    """WARC locations (str) → {'pages': Page, the first capture of each page URL; 'images': (canonical
    URL, ImageRecord); 'aliases': (canonical URL, Alias) of revisits and redirects; 'stats'; 'failures'}."""

    def __init__(self, cfg: MineConfig):
        super().__init__()
        self.cfg = cfg

    def expand(self, locations):
        read = (locations | "SpreadFiles" >> beam.Reshuffle()
                | "ReadWarcs" >> beam.ParDo(ReadWarcs(self.cfg)).with_outputs("images", "aliases", "stats", "failures",
                                                                              main="pages"))
        first = (read.pages | "PageByUrl" >> beam.Map(by_page_url) | "GroupCaptures" >> beam.GroupByKey()
                 | "FirstCapture" >> contained_step(S.CAPTURE_STAGE, first_capture, main="pages",
                                                    where=first_capture_at))
        return {"pages": first.pages, "images": read.images, "aliases": read.aliases,
                "stats": (read.stats, first.stats) | "Stats" >> beam.Flatten(),
                "failures": (read.failures, first.failures) | "Failures" >> beam.Flatten()}
