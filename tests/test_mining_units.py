"""The miner's plain functions, one job each: prefilters, decode, dedup, pairs
(HTML → refs: test_mining_html.py; fetching: test_mining_fetch.py)."""
from __future__ import annotations

import dataclasses
import io
from collections import Counter

import pytest
from PIL import Image

from semantica.images import hamming, to_signed
from semantica.mining import reasons as R
from semantica.mining import stats as S
from semantica.mining.decode import Decoded, DecodeFailure, decode_image
from semantica.mining.dedup import band_keys, bands, near_pairs, page_dedup
from semantica.mining.extract import process_warc
from semantica.mining.pairs import make_pairs
from semantica.mining.prefilter import prefilter_page, url_reason

from helpers import bomb_png


# ----------------------------------------------------------------------------- prefilters
HOSTILE = {
    "javascript:alert(1)": R.PRE_SCHEME, "file:///etc/passwd": R.PRE_SCHEME, "ftp://h/x.jpg": R.PRE_SCHEME,
    "http://user:pw@example.org/x.jpg": R.PRE_BAD_URL, "http:///x.jpg": R.PRE_BAD_URL, "": R.PRE_BAD_URL,
    "data:image/png;base64,AAAA": R.PRE_DATA_URI, "https://e.org/i.SVG": R.PRE_EXTENSION,
    "https://e.org/photo.jpg?w=1": None,
}


@pytest.mark.parametrize("url, reason", HOSTILE.items())
def test_url_prefilter(url, reason, settings):
    assert url_reason(url, settings.stages.mine.prefilter) == reason


def test_page_prefilter_counts_sizes_duplicates_and_pages(settings):
    from semantica.mining.html_refs import ImageRef
    cfg = settings.stages.mine.prefilter
    def ref(url, w=None, h=None):
        return ImageRef(url, url, "", w, h, 0, "img")
    refs = [ref("http://a/1.jpg"), ref("http://a/px.gif", 1, 1), ref("http://a/lb.jpg", 728, 90),
            ref("http://a/1.jpg"), ref("http://a/2.jpg", 300, 200)]
    assert prefilter_page(refs, cfg) == [R.KEPT, R.PRE_DECLARED_SMALL, R.PRE_ASPECT, R.DUP_SAME_URL, R.KEPT]
    assert prefilter_page(refs[:2], cfg) == [R.PAGE_TOO_FEW, R.PRE_DECLARED_SMALL]
    many = [ref(f"http://a/{i}.jpg") for i in range(cfg.max_images_per_page + 3)]
    statuses = prefilter_page(many, cfg)
    assert statuses.count(R.PRE_TOO_MANY) == 3 and statuses[-1] == R.PRE_TOO_MANY


# ----------------------------------------------------------------------------- decode
def _png(size, mode="RGB", **kw):
    buf = io.BytesIO()
    Image.new(mode, size, **kw).save(buf, "PNG")
    return buf.getvalue()


def test_decode_refuses_bombs_and_corrupt_bytes(settings):
    cfg = settings.stages.mine.decode
    bomb = decode_image(bomb_png(), cfg)
    assert isinstance(bomb, DecodeFailure) and bomb.reason == R.DEC_BOMB
    over_ours = decode_image(bomb_png(8000, 6000), cfg)  # 48 M pixels: under Pillow's limit, over ours
    assert isinstance(over_ours, DecodeFailure) and over_ours.reason == R.DEC_BOMB
    for junk in (b"", b"not an image", _png((64, 64))[:60]):
        d = decode_image(junk, cfg)
        assert isinstance(d, DecodeFailure) and d.reason == R.DEC_CORRUPT, junk[:10]
    assert decode_image(_png((8, 8)), cfg).reason == R.DEC_TOO_SMALL


def test_decode_brings_every_mode_to_the_same_hash(settings):
    cfg = settings.stages.mine.decode
    import numpy as np
    from PIL import ImageDraw
    base = Image.new("RGB", (128, 128), (30, 60, 90))
    ImageDraw.Draw(base).ellipse([20, 30, 90, 110], fill=(240, 200, 40))
    ImageDraw.Draw(base).rectangle([70, 10, 120, 50], fill=(200, 30, 30))
    grey16 = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    variants = {}
    for name, img, fmt in [("rgb", base, "PNG"), ("cmyk", base.convert("CMYK"), "JPEG"),
                           ("palette", base.convert("P"), "GIF"), ("rgba", base.convert("RGBA"), "PNG"),
                           ("gray16", grey16, "PNG")]:
        buf = io.BytesIO()
        img.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        variants[name] = decode_image(buf.getvalue(), cfg)
    assert all(isinstance(v, Decoded) for v in variants.values()), variants
    ref = variants["rgb"].phash
    assert all(hamming(v.phash, ref) <= 4 for v in variants.values())
    assert variants["cmyk"].format == "jpeg" and variants["palette"].mode == "P"
    assert len(variants["rgb"].image_id) == 32


def test_hamming_and_signed_hashes():
    assert hamming(to_signed(0xFFFFFFFFFFFFFFFF), 0) == 64
    assert hamming(to_signed(1 << 63), 0) == 1


# ----------------------------------------------------------------------------- dedup and pairs
def test_lsh_finds_every_pair_within_distance_and_no_others():
    import random
    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(200)]
    hashes = {to_signed(h) for h in base}
    for k in range(50):  # near copies: flip up to 6 bits
        h = base[k]
        for bit in rng.sample(range(64), rng.randint(1, 6)):
            h ^= 1 << bit
        hashes.add(to_signed(h))
    buckets: dict = {}
    for h in hashes:
        for key in band_keys(h, 8, 6):
            buckets.setdefault(key, []).append(h)
    found = {p for bucket in buckets.values() for p in near_pairs(bucket, 6)}
    brute = {(a, b) for a in hashes for b in hashes if a < b and hamming(a, b) <= 6}
    assert found == brute and len(found) >= 50
    assert len(band_keys(0, 8, 6)) == 28 and len(band_keys(0, 8, 7)) == 8  # C(8, 2) keys of 16 bits


def test_lsh_keys_are_small_ints_that_bucket_as_the_band_tuples_did():
    """One int per key (subset index << 16 | the two bands): exactly the buckets of the former
    ((band, value), (band, value)) tuple keys, so the pigeonhole guarantee is unchanged."""
    import itertools
    import random
    rng = random.Random(1)
    hashes = [to_signed(rng.getrandbits(64)) for _ in range(300)]
    hashes += [h ^ (1 << rng.randrange(64)) for h in hashes[:100]]  # share most bands with another

    def tuple_keys(h):  # the former keys
        b = [(i, v) for i, v in enumerate(bands(h, 8))]
        return [tuple(b[i] for i in subset) for subset in itertools.combinations(range(8), 2)]

    by_int, by_tuple = {}, {}
    for n, h in enumerate(hashes):
        keys = band_keys(h, 8, 6)
        assert all(isinstance(k, int) and 0 <= k < 28 << 16 for k in keys) and len(set(keys)) == 28
        assert [k >> 16 for k in keys] == list(range(28))
        for k, t in zip(keys, tuple_keys(h)):
            by_int.setdefault(k, set()).add(n)
            by_tuple.setdefault(t, set()).add(n)
    assert sorted(map(sorted, by_int.values())) == sorted(map(sorted, by_tuple.values()))
    h = 0x0123456789ABCDEF
    assert band_keys(h, 8, 6)[0] == 0 << 16 | 0xEF << 8 | 0xCD  # bands 0 and 1, lowest bits first
    assert band_keys(h, 4, 2)[0] == 0 << 32 | 0xCDEF << 16 | 0x89AB  # the general path
    assert band_keys(to_signed(h | 1 << 63), 8, 6) == band_keys(h | 1 << 63, 8, 6)  # signed or not


def test_a_full_bucket_is_verified_on_its_smallest_hashes():
    import random
    from semantica.mining.dedup import MAX_BUCKET, smallest_distinct
    rng = random.Random(2)
    items = [rng.randrange(-2**63, 2**63) for _ in range(3 * MAX_BUCKET)]
    items += items[:100]  # repeats count once
    kept: list = []
    for chunk in range(0, len(items), 777):  # in pieces, as a combiner sees them
        kept = smallest_distinct(kept, items[chunk:chunk + 777], MAX_BUCKET)
        assert len(kept) <= 2 * MAX_BUCKET
    assert sorted(set(kept))[:MAX_BUCKET] == sorted(set(items))[:MAX_BUCKET]
    low, high = min(items), max(items)  # each gets a copy at distance 1
    found = set(near_pairs(items + [low ^ 2, high ^ 2], 6))
    assert (min(low, low ^ 2), max(low, low ^ 2)) in found  # among the MAX_BUCKET smallest: verified
    assert (min(high, high ^ 2), max(high, high ^ 2)) not in found  # past them: not (a warning is logged)


def test_large_buckets_are_verified_with_numpy_and_find_the_same_pairs(monkeypatch):
    import random
    import numpy as np
    from semantica.mining import dedup
    rng = random.Random(4)
    base = [rng.getrandbits(64) for _ in range(150)]
    flips = [rng.sample(range(64), 2) for _ in base]
    bucket = [to_signed(h) for h in base] + [to_signed(h ^ 1 << i ^ 1 << j) for h, (i, j) in zip(base, flips)]
    assert len(set(bucket)) > dedup.VECTOR_FROM
    loop = sorted((a, b) for a in set(bucket) for b in set(bucket) if a < b and hamming(a, b) <= 6)
    assert list(near_pairs(bucket, 6)) == loop and len(loop) >= 150
    monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy < 2: a byte table
    assert list(near_pairs(bucket, 6)) == loop


def test_capped_spread_tells_more_than_max_exactly():
    """Pages and domains kept capped at max + 1 (the smallest): a capped union of capped spreads gives
    the verdict of the full union, whatever the grouping."""
    import random
    from semantica.mining.dedup import capped_add, is_frequent, spread_add
    kept: list = []
    for x in [5, 3, 9, 3, 1, 7]:
        capped_add(kept, x, 3)
    assert sorted(kept) == [1, 3, 5]
    rng = random.Random(3)
    for _ in range(300):
        groups = [[(f"p{rng.randrange(12)}", f"d{rng.randrange(4)}") for _ in range(rng.randint(0, 4))]
                  for _ in range(rng.randint(1, 6))]
        capped = []
        for g in groups:  # each hash's spread, capped
            capped.append(spread_add(([], []), [p for p, _ in g], [d for _, d in g], 5, 2))
        union = ([], [])
        for pages, domains in capped:
            spread_add(union, pages, domains, 5, 2)
        everything = {o for g in groups for o in g}
        full = len({p for p, _ in everything}) > 5 or len({d for _, d in everything}) > 2
        assert is_frequent(union, 5, 2) == full
        assert len(union[0]) <= 6 and len(union[1]) <= 3


def test_page_dedup_keeps_the_largest_of_a_picture():
    items = [dict(position=0, image_id="t", phash=0, width=64, height=64),
             dict(position=1, image_id="f", phash=3, width=128, height=128),
             dict(position=2, image_id="o", phash=to_signed(0xFFFF0000FFFF), width=100, height=100),
             dict(position=3, image_id="f", phash=3, width=128, height=128)]
    assert page_dedup(items, 6) == [R.DUP_SAME_PAGE, R.KEPT, R.KEPT, R.DUP_SAME_PAGE]


def test_pairs_are_capped_deterministic_and_cover_every_image(settings):
    import random
    rng = random.Random(1)
    images = [dict(image_id=f"{k:02d}", phash=to_signed(rng.getrandbits(64))) for k in range(12)]
    cfg = dataclasses.replace(settings.stages.mine.pairs, max_pairs_per_page=8)
    pairs = make_pairs(images, "http://a/p", cfg, seed=0)
    assert len(pairs) == 8 and pairs == make_pairs(images, "http://a/p", cfg, seed=0)
    assert {i for p in pairs for i in p[:2]} == set(range(12))
    assert pairs != make_pairs(images, "http://a/p", cfg, seed=1)
    tiny = dataclasses.replace(cfg, max_pairs_per_page=2)  # too low to cover 12: raised to 6
    assert {i for p in make_pairs(images, "http://a/p", tiny, 0) for i in p[:2]} == set(range(12))
    near = [dict(image_id="a", phash=0), dict(image_id="b", phash=1), dict(image_id="c", phash=to_signed(2**64 - 1))]
    assert all({0, 1} != {c, t} for c, t, _ in make_pairs(near, "p", cfg, 0))  # near-identical: no pair


# ----------------------------------------------------------------------------- real WARC files
def test_real_pages_are_parsed_and_refs_pinned(shared_warc, settings):
    """allenai/dolma's real crawl sample: every page parsed; a few references checked by hand."""
    cfg = dataclasses.replace(settings.stages.mine, main_content=False)
    counts: Counter = Counter()
    pages = [item for kind, item in process_warc(str(shared_warc / "web-crawl-sample-0000.warc.gz"), cfg, counts)
             if kind == "page"]
    # 24 responses: 22 HTML pages and wget's two text/plain metadata:// records
    assert counts[S.RECORDS] == 24 and counts[S.RECORDS_OTHER] == 2 and counts[S.of_reason(R.WARC_READ_ERROR)] == 0
    assert len(pages) == counts[S.PAGES] == 22
    assert all(p.page_url.startswith("https://") for p in pages)  # <https://…> URIs read as plain URLs
    by_url = {p.page_url: p for p in pages}
    refs = [r for p in pages for r in p.refs]
    assert len(refs) == 243  # 240 <img> tags (shared/data's README) + 3 og:image
    for page_url, position, url, alt, status in PINNED_REFS:
        ref = by_url[page_url].refs[position]
        assert (ref.url, ref.alt, ref.status) == (url, alt, status)


def test_iana_images_are_joined_from_the_warc(shared_warc, settings):
    """iana.org's <img> tags all point to SVGs captured in the WARC (its one PNG is a CSS
    background): with SVG let through, every reference finds its bytes in the WARC, and the
    PNG record decodes and hashes, with no download."""
    from semantica.mining.resolve import from_warc
    mine = settings.stages.mine
    no_svg_block = dataclasses.replace(mine.prefilter, blocked_extensions=(".js",))
    cfg = dataclasses.replace(mine, prefilter=no_svg_block, main_content=False)
    counts: Counter = Counter()
    items = list(process_warc(str(shared_warc / "iana-with-images.warc.gz"), cfg, counts))
    records: dict = {}
    for kind, item in items:
        if kind == "image":
            records.setdefault(item[0], []).append(item[1])
    refs = {r.url for kind, item in items if kind == "page" for r in item.refs if r.status == "kept"}
    # every candidate is joined to a capture, but the https:// page's: its images were captured
    # only as revisit records whose original capture is not in this file
    assert {u for u in refs if u.startswith("http://")} <= set(records)
    assert {u for u in refs if u.startswith("https://")}.isdisjoint(records)
    png, _ = from_warc("http://www.iana.org/_img/2013.1/iana-logo-homepage.png",
                       records["http://www.iana.org/_img/2013.1/iana-logo-homepage.png"], cfg)
    assert png.status == "kept" and png.source == "warc" and png.format == "png" and png.phash is not None
    svg, _ = from_warc(sorted(refs)[0], records[sorted(refs)[0]], cfg)
    assert svg.status == R.DEC_CORRUPT and svg.source == "warc"  # Pillow does not rasterise SVG


def test_fastwarc_reads_what_warcio_reads(shared_warc):
    """warcio is the oracle: same URIs, statuses and decoded bodies from both readers."""
    from semantica.mining.warc_io import iter_records
    for path in sorted(shared_warc.iterdir()):
        a = [(r.uri, r.http_status, r.body) for r in iter_records(str(path), "warcio", 10**8, [])]
        b = [(r.uri, r.http_status, r.body) for r in iter_records(str(path), "fastwarc", 10**8, [])]
        if path.name == "example-bad-non-chunked.warc.gz":  # one gzip member for all: warcio refuses it
            kinds = [r.rec_type for r in iter_records(str(path), "fastwarc", 10**8, [])]
            assert a == [] and kinds == ["response", "revisit"]
        elif path.name == "example-wrong-chunks.warc.gz":  # lying chunk sizes: warcio returns no body
            assert [(u, s) for u, s, _ in a] == [(u, s) for u, s, _ in b] and a[0][2] == b"" and b[0][2]
        else:
            assert a == b, path.name


# Read by hand from the HTML in the WARC (zcat | grep '<img'): URL as a browser resolves it.
PINNED_REFS = [
    # srcset 500w / 800w / 1024w: the 1024w candidate
    ("https://www.semanticscholar.org/research/research-team", 80,
     "https://assets-global.website-files.com/605ba9b55a4a92803e45a32b/65218f13dcc164cb31f97003_me-1024.png",
     "Luca Soldaini", "kept"),
    ("https://www.semanticscholar.org/research/research-team", 10,
     "https://assets-global.website-files.com/605ba9b55a4a92803e45a32b/6222980f8827a1ae0477c42e_dan-weld.jpeg",
     "Daniel S. Weld", "kept"),
    # <picture> with three <source media="(max-width: …)">: the widest screen's, 1400
    ("https://kyleclo.com/", 0, "https://kyleclo.com/assets/img/kyle_lo_profile-1400.webp", "kyle_lo_profile.jpg",
     "page:too_few_images"),
    # protocol-relative src on an https page
    ("https://www.cs.washington.edu/people/faculty/weld", 1,
     "https://s3-us-west-2.amazonaws.com/www-cse-public/images/portraits/weld_sm.jpg", "", "kept"),
    ("https://www.cs.washington.edu/people/faculty/weld", 0,
     "https://www.cs.washington.edu/images/CSEWordmark_white.svg", "", "prefilter:extension"),
    # unquoted relative src
    ("https://soldaini.net/", 0, "https://soldaini.net/personal-me/me-512.webp", "Luca Soldaini", "kept"),
]


def test_page_rows_match_the_refs_prefilter_and_candidates_field_by_field(settings):
    """page_from_record builds its Ref rows positionally from page_refs' tuples: they must hold what
    extract_refs, prefilter_page and resolve_candidates say, field by field (a moved Ref field fails here)."""
    from semantica.mining.extract import page_from_record
    from semantica.mining.html_refs import extract_refs, resolve_candidates
    from semantica.mining.warc_io import Record
    html = ('<html><head><meta property="og:image" content="/og.jpg"><base href="/m/"></head><body>'
            '<img src="a.jpg" alt=" A " width="640" height="480">'
            '<img src="data:image/gif;base64,R0lG" data-src="lazy.webp">'
            '<img src="s-320.jpg" srcset="s-320.jpg 320w, s-1536.jpg 1536w" width="20">'
            '<picture><source srcset="p.avif"><img src="p.jpg" alt="p"></picture>'
            '<img src="a.jpg"><img src="icon.svg"></body></html>')
    url = "https://e.org/post/1.html"
    cfg = settings.stages.mine
    page = page_from_record(Record("f.warc.gz", 0, "response", url, "2026-01-01T00:00:00Z", 200,
                                   [("Content-Type", "text/html; charset=utf-8")], html.encode(), False),
                            cfg, Counter())
    refs = extract_refs(html, url)
    statuses = prefilter_page(refs, cfg.prefilter)
    want = [dict(url=r.url, raw_url=r.raw, alt=r.alt, width=r.declared_width, height=r.declared_height,
                 position=r.position, source=r.source, in_main_content=None if not cfg.main_content else
                 row.in_main_content, status=s, candidates=resolve_candidates(r) if s == R.KEPT else None)
            for r, s, row in zip(refs, statuses, page.refs)]
    assert [dataclasses.asdict(row) for row in page.refs] == want
    assert [r.source for r in page.refs] == ["img", "lazy", "srcset", "picture", "img", "img", "og:image"]
    assert page.refs[0].width == 640 and page.refs[0].alt == "A" and page.refs[2].status == R.PRE_DECLARED_SMALL
