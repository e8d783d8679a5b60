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
from PIL import Image

from semantica.config import load_settings
from semantica.sample_web.drawing import topic_name
from semantica.sample_web.topics import fit_shape_judge, load_pictures, silhouette

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_out", type=Path, nargs="+", help="a `semantica demo` output folder")
    ap.add_argument("--guidance", default="2", help="the guidance scale's samples to read (as in guidance2/)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # small nets (README, "Training on 2 CPU cores")
    sw = load_settings(REPO / "pipelines.yaml", "local").stages.sample_web
    name = lambda label: topic_name(int(label.removeprefix("topic")), sw.num_topics)  # noqa: E731
    for demo in a.demo_out:
        judge = fit_shape_judge(sw, load_pictures(demo / "sample-web"))
        samples = demo / "evaluation" / "samples"
        label_of = {c["folder"]: c["label"] for c in json.loads((samples / "conditions.json").read_text())}
        per_topic = collections.defaultdict(list)
        for folder in sorted((samples / f"guidance{a.guidance}").iterdir()):
            images = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]
            shapes = judge.shape.predict([silhouette(im) for im in images])
            hues = [f"topic{h}" for h in judge.hue.predict(images)]
            per_topic[label_of[folder.name]] += list(zip(shapes, hues))
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


if __name__ == "__main__":
    raise SystemExit(main())
