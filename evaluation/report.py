"""The evaluation report: OUT/metrics.json, OUT/report.html (metric tables, grids) and OUT/plots/*.png.

report.html is rendered from templates/report.html.j2 (package data) with autoescaping: a model path,
reference path or label that holds `<` or `&` is shown as text, never read as markup."""
from __future__ import annotations

from pathlib import Path

LABELS = {"fid": "FID ↓", "kid": "KID ↓", "precision": "precision ↑", "recall": "recall ↑",
          "consistency": "consistency ↑", "diversity": "diversity ↑",
          # labelled references only (n/a otherwise): scores that see shape
          "topic_transfer_shape": "topic transfer (shape) ↑", "realism_c2st": "realism: CNN 2-sample acc. → 0.5",
          "realism_1nn": "realism: 1-NN 2-sample acc. → 0.5",
          "diversity_ratio": "diversity ÷ real ↑"}


def fmt(v, digits: int = 4) -> str:
    """A score, or a mean ± std summary, for print; n/a where nothing was measured."""
    if isinstance(v, dict):
        return "n/a" if v["mean"] is None else f"{v['mean']:.{digits}f}±{v['std']:.{digits}f}"
    return "n/a" if v is None else f"{v:.{digits}f}"


def summary_lines(metrics: dict, digits: int = 4) -> list[str]:
    """One line per few-shot k (and for the one-per-label runs): every score, mean ± std."""
    rows = [(f"k={f['shots']}", f) for f in metrics["few_shot"]]
    if metrics.get("per_class"):
        rows.append((f"one per label ({metrics['per_class']['shots']})", metrics["per_class"]))
    return [f"{name}: " + ", ".join(f"{key} {fmt(f.get(key), digits)}" for key in LABELS) for name, f in rows]


def _num(v) -> float:
    return float("nan") if v is None else v


def _plots(out: Path, metrics: dict) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    few = metrics["few_shot"]
    ks = [f["shots"] for f in few]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, keys in zip(axes, (("fid",), ("kid",), ("precision", "recall"))):
        for key in keys:
            ax.errorbar(ks, [_num(f[key]["mean"]) for f in few], yerr=[_num(f[key]["std"]) for f in few], marker="o",
                        capsize=3, label=LABELS[key])
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("shots k (conditioning images)")
        ax.set_title(" / ".join(LABELS[k] for k in keys))
        if len(keys) > 1:
            ax.legend()
    fig.suptitle(f"few-shot generation ({metrics['features']} features, mean ± std over "
                 f"{metrics['settings']['repeats']} seeds, guidance {metrics['settings']['guidance']:g})")
    fig.tight_layout()
    paths.append(folder / "few_shot.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    sweep = metrics["guidance"]
    if sweep:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        ax = axes[0]
        ax.plot([_num(s["diversity"]) for s in sweep], [_num(s["consistency"]) for s in sweep], marker="o")
        for s in sweep:
            ax.annotate(f"g={s['guidance']:g}", (_num(s["diversity"]), _num(s["consistency"])),
                        textcoords="offset points", xytext=(5, 5))
        ax.set_xlabel(LABELS["diversity"] + " (mean pairwise 1−cos)")
        ax.set_ylabel(LABELS["consistency"] + " (cos to condition)")
        ax.set_title("consistency vs diversity across guidance")
        ax = axes[1]
        gs = [s["guidance"] for s in sweep]
        ax.plot(gs, [_num(s["fid"]) for s in sweep], marker="o", label=LABELS["fid"])
        ax.set_xlabel("guidance scale")
        ax.set_ylabel(LABELS["fid"])
        ax2 = ax.twinx()
        ax2.plot(gs, [_num(s["precision"]) for s in sweep], marker="s", color="tab:green", label=LABELS["precision"])
        ax2.plot(gs, [_num(s["recall"]) for s in sweep], marker="^", color="tab:red", label=LABELS["recall"])
        ax2.set_ylim(0, 1.05)
        ax2.legend(loc="lower right")
        ax.set_title(f"k={sweep[0]['shots']}: FID, precision, recall")
        fig.tight_layout()
        paths.append(folder / "guidance.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def _cell(v) -> str:
    if isinstance(v, dict):
        return "n/a" if v["mean"] is None else f"{v['mean']:.4f} ± {v['std']:.4f}"
    return "n/a" if v is None else f"{v:.4f}"


def _rows(runs: list[dict], first) -> list[tuple[str, list[str]]]:
    """One table row per run or summary: its first cell, then one cell per score of LABELS."""
    return [(str(first(r)), [_cell(r.get(k)) for k in LABELS]) for r in runs]


def _template():
    """templates/report.html.j2, shipped as package data; every value it prints is HTML-escaped."""
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("semantica.evaluation", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = fmt
    env.filters["g"] = lambda v: f"{v:g}"
    return env.get_template("report.html.j2")


def write_report(out: Path, metrics: dict) -> Path:
    """OUT/metrics.json (valid JSON: no NaN) and OUT/report.html with its plots."""
    import json
    out = Path(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    plots = _plots(out, metrics)
    per_class = [metrics["per_class"]] if metrics.get("per_class") else []
    grids = [(f"k = {f['shots']} (first seed)", f"shots{f['shots']}.png") for f in metrics["few_shot"]]
    grids += [("one per label (first seed)", "per_class.png")]
    grids += [(f"guidance {r['guidance']:g} (k = {r['shots']})", f"guidance{r['guidance']:g}.png")
              for r in metrics["guidance"]]
    page = _template().render(
        metrics=metrics, labels=LABELS, plots=[p.name for p in plots],
        few_shot_rows=_rows(metrics["few_shot"], lambda r: r["shots"])
        + _rows(per_class, lambda r: f"one per label ({r['shots']})"),
        guidance_rows=_rows(metrics["guidance"], lambda r: f"{r['guidance']:g}"),
        grids=[(title, name) for title, name in grids if (out / "grids" / name).exists()])
    path = out / "report.html"
    path.write_text(page)
    return path
