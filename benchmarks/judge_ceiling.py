"""What the shape-and-colour judge gives real pictures at a 32-px model's resolution, and degraded further.

Topic transfer counts variations the demo's judge calls their condition's topic. This bounds what a model at
32 × 32 can score: real pictures of each topic drawn anew (30 a topic, in no training pair), cut as the trainer cuts
its targets (short side to 36 px, the centre 32 × 32), then blurred (Gaussian, σ in 32-px pixels) or brought down
to 16 or 12 px and back. If real pictures kept their topic under the degradations a small model's samples show, a
low transfer is the model's drawing, not the judge.

  .venv/bin/python benchmarks/judge_ceiling.py DEMO_OUT
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch
from PIL import Image, ImageFilter

from semantica.config import load_settings
from semantica.sample_web.topics import draw_pictures, fit_shape_judge, load_pictures
from semantica.training.data import MARGIN, _decode

REPO = Path(__file__).resolve().parent.parent


def centre_32(image: Image.Image) -> Image.Image:
    """The trainer's target, cut by its own decode (training/data.py: the short side to 32 × MARGIN = 36 px, the
    centre square), then the centre 32 × 32 of the random crops it augments with."""
    buf = io.BytesIO()
    image.save(buf, "PNG")
    margin = round(32 * MARGIN)
    off = (margin - 32) // 2
    return Image.fromarray(_decode(buf.getvalue(), margin)[off:off + 32, off:off + 32])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_out", type=Path, help="a `semantica demo` output folder (its sample-web/)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # small nets (README, "Training on 2 CPU cores")
    sw = load_settings(REPO / "pipelines.yaml", "local").stages.sample_web
    judge = fit_shape_judge(sw, load_pictures(a.demo_out / "sample-web"))
    test = draw_pictures(sw, 30, seed=55)
    labels = [f"topic{p.topic}" for p in test]
    base = [centre_32(p.image) for p in test]
    print(f"judge: held-out accuracy {judge.accuracy:.3f} on the sample web's pictures (full size)")
    print(f"real pictures, 32 × 32 centre crops: {judge.score(base, labels):.3f}")
    for sigma in (0.5, 0.75, 1.0, 1.5):
        blurred = [b.resize((64, 64), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2 * sigma))
                   .resize((32, 32), Image.BICUBIC) for b in base]
        print(f"  blurred, σ {sigma} px: {judge.score(blurred, labels):.3f}")
    for side in (16, 12):
        small = [b.resize((side, side), Image.BILINEAR).resize((32, 32), Image.BICUBIC) for b in base]
        print(f"  through {side} × {side} px: {judge.score(small, labels):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
