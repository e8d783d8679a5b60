"""The sample web: deterministic, consistent with its ground truth, and as noisy as the real web."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import urllib.error
import urllib.request
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import imagehash
import pyarrow.parquet as pq
import pytest
from PIL import Image
from warcio.archiveiterator import ArchiveIterator

from semantica.images import to_rgb
from semantica.sample_web import serve_sample_web, write_sample_web
from semantica.sample_web.site import MIN_PHASH_SEPARATION

from helpers import free_port


# ----------------------------------------------------------------------------- an oracle
class RefOracle(HTMLParser):
    """A deliberately plain reading of the HTML rules the ground truth follows (stdlib only)."""

    def __init__(self, page_url: str):
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.refs: list[tuple] = []
        self.og: list[tuple] = []
        self.picture_source = None
        self.in_picture = False

    @staticmethod
    def largest(srcset: str) -> str:
        cands = []
        for part in srcset.split(","):
            bits = part.split()
            size = float(bits[1][:-1]) if len(bits) > 1 else 1.0
            cands.append((size, bits[0]))
        return max(cands)[1]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "base" and "href" in a:
            self.base = urljoin(self.base, a["href"])
        elif tag == "meta" and a.get("property") == "og:image":
            self.og.append((urljoin(self.base, a["content"]), "", None, None))
        elif tag == "picture":
            self.in_picture, self.picture_source = True, None
        elif tag == "source" and self.in_picture and self.picture_source is None:
            self.picture_source = self.largest(a["srcset"])
        elif tag == "img":
            src = (self.picture_source or a.get("data-src")
                   or (self.largest(a["srcset"]) if "srcset" in a else a.get("src")))
            url = src if src.startswith("data:") else urljoin(self.base, src)
            w, h = a.get("width"), a.get("height")
            self.refs.append((url, a.get("alt", ""), int(w) if w else None, int(h) if h else None))

    def handle_endtag(self, tag):
        if tag == "picture":
            self.in_picture, self.picture_source = False, None


def read_warcs(folder: Path) -> dict:
    """uri -> (record type -> list of records' (http headers, body)); plus raw counts."""
    out = defaultdict(lambda: defaultdict(list))
    for path in sorted((folder / "warc").glob("*.warc.gz")):
        with path.open("rb") as f:
            for rec in ArchiveIterator(f):
                uri = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<>")
                out[uri][rec.rec_type].append((rec.http_headers, rec.content_stream().read(), rec.rec_headers))
    return out


def table(folder: Path, name: str) -> list[dict]:
    return pq.read_table(folder / "ground_truth" / f"{name}.parquet").to_pylist()


# ----------------------------------------------------------------------------- tests
def _tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_web(tmp_path, settings):
    cfg = dataclasses.replace(settings.stages.sample_web, num_pages=24, num_domains=3)
    write_sample_web(cfg, tmp_path / "a")
    write_sample_web(cfg, tmp_path / "b")
    a, b = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert a == b and len(a) > 50
    write_sample_web(dataclasses.replace(cfg, seed=1), tmp_path / "c")
    c = _tree_digest(tmp_path / "c")
    assert c["warc/sample-00000.warc.gz"] != a["warc/sample-00000.warc.gz"]


def test_refs_are_what_the_html_says(sample_web):
    warc = read_warcs(sample_web)
    pages = table(sample_web, "pages")
    refs = defaultdict(list)
    for r in table(sample_web, "refs"):
        refs[r["page_url"]].append(r)
    assert len(pages) == 48
    for page in pages:
        (http, body, _), = warc[page["page_url"]]["response"]
        html = body.decode(page["charset"])
        oracle = RefOracle(page["page_url"])
        oracle.feed(html)
        found = oracle.refs + oracle.og
        expected = sorted(refs[page["page_url"]], key=lambda r: r["position"])
        assert [f[0] for f in found] == [r["url"] for r in expected], page["page_url"]
        assert [f[1] for f in found[:len(oracle.refs)]] == [r["alt"] for r in expected[:len(oracle.refs)]]
        assert [(f[2], f[3]) for f in found] == [(r["declared_width"], r["declared_height"]) for r in expected]
        assert [r["position"] for r in expected] == list(range(len(expected)))
        assert http.get_header("Content-Type") == page["http_content_type"]


def test_every_record_is_where_records_parquet_says(sample_web):
    rows = table(sample_web, "records")
    by_file = defaultdict(list)
    for r in rows:
        by_file[r["warc_file"]].append(r)
    for name, recs in by_file.items():
        with (sample_web / "warc" / name).open("rb") as f:
            for r in recs:
                f.seek(r["offset"])
                rec = next(iter(ArchiveIterator(f)))
                assert rec.rec_type == r["record_type"]
                assert (rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<>") == r["target_uri"]
    types = {r["record_type"] for r in rows}
    assert types == {"warcinfo", "request", "response", "metadata"}


def test_image_bytes_are_in_the_warc_or_served(sample_web, sample_web_port):
    warc = read_warcs(sample_web)
    assets = table(sample_web, "assets")
    with serve_sample_web(sample_web, port=sample_web_port) as base:
        for a in assets:
            if a["stored"] == "warc":
                (http, body, _), = warc[a["url"]]["response"]
                assert hashlib.sha256(body).hexdigest() == a["sha256"], a["url"]
                for k, v in json.loads(a["headers"]).items():
                    assert http.get_header(k) == v
            else:
                assert a["url"].startswith(base)
                with urllib.request.urlopen(a["url"], timeout=10) as resp:
                    assert hashlib.sha256(resp.read()).hexdigest() == a["sha256"], a["url"]
                    for k, v in json.loads(a["headers"]).items():
                        assert resp.headers[k] == v
        broken = [r["url"] for r in table(sample_web, "refs") if r["role"] == "broken_link"]
        assert broken
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(broken[0], timeout=10)
        assert e.value.code == 404
    with pytest.raises(OSError):  # stopped: nothing listens any more
        urllib.request.urlopen(base, timeout=2)


def test_every_kind_of_noise_is_present(sample_web):
    m = json.loads((sample_web / "manifest.json").read_text())
    assert {"logo", "banner", "tracking_pixel", "icon", "thumbnail_duplicate", "inline_data", "svg_icon",
            "broken_link", "corrupt", "noai", "off_topic", "copy", "teaser", "og_image", "leaderboard",
            "content"} <= set(m["ref_roles"])
    assert {"lazy", "srcset-w", "srcset-x", "picture", "relative", "base-href", "protocol-relative",
            "og:image", "data-uri", "img-declared"} <= set(m["ref_markups"])
    assert {"article", "no_images", "single_image", "non_utf8", "no_content_type"} == set(m["page_kinds"])
    assert set(m["pair_relations"]) == {"related", "unrelated", "copy"}
    formats = {a["format"] for a in table(sample_web, "assets")}
    assert {"jpeg", "jpeg-cmyk", "png-rgba", "gif-palette", "gif-animated", "webp"} <= formats
    refs = table(sample_web, "refs")
    logos = [r for r in refs if r["role"] == "logo"]
    assert max(sum(1 for r in logos if r["url"] == u) for u in {r["url"] for r in logos}) > 5
    banner_domains = {r["page_url"].split("/")[2] for r in refs if r["role"] == "banner"}
    assert len(banner_domains) > 2 and len({r["url"] for r in refs if r["role"] == "banner"}) == len(banner_domains)
    records = table(sample_web, "records")
    assert {"robots", "css", "js", "pdf", "json", "redirect", "http_error"} <= {r["role"] for r in records}
    import gzip  # warcio strips the brackets when reading, so look at the bytes
    raw = b"".join(gzip.decompress(p.read_bytes()) for p in (sample_web / "warc").glob("*.warc.gz"))
    assert b"\r\nWARC-Target-URI: <http" in raw and b"\r\nWARC-Target-URI: http" in raw
    warc = read_warcs(sample_web)
    pages = table(sample_web, "pages")
    for p in pages:
        if p["kind"] == "non_utf8":
            (_, body, _), = warc[p["page_url"]]["response"]
            with pytest.raises(UnicodeDecodeError):
                body.decode("utf-8")
            assert any(ord(c) > 0x3000 or 0x400 <= ord(c) < 0x500 for r in refs
                       if r["page_url"] == p["page_url"] for c in r["alt"])
        if p["kind"] == "no_content_type":
            assert p["http_content_type"] is None
        if p["kind"] == "no_images":
            assert p["num_refs"] == 0
    stores = {a["stored"] for a in table(sample_web, "assets")}
    assert stores == {"warc", "server"}
    # some in-WARC images live in another WARC file than their page: the join must be global
    page_file = {p["page_url"]: p["warc_file"] for p in pages}
    asset_file = {a["url"]: a["warc_file"] for a in table(sample_web, "assets") if a["stored"] == "warc"}
    assert any(asset_file.get(r["url"]) not in (None, page_file[r["page_url"]]) for r in refs)


def _decoded(sample_web, warc, url):
    a = warc.get(url, {}).get("response")
    data = a[0][1] if a else (sample_web / "static" / url.split("/", 3)[3].split("?")[0]).read_bytes()
    return Image.open(io.BytesIO(data))


def test_ground_truth_holds_at_the_miners_thresholds(sample_web, settings):
    """Decoded bytes, not drawings: kept pictures of a page stay far apart in pHash; copies stay close."""
    dedup = settings.stages.mine.dedup
    warc = read_warcs(sample_web)
    refs = table(sample_web, "refs")
    hashes = {}
    for r in refs:
        if r["keep"] or r["role"] in ("thumbnail_duplicate", "banner"):
            if r["url"] not in hashes:
                hashes[r["url"]] = imagehash.phash(to_rgb(_decoded(sample_web, warc, r["url"])))  # as the miner
    kept = defaultdict(dict)
    for r in refs:
        if r["keep"]:
            kept[r["page_url"]][r["picture_id"]] = hashes[r["url"]]
    for page, pics in kept.items():
        for (pa_, ha), (pb, hb) in itertools.combinations(pics.items(), 2):
            assert ha - hb > max(dedup.page_hamming, settings.stages.mine.pairs.min_pair_hamming), (page, pa_, pb)
    url_of_picture = {(r["page_url"], r["picture_id"]): r["url"] for r in refs if r["keep"]}
    for r in refs:
        if r["role"] == "thumbnail_duplicate" and (r["page_url"], r["picture_id"]) in url_of_picture:
            assert hashes[r["url"]] - hashes[url_of_picture[(r["page_url"], r["picture_id"])]] <= dedup.page_hamming
    banners = [hashes[u] for u in {r["url"] for r in refs if r["role"] == "banner"}]
    assert all(a - b <= dedup.near_dup_hamming for a, b in itertools.combinations(banners, 2))
    all_kept = {hashes[r["url"]] for r in refs if r["keep"] and r["role"] in ("content", "off_topic")}
    assert all(a - b >= MIN_PHASH_SEPARATION - 4 for a, b in itertools.combinations(all_kept, 2))


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_a_thumbnail_hashes_as_its_picture_does_for_the_miner(settings, seed):
    """Every same-page thumbnail is within the miner's page_hamming of its picture, hashed as the miner hashes them
    (decode_image: transparency flattened on white). Seeds 1 and 5 each had a PNG with transparent corners whose
    thumbnail, made before the flattening, was 16 bits away: the ground truth called it a duplicate the miner kept."""
    from semantica.images import hamming
    from semantica.mining.decode import decode_image
    from semantica.sample_web.site import build_site
    site = build_site(dataclasses.replace(settings.stages.sample_web, seed=seed))
    decode = settings.stages.mine.decode
    checked = 0
    for page in site.pages:
        full = {r.picture_id: r.url for r in page.refs if r.role == "content"}
        for r in page.refs:
            if r.role == "thumbnail_duplicate" and r.picture_id in full:
                thumb, picture = (decode_image(site.assets[u].body, decode) for u in (r.url, full[r.picture_id]))
                assert hamming(thumb.phash, picture.phash) <= settings.stages.mine.dedup.page_hamming, (seed, r.url)
                checked += 1
    assert checked >= 5


def test_pairs_are_the_kept_pictures_of_each_page(sample_web):
    refs = table(sample_web, "refs")
    kept = defaultdict(set)
    for r in refs:
        if r["keep"]:
            kept[r["page_url"]].add(r["picture_id"])
    pairs = table(sample_web, "pairs")
    by_page = defaultdict(set)
    for p in pairs:
        by_page[p["page_url"]].add(frozenset((p["picture_a"], p["picture_b"])))
    for page, pics in kept.items():
        assert by_page[page] == {frozenset(c) for c in itertools.combinations(pics, 2)}
    assert set(by_page) == set(kept)
    assert all(len(pics) >= 2 for pics in kept.values())
    for p in pairs:
        assert (p["relation"] == "unrelated") == (p["topic_a"] != p["topic_b"])


def test_topics_are_learnable_by_a_simple_classifier(sample_web):
    """The topic classifier of topic transfer (nearest centroid on hue histograms), held-out pictures."""
    import numpy as np
    from semantica.sample_web.topics import TopicClassifier, load_pictures
    pictures = load_pictures(sample_web)
    train, held_out = pictures[::2], pictures[1::2]
    pred = TopicClassifier.fit(train).predict([p.image for p in held_out])
    accuracy = float(np.mean(pred == np.array([p.topic for p in held_out])))
    assert len({p.topic for p in pictures}) == 8 and accuracy >= 0.9, accuracy


def test_server_port_in_use_is_a_clear_error(sample_web):
    import socket
    from semantica.errors import UserError
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(UserError, match=f"cannot serve .* on 127.0.0.1:{port}"):
            with serve_sample_web(sample_web, port=port):
                pass
