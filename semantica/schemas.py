"""The declared Parquet schemas of the mining outputs (one row per page / reference / image / pair /
failure): the files the later stages read (curation: images/ and pairs/, whose columns it keeps)."""
import pyarrow as pa

PAGES = pa.schema([
    ("page_url", pa.string()), ("domain", pa.string()), ("warc_file", pa.string()), ("warc_offset", pa.int64()),
    ("fetch_time", pa.string()), ("http_status", pa.int32()), ("content_type", pa.string()),
    ("charset", pa.string()), ("html_bytes", pa.int64()), ("truncated", pa.bool_()),
    ("num_refs", pa.int32()), ("num_images", pa.int32()), ("num_pairs", pa.int32()), ("too_complex", pa.bool_()),
])
REFS = pa.schema([
    ("page_url", pa.string()), ("url", pa.string()), ("raw_url", pa.string()), ("alt", pa.string()),
    ("width", pa.int32()), ("height", pa.int32()), ("position", pa.int32()), ("source", pa.string()),
    ("in_main_content", pa.bool_()), ("status", pa.string()), ("detail", pa.string()),
    ("image_id", pa.string()), ("warc_file", pa.string()), ("warc_offset", pa.int64()),
    # every candidate URL of the element (url first), the one whose bytes were used, and where they
    # came from: crawl (a capture in the WARC files) | network (downloaded) | null (none)
    ("candidates", pa.list_(pa.string())), ("image_url", pa.string()), ("image_from", pa.string()),
])
IMAGES = pa.schema([
    ("image_id", pa.string()), ("url", pa.string()), ("phash", pa.int64()), ("width", pa.int32()),
    ("height", pa.int32()), ("format", pa.string()), ("num_bytes", pa.int64()), ("source", pa.string()),
    ("source_warc_file", pa.string()), ("source_warc_offset", pa.int64()), ("bytes", pa.binary()),
])
PAIRS = pa.schema([
    ("pair_id", pa.string()), ("page_url", pa.string()), ("domain", pa.string()),
    ("cond_image_id", pa.string()), ("target_image_id", pa.string()), ("cond_url", pa.string()),
    ("target_url", pa.string()), ("phash_distance", pa.int32()), ("warc_file", pa.string()),
    ("warc_offset", pa.int64()),
])

# one row per element whose step raised (mining/containment.py): where it came from, what was raised
FAILURES = pa.schema([
    ("stage", pa.string()), ("error", pa.string()), ("message", pa.string()), ("traceback", pa.string()),
    ("warc_file", pa.string()), ("warc_offset", pa.int64()), ("url", pa.string()), ("element", pa.string()),
])


def project(row: dict, schema: pa.Schema) -> dict:
    """Exactly the schema's columns (a missing one is None)."""
    return {name: row.get(name) for name in schema.names}


def _kind(t: pa.DataType) -> str:
    for name, test in (("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
                       ("binary", lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)),
                       ("integer", pa.types.is_integer), ("float", pa.types.is_floating),
                       ("bool", pa.types.is_boolean)):
        if test(t):
            return name
    return str(t)


def manifest_files(folder, schema: pa.Schema, needed=None, pattern: str = "*.parquet") -> list[str]:
    """The Parquet files of a manifest folder (pairs/, images/), each checked by its footer alone (no data
    read): readable, and holding the `needed` columns of `schema` (default all) with values of their kind.
    A damaged or foreign file is one error naming the file and the column, not a failure deep in a job."""
    import pyarrow.parquet as pq
    from pathlib import Path

    from semantica.errors import UserError
    folder = Path(folder)
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not files:
        raise UserError(f"{folder}: no {pattern} file")
    for f in files:
        try:
            found = pq.read_schema(f)
        except (OSError, pa.ArrowException) as e:
            raise UserError(f"{f}: not a readable Parquet file ({type(e).__name__}: {e})") from None
        for name in needed or schema.names:
            if name not in found.names:
                raise UserError(f"{f}: no column {name!r} (it has {', '.join(found.names)})")
            want, got = _kind(schema.field(name).type), _kind(found.field(name).type)
            if want != got:
                raise UserError(f"{f}: column {name!r} holds {found.field(name).type}, expected {want}")
    return [str(f) for f in files]
