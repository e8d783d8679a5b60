"""Which topics a demo's variations keep, and what the shape judge calls the others.

Reads a demo's `evaluation/samples/guidance*/` (the held-out guidance sweep) and its sample web, fits the
shape-and-colour judge as the demo does, and prints per condition topic: how many variations both parts of
the judge call that topic, and the shape CNN's (a shape) and the hue classifier's (a topic) commonest answers.

  .venv/bin/python benchmarks/per_topic_transfer.py DEMO_OUT [DEMO_OUT ...] [--guidance 2]
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from semantica.config import load_settings
from semantica.sample_web.drawing import topic_name
from semantica.sample_web.topics import fit_shape_judge, load_pictures, silhouette

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_out", type=Path, nargs="+", help="a `semantica demo` output folder")
    ap.add_argument("--guidance", default="2", help="the guidance scale's samples to read (as in guidance2/)")
    ap.add_argument("--sheet", type=Path, help="(one demo) write the variations with the judge's answers here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # small nets (README, "Training on 2 CPU cores")
    sw = load_settings(REPO / "pipelines.yaml", "local").stages.sample_web
    name = lambda label: topic_name(int(label.removeprefix("topic")), sw.num_topics)  # noqa: E731
    for demo in a.demo_out:
        judge = fit_shape_judge(sw, load_pictures(demo / "sample-web"))
        samples = demo / "evaluation" / "samples"
        label_of = {c["folder"]: c["label"] for c in json.loads((samples / "conditions.json").read_text())}
        per_topic, rows = collections.defaultdict(list), []
        for folder in sorted((samples / f"guidance{a.guidance}").iterdir()):
            images = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]
            shapes = judge.shape.predict([silhouette(im) for im in images])
            hues = [f"topic{h}" for h in judge.hue.predict(images)]
            per_topic[label_of[folder.name]] += list(zip(shapes, hues))
            rows.append((label_of[folder.name], images, shapes))
        if a.sheet:
            _sheet(rows, name, a.sheet)
        kept = sum(s == h == t for t, preds in per_topic.items() for s, h in preds)
        total = sum(len(p) for p in per_topic.values())
        print(f"{demo} (guidance {a.guidance}; judge held-out accuracy {judge.accuracy:.3f}): "
              f"{kept}/{total} variations keep their topic")
        for t, preds in sorted(per_topic.items()):
            ok = sum(s == h == t for s, h in preds)
            shape_counts = collections.Counter(name(s).split("-")[0] for s, _ in preds)
            shapes = ", ".join(f"{s} {n}" for s, n in shape_counts.most_common(3))
            hues = ", ".join(f"{name(h)} {n}" for h, n in collections.Counter(h for _, h in preds).most_common(2))
            print(f"  {name(t)}: {ok}/{len(preds)}; shape CNN: {shapes}; hue: {hues}")
    return 0


def _sheet(rows, name, path: Path, side: int = 96) -> None:
    """Per condition: its topic, each variation (nearest-neighbour ×3) with the shape CNN's answer, the silhouettes."""
    n = max(len(images) for _, images, _ in rows)
    sheet = Image.new("RGB", (120 + n * side + 20 + n * (side // 2 + 4), len(rows) * (side + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images, shapes) in enumerate(rows):
        y = r * (side + 14)
        draw.text((2, y + side // 2), name(label), fill="black")
        for k, (im, shape) in enumerate(zip(images, shapes)):
            sheet.paste(im.resize((side, side), Image.NEAREST), (120 + k * side, y))
            sheet.paste(silhouette(im).resize((side // 2, side // 2), Image.NEAREST),
                        (120 + n * side + 20 + k * (side // 2 + 4), y))
            same = name(shape).split("-")[0] == name(label).split("-")[0]
            draw.text((122 + k * side, y + side), name(shape).split("-")[0], fill="green" if same else "red")
    sheet.save(path)
    print(f"sheet: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
