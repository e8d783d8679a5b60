"""The diffusion loss: plain v-prediction MSE and its Min-SNR-γ weighting, against their formulas."""
from __future__ import annotations

import pytest
import torch

from semantica.training.diffusion import VLoss, make_scheduler


def test_min_snr_weighting_matches_its_formula():
    sched = make_scheduler()
    x0 = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1)).clamp(-1, 1)
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731  v̂ = 0: each sample's loss is mean(v²)
    plain = VLoss(sched)(zero, x0, {}, torch.Generator().manual_seed(0))
    weighted = VLoss(sched, snr_gamma=5.0)(zero, x0, {}, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)  # the same t and ε as the loss drew
    t = torch.randint(0, sched.config.num_train_timesteps, (6,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    per_sample = sched.get_velocity(x0, eps, t).pow(2).mean((1, 2, 3))
    a = sched.alphas_cumprod[t]
    snr = a / (1 - a)                                                    # α_t² / σ_t²
    w = torch.minimum(snr, torch.tensor(5.0)) / (snr + 1)
    assert float(plain) == pytest.approx(float(per_sample.mean()), rel=1e-5)
    assert float(weighted) == pytest.approx(float((w * per_sample).mean()), rel=1e-5)
    assert float(weighted) < float(plain)  # every weight is ≤ 1
