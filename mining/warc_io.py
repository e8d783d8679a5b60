"""Finding WARC files and reading their records, one at a time.

Inputs: local paths, globs and folders; `s3://` and `gs://` (Beam's FileSystems, with the
`apache-beam[aws]` / `[gcp]` extras); `http(s)://` URLs; a text file listing any of these
(`.txt`, `.paths`, `.paths.gz`, relative Common Crawl paths allowed); and a Common Crawl
crawl id with a file range, `cc:CC-MAIN-2024-10` or `cc:CC-MAIN-2024-10:0-99`, resolved
through the crawl's `warc.paths.gz`.

Reading streams the file: a record's body is read up to a limit and the rest skipped, so
memory does not grow with the WARC's size. FastWARC is the fast reader; warcio is the
reference (and the only one that reads legacy ARC files). A malformed record ends the
file's iteration with a `warc:read_error` count rather than failing the job.
"""
from __future__ import annotations

import glob
import gzip
import io
import logging
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from semantica.errors import UserError

log = logging.getLogger(__name__)
WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz", ".warc.zst")


@dataclass
class Record:
    """One response-like record: what the page and image stages need, nothing more."""
    warc_file: str
    offset: int
    rec_type: str
    uri: str
    date: str
    http_status: Optional[int]
    headers: list            # [(name, value)] of the HTTP response
    body: bytes              # up to the reader's limit
    truncated: bool          # the body was longer than the limit

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_values(self, name: str) -> list:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


# ----------------------------------------------------------------------------- inputs
def _is_remote(s: str) -> bool:
    return "://" in s


def _read_listing(path: str, cc_base: str) -> list[str]:
    data = open_stream(path).read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    out = []
    for line in data.decode("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("crawl-data/"):  # Common Crawl's relative paths
            line = cc_base + line
        out.append(line)
    return out


def _common_crawl(spec: str, cc_base: str) -> list[str]:
    """cc:CRAWL[:START-END] → WARC URLs, through CRAWL's warc.paths.gz (END exclusive)."""
    body = spec[3:]
    crawl, _, rng = body.partition(":")
    if not crawl.startswith("CC-MAIN-"):
        raise UserError(f"--input {spec!r}: expected cc:CC-MAIN-YYYY-WW[:START-END]")
    paths = _read_listing(f"{cc_base}crawl-data/{crawl}/warc.paths.gz", cc_base)
    if rng:
        try:
            start, _, end = rng.partition("-")
            start_i = int(start)
            end_i = int(end) if end else start_i + 1
        except ValueError:
            raise UserError(f"--input {spec!r}: range {rng!r} is not START-END") from None
        paths = paths[start_i:end_i]
    if not paths:
        raise UserError(f"--input {spec!r}: the range selects no WARC file")
    return paths


def resolve_inputs(inputs: list[str], cc_base: str = "https://data.commoncrawl.org/") -> list[str]:
    """Expand every --input into a duplicate-free list of WARC locations (in the order given)."""
    cc_base = cc_base if cc_base.endswith("/") else cc_base + "/"
    out: list[str] = []
    for item in inputs:
        if item.startswith("cc:"):
            out.extend(_common_crawl(item, cc_base))
        elif item.endswith((".txt", ".paths", ".paths.gz")):
            out.extend(_read_listing(item, cc_base))
        elif _is_remote(item):
            if any(ch in item for ch in "*?[") and not item.startswith("http"):
                from apache_beam.io.filesystems import FileSystems
                out.extend(m.path for r in FileSystems.match([item]) for m in r.metadata_list)
            else:
                out.append(item)
        elif Path(item).is_dir():
            out.extend(str(p) for p in sorted(Path(item).rglob("*")) if p.name.endswith(WARC_SUFFIXES))
        elif any(ch in item for ch in "*?["):
            matched = sorted(glob.glob(item, recursive=True))
            if not matched:
                raise UserError(f"--input {item!r}: the pattern matches no file")
            out.extend(matched)
        elif Path(item).exists():
            out.append(item)
        else:
            raise UserError(f"--input {item!r}: no such file")
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    if not unique:
        raise UserError("--input: no WARC file found")
    return unique


def open_stream(location: str) -> BinaryIO:
    """A readable binary stream for a local path, http(s) URL or Beam filesystem path."""
    if location.startswith(("http://", "https://")):
        req = urllib.request.Request(location, headers={"User-Agent": "semantica-miner/0.1"})
        return urllib.request.urlopen(req, timeout=60)  # noqa: S310 (WARC inputs are given by the user)
    if _is_remote(location):
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.open(location, compression_type="uncompressed")
    return open(location, "rb")


# ----------------------------------------------------------------------------- records
HTTP_TYPES = ("response", "resource", "revisit")


def _strip_uri(uri: str) -> str:
    uri = (uri or "").strip()
    uri = uri[1:-1] if uri.startswith("<") and uri.endswith(">") else uri
    return uri.replace(" ", "%20")  # as warcio does with invalid spaces


def _read_capped(stream, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes (a read may return less than asked: loop), and whether there was more."""
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    return data[:limit], len(data) > limit


def decode_http_body(raw: bytes, headers: list, limit: int) -> tuple[bytes, bool]:
    """Undo chunked transfer-encoding and gzip / deflate / br content-encoding, as warcio does
    (with warcio's own readers); decompressed output is capped (a gzip bomb stops at `limit`).
    Where decoding fails, the raw bytes are kept."""
    from warcio.bufferedreaders import ChunkedDataReader, DecompressingBufferedReader
    h = {k.lower(): v.lower() for k, v in headers}
    chunked = "chunked" in h.get("transfer-encoding", "")
    decomp = h.get("content-encoding", "").strip() or None
    if decomp not in ("gzip", "x-gzip", "deflate", "br"):
        decomp = None
    if decomp == "x-gzip":
        decomp = "gzip"
    if not chunked and decomp is None:
        return raw, False
    try:
        reader = (ChunkedDataReader(io.BytesIO(raw), decomp_type=decomp) if chunked
                  else DecompressingBufferedReader(io.BytesIO(raw), decomp_type=decomp))
        body, truncated = _read_capped(reader, limit)
    except Exception:  # noqa: BLE001 (a lying header: keep what was stored)
        return raw, False
    return (body, truncated) if body or not raw else (raw, False)


def iter_records_warcio(stream: BinaryIO, name: str, limit: int) -> Iterator[Record]:
    """The reference reader; also reads ARC. Yields response / resource records."""
    from warcio.archiveiterator import ArchiveIterator
    it = ArchiveIterator(stream, arc2warc=True)
    for rec in it:
        if rec.rec_type not in ("response", "resource"):
            continue
        http = rec.http_headers
        status = None
        headers: list = []
        if http is not None and rec.rec_type == "response":
            try:
                status = int(http.get_statuscode())
            except (TypeError, ValueError):
                status = None
            headers = list(http.headers)
        elif rec.rec_type == "resource":
            ct = rec.rec_headers.get_header("Content-Type")
            headers = [("Content-Type", ct)] if ct else []
            status = 200
        body, truncated = _read_capped(rec.content_stream(), limit)
        offset = it.get_record_offset()  # only after the body is read: asking earlier empties it
        yield Record(name, offset, rec.rec_type, _strip_uri(rec.rec_headers.get_header("WARC-Target-URI")),
                     rec.rec_headers.get_header("WARC-Date") or "", status, headers, body, truncated)


def iter_records_fastwarc(stream: BinaryIO, name: str, limit: int) -> Iterator[Record]:
    """FastWARC: the same records as warcio, ~3× faster on .warc.gz."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    for rec in ArchiveIterator(stream, record_types=WarcRecordType.response | WarcRecordType.resource,
                               parse_http=True):
        status, headers = None, []
        if rec.record_type == WarcRecordType.response:
            if rec.http_headers is not None:
                status = rec.http_headers.status_code
                headers = list(rec.http_headers.items())
        else:
            ct = rec.headers.get("Content-Type")
            headers = [("Content-Type", ct)] if ct else []
            status = 200
        body, truncated = _read_capped(rec.reader, limit)
        if headers:  # FastWARC hands over the payload as stored; decode it as warcio does
            body, more = decode_http_body(body, headers, limit)
            truncated = truncated or more
        rtype = "response" if rec.record_type == WarcRecordType.response else "resource"
        yield Record(name, rec.stream_pos, rtype, _strip_uri(rec.headers.get("WARC-Target-URI", "")),
                     rec.headers.get("WARC-Date", ""), status, headers, body, truncated)


def iter_records(location: str, reader: str, limit: int, errors: list) -> Iterator[Record]:
    """Records of one WARC file; a read failure is appended to `errors` and ends the file."""
    name = location
    try:
        stream = open_stream(location)
    except Exception as e:  # noqa: BLE001 (an unreadable input is counted, not fatal)
        errors.append(("warc:open_error", f"{location}: {type(e).__name__}: {e}"))
        return
    if location.endswith((".arc", ".arc.gz")):
        reader = "warcio"  # FastWARC does not read the legacy ARC format
    iterate = iter_records_fastwarc if reader == "fastwarc" else iter_records_warcio
    try:
        with stream:
            if reader == "fastwarc" and not _seekable(stream):
                # FastWARC seeks; a network stream cannot: spool it to local disk first
                with tempfile.TemporaryFile(prefix="semantica-warc-") as tmp:
                    shutil.copyfileobj(stream, tmp, 1 << 20)
                    tmp.seek(0)
                    yield from iterate(tmp, name, limit)
            else:
                yield from iterate(stream, name, limit)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 (truncated gzip, bad chunking, garbage; FastWARC may panic)
        errors.append(("warc:read_error", f"{location}: {type(e).__name__}: {e}"))
        log.warning("%s: stopped reading: %s: %s", location, type(e).__name__, str(e).splitlines()[0] if str(e) else "")


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except Exception:  # noqa: BLE001
        return False
