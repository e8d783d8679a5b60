"""The dataset card of a published dataset: a YAML header the Hub and `datasets` read (configs,
rows of each), over the Markdown body of templates/dataset_card.md."""
from __future__ import annotations

import configparser
import fnmatch

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from semantica import schemas
from semantica.curation.dataset_card import size_category, write_card

from helpers import REPO

DROPS = {"opt_out": 1, "url_blocklist": 0, "phash_blocklist": 2, "classifier": 0, "missing_image": 0}


def _published(out, pairs: int, images: int, shards: int = 2):
    """DIR/data as publish writes it: pairs and images in `shards` Parquet files each."""
    (out / "data").mkdir(parents=True)
    rows = {"pairs": [dict(dict.fromkeys(schemas.PAIRS.names), pair_id=f"p{i}", page_url=f"https://a.example/{i % 4}",
                           domain="a.example") for i in range(pairs)],
            "images": [dict(dict.fromkeys(schemas.IMAGES.names), image_id=f"i{i}", bytes=b"\xff" * 100)
                       for i in range(images)]}
    for name, schema in (("pairs", schemas.PAIRS), ("images", schemas.IMAGES)):
        for s in range(shards):
            part = rows[name][s::shards]
            pq.write_table(pa.Table.from_pylist(part, schema=schema),
                           out / "data" / f"{name}-{s:05d}-of-{shards:05d}.parquet")
    return {"name": "card-test", "pairs_in": pairs + 3, "pairs": pairs, "images": images, "pages": 4, "domains": 1,
            "drops": {"publish": DROPS}, "opt_out_patterns": 1, "url_blocklist_patterns": 0,
            "phash_blocklist_hashes": 1, "safety_classifier": None, "sources": ["/data/a.warc.gz"],
            "upstream": {"encoder": "tiny-encoder", "low": 0.2, "high": 0.995, "drops": {"filter": {"copy": 3}}}}


def _header(card: str) -> dict:
    assert card.startswith("---\n")
    head, _, _ = card[4:].partition("\n---\n")
    return yaml.safe_load(head)


def test_header_parses_and_carries_the_counts(settings, tmp_path):
    stats = _published(tmp_path, pairs=7, images=5)
    write_card(tmp_path, stats, settings, schemas.PAIRS, schemas.IMAGES)
    card = (tmp_path / "README.md").read_text()
    head = _header(card)
    assert head["license"] == "other" and head["task_categories"] == ["image-to-image"]
    assert head["pretty_name"] == "card-test" and head["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in head["configs"]] == ["pairs", "images"]
    info = {i["config_name"]: i for i in head["dataset_info"]}
    for config in ("pairs", "images"):
        files = sorted((tmp_path / "data").glob(f"{config}-*.parquet"))
        assert info[config]["splits"] == [{"name": "train", "num_examples": stats[config],
                                           "num_bytes": sum(pq.read_table(f).nbytes for f in files)}]
    assert info["images"]["download_size"] == sum(f.stat().st_size for f in (tmp_path / "data").glob("images-*"))
    # the body, as before the template: counts, drops, the filter, the schema
    assert "| pairs | 7 |" in card and "| images | 5 |" in card and "| pages | 4 |" in card
    assert "| opt-out list (URL or domain) | 1 | 1 |" in card and "`none configured`" in card
    assert "encoder `tiny-encoder`, cosine similarity kept in [0.2, 0.995], drops {\"copy\": 3}." in card
    assert "| `pair_id` | `string` |" in card and "| `bytes` | `binary` |" in card
    assert "- `/data/a.warc.gz`" in card and card.endswith("(contact_sheet.png)\n")


def test_hugging_face_reads_the_header(settings, tmp_path):
    """The Hub's card parser gives the same metadata; `datasets` loads each config by name and checks
    its row count against the header's."""
    from datasets import load_dataset
    from huggingface_hub import DatasetCard
    stats = _published(tmp_path, pairs=6, images=4)
    write_card(tmp_path, stats, settings, schemas.PAIRS, schemas.IMAGES)
    card = DatasetCard.load(tmp_path / "README.md")
    assert card.data.pretty_name == "card-test"
    assert {i["config_name"]: i["splits"][0]["num_examples"] for i in card.data.dataset_info} == \
        {"pairs": 6, "images": 4}
    for config, n in (("pairs", 6), ("images", 4)):
        ds = load_dataset(str(tmp_path), config, split="train", cache_dir=str(tmp_path / "hf-cache"))
        assert len(ds) == n


def test_card_of_an_unfiltered_dataset_without_sources(settings, tmp_path):
    stats = dict(_published(tmp_path, pairs=0, images=0, shards=1), sources=[], upstream={})
    write_card(tmp_path, stats, settings, schemas.PAIRS, schemas.IMAGES)
    card = (tmp_path / "README.md").read_text()
    assert {i["config_name"]: i["splits"][0]["num_examples"] for i in _header(card)["dataset_info"]} == \
        {"pairs": 0, "images": 0}
    assert "- (not recorded)" in card and "no semantic filter was applied" in card


@pytest.mark.parametrize("n, bucket", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (250_000, "100K<n<1M"),
                                       (3_000_000_000, "n>1B")])
def test_size_category(n, bucket):
    assert size_category(n) == bucket


def test_template_ships_with_the_package():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    patterns = cfg["options.package_data"]["semantica.curation"].split()
    assert "semantica.curation" in cfg["options"]["packages"].split()
    assert any(fnmatch.fnmatch("templates/dataset_card.md", p) for p in patterns)
    assert (REPO / "semantica" / "curation" / "templates" / "dataset_card.md").is_file()
