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
