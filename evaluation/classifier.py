"""A label classifier that sees shape and colour: a small CNN trained on real, labelled pictures.

Topic transfer (does a variation keep its condition's label?) needs a judge that never saw a
generated image and that reads what a person reads: the hue-histogram classifier of the sample
web sees colour only, so a colour blob scores as a topic. This CNN sees 32×32 pixels: three
conv stages (32 → 16 → 8 → 4 px), global average pooling, a linear head (24 k parameters,
seconds to train on a CPU core). Training augments with crops, flips and a light blur, so the
judge is not thrown by the softness of a small model's samples; it does not change colour,
which carries meaning.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

log = logging.getLogger(__name__)

SIZE = 32       # the judge's input side; the tiny model generates at 32 px
PAD = 4         # training crops are SIZE out of SIZE + PAD


def to_tensor(images: Sequence[Image.Image], size: int = SIZE) -> torch.Tensor:
    """RGB images → float [N, 3, size, size] in [0, 1] (bicubic resize of the whole picture)."""
    arrs = [np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) for im in images]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2) / 255.0


class TopicCNN(torch.nn.Module):
    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        layers, c_in = [], 3
        for c in (width, 2 * width, 4 * width):
            layers += [torch.nn.Conv2d(c_in, c, 3, padding=1), torch.nn.BatchNorm2d(c), torch.nn.ReLU(),
                       torch.nn.MaxPool2d(2)]
            c_in = c
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2 - 1).mean((2, 3)))


def _augment(x: torch.Tensor, g: torch.Generator, blur: bool = True) -> torch.Tensor:
    """Random SIZE crops of [N, 3, SIZE + PAD, SIZE + PAD], flips, and a 3×3 blur on a third of them."""
    n = x.shape[0]
    offs = torch.randint(0, PAD + 1, (n, 2), generator=g)
    out = torch.stack([x[i, :, a:a + SIZE, b:b + SIZE] for i, (a, b) in enumerate(offs.tolist())])
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blur = (torch.rand(n, generator=g) < 0.33) & blur
    if blur.any():
        out[blur] = F.conv2d(F.pad(out[blur], (1, 1, 1, 1), mode="replicate"), k, groups=3)
    return out


@dataclass
class TopicJudge:
    """A trained TopicCNN and its label names; `accuracy` is measured on pictures it was not trained on."""
    model: TopicCNN
    labels: list
    accuracy: float | None = None
    rejects: float | None = None   # where the judge has an `other` class: the share of held-out misfits it rejects

    @torch.no_grad()
    def predict(self, images: Sequence[Image.Image]) -> list:
        if not len(images):
            return []
        self.model.eval()
        logits = torch.cat([self.model(b) for b in to_tensor(images).split(256)])
        return [self.labels[i] for i in logits.argmax(1).tolist()]

    def score(self, images: Sequence[Image.Image], labels: Sequence) -> float:
        """Share of `images` predicted as their label."""
        pred = self.predict(images)
        return float(np.mean([p == t for p, t in zip(pred, labels)])) if pred else float("nan")


@contextlib.contextmanager
def _one_thread():
    """A net this small gains nothing from a second thread, and on a shared 2-core machine the threads'
    waits on each other made training 10× slower (README, "Training on 2 CPU cores")."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_judge(images: Sequence[Image.Image], labels: Sequence, seed: int = 0, steps: int = 100,
              batch_size: int = 64, lr: float = 3e-3, blur: bool = True, width: int = 16) -> TopicJudge:
    """Train a TopicCNN on labelled real pictures for `steps` batches (deterministic for a seed).
    `blur`: blur a third of the training crops (off where sharpness is what is judged)."""
    with _one_thread():
        return _fit(images, labels, seed, steps, batch_size, lr, blur, width)


def _fit(images, labels, seed, steps, batch_size, lr, blur, width) -> TopicJudge:
    names = sorted(set(labels))
    y = torch.tensor([names.index(t) for t in labels])
    x = to_tensor(images, SIZE + PAD)
    batch_size = min(batch_size, len(x))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TopicCNN(len(names), width)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    order, pos = torch.randperm(len(x), generator=g), 0
    for _ in range(steps):
        if pos + batch_size > len(x):  # a new epoch
            order, pos = torch.randperm(len(x), generator=g), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        loss = F.cross_entropy(model(_augment(x[idx], g, blur)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    log.info("topic judge: %d pictures, %d labels, final loss %.3f", len(x), len(names), loss.item())
    return TopicJudge(model.eval(), names)


def fit_judge_held_out(images: Sequence[Image.Image], labels: Sequence, seed: int = 0,
                       held_out: float = 0.25, **kw) -> TopicJudge:
    """fit_judge on a seeded, label-stratified share of the pictures; accuracy on the rest."""
    rng = np.random.default_rng(seed)
    test = []
    for label in sorted(set(labels)):
        idx = [i for i, t in enumerate(labels) if t == label]
        test += rng.choice(idx, size=max(1, round(len(idx) * held_out)), replace=False).tolist() if len(idx) > 1 else []
    test_set = set(test)
    train = [i for i in range(len(images)) if i not in test_set]
    judge = fit_judge([images[i] for i in train], [labels[i] for i in train], seed=seed, **kw)
    judge.accuracy = judge.score([images[i] for i in test], [labels[i] for i in test]) if test else None
    return judge


def two_sample_cnn_accuracy(real: Sequence[Image.Image], fake: Sequence[Image.Image], seed: int = 0,
                            folds: int = 2, steps: int = 60) -> float | None:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): a TopicCNN learns "real or generated" on
    all folds but one and is scored on the held-out fold; mean held-out accuracy over the folds.
    0.5: the sets cannot be told apart. Unlike 1-NN on pixels, it also catches generations that are
    far from everything (noise): a 1-NN test labels those by their nearest *real* picture and calls
    them indistinguishable. Sets are cut to one size (seeded), so chance stays 0.5."""
    n = min(len(real), len(fake))
    if n < 2 * folds:
        return None
    rng = np.random.default_rng(seed)
    real = [real[i] for i in rng.permutation(len(real))[:n]]
    fake = [fake[i] for i in rng.permutation(len(fake))[:n]]
    accs = []
    for k in range(folds):
        test = set(range(k, n, folds))
        train_imgs = [im for i, im in enumerate(real + fake) if i % n not in test]
        train_lab = [0] * (n - len(test)) + [1] * (n - len(test))
        judge = fit_judge(train_imgs, train_lab, seed=seed + k, steps=steps, blur=False)
        accs.append(judge.score([real[i] for i in sorted(test)] + [fake[i] for i in sorted(test)],
                                [0] * len(test) + [1] * len(test)))
    return float(np.mean(accs))
