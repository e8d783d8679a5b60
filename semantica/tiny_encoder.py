"""A tiny stand-in for a pretrained encoder, for offline runs and tests.

DINOv2 knows real-world semantics and tells instances apart; the filter relies on both
(unrelated pairs score low, copies score highest). A random tiny ViT has neither: on the
sample web its similarity ranges for related and unrelated pairs overlap almost entirely.
Nor did InfoNCE on mined page pairs fix it (same-topic pictures in a batch are treated as
negatives; related 5th percentile 0.78 vs unrelated 95th 0.93). So the stand-in is taught
what DINOv2 brings: a tiny DINOv2-architecture ViT is trained on the sample web's labelled
pictures (its ground truth, not the miner's output) with a target that mixes "the other
view of this picture" and "a picture of the same topic", with crop / flip / brightness
augmentations (no hue jitter: hue carries meaning). 300 CPU steps take ~15 s. It is saved
with `save_pretrained` (model + image processor) and loaded through `load_encoder`, the
code that loads DINOv2 from the hub.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from semantica.errors import UserError
from semantica.logs import progress

log = logging.getLogger(__name__)
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tiny_config(family: str = "dinov2", image_size: int = 32):
    from transformers import CLIPVisionConfig, Dinov2Config, SiglipVisionConfig
    common = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  image_size=image_size, patch_size=8)
    return {"dinov2": Dinov2Config, "clip": CLIPVisionConfig, "siglip": SiglipVisionConfig}[family](**common)


def tiny_processor(family: str = "dinov2", image_size: int = 32):
    from transformers import BitImageProcessor, CLIPImageProcessor, SiglipImageProcessor
    if family == "siglip":
        return SiglipImageProcessor(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
                                    image_std=[0.5] * 3)
    cls = BitImageProcessor if family == "dinov2" else CLIPImageProcessor
    return cls(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
               do_center_crop=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, do_convert_rgb=True)


def build_tiny_encoder(out: Path, family: str = "dinov2", seed: int = 0) -> Path:
    """An untrained tiny encoder of `family`, saved as a hub model would be."""
    from transformers import CLIPVisionModel, Dinov2Model, SiglipVisionModel
    torch.manual_seed(seed)
    model = {"dinov2": Dinov2Model, "clip": CLIPVisionModel, "siglip": SiglipVisionModel}[family](tiny_config(family))
    out = Path(out)
    model.save_pretrained(out)
    tiny_processor(family).save_pretrained(out)
    return out


def _load_pictures(sample_web: Path, size: int) -> tuple[list, list]:
    """The sample web's content pictures (one per picture, resized) as tensors, and their topics."""
    from semantica.sample_web.topics import load_pictures
    tensors, topics = [], []
    for p in load_pictures(sample_web):
        img = p.image.resize((size + size // 4,) * 2, Image.BICUBIC)
        tensors.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
        topics.append(p.topic)
    return tensors, topics


def _augment(x: torch.Tensor, size: int, rng: random.Random) -> torch.Tensor:
    _, h, w = x.shape
    s = rng.randint(int(0.7 * min(h, w)), min(h, w))
    top, left = rng.randint(0, h - s), rng.randint(0, w - s)
    x = x[:, top:top + s, left:left + s]
    if rng.random() < 0.5:
        x = x.flip(-1)
    x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return (x * rng.uniform(0.85, 1.15)).clamp(0, 1)  # brightness only: hue carries meaning


def train_tiny_encoder(sample_web: Path, out: Path, steps: int = 300, batch_size: int = 64, seed: int = 0,
                       overwrite: bool = False) -> Path:
    """Two views of each picture: the target puts half its weight on the picture's other view
    (instances stay apart, so copies score highest) and half on pictures of the same topic
    (so related pictures score above unrelated ones)."""
    from transformers import Dinov2Model

    from semantica.outputs import prepare_output
    if steps < 1:
        raise UserError(f"--steps: {steps}; the encoder needs at least 1 training step")
    prepare_output(out, overwrite, [sample_web])
    torch.manual_seed(seed)
    rng = random.Random(seed)
    size = 32
    pictures, topics = _load_pictures(Path(sample_web), size)
    model = Dinov2Model(tiny_config("dinov2", size))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    model.train()
    losses = []
    for _ in progress(range(steps), "tiny encoder", total=steps, unit="step"):
        idx = [rng.randrange(len(pictures)) for _ in range(batch_size)]
        a = torch.stack([_augment(pictures[i], size, rng) for i in idx])
        b = torch.stack([_augment(pictures[i], size, rng) for i in idx])
        za = F.normalize(model(pixel_values=(a - mean) / std).pooler_output, dim=-1)
        zb = F.normalize(model(pixel_values=(b - mean) / std).pooler_output, dim=-1)
        t = torch.tensor([topics[i] for i in idx])
        same_picture = (torch.tensor(idx)[:, None] == torch.tensor(idx)[None]).float()
        same_topic = (t[:, None] == t[None]).float()
        target = (0.5 * same_picture / same_picture.sum(1, keepdim=True)
                  + 0.5 * same_topic / same_topic.sum(1, keepdim=True))
        logits = za @ zb.T / 0.1
        loss = -(target * logits.log_softmax(1)).sum(1).mean() - (target.T * logits.T.log_softmax(1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out)
    tiny_processor("dinov2", size).save_pretrained(out)
    log.info("tiny encoder: %d steps on %d pictures, loss %.3f → %.3f, saved to %s", steps, len(pictures),
             float(np.mean(losses[:20])), float(np.mean(losses[-20:])), out)
    return out
