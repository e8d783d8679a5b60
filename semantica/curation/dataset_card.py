"""The dataset card (README.md) of a published pairs dataset: Hugging Face's YAML header
(DatasetCardData: licence, task, the two configs and, read from their Parquet shards, the rows and
bytes of each) over a Markdown body rendered from templates/dataset_card.md (Jinja2)."""
from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData

from semantica.config import Settings

TEMPLATE = "dataset_card.md"
# the Hub's size_categories: the bucket of the row count (here, of pairs)
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def size_category(n: int) -> str:
    return next((name for top, name in SIZE_CATEGORIES if n < top), "n>1B")


def config_info(out: Path, config: str) -> dict:
    """A config's entry of `dataset_info`, from its Parquet shards under DIR/data, as `datasets` records
    one: rows, their size in Arrow (what `datasets` checks and shows) and the files' size."""
    files = sorted((out / "data").glob(f"{config}-*.parquet"))
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    arrow = sum(pq.read_table(f).nbytes for f in files)  # a shard at a time
    return {"config_name": config, "splits": [{"name": "train", "num_bytes": arrow, "num_examples": rows}],
            "download_size": sum(f.stat().st_size for f in files), "dataset_size": arrow}


def card_data(out: Path, stats: dict) -> DatasetCardData:
    """The YAML header: two configs (pairs, images) over the Parquet shards, each with its row count."""
    return DatasetCardData(
        license="other", task_categories=["image-to-image"], pretty_name=stats["name"],
        size_categories=[size_category(stats["pairs"])],
        configs=[{"config_name": "pairs", "data_files": "data/pairs-*.parquet", "default": True},
                 {"config_name": "images", "data_files": "data/images-*.parquet"}],
        dataset_info=[config_info(out, "pairs"), config_info(out, "images")])


def render_card(out: Path, stats: dict, settings: Settings, pair_schema: pa.Schema,
                image_schema: pa.Schema) -> DatasetCard:
    env = jinja2.Environment(loader=jinja2.PackageLoader("semantica.curation", "templates"), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    up = {k: (stats.get("upstream") or {}).get(k) for k in ("encoder", "low", "high", "drops")}
    text = env.get_template(TEMPLATE).render(dict(
        stats, card_data=card_data(out, stats).to_yaml(), drops=stats["drops"]["publish"], upstream=up,
        filter_drops=json.dumps((up.get("drops") or {}).get("filter", {})),
        mine=settings.stages.mine, publish=settings.stages.publish, pair_schema=pair_schema,
        image_schema=image_schema, last_shard=max(0, len(list((out / "webdataset").glob("*.tar"))) - 1)))
    return DatasetCard(text)  # parses the header as the Hub does


def write_card(out: Path, stats: dict, settings: Settings, pair_schema: pa.Schema, image_schema: pa.Schema) -> None:
    render_card(out, stats, settings, pair_schema, image_schema).save(out / "README.md")
