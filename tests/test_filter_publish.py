"""Semantic filtering, the threshold sweep and publishing, on the mined sample web."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semantica.errors import UserError
from semantica.curation.filter import read_scored, run_filter
from semantica.curation.publish import Patterns, run_publish
from semantica.curation.sweep import write_sweep

pytestmark = pytest.mark.slow


def unsafe_if_wide(img) -> bool:
    """A stand-in safety classifier for the hook: flags landscape pictures wider than 3:2."""
    return img.width > 1.45 * img.height


@pytest.fixture(scope="module")
def filtered(mined, tiny_encoder, settings, tmp_path_factory):
    out = tmp_path_factory.mktemp("filtered")
    stats = run_filter(settings, mined, out, encoder=str(tiny_encoder), overwrite=True)
    return out, stats


def _relations(sample_web):
    gt = pq.read_table(sample_web / "ground_truth" / "pairs.parquet").to_pylist()
    return {(p["page_url"], frozenset((p["url_a"], p["url_b"]))): p["relation"] for p in gt}


def test_filter_drops_unrelated_pairs_and_copies_keeps_related(filtered, sample_web, settings):
    out, stats = filtered
    relation = _relations(sample_web)
    scored = read_scored(out)
    by = Counter((relation[(r["page_url"], frozenset((r["cond_url"], r["target_url"])))], r["status"]) for r in scored)
    assert set(by) == {("related", "kept"), ("unrelated", "filter:unrelated"), ("copy", "filter:copy")}, by
    assert by[("unrelated", "filter:unrelated")] > 20 and by[("copy", "filter:copy")] > 10
    # the counts in stats agree with the rows
    kept = pq.read_table(out / "pairs").num_rows
    assert stats["pairs_kept"] == kept == by[("related", "kept")]
    assert stats["pairs_in"] == len(scored) == pq.read_table(mined_pairs(out)).num_rows
    assert stats["drops"]["filter"] == {"copy": by[("copy", "filter:copy")],
                                        "unrelated": by[("unrelated", "filter:unrelated")]}
    assert settings.stages.filter.low <= min(r["similarity"] for r in scored if r["status"] == "kept")


def mined_pairs(filtered_out):
    return json.loads((filtered_out / "stats.json").read_text())["source_pairs_dir"] + "/pairs"


def test_embeddings_are_float16_once_per_image(filtered, mined):
    out, _ = filtered
    emb = pq.read_table(out / "embeddings")
    import pyarrow as pa
    assert emb.schema.field("embedding").type.value_type == pa.float16()
    ids = emb.column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == pq.read_table(mined / "images").num_rows
    used = {i for p in pq.read_table(out / "pairs").to_pylist() for i in (p["cond_image_id"], p["target_image_id"])}
    assert set(pq.read_table(out / "images").column("image_id").to_pylist()) == used


def test_sweep_reports_what_each_band_keeps(filtered, settings):
    out, _ = filtered
    html = write_sweep(settings.stages.filter, out)
    report = json.loads((out / "sweep" / "sweep.json").read_text())
    scored = read_scored(out)
    for row in report["grid"]:
        band = [r for r in scored if row["low"] <= r["similarity"] <= row["high"]]
        assert row["pairs"] == len(band) and row["pages"] == len({r["page_url"] for r in band})
    assert len(report["grid"]) == sum(lo < hi for lo in settings.stages.filter.sweep_lows
                                      for hi in settings.stages.filter.sweep_highs)
    assert (out / "sweep" / "sweep.png").stat().st_size > 10_000
    assert html.read_text().count("data:image/png;base64,") >= 8


def test_publish_round_trip_with_opt_out_and_safety(filtered, settings, tmp_path):
    import dataclasses
    out, _ = filtered
    opt = tmp_path / "opt-out.txt"
    opt.write_text("# removed at the owner's request\nwww.blog.example\n")
    phash_block = tmp_path / "phash.txt"
    images = {r["image_id"]: r for r in pq.read_table(out / "images").to_pylist()}
    elsewhere = sorted(p["cond_image_id"] for p in pq.read_table(out / "pairs").to_pylist()
                       if "blog.example" not in p["page_url"])
    blocked = images[elsewhere[0]]  # on a page the opt-out list leaves alone
    phash_block.write_text(f"{blocked['phash'] & (2**64 - 1):016x}\n")
    pub_cfg = dataclasses.replace(settings.stages.publish, phash_blocklist=str(phash_block),
                                  safety_classifier="test_filter_publish:unsafe_if_wide", shard_rows=100)
    s = dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, publish=pub_cfg))
    stats = run_publish(s, out, tmp_path / "pub", opt_out_file=str(opt), name="sample-pairs")
    pub = tmp_path / "pub"

    from datasets import load_dataset
    pairs = load_dataset("parquet", data_files=str(pub / "data" / "pairs-*.parquet"), split="train")
    imgs = load_dataset("parquet", data_files=str(pub / "data" / "images-*.parquet"), split="train")
    assert len(pairs) == stats["pairs"] and len(imgs) == stats["images"]
    assert not [p for p in pairs if "blog.example" in p["page_url"]]  # opt-out applied
    d = stats["drops"]["publish"]
    assert d["opt_out"] > 0 and d["phash_blocklist"] > 0 and d["classifier"] > 0
    assert blocked["image_id"] not in set(imgs["image_id"])
    assert stats["pairs"] == stats["pairs_in"] - sum(d.values())
    ids = set(imgs["image_id"])
    assert all(p["cond_image_id"] in ids and p["target_image_id"] in ids for p in pairs)
    # WebDataset shards: one sample (cond, target, json) per pair
    members = [m for t in sorted((pub / "webdataset").glob("*.tar")) for m in tarfile.open(t).getnames()]
    assert len(members) == 3 * stats["pairs"] and len(list((pub / "webdataset").glob("*.tar"))) > 1
    card = (pub / "README.md").read_text()
    assert "sample-pairs" in card and "opt-out list" in card and "test_filter_publish:unsafe_if_wide" in card
    assert f"| pairs | {stats['pairs']} |" in card
    from huggingface_hub import DatasetCard
    header = DatasetCard.load(pub / "README.md").data  # the YAML header, as the Hub reads it
    assert {i["config_name"]: i["splits"][0]["num_examples"] for i in header.dataset_info} == \
        {"pairs": stats["pairs"], "images": stats["images"]}
    for line in (pub / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((pub / name).read_bytes()).hexdigest() == digest
    assert (pub / "contact_sheet.png").exists()
    with pytest.raises(UserError, match="not empty"):
        run_publish(s, out, pub)


def none_verdict(img):
    return None


def raises_verdict(img):
    raise RuntimeError("model not loaded")


def test_publish_checks_the_classifier_counts_bad_images_and_drops_duplicate_rows(filtered, settings, tmp_path):
    """A safety classifier that returns anything but a bool, or raises, stops the run naming itself and the image
    (None must not publish everything as safe); undecodable image bytes and a pair given twice (a part file
    copied twice into pairs/) are counted drops, never an internal error or a duplicate row."""
    import shutil
    out, _ = filtered
    for fn, message in (("none_verdict", r"returned None for image \S+; it must return True"),
                        ("raises_verdict", r"failed on image \S+ \(.*\): RuntimeError: model not loaded")):
        cfg = dataclasses.replace(settings.stages.publish, safety_classifier=f"test_filter_publish:{fn}")
        s = dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, publish=cfg))
        with pytest.raises(UserError, match=message):
            run_publish(s, out, tmp_path / fn)
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    part = sorted((damaged / "pairs").glob("*.parquet"))[0]
    shutil.copy(part, damaged / "pairs" / ("copy-" + part.name))
    images = pq.read_table(damaged / "images")
    bad_id = images.column("image_id")[0].as_py()
    ids, data = images.column("image_id").to_pylist(), images.column("bytes").to_pylist()
    broken = images.set_column(images.schema.get_field_index("bytes"), "bytes",
                               pa.array([b"not an image" if i == bad_id else b for i, b in zip(ids, data)],
                                        type=images.schema.field("bytes").type))
    for f in (damaged / "images").glob("*.parquet"):
        f.unlink()
    pq.write_table(broken, damaged / "images" / "part-0.parquet")
    cfg = dataclasses.replace(settings.stages.publish, safety_classifier="test_filter_publish:unsafe_if_wide")
    s = dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, publish=cfg))
    stats = run_publish(s, damaged, tmp_path / "pub")
    d = stats["drops"]["publish"]
    n_copied = pq.read_table(part).num_rows
    assert d["duplicate_pair"] == n_copied and d["undecodable_image"] >= 1
    published = pq.ParquetDataset(sorted((tmp_path / "pub" / "data").glob("pairs-*.parquet"))).read().to_pylist()
    ids = [p["pair_id"] for p in published]
    assert len(ids) == len(set(ids)) == stats["pairs"] == stats["pairs_in"] - sum(d.values())
    assert not [p for p in published if bad_id in (p["cond_image_id"], p["target_image_id"])]


def test_filter_accounts_for_pairs_whose_image_is_missing_or_undecodable(mined, tiny_encoder, settings, tmp_path):
    """A pair whose image is absent from images/ or does not decode is written to rejected/ as no_image and
    counted in stats.json (it used to vanish: pairs_in was short of the input), the run goes on. A pairs file
    copied twice is scored once: the repeats go to rejected/ as duplicate_pair (they were kept twice)."""
    import shutil
    damaged = tmp_path / "damaged"
    shutil.copytree(mined, damaged)
    images = pq.read_table(damaged / "images")
    pairs = pq.read_table(damaged / "pairs").to_pylist()
    absent, corrupt = pairs[0]["cond_image_id"], pairs[-1]["target_image_id"]
    rows = [dict(r, bytes=b"\x89PNG junk" if r["image_id"] == corrupt else r["bytes"])
            for r in images.to_pylist() if r["image_id"] != absent]
    for f in (damaged / "images").glob("*.parquet"):
        f.unlink()
    pq.write_table(pa.Table.from_pylist(rows, schema=images.schema), damaged / "images" / "part-0.parquet")
    again = pairs[:7]
    pq.write_table(pa.Table.from_pylist(again, schema=pq.read_schema(next((damaged / "pairs").glob("*.parquet")))),
                   damaged / "pairs" / "copied-again.parquet")
    stats = run_filter(settings, damaged, tmp_path / "out", encoder=str(tiny_encoder))
    hit = {p["pair_id"] for p in pairs if {absent, corrupt} & {p["cond_image_id"], p["target_image_id"]}}
    assert stats["pairs_in"] == len(pairs) + len(again) and stats["drops"]["filter"]["no_image"] == len(hit)
    assert stats["drops"]["filter"]["duplicate_pair"] == len(again)
    scored = read_scored(tmp_path / "out")
    assert sorted(r["pair_id"] for r in scored) == sorted(p["pair_id"] for p in pairs + again)
    assert {r["pair_id"] for r in scored if r["status"] == "filter:no_image"} == hit
    assert sorted(r["pair_id"] for r in scored if r["status"] == "filter:duplicate_pair") == \
        sorted(p["pair_id"] for p in again)
    kept = [r["pair_id"] for r in pq.read_table(tmp_path / "out" / "pairs").to_pylist()]
    assert len(kept) == len(set(kept))
    from semantica.curation.sweep import write_sweep
    write_sweep(settings.stages.filter, tmp_path / "out")  # reads only the pairs with a similarity



def test_filter_reads_a_folder_whose_name_looks_like_a_pattern(mined, tiny_encoder, settings, tmp_path):
    """Beam reads file patterns: a folder named `m*` beside `mother` must give its own pairs only."""
    import shutil
    shutil.copytree(mined, tmp_path / "m*")
    shutil.copytree(mined, tmp_path / "mother")
    pq.write_table(pq.read_table(mined / "pairs").slice(0, 5), tmp_path / "mother" / "pairs" / "extra.parquet")
    stats = run_filter(settings, tmp_path / "m*", tmp_path / "out", encoder=str(tiny_encoder))
    assert stats["pairs_in"] == pq.read_table(mined / "pairs").num_rows


def test_patterns_match_domains_subdomains_and_url_globs():
    p = Patterns(["example.org", "*.cdn.net", "https://site.io/private/*", "# comment", ""], "list")
    assert p.matches("https://example.org/a.jpg") and p.matches("http://img.example.org/a.jpg")
    assert p.matches("https://x.cdn.net/a.jpg") and p.matches("https://site.io/private/1.png")
    assert not p.matches("https://notexample.org/a.jpg") and not p.matches("https://site.io/public/1.png")
    with pytest.raises(UserError, match="list:1: 'bad/pattern'"):
        Patterns(["bad/pattern"], "list")


def test_patterns_host_wildcards_any_case_and_the_ones_that_never_matched():
    """An opt-out list is a compliance tool: `*blog.example*` and `HTTPS://SITE.IO/…` must match as written,
    a pattern that cannot be a host is refused, and one that matched nothing is reported."""
    p = Patterns(["*blog.example*", "HTTPS://SITE.IO/private/*", "typo.exmple", "Example.NET.", "bücher.de"], "list")
    urls = ["http://www.blog.example/a.jpg", "https://blog.example.org/x", "https://site.io/private/1.png",
            "https://cdn.example.net/a.jpg", "http://xn--bcher-kva.de/x"]  # hosts as the miner writes them
    assert all(p.matches(u) for u in urls) and not p.matches("https://site.io/Private/1.png")
    assert p.unmatched(urls) == ["typo.exmple"]
    assert p.unmatched(urls[:1]) == sorted(p.domains | set(p.globs) | {"typo.exmple"})  # every URL checked
    for bad in ("[", "*", "blog.example:8080", "user@host.org", "\x00\x00", "bad\x07host.org"):
        with pytest.raises(UserError, match="neither a domain"):
            Patterns([bad], "list")
    for bad in ("http://", "https:///private/*", "://site.io/x", "https://a b/", "https://site.io/p\x00"):
        with pytest.raises(UserError, match="is not a URL pattern: expected scheme://host/path"):
            Patterns([bad], "list")  # were accepted, and could never match
    assert Patterns(["http://127.0.0.1:8765/*"], "list").matches("http://127.0.0.1:8765/img/a.png")


@pytest.mark.parametrize("damage, message", [
    ("truncated", r"part-00000-of-00002.parquet: not a readable Parquet file"),
    ("no_column", r"part-00000-of-00002.parquet: no column 'cond_image_id'"),
    ("wrong_kind", r"part-00000-of-00002.parquet: column 'phash_distance' holds string, expected integer"),
])
def test_a_damaged_manifest_file_is_named_by_filter_publish_and_train(mined, tiny_encoder, settings, tmp_path,
                                                                       damage, message):
    """A truncated part file, one without a column, or with a column of another kind: one error naming the file
    and the column, before any job starts (was: an internal error deep in the Beam job, or a KeyError)."""
    import shutil

    from semantica.training.data import check_pairs
    bad = tmp_path / "bad"
    shutil.copytree(mined, bad)
    part = bad / "pairs" / "part-00000-of-00002.parquet"
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[:100])
    else:
        t = pq.read_table(part)
        t = t.drop_columns(["cond_image_id"]) if damage == "no_column" else t.set_column(
            t.schema.get_field_index("phash_distance"), "phash_distance",
            pa.array([str(x) for x in t.column("phash_distance").to_pylist()]))
        pq.write_table(t, part)
    with pytest.raises(UserError, match=message):
        run_filter(settings, bad, tmp_path / "f", encoder=str(tiny_encoder))
    with pytest.raises(UserError, match=message):
        run_publish(settings, bad, tmp_path / "p")
    if damage != "wrong_kind":  # train reads only the ids and bytes
        with pytest.raises(UserError, match=message):
            check_pairs(bad)
    assert not (tmp_path / "f").exists() and not (tmp_path / "p").exists()


def test_publish_refuses_a_multiline_name_a_damaged_stats_file_and_an_impossible_output(filtered, settings,
                                                                                         tmp_path):
    """--name goes into the card: a newline would write into its body. A stats.json that is not JSON, and an
    output name the file system refuses, are one line each (were internal errors); no output is left."""
    import shutil
    out, _ = filtered
    with pytest.raises(UserError, match=r"--name 'x\\n---\\nlicense: mit': one line of printable text"):
        run_publish(settings, out, tmp_path / "p1", name="x\n---\nlicense: mit")
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "stats.json").write_text("{not json")
    with pytest.raises(UserError, match=r"bad/stats.json: not readable JSON"):
        run_publish(settings, bad, tmp_path / "p2")
    with pytest.raises(UserError, match=r"cannot make this output folder: File name too long"):
        run_publish(settings, out, tmp_path / ("x" * 300))
    assert not (tmp_path / "p1").exists() and not (tmp_path / "p2").exists()


def test_publish_names_an_opt_out_directory_and_warns_when_nothing_is_left(filtered, settings, tmp_path, caplog):
    """`--opt-out DIR` says it is a directory (it said "no such file"); a list that drops every pair still writes
    the (empty) dataset, whose card counts the drops, and the log warns that nothing was published."""
    import logging
    out, _ = filtered
    with pytest.raises(UserError, match=r"--opt-out '.*': a directory; expected a text file of patterns"):
        run_publish(settings, out, tmp_path / "p1", opt_out_file=str(tmp_path))
    assert not (tmp_path / "p1").exists()
    everything = tmp_path / "all.txt"
    everything.write_text("*example*\n")  # every page of the sample web
    with caplog.at_level(logging.WARNING):
        stats = run_publish(settings, out, tmp_path / "p2", opt_out_file=str(everything))
    assert stats["pairs"] == 0 and stats["drops"]["publish"]["opt_out"] > 0
    assert any("no pair of" in r.getMessage() and "opt_out" in r.getMessage() for r in caplog.records)
