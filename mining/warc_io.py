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
import urllib.error
import urllib.request
import zlib
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
    body: bytes              # up to the reader's limit, transfer- and content-decoded
    truncated: bool          # the body was longer than the limit
    digest: Optional[str] = None          # WARC-Payload-Digest
    refers_to: Optional[str] = None       # a revisit's WARC-Refers-To-Target-URI
    refers_to_date: Optional[str] = None  # ... and WARC-Refers-To-Date

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


def _read_listing(path: str, cc_base: str, given: str | None = None) -> list[str]:
    """The WARC locations a listing names, one a line. `given`: the --input it came from (a cc: spec)."""
    try:
        stream = open_stream(path)
        try:
            data = stream.read()
        finally:
            stream.close()
        text = (gzip.decompress(data) if path.endswith(".gz") else data).decode("utf-8")
    # URLError/HTTPError and a bad gzip header are OSErrors; a Beam filesystem whose extra is missing, and
    # text that is not UTF-8, are ValueErrors; a truncated gzip is an EOFError, a corrupt one a zlib.error
    except (OSError, ValueError, EOFError, zlib.error) as e:
        is_url_error = isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError)
        reason = e.reason if is_url_error else e  # "HTTP Error 404: Not Found" keeps its code
        raise UserError(f"--input {given or path!r}: cannot read the listing {path}: "
                        f"{type(e).__name__}: {reason}") from None
    out = []
    for line in text.splitlines():
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
    paths = _read_listing(f"{cc_base}crawl-data/{crawl}/warc.paths.gz", cc_base, spec)
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
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_DICT_MAGIC = b"\x5d\x2a\x4d\x18"  # the skippable frame a zstd WARC's dictionary travels in
SNIFF_BYTES = 1 << 16


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


def _dechunk(raw: bytes) -> Optional[bytes]:
    """The body of a chunked transfer-encoding; None where it is not validly chunked."""
    out, i, n = [], 0, len(raw)
    while i < n:
        eol = raw.find(b"\r\n", i, i + 1024)
        if eol < 0:
            return None if not out else b"".join(out)  # cut after a chunk: keep what arrived
        try:
            size = int(raw[i:eol].split(b";", 1)[0].strip(), 16)
        except ValueError:
            return None
        if size == 0:
            return b"".join(out)
        out.append(raw[eol + 2:eol + 2 + size])
        i = eol + 2 + size + 2
    return b"".join(out)


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    """zlib / gzip (every member of a multi-member gzip), output capped at limit + 1."""
    out, size = [], 0
    while raw and size <= limit:
        d = zlib.decompressobj(wbits)
        chunk = d.decompress(raw, limit + 1 - size)
        out.append(chunk)
        size += len(chunk)
        if not d.eof:
            break
        raw = d.unused_data.lstrip(b"\x00")
    return b"".join(out)


def _unbrotli(raw: bytes, limit: int) -> bytes:
    # Google's brotli (1.1+): output_buffer_limit bounds a bomb (warcio 1.8 needs brotlipy instead)
    import brotli
    d = brotli.Decompressor()
    out = d.process(raw, output_buffer_limit=limit + 1)
    if not out and raw and not d.is_finished() and d.can_accept_more_data():
        raise ValueError("truncated brotli stream")
    return out


def _unzstd(raw: bytes, limit: int) -> bytes:
    import zstandard
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True) as r:
        return _read_capped(r, limit + 1)[0]


CONTENT_DECODERS = {
    "gzip": lambda raw, limit: _inflate(raw, 47, limit), "x-gzip": lambda raw, limit: _inflate(raw, 47, limit),
    # `deflate` should be zlib-wrapped; some servers send raw deflate
    "deflate": lambda raw, limit: _inflate(raw, 15 if raw[:1] in (b"\x78", b"\x08", b"\x58") else -15, limit),
    "br": _unbrotli, "zstd": _unzstd,
}


def decode_http_body(raw: bytes, headers: list, limit: int) -> tuple[bytes, bool]:
    """The payload as the server meant it: chunked transfer-encoding undone, then every
    Content-Encoding (gzip, deflate, br, zstd; several in the order applied), output capped
    (a bomb stops at `limit`). Where a step fails, the bytes as stored are kept: tools such as
    Browsertrix store the body already decoded and rename the header
    (`x-orig-content-encoding`), others keep the header on a decoded body."""
    transfer, encodings = "", []
    for k, v in headers:
        k = k.lower()
        if k == "transfer-encoding":
            transfer += v.lower()
        elif k == "content-encoding":
            encodings += [e.strip().lower() for e in v.split(",") if e.strip()]
    body, truncated = raw, False
    if "chunked" in transfer:
        dechunked = _dechunk(body)
        if dechunked is not None:
            body = dechunked
    for enc in reversed([e for e in encodings if e != "identity"]):
        decode = CONTENT_DECODERS.get(enc)
        if decode is None or not body:
            break
        try:
            out = decode(body, limit)
        except Exception:  # noqa: BLE001 (a lying header, or stored decoded: keep what was stored)
            break
        if not out:
            break
        body, truncated = out[:limit], truncated or len(out) > limit
    return body, truncated


def _record(name, offset, rtype, rec_headers_get, status, headers, raw, limit, stored_truncated) -> Record:
    # a resource record stores the bytes themselves: no HTTP encoding to undo
    body, more = decode_http_body(raw, headers, limit) if headers and rtype != "resource" else (raw, False)
    return Record(name, offset, rtype, _strip_uri(rec_headers_get("WARC-Target-URI") or ""),
                  rec_headers_get("WARC-Date") or "", status, headers, body, stored_truncated or more,
                  digest=rec_headers_get("WARC-Payload-Digest"),
                  refers_to=_strip_uri(rec_headers_get("WARC-Refers-To-Target-URI") or "") or None,
                  refers_to_date=rec_headers_get("WARC-Refers-To-Date"))


def iter_records_warcio(stream: BinaryIO, name: str, limit: int) -> Iterator[Record]:
    """The reference reader; also reads ARC. Yields response / resource / revisit records."""
    from warcio.archiveiterator import ArchiveIterator
    it = ArchiveIterator(stream, arc2warc=True)
    for rec in it:
        if rec.rec_type not in HTTP_TYPES:
            continue
        http = rec.http_headers
        status = None
        headers: list = []
        if http is not None and rec.rec_type != "resource":
            try:
                status = int(http.get_statuscode())
            except (TypeError, ValueError):
                status = None
            headers = list(http.headers)
        elif rec.rec_type == "resource":
            ct = rec.rec_headers.get_header("Content-Type")
            headers = [("Content-Type", ct)] if ct else []
            status = 200
        # the payload as stored: warcio's own br path fails with Google's brotli (warcio issue 73)
        raw, truncated = _read_capped(rec.raw_stream, limit)
        offset = it.get_record_offset()  # only after the body is read: asking earlier empties it
        yield _record(name, offset, rec.rec_type, rec.rec_headers.get_header, status, headers, raw, limit, truncated)


def iter_records_fastwarc(stream: BinaryIO, name: str, limit: int) -> Iterator[Record]:
    """FastWARC: the same records as warcio, ~3x faster on .warc.gz."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    for rec in ArchiveIterator(stream, record_types=WarcRecordType.response | WarcRecordType.resource
                               | WarcRecordType.revisit, parse_http=True):
        rtype = ("response" if rec.record_type == WarcRecordType.response
                 else "resource" if rec.record_type == WarcRecordType.resource else "revisit")
        status, headers = None, []
        if rtype != "resource":
            if rec.http_headers is not None:
                status = rec.http_headers.status_code
                headers = list(rec.http_headers.items())
        else:
            ct = rec.headers.get("Content-Type")
            headers = [("Content-Type", ct)] if ct else []
            status = 200
        raw, truncated = _read_capped(rec.reader, limit)
        yield _record(name, rec.stream_pos, rtype, rec.headers.get, status, headers, raw, limit, truncated)


def sniff(head: bytes) -> tuple[str, str]:
    """(compression, format) from a file's first bytes, whatever its name says:
    compression gzip | zstd | none, format warc | arc | unknown."""
    compression, inner = "none", head
    if head[:2] == GZIP_MAGIC:
        compression = "gzip"
        try:
            inner = zlib.decompressobj(31).decompress(head, 64)
        except zlib.error:
            inner = b""
    elif head[:4] in (ZSTD_MAGIC, ZSTD_DICT_MAGIC):
        compression = "zstd"
        inner = b""
    inner = inner.lstrip(b"\r\n")
    if inner.startswith(b"filedesc://"):
        return compression, "arc"
    if inner.startswith(b"WARC/") or compression == "zstd":
        return compression, "warc"
    return compression, "unknown"


def _zstd_stream(stream: BinaryIO):
    """A zstd-compressed WARC (one frame a record), with the dictionary of its first skippable frame.
    `stream` is seekable (iter_records spools network streams)."""
    import zstandard
    start, dict_data = stream.tell(), None
    head = stream.read(8)
    if head[:4] == ZSTD_DICT_MAGIC:
        dict_data = stream.read(int.from_bytes(head[4:8], "little"))
        if dict_data[:4] == ZSTD_MAGIC:  # the dictionary may itself be compressed
            dict_data = zstandard.ZstdDecompressor().decompress(dict_data, max_output_size=1 << 27)
    else:
        stream.seek(start)
    dctx = (zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dict_data)) if dict_data
            else zstandard.ZstdDecompressor())
    return dctx.stream_reader(stream, read_across_frames=True)


def iter_records(location: str, reader: str, limit: int, errors: list) -> Iterator[Record]:
    """Records of one WARC or ARC file (gzip, zstd or uncompressed, told by its bytes); a read
    failure is appended to `errors` and ends the file."""
    name = location
    try:
        stream = open_stream(location)
    except Exception as e:  # noqa: BLE001 (an unreadable input is counted, not fatal)
        errors.append(("warc:open_error", f"{location}: {type(e).__name__}: {e}"))
        return
    try:
        with stream:
            if not _seekable(stream):  # FastWARC seeks and sniffing rewinds: spool a network stream first
                with tempfile.TemporaryFile(prefix="semantica-warc-") as tmp:
                    shutil.copyfileobj(stream, tmp, 1 << 20)
                    tmp.seek(0)
                    yield from _iterate(tmp, name, reader, limit)
            else:
                yield from _iterate(stream, name, reader, limit)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 (truncated gzip, bad chunking, garbage; FastWARC may panic)
        errors.append(("warc:read_error", f"{location}: {type(e).__name__}: {e}"))
        log.warning("%s: stopped reading: %s: %s", location, type(e).__name__, str(e).splitlines()[0] if str(e) else "")


def _iterate(stream: BinaryIO, name: str, reader: str, limit: int) -> Iterator[Record]:
    start = stream.tell()
    compression, fmt = sniff(stream.read(SNIFF_BYTES))
    stream.seek(start)
    if compression == "zstd":
        yield from iter_records_warcio(_zstd_stream(stream), name, limit)  # FastWARC reads no zstd
    elif fmt == "arc" or reader == "warcio":
        yield from iter_records_warcio(stream, name, limit)  # FastWARC does not read the legacy ARC format
    else:
        yield from iter_records_fastwarc(stream, name, limit)


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except Exception:  # noqa: BLE001
        return False
