"""Distribution and per-condition scores over feature rows (see features.py).

FID and KID come from torchmetrics, fed with features we extracted once (a pass-through
"feature extractor" with `num_features`), so one embedding of the reference set serves every
metric and every few-shot repeat. Precision / recall (Kynkäänniemi et al. 2019) are written here:
torchmetrics has no implementation and torch-fidelity's cannot be imported without torchvision,
which has no wheel that loads beside the CPU torch this project pins (see README).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


class _Precomputed(torch.nn.Module):
    """Features in, features out: torchmetrics' metrics accumulate what they are given."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check(real: torch.Tensor, fake: torch.Tensor, need: int) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features: expected [N, D] and [M, D], got {tuple(real.shape)} and {tuple(fake.shape)}")
    if len(real) < need or len(fake) < need:
        raise ValueError(f"features: {len(real)} real and {len(fake)} generated rows; at least {need} of each needed")


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID (in whatever space the rows live): ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    _check(real, fake, 2)
    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return max(float(fid.compute()), 0.0)  # tiny negative values are round-off of a zero distance


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, seed: int, subsets: int = 100,
                    subset_size: int = 1000) -> tuple[float, float]:
    """KID (unbiased MMD², cubic polynomial kernel) over random subsets: mean and std."""
    import warnings
    from torchmetrics.image.kid import KernelInceptionDistance
    _check(real, fake, 2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets,
                                      subset_size=min(subset_size, len(real), len(fake)))
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # its subsets come from torch's global generator
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row."""
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # the 1st smallest is the row itself (0)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall: the share of generated rows inside the real manifold (the union
    of balls around each real row reaching its k-th nearest real neighbour), and the share of real
    rows inside the generated manifold."""
    _check(real, fake, k + 1)
    real, fake = real.double(), fake.double()
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    d = torch.cdist(fake, real)                                   # [M, N]
    precision = (d <= r_real[None, :]).any(dim=1).double().mean()
    recall = (d.T <= r_fake[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def consistency(conditions: torch.Tensor, variations: Sequence[torch.Tensor]) -> float:
    """Mean cosine similarity of each variation to its condition (rows of `variations[i]` to
    `conditions[i]`)."""
    sims = [F.cosine_similarity(v.double(), c.double()[None], dim=1) for c, v in zip(conditions, variations) if len(v)]
    return float(torch.cat(sims).mean()) if sims else float("nan")


def diversity(variations: Sequence[torch.Tensor]) -> float:
    """Mean pairwise cosine distance (1 − cos) among the variations of one condition, averaged
    over the conditions that have two variations or more."""
    per = []
    for v in variations:
        if len(v) < 2:
            continue
        v = F.normalize(v.double(), dim=1)
        sim = v @ v.T
        n = len(v)
        per.append(float((1 - sim).sum() / (n * (n - 1))))  # the diagonal contributes 0
    return sum(per) / len(per) if per else float("nan")


def two_sample_accuracy(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017) with the 1-nearest-neighbour classifier and
    leave-one-out accuracy (Xu et al. 2018, "An empirical study on evaluation metrics of GANs"): each row
    of real ∪ fake is labelled by its nearest other row. 0.5: the sets cannot be told apart; 1.0: every
    row's neighbour is from its own set. The larger set is cut to the smaller's size (its first rows:
    shuffle beforehand), so chance stays 0.5."""
    n = min(len(real), len(fake))
    _check(real, fake, 1)
    if n < 2:
        return float("nan")
    x = torch.cat([real[:n], fake[:n]]).double()
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    is_fake = torch.arange(2 * n) >= n
    return float((is_fake[d.argmin(1)] == is_fake).double().mean())


def pixel_features(images, size: int = 16) -> torch.Tensor:
    """Images → [N, size·size·3] pixels in [0, 1] (bicubic resize): the space of the realism test,
    where shapes, grounds and noise are all visible (an encoder's features may ignore some)."""
    import numpy as np
    from PIL import Image
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC),
                                                 dtype=np.float32).reshape(-1) / 255.0 for im in images]))
