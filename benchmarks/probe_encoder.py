"""How much of a picture's topic, and of its shape alone, does an encoder's output carry?

The diffusion model sees a condition only through the frozen encoder's tokens. On the sample web a
topic is a shape family in its own colour family, so an encoder that sees colour alone still names
topics. This probe tells the two apart, on pictures drawn anew (`draw_pictures`: 40 a topic as the
reference set, 20 a topic as queries, in no training pair):
  topic   5-NN topic accuracy (cosine) of the pooled embedding and of the patch tokens (flattened)
  shape   the same with every picture's hues turned by a random share of a turn: colour says nothing,
          only the shape family can match (chance 1 / number of shapes)
`--capacity-steps N` also trains, on 100 drawn pictures a topic randomly recoloured, a linear shape
head on a fresh ViT of the stand-in encoder's architecture (semantica/tiny_encoder.py) and the judge's
small CNN (evaluation/classifier.py) for N steps each: can the architecture learn shape at all?

  .venv/bin/python benchmarks/probe_encoder.py --encoder demo-out/tiny-encoder [--encoder OTHER] [--capacity-steps 1000]
"""
from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from semantica.config import load_settings  # noqa: E402
from semantica.encoders import load_encoder  # noqa: E402
from semantica.sample_web.drawing import SHAPES  # noqa: E402
from semantica.sample_web.topics import draw_pictures, recolour  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def knn_accuracy(ref: torch.Tensor, ref_labels: np.ndarray, query: torch.Tensor, query_labels: np.ndarray,
                 k: int = 5) -> float:
    """Majority label of each query's k nearest references (cosine) against its own label."""
    sim = F.normalize(query, dim=-1) @ F.normalize(ref, dim=-1).T
    nearest = sim.topk(k, dim=1).indices.numpy()
    votes = [np.bincount(ref_labels[n], minlength=ref_labels.max() + 1).argmax() for n in nearest]
    return float(np.mean(np.array(votes) == query_labels))


def probe(encoder_path: str, sw, seed: int = 0) -> dict:
    enc = load_encoder(encoder_path, device="cpu")
    ref, query = draw_pictures(sw, 40, seed=101), draw_pictures(sw, 20, seed=102)
    rng = random.Random(seed)
    out = {}
    for name, turn in (("topic", False), ("shape", True)):
        views = []
        for pictures in (ref, query):
            images = [recolour(p.image, rng.random()) if turn else p.image for p in pictures]
            with torch.no_grad():
                e = enc(enc.preprocess_pil(images))
            views.append((e.pooled, e.tokens[:, 1:].flatten(1)))
        labels = [np.array([p.topic % len(SHAPES) if turn else p.topic for p in ps]) for ps in (ref, query)]
        out[f"{name}_pooled"] = knn_accuracy(views[0][0], labels[0], views[1][0], labels[1])
        out[f"{name}_patches"] = knn_accuracy(views[0][1], labels[0], views[1][1], labels[1])
    out["shape_chance"] = 1 / min(len(SHAPES), sw.num_topics)
    return out


def _recoloured(sw, per_topic: int, seed: int, rng: random.Random) -> tuple[list, list]:
    pictures = draw_pictures(sw, per_topic, seed=seed)
    return [recolour(p.image, rng.random()) for p in pictures], [p.topic % len(SHAPES) for p in pictures]


def capacity(sw, steps: int, seed: int = 0) -> dict:
    """Held-out shape accuracy of the stand-in's ViT architecture and of the judge's CNN, each trained
    `steps` batches of 64 on recoloured drawn pictures (the same pictures for both)."""
    from transformers import Dinov2Model

    from semantica.evaluation.classifier import fit_judge
    from semantica.tiny_encoder import IMAGENET_MEAN, IMAGENET_STD, _augment, tiny_config
    rng = random.Random(seed)
    train_x, train_y = _recoloured(sw, 100, 777, rng)
    test_x, test_y = _recoloured(sw, 20, 778, rng)
    out = {}
    t = time.perf_counter()
    cnn = fit_judge(train_x, [f"s{y}" for y in train_y], seed=seed, steps=steps, width=24)
    out["cnn_shape_accuracy"] = cnn.score(test_x, [f"s{y}" for y in test_y])
    out["cnn_seconds"] = time.perf_counter() - t

    def tensor(img: Image.Image, size: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
                                ).permute(2, 0, 1)
    torch.manual_seed(seed)
    vit, head = Dinov2Model(tiny_config("dinov2", 32)), torch.nn.Linear(64, len(SHAPES))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    xs = [tensor(x, 40) for x in train_x]  # augmented as the stand-in is trained: crops of 40 px → 32
    opt = torch.optim.AdamW([*vit.parameters(), *head.parameters()], lr=1e-3, weight_decay=0.05)
    t = time.perf_counter()
    for _ in range(steps):
        idx = [rng.randrange(len(xs)) for _ in range(64)]
        x = torch.stack([_augment(xs[i], 32, rng) for i in idx])
        y = torch.tensor([train_y[i] for i in idx])
        loss = F.cross_entropy(head(vit(pixel_values=(x - mean) / std).pooler_output), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    vit.eval()
    with torch.no_grad():
        x = torch.stack([tensor(im, 32) for im in test_x])
        pred = head(vit(pixel_values=(x - mean) / std).pooler_output).argmax(1)
    out["vit_shape_accuracy"] = float((pred == torch.tensor(test_y)).float().mean())
    out["vit_final_loss"] = loss.item()
    out["vit_seconds"] = time.perf_counter() - t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", action="append", required=True, help="an encoder folder or hub id (repeatable)")
    ap.add_argument("--capacity-steps", type=int, default=0, help="also train the ViT and the CNN this many steps")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sw = load_settings(REPO / "pipelines.yaml", "local").stages.sample_web
    for path in args.encoder:
        r = probe(path, sw, args.seed)
        print(f"{path}: topic 5-NN pooled {r['topic_pooled']:.3f}, patches {r['topic_patches']:.3f}; shape 5-NN "
              f"(recoloured) pooled {r['shape_pooled']:.3f}, patches {r['shape_patches']:.3f} "
              f"(chance {r['shape_chance']:.3f})", flush=True)
    if args.capacity_steps:
        c = capacity(sw, args.capacity_steps, args.seed)
        print(f"capacity, {args.capacity_steps} steps on 800 recoloured drawn pictures, 160 held out: "
              f"stand-in ViT {c['vit_shape_accuracy']:.3f} (final loss {c['vit_final_loss']:.3f}, "
              f"{c['vit_seconds']:.0f} s), judge CNN {c['cnn_shape_accuracy']:.3f} ({c['cnn_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
