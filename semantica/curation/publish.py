"""Publishing a curated pairs dataset: a self-contained folder others can load.

  DIR/data/pairs-00000-of-0000N.parquet    pair metadata (+ similarity when filtered)
  DIR/data/images-00000-of-0000N.parquet   the images the pairs use, bytes included
  DIR/webdataset/pairs-00000.tar           one sample per pair: cond.*, target.*, json
  DIR/contact_sheet.png                    random pairs, condition left, target right
  DIR/README.md                            the dataset card (schema, counts, sources, filters,
                                           licence and attribution, opt-out, safety)
  DIR/SHA256SUMS, DIR/stats.json

Before anything is written, the opt-out list and the safety stage run: URL and domain
patterns (opt-out and blocklist), perceptual-hash blocklist, and an optional image
classifier hook (`module:function`, PIL image → True when unsafe). Each drop is counted
and named in the card.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import io
import json
import logging
import random
import re
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from semantica import schemas
from semantica.config import PublishConfig, Settings
from semantica.errors import UserError
from semantica.images import UNREADABLE, hamming, to_rgb, to_signed
from semantica.outputs import mark_complete, prepare_output, require_complete

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- matching
HOST_PATTERN = re.compile(r"[^/\s?#\[\]@:\x00-\x1f\x7f]+")  # a host name, IDN too, with `*` wildcards: no path, port,
# user or control character
URL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]+)([/?#].*)?")  # scheme://host[:port][/path]


def _host(host: str) -> str:
    """A host (or a host pattern) as the miner keeps it (mining/urls.py's canonical_host, which curation may not
    import: tests/test_layout.py): lower case, IDNA, no trailing dot."""
    host = host.rstrip(".").lower()
    try:
        return host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _has_control(text: str) -> bool:
    """A control character (C0 or DEL): never part of a name, a host or a URL pattern."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _lower_origin(url: str) -> str:
    """Scheme and host are case-insensitive in a URL; the path is not."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}"


class Patterns:
    """URL / domain patterns: `example.com` (the domain and its subdomains), `*.cdn.net` (the same),
    a host with `*` wildcards (`*blog.example*`), or a URL with optional `*` wildcards
    (`https://site.org/private/*`; scheme and host match in any case). Hosts are compared as the miner
    writes them: lower case, IDNA (punycode), no trailing dot."""

    def __init__(self, lines: list[str], source: str):
        self.domains, self.host_globs, self.globs = set(), [], []
        for i, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if "://" in line:
                url = URL_PATTERN.fullmatch(line)
                host = url.group(1) if url else ""
                host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # host:port
                if not HOST_PATTERN.fullmatch(host) or _has_control(line):
                    raise UserError(f"{source}:{i}: {line!r} is not a URL pattern: expected scheme://host/path, "
                                    f"with `*` wildcards (https://example.com/private/*)")
                self.globs.append(_lower_origin(line))
                continue
            host = line.lower()
            host = host[2:] if host.startswith("*.") else host
            if not HOST_PATTERN.fullmatch(host) or not host.strip("*."):
                raise UserError(f"{source}:{i}: {line!r} is neither a domain (example.com, *.example.com, "
                                f"*example*) nor a URL pattern (https://example.com/private/*)")
            host = _host(host)
            if "*" in host:
                self.host_globs.append(host)
            else:
                self.domains.add(host)
        self.source = source

    def __len__(self) -> int:
        return len(self.domains) + len(self.host_globs) + len(self.globs)

    def hits(self, url: Optional[str]) -> set:
        """The patterns that match `url`."""
        if not url:
            return set()
        host = _host(urlsplit(url).hostname or "")
        parts = host.split(".")
        hit = {d for d in (".".join(parts[i:]) for i in range(len(parts))) if d in self.domains}
        hit.update(g for g in self.host_globs if fnmatch.fnmatchcase(host, g))
        url = _lower_origin(url)
        hit.update(g for g in self.globs if fnmatch.fnmatchcase(url, g))
        return hit

    def matches(self, url: Optional[str]) -> bool:
        return bool(self.hits(url))

    def unmatched(self, urls) -> list[str]:
        """The patterns that match none of `urls`: a typo in an opt-out list would otherwise pass unseen."""
        if not len(self):
            return []  # no list: nothing to parse every URL for
        hit: set = set()
        for url in urls:
            hit |= self.hits(url)
        return sorted((self.domains | set(self.host_globs) | set(self.globs)) - hit)


def _read_lines(path: Optional[str], what: str) -> list[str]:
    if not path:
        return []
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {path!r}: a directory; expected a text file of patterns, one a line")
    if not p.is_file():
        raise UserError(f"{what} {path!r}: no such file")
    try:
        return p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {path!r}: not UTF-8 text (byte {e.start})") from None


def load_classifier(spec: Optional[str]) -> Optional[Callable]:
    """`package.module:function`, called with a PIL image, returning True for unsafe."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"stages.publish.safety_classifier {spec!r}: cannot import: {e}") from None
    return fn


# ----------------------------------------------------------------------------- safety
def curate(pairs: list[dict], images: dict, cfg: PublishConfig, opt_out: Patterns, blocklist: Patterns,
           phash_block: list[int], classifier: Optional[Callable]) -> tuple[list[dict], dict]:
    """Pairs that pass every check, and the drop counts by reason."""
    drops = {"opt_out": 0, "url_blocklist": 0, "phash_blocklist": 0, "classifier": 0, "missing_image": 0,
             "undecodable_image": 0, "duplicate_pair": 0}
    unsafe: dict = {}

    def classified_unsafe(img: dict) -> Optional[str]:
        try:
            image = to_rgb(Image.open(io.BytesIO(img["bytes"] or b"")))
        except UNREADABLE as e:
            log.warning("publish: image %s (%s) undecodable, its pairs dropped: %s: %s", img["image_id"],
                        img["url"], type(e).__name__, e)
            return "undecodable_image"
        try:
            verdict = classifier(image)
        except Exception as e:  # the user's code: name it and the image, keep the cause
            raise UserError(f"stages.publish.safety_classifier {cfg.safety_classifier!r} failed on image "
                            f"{img['image_id']} ({img['url']}): {type(e).__name__}: {e}") from e
        if not isinstance(verdict, (bool, np.bool_)):  # None or a score must not pass as "safe" (or "unsafe")
            raise UserError(f"stages.publish.safety_classifier {cfg.safety_classifier!r} returned {verdict!r} "
                            f"for image {img['image_id']}; it must return True (unsafe) or False (safe)")
        return "classifier" if verdict else None

    def image_unsafe(image_id: str) -> Optional[str]:
        if image_id not in unsafe:
            img = images.get(image_id)
            reason = None
            if img is None:
                reason = "missing_image"
            elif blocklist.matches(img["url"]):
                reason = "url_blocklist"
            elif any(hamming(img["phash"], h) <= cfg.phash_block_hamming for h in phash_block):
                reason = "phash_blocklist"
            elif classifier is not None:
                reason = classified_unsafe(img)
            unsafe[image_id] = reason
        return unsafe[image_id]

    kept, seen = [], set()
    for p in pairs:
        if p["pair_id"] in seen:  # a part file copied twice into the folder: one row per pair
            drops["duplicate_pair"] += 1
            continue
        seen.add(p["pair_id"])
        if any(opt_out.matches(p.get(k)) for k in ("page_url", "cond_url", "target_url")):
            drops["opt_out"] += 1
            continue
        if blocklist.matches(p["page_url"]):
            drops["url_blocklist"] += 1
            continue
        reason = image_unsafe(p["cond_image_id"]) or image_unsafe(p["target_image_id"])
        if reason:
            drops[reason] += 1
            continue
        kept.append(p)
    return kept, drops


# ----------------------------------------------------------------------------- writing
def _shards(rows: list[dict], n: int) -> list[list[dict]]:
    return [rows[i:i + n] for i in range(0, len(rows), n)] or [[]]


def _write_parquet(rows: list[dict], schema: pa.Schema, folder: Path, stem: str, shard_rows: int) -> list[Path]:
    shards = _shards(rows, shard_rows)
    paths = []
    for i, shard in enumerate(shards):
        path = folder / f"{stem}-{i:05d}-of-{len(shards):05d}.parquet"
        pq.write_table(pa.Table.from_pylist(shard, schema=schema), path)
        paths.append(path)
    return paths


def _ext(fmt: Optional[str]) -> str:
    extensions = {"jpeg": "jpg", "png": "png", "gif": "gif", "webp": "webp", "bmp": "bmp", "tiff": "tiff"}
    return extensions.get(fmt or "", "bin")


def _write_webdataset(pairs: list[dict], images: dict, folder: Path, shard_rows: int) -> list[Path]:
    import webdataset as wds
    paths = []
    for i, shard in enumerate(_shards(pairs, shard_rows)):
        path = folder / f"pairs-{i:05d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for p in shard:
                c, t = images[p["cond_image_id"]], images[p["target_image_id"]]
                meta = {k: v for k, v in p.items() if k not in ("warc_offset",)}
                sink.write({"__key__": p["pair_id"], f"cond.{_ext(c['format'])}": c["bytes"],
                            f"target.{_ext(t['format'])}": t["bytes"], "json": json.dumps(meta).encode()})
        paths.append(path)
    return paths


def _contact_sheet(pairs: list[dict], images: dict, path: Path, seed: int, n: int = 8, cell: int = 96) -> None:
    sample = random.Random(seed).sample(pairs, min(n, len(pairs)))
    sheet = Image.new("RGB", (2 * cell + 8, max(1, len(sample)) * (cell + 4)), "white")
    for row, p in enumerate(sample):
        for col, key in enumerate(("cond_image_id", "target_image_id")):
            img = to_rgb(Image.open(io.BytesIO(images[p[key]]["bytes"])))
            img.thumbnail((cell, cell))
            sheet.paste(img, (col * (cell + 8), row * (cell + 4)))
    sheet.save(path)


def run_publish(settings: Settings, pairs_dir: Path, out: Path, opt_out_file: Optional[str] = None,
                overwrite: bool = False, name: str = "semantica-pairs") -> dict:
    cfg = settings.stages.publish
    pairs_dir, out = Path(pairs_dir), Path(out)
    for sub in ("pairs", "images"):
        if not (pairs_dir / sub).exists():
            raise UserError(f"{pairs_dir}: no {sub}/ (expected the output of `semantica filter` or `mine`)")
    require_complete(pairs_dir, "publish")
    if not name.strip() or _has_control(name):  # a newline would write into the card
        raise UserError(f"--name {name!r}: one line of printable text")
    try:  # read now: the card needs it, and a damaged one must fail before the output is made
        upstream = json.loads((pairs_dir / "stats.json").read_text()) if (pairs_dir / "stats.json").exists() else {}
    except (ValueError, OSError) as e:
        raise UserError(f"{pairs_dir / 'stats.json'}: not readable JSON ({type(e).__name__}: {e})") from None
    # the same files filter reads (the top level's *.parquet), each checked by its footer: one clear error
    pair_files = schemas.manifest_files(pairs_dir / "pairs", schemas.PAIRS)
    image_files = schemas.manifest_files(pairs_dir / "images", schemas.IMAGES)
    opt_out = Patterns(list(cfg.opt_out) + _read_lines(opt_out_file, "--opt-out"),
                       opt_out_file or "stages.publish.opt_out")
    blocklist = Patterns(_read_lines(cfg.url_blocklist, "stages.publish.url_blocklist"), cfg.url_blocklist or "")
    phash_block = []
    for i, line in enumerate(_read_lines(cfg.phash_blocklist, "stages.publish.phash_blocklist"), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                phash_block.append(to_signed(int(line, 16)))
            except ValueError:
                raise UserError(f"{cfg.phash_blocklist}:{i}: {line!r} is not a 16-digit hex pHash") from None
    classifier = load_classifier(cfg.safety_classifier)
    inputs = [pairs_dir] + [f for f in (opt_out_file, cfg.url_blocklist, cfg.phash_blocklist) if f]
    prepare_output(out, overwrite, inputs)  # after every list is read: a bad line leaves the output as it was

    pairs = sorted(pq.read_table(pair_files).to_pylist(), key=lambda p: p["pair_id"])
    images = {r["image_id"]: r for r in pq.read_table(image_files).to_pylist()}
    kept, drops = curate(pairs, images, cfg, opt_out, blocklist, phash_block, classifier)
    if pairs and not kept:  # an empty dataset is still written (its card says why), but it should not pass unseen
        log.warning("no pair of %d is published: every one was dropped (%s)", len(pairs),
                    ", ".join(f"{k} {v}" for k, v in drops.items() if v))
    # every URL, not only those curate looked at before a pair was dropped; the names go to the log only
    # (the published stats.json would otherwise publish who opted out)
    urls = {p.get(k) for p in pairs for k in ("page_url", "cond_url", "target_url")} | {
        img["url"] for img in images.values()}
    unmatched = {}
    for what, patterns in (("opt_out", opt_out), ("url_blocklist", blocklist)):
        unmatched[what] = names = patterns.unmatched(urls)
        if names:
            shown = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
            log.warning("%s: %d pattern(s) matched no URL of these pairs: %s", patterns.source, len(names), shown)
    used = sorted({i for p in kept for i in (p["cond_image_id"], p["target_image_id"])})
    image_rows = [images[i] for i in used]

    (out / "data").mkdir()
    pair_schema = pq.read_schema(next((pairs_dir / "pairs").glob("*.parquet")))
    pair_schema = pa.schema([f for f in pair_schema if not f.name.startswith("__")])
    image_schema = pq.read_schema(next((pairs_dir / "images").glob("*.parquet")))
    files = _write_parquet(kept, pair_schema, out / "data", "pairs", cfg.shard_rows)
    files += _write_parquet(image_rows, image_schema, out / "data", "images", cfg.shard_rows)
    if cfg.webdataset:
        (out / "webdataset").mkdir()
        files += _write_webdataset(kept, images, out / "webdataset", cfg.shard_rows)
    if kept:
        _contact_sheet(kept, images, out / "contact_sheet.png", settings.stages.mine.seed)
        files.append(out / "contact_sheet.png")

    sources = (pairs_dir / "inputs.txt").read_text().split() if (pairs_dir / "inputs.txt").exists() else []
    stats = {"name": name, "pairs_in": len(pairs), "pairs": len(kept), "images": len(image_rows),
             "pages": len({p["page_url"] for p in kept}), "domains": len({p["domain"] for p in kept}),
             "drops": {"publish": drops}, "opt_out_patterns": len(opt_out), "url_blocklist_patterns": len(blocklist),
             "unmatched_patterns": {what: len(names) for what, names in unmatched.items()},
             "phash_blocklist_hashes": len(phash_block), "safety_classifier": cfg.safety_classifier,
             "sources": sources, "upstream": {k: upstream.get(k) for k in ("encoder", "low", "high", "drops")}}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    from semantica.curation.dataset_card import write_card
    write_card(out, stats, settings, pair_schema, image_schema)
    files += [out / "README.md", out / "stats.json"]
    sums = [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(out)}" for f in sorted(files)]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    mark_complete(out)
    return stats
