"""The diffusion maths, written once.

Legend (code → paper symbol; Salimans & Ho 2022, "Progressive Distillation", §4 and App. D):
  x0     → x          a clean training image in [-1, 1]
  eps    → ε ~ N(0, I)
  alpha  → α_t = √ᾱ_t,  sigma → σ_t = √(1 − ᾱ_t)  with the cosine schedule of Nichol & Dhariwal
                                                 2021 (diffusers' "squaredcos_cap_v2")
  x_t    → z_t = α_t x + σ_t ε                     (forward process, eq. 1)
  v      → v = α_t ε − σ_t x                       (the v-parameterisation, eq. 9)
The network predicts v̂ = f(z_t, t, c); the loss is E‖v̂ − v‖² (the "SNR+1" weighting on x).
With `snr_gamma` = γ > 0 each sample's term is weighted by min(SNR_t, γ) / (SNR_t + 1), SNR_t = α_t²/σ_t²:
Min-SNR-γ (Hang et al. 2023, eq. 9, its v-prediction form), which stops the low-noise steps, where
the fine texture is, from dominating the gradient; diffusers' `compute_snr` gives SNR_t.
With `noise_offset` > 0, ε carries one N(0, offset²) constant per image and channel (semantica.models.draw_noise).
A self-conditioned model (`models.*.self_condition`; Chen et al. 2022, "Analog Bits", §3.2) also gets an estimate
x̂0 of the clean image: for a random half of the batch its own estimate from the same z_t (a forward pass without
gradient), zeros for the rest, so it learns both to start from nothing and to refine its last estimate.
diffusers' DDPMScheduler computes z_t (`add_noise`) and v (`get_velocity`) from the same ᾱ.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from semantica.models import draw_noise, x0_from_v

NUM_TRAIN_TIMESTEPS = 1000


def host_to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A tensor drawn on the host, on `device` without making the host wait for the GPU.
    A plain `.to("cuda")` of pageable memory synchronises the stream: three per step drained the
    GPU's queue at every step. Through pinned memory the copy is queued like a kernel."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def make_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction", clip_sample=False)


class VLoss:
    """loss(f, x, c) for one batch, f(z_t, t, **c) → v̂; `generator` makes t and ε reproducible."""

    def __init__(self, scheduler: DDPMScheduler, snr_gamma: float = 0.0, noise_offset: float = 0.0):
        self.scheduler, self.snr_gamma, self.noise_offset = scheduler, snr_gamma, noise_offset

    def __call__(self, f, x0: torch.Tensor, cond: dict, generator: torch.Generator) -> torch.Tensor:
        b = x0.shape[0]
        # drawn on the host with the step's generator (the same numbers on CPU and GPU, and on resume)
        t = host_to_device(torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=generator),
                           x0.device)
        eps = host_to_device(draw_noise(x0.shape, generator, self.noise_offset), x0.device).to(x0.dtype)  # 1. ε
        x_t = self.scheduler.add_noise(x0, eps, t)                                  # 2. z_t = α_t x + σ_t ε
        v = self.scheduler.get_velocity(x0, eps, t)                                 # 3. v = α_t ε − σ_t x
        if getattr(getattr(f, "module", f), "self_condition", False):              # 4'. x̂0 to refine
            cond = {**cond, "x0_prev": self._self_condition(f, x_t, t, cond, generator)}
        v_hat = f(x_t, t, **cond)                                                   # 4. v̂ = f(z_t, t, c)
        if not self.snr_gamma:
            return F.mse_loss(v_hat.float(), v.float())                             # 5. ‖v̂ − v‖²
        snr = compute_snr(self.scheduler, t)                                        # 5'. SNR_t = α_t²/σ_t²
        w = snr.clamp(max=self.snr_gamma) / (snr + 1)                               #     min(SNR_t, γ)/(SNR_t + 1)
        per_sample = F.mse_loss(v_hat.float(), v.float(), reduction="none").mean((1, 2, 3))
        return (w * per_sample).mean()

    def _self_condition(self, f, x_t: torch.Tensor, t: torch.Tensor, cond: dict, generator: torch.Generator):
        """x̂0 for each sample: the model's own estimate from z_t (no gradient) for a random half, zeros for the rest.
        The first pass runs on that half only, so it costs about a quarter of a step's forward and backward."""
        use = torch.rand(x_t.shape[0], generator=generator) < 0.5
        x0_prev = torch.zeros_like(x_t)
        if use.any():
            idx = host_to_device(use.nonzero()[:, 0], x_t.device)
            with torch.no_grad():
                v0 = f(x_t[idx], t[idx], **{k: v[idx] for k, v in cond.items()})
            x0_prev[idx] = x0_from_v(self.scheduler.alphas_cumprod, x_t[idx], t[idx], v0).to(x0_prev.dtype)
        return x0_prev
