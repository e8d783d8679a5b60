"""A failure of one element, as a row of failures/ (see mining/containment.py for why)."""
from __future__ import annotations

import dataclasses
import reprlib
import traceback
from typing import Optional

INTERNAL_ERROR = "internal_error"
TRACEBACK_CHARS = 4000
ELEMENT_CHARS = 1000


class _Short(reprlib.Repr):
    """A bounded repr: an element may hold megabytes of HTML or image bytes."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple = 4, 30, 10, 10
        self.maxstring = self.maxother = 200

    def repr_bytes(self, obj: bytes, level: int) -> str:
        return f"{obj[:40]!r}… ({len(obj)} bytes)" if len(obj) > 40 else repr(obj)

    def repr_instance(self, obj, level: int) -> str:
        """A record of mining/records.py field by field, each bounded (a page's refs, an image's bytes)."""
        if not dataclasses.is_dataclass(obj):
            return super().repr_instance(obj, level)
        name = type(obj).__name__
        if level <= 0:
            return f"{name}(...)"
        fields = (f"{f.name}={self.repr1(getattr(obj, f.name), level - 1)}" for f in dataclasses.fields(obj))
        return f"{name}({', '.join(fields)})"


_short = _Short().repr


def internal_error(stage: str) -> str:
    return f"{stage}:{INTERNAL_ERROR}"


def failure_row(stage: str, exc: BaseException, warc_file: Optional[str] = None,
                warc_offset: Optional[int] = None, url: Optional[str] = None, element: object = None) -> dict:
    """What failures/ holds for one element (schemas.FAILURES)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(tb) > TRACEBACK_CHARS:  # the end says where it broke; the start, how it got there
        tb = tb[:TRACEBACK_CHARS // 4] + "\n[…]\n" + tb[-(TRACEBACK_CHARS * 3 // 4):]
    return dict(stage=stage, error=type(exc).__name__, message=str(exc)[:1000], traceback=tb,
                warc_file=warc_file, warc_offset=warc_offset, url=url,
                element=None if element is None else _short(element)[:ELEMENT_CHARS])
