"""The bounded set of reasons a record, page or image reference is dropped: `stage:reason`.

Every drop in the miner uses one of these names; stats.json counts them and the refs/
table's `status` column holds them (or `kept`). The sample web's ground truth uses the same.
"""
KEPT = "kept"

# reading WARC files
WARC_READ_ERROR = "warc:read_error"          # the file ends early or a record is malformed
WARC_OPEN_ERROR = "warc:open_error"          # the file cannot be opened or fetched
WARC_EMPTY = "warc:empty"                    # no record at all (a zero-byte file)
# pages
PAGE_NOT_HTML = "page:not_html"
PAGE_HTTP_STATUS = "page:http_status"        # not 2xx
PAGE_TRUNCATED = "page:truncated"            # larger than max_html_bytes: only the head is parsed
PAGE_PARSE_ERROR = "page:parse_error"
# over a parse bound (stages.mine.parse): flattened, cut, or no main content
PAGE_TOO_COMPLEX = "page:too_complex"
PAGE_BAD_URI = "page:bad_uri"                # the WARC-Target-URI does not parse as a URL
PAGE_TOO_FEW = "page:too_few_images"         # fewer than two usable images: no pair possible
# prefilters (before any download)
PRE_DATA_URI = "prefilter:data_uri"
PRE_SCHEME = "prefilter:scheme"
PRE_BAD_URL = "prefilter:bad_url"
PRE_EXTENSION = "prefilter:extension"
PRE_DECLARED_SMALL = "prefilter:declared_small"
PRE_ASPECT = "prefilter:aspect_ratio"
PRE_TOO_MANY = "prefilter:too_many_images"
# fetching bytes
FETCH_PRIVATE = "fetch:private_address"      # SSRF guard
FETCH_HOST_NOT_ALLOWED = "fetch:host_not_allowed"  # download.allowed_hosts is set and excludes the host
FETCH_HTTP_404 = "fetch:http_404"
FETCH_HTTP_ERROR = "fetch:http_error"        # other 4xx / 5xx
FETCH_NETWORK = "fetch:network_error"        # DNS, refused, reset, TLS
FETCH_TIMEOUT = "fetch:timeout"
FETCH_TOO_LARGE = "fetch:too_large"
FETCH_NOAI = "fetch:robots_noai"
FETCH_NOT_IMAGE = "fetch:not_image"          # HTML or text where an image was expected
FETCH_REDIRECTS = "fetch:too_many_redirects"
FETCH_NOT_CAPTURED = "fetch:not_captured"    # archive mode (download.enabled false): no candidate is in the crawl
# decoding
DEC_CORRUPT = "decode:corrupt"
DEC_BOMB = "decode:too_many_pixels"          # a decompression bomb, refused before decoding
DEC_MEMORY = "decode:too_much_memory"        # decoding would need more than decode.max_memory_mb (JPEGs are reduced)
DEC_TOO_SMALL = "decode:too_small"
DEC_ASPECT = "decode:aspect_ratio"
# deduplication
DUP_SAME_URL = "dedup:same_url"
DUP_SAME_PAGE = "dedup:same_page"
DUP_FREQUENT = "dedup:frequent"
