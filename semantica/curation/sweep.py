"""The threshold sweep: what each (low, high) similarity band would keep.

The paper leaves the choice of thresholds unexplained; this report makes it an informed
one. For every (low, high) of the grid in pipelines.yaml: pairs, pages and domains kept,
and example pairs at both edges of the band (thumbnails), so a reader sees what is lost
and what gets in at each setting. Writes sweep/sweep.json, sweep/sweep.html, sweep/sweep.png.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from semantica.config import FilterConfig
from semantica.curation.filter import UNSCORED, read_scored

THUMB = 64


def sweep_table(rows: list[dict], lows, highs) -> list[dict]:
    out = []
    for lo in lows:
        for hi in highs:
            if lo >= hi:
                continue
            band = [r for r in rows if lo <= r["similarity"] <= hi]
            edge_low = sorted(band, key=lambda r: r["similarity"])[:2]
            edge_high = sorted(band, key=lambda r: -r["similarity"])[:2]
            out.append({"low": lo, "high": hi, "pairs": len(band), "pages": len({r["page_url"] for r in band}),
                        "domains": len({r["domain"] for r in band}),
                        "share_of_pairs": round(len(band) / len(rows), 4) if rows else 0.0,
                        "examples_low_edge": [r["pair_id"] for r in edge_low],
                        "examples_high_edge": [r["pair_id"] for r in edge_high]})
    return out


def _thumb(data: bytes) -> str:
    from semantica.images import to_rgb
    img = to_rgb(Image.open(io.BytesIO(data)))
    img.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plot(rows: list[dict], table: list[dict], lows, highs, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.hist([r["similarity"] for r in rows], bins=40, range=(-1, 1), color="#4477aa")
    a.set_xlabel("encoder cosine similarity of the pair")
    a.set_ylabel("pairs")
    a.set_title("all mined pairs")
    grid = np.full((len(lows), len(highs)), np.nan)
    for t in table:
        grid[lows.index(t["low"]), highs.index(t["high"])] = t["pairs"]
    im = b.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    b.set_xticks(range(len(highs)), [str(h) for h in highs])
    b.set_yticks(range(len(lows)), [str(lo) for lo in lows])
    b.set_xlabel("high (copies above)")
    b.set_ylabel("low (unrelated below)")
    b.set_title("pairs kept")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            b.text(j, i, int(v), ha="center", va="center", color="white", fontsize=8)
    fig.colorbar(im, ax=b)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_sweep(cfg: FilterConfig, out: Path) -> Path:
    out = Path(out)
    rows = [r for r in read_scored(out) if r["status"] not in UNSCORED]  # no similarity to sweep
    lows, highs = list(cfg.sweep_lows), list(cfg.sweep_highs)
    table = sweep_table(rows, lows, highs)
    folder = out / "sweep"
    folder.mkdir(exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps({"pairs_scored": len(rows), "grid": table}, indent=2) + "\n")
    _plot(rows, table, lows, highs, folder / "sweep.png")

    source = json.loads((out / "stats.json").read_text()).get("source_pairs_dir")
    wanted = {pid for t in table for pid in t["examples_low_edge"] + t["examples_high_edge"]}
    by_id = {r["pair_id"]: r for r in rows if r["pair_id"] in wanted}
    need = {i for r in by_id.values() for i in (r["cond_image_id"], r["target_image_id"])}
    thumbs = {}
    if source and Path(source, "images").exists():
        for row in pq.read_table(Path(source) / "images", columns=["image_id", "bytes"]).to_pylist():
            if row["image_id"] in need:
                thumbs[row["image_id"]] = _thumb(row["bytes"])

    def pair_html(pid: str) -> str:
        r = by_id[pid]
        imgs = "".join(f'<img src="{thumbs.get(i, "")}" width="{THUMB}" title="{html.escape(i)}">'
                       for i in (r["cond_image_id"], r["target_image_id"]))
        return f'<span class="pair">{imgs}<br>{r["similarity"]:.3f}</span>'

    lines = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Threshold sweep</title><style>",
             "body{font-family:sans-serif} td,th{border:1px solid #ccc;padding:4px} .pair{display:inline-block;"
             "margin:2px;text-align:center;font-size:11px}</style></head><body>",
             f"<h1>Threshold sweep</h1><p>{len(rows)} scored pairs; current band "
             f"[{cfg.low}, {cfg.high}].</p><img src='sweep.png'>",
             "<table><tr><th>low</th><th>high</th><th>pairs</th><th>pages</th><th>domains</th><th>share</th>"
             "<th>at the low edge</th><th>at the high edge</th></tr>"]
    for t in table:
        lines.append(f"<tr><td>{t['low']}</td><td>{t['high']}</td><td>{t['pairs']}</td><td>{t['pages']}</td>"
                     f"<td>{t['domains']}</td><td>{t['share_of_pairs']:.1%}</td>"
                     f"<td>{''.join(pair_html(p) for p in t['examples_low_edge'])}</td>"
                     f"<td>{''.join(pair_html(p) for p in t['examples_high_edge'])}</td></tr>")
    lines.append("</table></body></html>")
    (folder / "sweep.html").write_text("\n".join(lines))
    return folder / "sweep.html"
