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
diffusers' DDPMScheduler computes z_t (`add_noise`) and v (`get_velocity`) from the same ᾱ.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from semantica.models import draw_noise

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
        v_hat = f(x_t, t, **cond)                                                   # 4. v̂ = f(z_t, t, c)
        if not self.snr_gamma:
            return F.mse_loss(v_hat.float(), v.float())                             # 5. ‖v̂ − v‖²
        snr = compute_snr(self.scheduler, t)                                        # 5'. SNR_t = α_t²/σ_t²
        w = snr.clamp(max=self.snr_gamma) / (snr + 1)                               #     min(SNR_t, γ)/(SNR_t + 1)
        per_sample = F.mse_loss(v_hat.float(), v.float(), reduction="none").mean((1, 2, 3))
        return (w * per_sample).mean()
