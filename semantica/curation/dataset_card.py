"""The dataset card (README.md) of a published pairs dataset."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from semantica.config import Settings


def _schema_table(schema: pa.Schema) -> str:
    return "\n".join(f"| `{f.name}` | `{f.type}` |" for f in schema)


def write_card(out: Path, stats: dict, settings: Settings, pair_schema: pa.Schema, image_schema: pa.Schema) -> None:
    cfg, mine = settings.stages.publish, settings.stages.mine
    up = stats.get("upstream") or {}
    drops = stats["drops"]["publish"]
    sources = stats["sources"]
    shown = "\n".join(f"- `{s}`" for s in sources[:20]) + (f"\n- … and {len(sources) - 20} more" if len(sources) > 20 else "")
    filt = (f"semantic filter: encoder `{up.get('encoder')}`, cosine similarity kept in "
            f"[{up.get('low')}, {up.get('high')}], drops {json.dumps((up.get('drops') or {}).get('filter', {}))}"
            if up.get("encoder") else "no semantic filter was applied (published from `semantica mine` output)")
    text = f"""---
license: other
task_categories:
- image-to-image
configs:
- config_name: pairs
  data_files: data/pairs-*.parquet
  default: true
- config_name: images
  data_files: data/images-*.parquet
---

# {stats['name']}

Pairs of images that appear on the same web page, mined from web crawls with
Semantica for training image-variation models: a model conditioned
on one image of a pair (`cond`) learns to generate the other (`target`).

## Counts

| | |
|---|---|
| pairs | {stats['pairs']} |
| images | {stats['images']} |
| pages | {stats['pages']} |
| domains | {stats['domains']} |

## Sources

{len(sources)} WARC file(s):

{shown or '- (not recorded)'}

## How the pairs were made

- Pages: HTML responses of the WARC files; image references from `<img>` (`src`, `srcset`,
  lazy `data-src`), `<picture><source>` and `og:image`.
- Prefilters: schemes {list(mine.prefilter.allowed_schemes)}, blocked extensions, declared side
  < {mine.prefilter.min_declared_side} px, aspect ratio > {mine.prefilter.max_aspect_ratio}, pages with
  fewer than {mine.prefilter.min_images_per_page} or more than {mine.prefilter.max_images_per_page} images.
- Downloads honour `X-Robots-Tag: noai` / `noimageai`; loopback and private addresses are refused.
- Decoding: images over {mine.decode.max_pixels} pixels refused, sides under {mine.decode.min_side} px dropped.
- Deduplication by pHash: one picture per page (distance ≤ {mine.dedup.page_hamming}); pictures whose
  near-duplicates (≤ {mine.dedup.near_dup_hamming}, LSH with {mine.dedup.lsh_bands} bands) are on more than
  {mine.dedup.max_pages_per_image} pages or {mine.dedup.max_domains_per_image} domains (logos, banners) dropped.
- Pairs: ordered, pHash distance > {mine.pairs.min_pair_hamming}, at most {mine.pairs.max_pairs_per_page} per page.
- {filt}.

## Opt-out and safety (applied before publishing)

| stage | patterns / hashes | pairs dropped |
|---|---|---|
| opt-out list (URL or domain) | {stats['opt_out_patterns']} | {drops['opt_out']} |
| URL / domain blocklist | {stats['url_blocklist_patterns']} | {drops['url_blocklist']} |
| perceptual-hash blocklist (≤ {cfg.phash_block_hamming} bits) | {stats['phash_blocklist_hashes']} | {drops['phash_blocklist']} |
| image classifier hook | `{stats['safety_classifier'] or 'none configured'}` | {drops['classifier']} |

No NSFW classifier ships with this dataset unless the row above names one: review the
contact sheet and the data before redistributing. To have a page, image or domain
removed, send its URL or domain; it is added to the opt-out list and the next release
omits it.

## Licence and attribution

{cfg.licence}

Every image keeps its source `url` and the `page_url` it was found on; copyright stays
with the owners. The dataset card and the pair metadata are CC0.

## Schema

`pairs` config:

| column | type |
|---|---|
{_schema_table(pair_schema)}

`images` config (joined on `cond_image_id` / `target_image_id` = `image_id`):

| column | type |
|---|---|
{_schema_table(image_schema)}

## Loading

```python
from datasets import load_dataset
pairs = load_dataset("parquet", data_files="data/pairs-*.parquet", split="train")
images = load_dataset("parquet", data_files="data/images-*.parquet", split="train")

import pyarrow.dataset as ds
pairs = ds.dataset("data", format="parquet").to_table()  # or pyarrow.parquet.read_table

import webdataset as wds   # streaming for training: one sample per pair
for sample in wds.WebDataset("webdataset/pairs-{{00000..{max(0, len(list((out / 'webdataset').glob('*.tar'))) - 1):05d}}}.tar"):
    cond, target, meta = sample["cond.jpg"], sample["target.jpg"], sample["json"]
```

Check the files with `sha256sum -c SHA256SUMS`.

![random pairs: condition left, target right](contact_sheet.png)
"""
    (out / "README.md").write_text(text)
