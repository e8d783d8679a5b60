"""Write a planned sample web to disk: WARC files, the folder the test server serves,
and the ground truth as Parquet.

Layout of OUT:
  warc/sample-00000.warc.gz …   request + response + metadata records, one gzip member each
  static/HOST-PATH …            the image files served over HTTP (+ _headers.json)
  ground_truth/pages.parquet    one row per page a miner should emit
  ground_truth/refs.parquet     one row per image reference, with expected_reason
  ground_truth/pairs.parquet    the unordered page-level pairs a correct miner can emit
  ground_truth/assets.parquet   every image URL: picture, where stored, size, sha256
  ground_truth/records.parquet  every WARC record: file, offset, type, URI
  manifest.json                 config, counts, noise kinds, file checksums
Everything is a function of the config: the same seed gives byte-identical files.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from semantica.config import SampleWebConfig
from semantica.outputs import prepare_output
from semantica.sample_web.plan import Site
from semantica.sample_web.site import build_site

log = logging.getLogger(__name__)
CRAWL_START = dt.datetime(2024, 5, 1, 12, 0, 0)

REFS_SCHEMA = pa.schema([
    ("page_url", pa.string()), ("position", pa.int32()), ("markup", pa.string()), ("section", pa.string()),
    ("url", pa.string()), ("alt_urls", pa.list_(pa.string())), ("alt", pa.string()),
    ("declared_width", pa.int32()), ("declared_height", pa.int32()), ("role", pa.string()),
    ("topic", pa.int32()), ("picture_id", pa.string()), ("copy_of", pa.string()),
    ("stored", pa.string()), ("keep", pa.bool_()), ("expected_reason", pa.string()),
])
PAGES_SCHEMA = pa.schema([
    ("page_url", pa.string()), ("domain", pa.string()), ("kind", pa.string()), ("topic", pa.int32()),
    ("charset", pa.string()), ("http_content_type", pa.string()), ("warc_file", pa.string()),
    ("num_refs", pa.int32()), ("num_kept", pa.int32()),
])
PAIRS_SCHEMA = pa.schema([
    ("page_url", pa.string()), ("url_a", pa.string()), ("url_b", pa.string()), ("picture_a", pa.string()),
    ("picture_b", pa.string()), ("topic_a", pa.int32()), ("topic_b", pa.int32()), ("relation", pa.string()),
])
ASSETS_SCHEMA = pa.schema([
    ("url", pa.string()), ("picture_id", pa.string()), ("topic", pa.int32()), ("stored", pa.string()),
    ("warc_file", pa.string()), ("content_type", pa.string()), ("format", pa.string()),
    ("width", pa.int32()), ("height", pa.int32()), ("num_bytes", pa.int64()), ("sha256", pa.string()),
    ("headers", pa.string()),
])
RECORDS_SCHEMA = pa.schema([
    ("warc_file", pa.string()), ("offset", pa.int64()), ("record_type", pa.string()),
    ("target_uri", pa.string()), ("http_status", pa.int32()), ("content_type", pa.string()), ("role", pa.string()),
])


class _WarcFiles:
    """Deterministic WARC writing: record ids and dates come from a counter, not the clock."""

    def __init__(self, folder: Path, n: int, seed: int):
        self.paths = [folder / f"sample-{i:05d}.warc.gz" for i in range(n)]
        self.files = [p.open("wb") for p in self.paths]
        self.writers = [WARCWriter(f, gzip=True) for f in self.files]
        self.seed, self.count = seed, 0
        self.records: list[dict] = []
        for i, w in enumerate(self.writers):
            info = (f"software: semantica sample-web\nformat: WARC File Format 1.1\n"
                    f"isPartOf: semantica-sample-web-seed{seed}\n").encode()
            self._write(i, "", "warcinfo", info, None, "warcinfo", content_type="application/warc-fields")

    def _headers(self, uri_form: str) -> dict:
        self.count += 1
        rid = uuid.UUID(bytes=hashlib.sha256(f"{self.seed}/{self.count}".encode()).digest()[:16], version=4)
        date = (CRAWL_START + dt.timedelta(seconds=self.count)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"WARC-Record-ID": f"<urn:uuid:{rid}>", "WARC-Date": date}

    def _write(self, i: int, uri: str, rtype: str, payload: bytes, http: StatusAndHeaders | None, role: str,
               content_type: str | None = None, extra: dict | None = None) -> str:
        headers = self._headers(uri)
        # some crawlers write WARC-Target-URI in angle brackets; every 5th record does here
        target = f"<{uri}>" if uri and self.count % 5 == 0 else uri
        headers.update(extra or {})
        rec = self.writers[i].create_warc_record(target, rtype, payload=io.BytesIO(payload), http_headers=http,
                                                 warc_content_type=content_type, warc_headers_dict=headers)
        offset = self.files[i].tell()
        self.writers[i].write_record(rec)
        status = int(http.get_statuscode()) if http is not None and rtype == "response" else None
        self.records.append(dict(warc_file=self.paths[i].name, offset=offset, record_type=rtype, target_uri=uri,
                                 http_status=status,
                                 content_type=http.get_header("Content-Type") if http else content_type, role=role))
        return headers["WARC-Record-ID"]

    def exchange(self, i: int, uri: str, status: str, headers: list, body: bytes, role: str) -> None:
        """request + response + metadata, as Common Crawl writes a capture."""
        parts = urlsplit(uri)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        req = StatusAndHeaders(f"GET {path or '/'} HTTP/1.1",
                               [("Host", parts.netloc), ("User-Agent", "SampleWebBot/1.0"), ("Accept", "*/*")],
                               is_http_request=True)
        resp_headers = StatusAndHeaders(status, headers + [("Content-Length", str(len(body)))], protocol="HTTP/1.1")
        resp_id = self._write(i, uri, "response", body, resp_headers, role)
        self._write(i, uri, "request", b"", req, role, extra={"WARC-Concurrent-To": resp_id})
        meta = f"fetchTimeMs: {20 + self.count % 180}\n".encode()
        self._write(i, uri, "metadata", meta, None, role, content_type="application/warc-fields",
                    extra={"WARC-Refers-To": resp_id})

    def close(self) -> None:
        for f in self.files:
            f.close()


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _write_warcs(site: Site, cfg: SampleWebConfig, folder: Path) -> tuple[_WarcFiles, dict]:
    """Every capture into the WARC files: (the closed files and their records' log, in-WARC image URL → its file)."""
    warcs = _WarcFiles(folder, cfg.num_warc_files, cfg.seed)
    written_assets = set()
    asset_warc = {}
    for page in site.pages:
        headers = [("Content-Type", page.http_content_type)] if page.http_content_type else []
        headers.append(("Server", "nginx"))
        warcs.exchange(page.warc_index, page.url, "200 OK", headers, page.html.encode(page.charset), "page")
        for ref in page.refs:  # in-WARC images follow the first page that uses them, as a browser crawl stores them
            for url in [ref.url] + list(ref.alt_urls):
                asset = site.assets.get(url)
                if asset is None or url in written_assets or asset.stored != "warc":
                    continue
                written_assets.add(url)
                asset_warc[url] = warcs.paths[asset.warc_index].name
                warcs.exchange(asset.warc_index, url, "200 OK",
                               [("Content-Type", asset.content_type)] + list(asset.headers), asset.body, "image")
    for other in site.others:
        headers = ([("Content-Type", other.content_type)] if other.content_type else []) + list(other.extra_headers)
        warcs.exchange(other.warc_index, other.url, other.status, headers, other.body, other.role)
    warcs.close()
    return warcs, asset_warc


def _write_static(site: Site, base: str, static: Path) -> None:
    """The served images under `static`, and the HTTP headers the server adds to some (_headers.json)."""
    served_headers = {}
    for url, asset in sorted(site.assets.items()):
        if asset.stored != "server":
            continue
        path = static / urlsplit(url).path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(asset.body)
        if asset.headers:
            served_headers["/" + urlsplit(url).path.lstrip("/")] = dict(asset.headers)
        assert url.startswith(base), url
    (static / "_headers.json").write_text(json.dumps(served_headers, indent=1, sort_keys=True))


def _write_ground_truth(site: Site, warcs: _WarcFiles, asset_warc: dict, gt: Path) -> tuple[list[dict], list[dict]]:
    """The five ground-truth Parquet files under `gt`; returns (the reference rows, the pairs)."""
    refs_rows, pages_rows = [], []
    for page in site.pages:
        for r in page.refs:
            row = dataclasses.asdict(r)
            asset = site.assets.get(r.url)
            row["stored"] = asset.stored if asset else ("inline" if r.url.startswith("data:") else "missing")
            row["keep"] = r.keep
            refs_rows.append(row)
        pages_rows.append(dict(page_url=page.url, domain=page.domain, kind=page.kind, topic=page.topic,
                               charset=page.charset, http_content_type=page.http_content_type,
                               warc_file=warcs.paths[page.warc_index].name, num_refs=len(page.refs),
                               num_kept=sum(r.keep for r in page.refs)))
    assets_rows = [dict(url=u, picture_id=a.picture_id, topic=site.picture_topic.get(a.picture_id, -1),
                        stored=a.stored, warc_file=asset_warc.get(u), content_type=a.content_type, format=a.format,
                        width=a.width, height=a.height, num_bytes=len(a.body),
                        sha256=hashlib.sha256(a.body).hexdigest(), headers=json.dumps(dict(a.headers)))
                   for u, a in sorted(site.assets.items())]
    pairs = site.pairs()
    pq.write_table(_table(pages_rows, PAGES_SCHEMA), gt / "pages.parquet")
    pq.write_table(_table(refs_rows, REFS_SCHEMA), gt / "refs.parquet")
    pq.write_table(_table(pairs, PAIRS_SCHEMA), gt / "pairs.parquet")
    pq.write_table(_table(assets_rows, ASSETS_SCHEMA), gt / "assets.parquet")
    pq.write_table(_table(warcs.records, RECORDS_SCHEMA), gt / "records.parquet")
    return refs_rows, pairs


def _manifest(cfg: SampleWebConfig, site: Site, base: str, warcs: _WarcFiles, refs_rows: list[dict],
              pairs: list[dict]) -> dict:
    """manifest.json's content: the config, counts, the kinds of pages, references and pairs, the WARC files' hashes."""
    return {
        "config": dataclasses.asdict(cfg),
        "served_base": base,
        "topics": site.topics,
        "counts": {
            "pages": len(site.pages), "refs": len(refs_rows), "refs_kept": sum(r["keep"] for r in refs_rows),
            "pairs": len(pairs), "pictures": len({a.picture_id for a in site.assets.values() if a.picture_id}),
            "warc_records": len(warcs.records), "served_files": sum(a.stored == "server" for a in site.assets.values()),
        },
        "page_kinds": dict(sorted(Counter(p.kind for p in site.pages).items())),
        "ref_roles": dict(sorted(Counter(r["role"] for r in refs_rows).items())),
        "ref_markups": dict(sorted(Counter(r["markup"] for r in refs_rows).items())),
        "expected_reasons": dict(sorted(Counter(r["expected_reason"] for r in refs_rows).items())),
        "pair_relations": dict(sorted(Counter(p["relation"] for p in pairs).items())),
        "warc_files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in warcs.paths},
    }


def write_sample_web(cfg: SampleWebConfig, out: Path, overwrite: bool = False) -> dict:
    """Build the sample web for `cfg` and write it under `out`; returns the manifest."""
    out = Path(out)
    prepare_output(out, overwrite)
    site = build_site(cfg)
    (out / "warc").mkdir()
    (out / "ground_truth").mkdir()
    static = out / "static"
    static.mkdir()
    warcs, asset_warc = _write_warcs(site, cfg, out / "warc")
    base = f"http://{cfg.host}:{cfg.port}/"
    _write_static(site, base, static)
    refs_rows, pairs = _write_ground_truth(site, warcs, asset_warc, out / "ground_truth")
    manifest = _manifest(cfg, site, base, warcs, refs_rows, pairs)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("sample web: %d pages, %d image references (%d to keep), %d pairs, %d WARC files in %s",
             len(site.pages), len(refs_rows), manifest["counts"]["refs_kept"], len(pairs), len(warcs.paths), out)
    return manifest
