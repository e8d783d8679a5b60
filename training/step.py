"""One training step, knowing nothing of Ray: it runs the same in one process or in a worker.

State: the UNet and the condition adapter (one `Denoiser`, so DDP wraps both), AdamW with
linear warm-up, EMA of the weights, and the data position. Everything needed to resume
exactly is in `state_dict()`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.training_utils import EMAModel

from semantica.config import ModelConfig, TrainConfig
from semantica.training.diffusion import VLoss, make_scheduler
from semantica.training.model import ConditionAdapter, Denoiser, build_unet


@dataclass
class TrainState:
    model: torch.nn.Module              # a Denoiser (UNet + adapter); DDP may wrap it later
    optimizer: torch.optim.Optimizer
    lr_schedule: torch.optim.lr_scheduler.LambdaLR
    ema: EMAModel
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0

    def state_dict(self) -> dict:
        raw = self.model.module if hasattr(self.model, "module") else self.model
        return {"model": raw.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_schedule": self.lr_schedule.state_dict(), "ema": self.ema.state_dict(),
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, sd: dict) -> None:
        raw = self.model.module if hasattr(self.model, "module") else self.model
        raw.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.lr_schedule.load_state_dict(sd["lr_schedule"])
        self.ema.load_state_dict(sd["ema"])
        self.step, self.epoch, self.batch_in_epoch = sd["step"], sd["epoch"], sd["batch_in_epoch"]


def build_model(model_cfg: ModelConfig, encoder_dim: int, num_tokens: int, seed: int) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(build_unet(model_cfg),
                    ConditionAdapter(encoder_dim=encoder_dim, cross_attention_dim=model_cfg.cross_attention_dim,
                                     num_tokens=num_tokens))


def make_state(model: torch.nn.Module, cfg: TrainConfig) -> TrainState:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01)
    warmup = max(1, cfg.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay)
    return TrainState(model, opt, sched, ema)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """t, ε and condition dropout of step `step` on rank `rank`: the same on a resumed run."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank)


def train_step(state: TrainState, encoder, loss_fn: VLoss, cond: torch.Tensor, target: torch.Tensor,
               cfg: TrainConfig, generator: torch.Generator, device: torch.device) -> float:
    model = state.model
    cond, target = cond.to(device), target.to(device)
    tokens = encoder(encoder.preprocess_tensor(cond)).tokens                  # frozen, no grad
    drop = (torch.rand(cond.shape[0], generator=generator) < cfg.cond_dropout).to(device)
    use_bf16 = device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        loss = loss_fn(model, target, {"tokens": tokens, "drop": drop}, generator)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    state.optimizer.step()
    state.lr_schedule.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.ema.step(model.parameters())
    state.step += 1
    return float(loss.detach())


def new_loss() -> VLoss:
    return VLoss(make_scheduler())
