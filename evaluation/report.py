"""The evaluation report: OUT/metrics.json, OUT/report.html (metric tables, grids) and OUT/plots/*.png."""
from __future__ import annotations

import html
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


def _table(rows: list[dict], first: str, key_of) -> str:
    head = "".join(f"<th>{html.escape(LABELS[k])}</th>" for k in LABELS)
    def cell(v) -> str:
        if isinstance(v, dict):
            return "<td>n/a</td>" if v["mean"] is None else f"<td>{v['mean']:.4f} ± {v['std']:.4f}</td>"
        return "<td>n/a</td>" if v is None else f"<td>{v:.4f}</td>"
    body = "".join(f"<tr><td>{html.escape(str(key_of(r)))}</td>" + "".join(cell(r.get(k)) for k in LABELS) + "</tr>"
                   for r in rows)
    return f"<table><tr><th>{html.escape(first)}</th>{head}</tr>{body}</table>"


def write_report(out: Path, metrics: dict) -> Path:
    """OUT/metrics.json (valid JSON: no NaN) and OUT/report.html with its plots."""
    import json
    out = Path(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    plots = _plots(out, metrics)
    s = metrics["settings"]
    ref = metrics["reference"]
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Semantica evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}</style>",
        "<h1>Semantica evaluation</h1>",
        f"<p>Model <code>{html.escape(metrics['model'])}</code>; reference <code>{html.escape(ref['path'])}</code> "
        f"({ref['images']} images{', skipped ' + html.escape(str(ref['skipped'])) if ref['skipped'] else ''}); "
        f"features: <b>{html.escape(metrics['features'])}</b> "
        f"(encoder <code>{html.escape(metrics['encoder'])}</code>); "
        f"{s['num_samples']} samples per run, {s['steps']} {html.escape(s['scheduler'])} steps, seed {s['seed']}. "
        f"Consistency and diversity are always measured in the encoder's space.</p>",
        "<h2>Few-shot generation</h2>",
        f"<p>Condition on k random reference images, generate {s['num_samples']} in all, score against the whole "
        f"reference set; mean ± std over {s['repeats']} seeds, guidance {s['guidance']:g}.</p>",
        _table(metrics["few_shot"] + ([metrics["per_class"]] if metrics.get("per_class") else []), "shots k",
               lambda r: r["shots"] if r is not metrics.get("per_class") else f"one per label ({r['shots']})"),
        f"<p><img src='plots/{plots[0].name}'></p>",
    ]
    if metrics["guidance"]:
        parts += ["<h2>Consistency–diversity across guidance</h2>",
                  f"<p>The same {metrics['guidance'][0]['shots']} conditions at each guidance scale "
                  f"(0 = the unconditional model).</p>",
                  _table(metrics["guidance"], "guidance", lambda r: f"{r['guidance']:g}"),
                  f"<p><img src='plots/{plots[1].name}'></p>"]
    if metrics.get("topic_judge"):
        j = metrics["topic_judge"]
        parts.append(f"<p>Topic transfer (shape) is judged by a CNN trained on {html.escape(j['trained_on'])} "
                     f"(real pictures only); its accuracy on held-out real pictures: {fmt(j['held_out_accuracy'], 3)}. "
                     f"Realism: held-out accuracy of a classifier telling variations from real pictures of the same "
                     f"labels (a small CNN, 2-fold; and 1-NN leave-one-out on 16×16 pixels, which calls noise "
                     f"realistic); 0.5 means indistinguishable.</p>")
    if "topic_transfer" in metrics:
        tt = metrics["topic_transfer"]
        parts += ["<h2>Topic transfer (sample web)</h2>", f"<p>{html.escape(tt['summary'])}</p>"]
    parts.append("<h2>Grids (condition left, variations right)</h2>")
    grids = [(f"k = {f['shots']} (first seed)", f"shots{f['shots']}.png") for f in metrics["few_shot"]]
    grids += [("one per label (first seed)", "per_class.png")]
    grids += [(f"guidance {r['guidance']:g} (k = {r['shots']})", f"guidance{r['guidance']:g}.png")
              for r in metrics["guidance"]]
    for title, name in grids:
        if (out / "grids" / name).exists():
            parts.append(f"<h3>{html.escape(title)}</h3><img src='grids/{name}'>")
    path = out / "report.html"
    path.write_text("\n".join(parts) + "\n")
    return path
