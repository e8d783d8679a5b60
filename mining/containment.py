"""One bad element never fails the job (datatrove's way, on Beam).

An unexpected exception while one record, page, image or pair is processed is caught at that
element: it is counted as (stage, internal_error) (stats.json lists them under
`internal_errors`), and the element is written aside, to failures/, with the WARC file and
offset it came from, the exception and a truncated traceback. The job goes on with every
other element. Expected failures (a corrupt image, a refused address…) are not exceptions
but reasons (mining/reasons.py); what lands here is a bug, and the tests fail on any.

`Contained` wraps a plain function as a Beam DoFn that contains its exceptions per element, and
`contained_step` applies it with the 'stats' and 'failures' outputs every step has; the rows come
from mining/failures.py (plain, also used per record by extract.py).
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Optional

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from semantica.mining import stats as S
from semantica.mining.failures import failure_row, internal_error

log = logging.getLogger(__name__)


def failure_outputs(row: dict) -> list:
    log.warning("%s: %s at %s @%s (%s): %s", internal_error(row["stage"]), row["error"], row["warc_file"],
                row["warc_offset"], row["url"], row["message"][:200])
    return [S.count(S.internal_error(row["stage"])), TaggedOutput("failures", row)]


def _where_unknown(element) -> dict:
    return {}


def contained(stage: str, outputs: Callable[[], Iterable], element: object = None,
              where: Callable[[], dict] = dict, fallback: Optional[Callable[[], Iterable]] = None) -> list:
    """`outputs()` as a list; if it raises, a count and a failures/ row instead (+ `fallback()`).
    `where()` (asked only then) names the element: warc_file, warc_offset, url."""
    try:
        return list(outputs())  # all or nothing: no half an element downstream
    except Exception as e:  # noqa: BLE001 (contained here, counted, written aside)
        try:
            at = where()
        except Exception:  # noqa: BLE001 (an element too broken to say where it came from)
            at = {}
        return failure_outputs(failure_row(stage, e, element=element, **at)) + \
            (list(fallback()) if fallback is not None else [])


class Contained(beam.DoFn):
    """`fn(element, *args)` → its outputs; an exception → a count and a failures/ row instead, plus
    `fallback(element, stage)`'s outputs (e.g. a result for each reference, so its page still
    assembles). `where(element)` names the element: warc_file, warc_offset, url."""

    def __init__(self, stage: str, fn: Callable[..., Iterable], *args,
                 where: Callable[[object], dict] = _where_unknown,
                 fallback: Optional[Callable[[object, str], Iterable]] = None):
        self.stage, self.fn, self.args, self.where, self.fallback = stage, fn, args, where, fallback

    def process(self, element):
        return contained(self.stage, lambda: self.fn(element, *self.args), element, lambda: self.where(element),
                         None if self.fallback is None else lambda: self.fallback(element, self.stage))


def contained_step(stage: str, fn: Callable[..., Iterable], *args, outputs: tuple = (), main: str = "out",
                   where: Optional[Callable[[object], dict]] = None,
                   fallback: Optional[Callable[[object, str], Iterable]] = None):
    """`fn(element, *args)` as a contained ParDo with outputs `main`, `outputs`, 'stats' and 'failures'."""
    kw = {} if where is None else {"where": where}
    return beam.ParDo(Contained(stage, fn, *args, fallback=fallback, **kw)).with_outputs(
        "stats", "failures", *outputs, main=main)
