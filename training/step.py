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
from semantica.training.diffusion import VLoss, host_to_device, make_scheduler
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


CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile's modes that replay CUDA graphs


def configure_backends(cfg: TrainConfig, device: torch.device) -> None:
    """Process-wide CUDA settings of the fast path (nothing changes on CPU)."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = cfg.tf32   # fp32 matmuls (outside autocast) on tensor cores
    torch.backends.cudnn.allow_tf32 = cfg.tf32
    torch.backends.cudnn.benchmark = cfg.channels_last  # fixed shapes: time the conv algorithms once
    if cfg.compile:
        import torch._inductor.config as inductor
        # Inductor's layout heuristic skips NHWC for any graph with a 3×3 conv whose input has ≥ 2× its
        # output channels: every UNet, through the skip concatenations of the up blocks. The compiled graph
        # then hands cuDNN NCHW tensors and each conv copies them back (129 copies, 14 % of an H200 step).
        inductor.force_layout_optimization = cfg.channels_last and cfg.compile_channels_last
        inductor.coordinate_descent_tuning = cfg.compile_tune_kernels


def prepare_model(model: Denoiser, cfg: TrainConfig, device: torch.device) -> Denoiser:
    """The model on `device` with the fast path's layout, checkpointing and compilation applied.
    `compile` is in place (nn.Module.compile), so state_dict keys and checkpoints stay the same."""
    model.to(device)
    if cfg.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    if cfg.channels_last:
        model.unet.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.unet.compile(**({} if cfg.compile_mode == "default" else {"mode": cfg.compile_mode}))
    return model


def prepare_encoder(encoder, cfg: TrainConfig):
    """The frozen encoder, compiled in place under `compile_encoder` (its forward is ~7 % of a GPU step, run
    eagerly otherwise). In place, so its weights and `load_encoder`'s wrapper stay as they are."""
    if cfg.compile_encoder:
        encoder.model.compile()
    return encoder


def make_state(model: torch.nn.Module, cfg: TrainConfig) -> TrainState:
    """Optimizer and EMA for a model already on its device (the EMA copy is made where it is)."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01,
                            fused=cfg.fused_optimizer or None)
    warmup = max(1, cfg.warmup_steps)
    if cfg.lr_schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    else:  # diffusers' warm-up then decay to 0 at max_steps (a LambdaLR too: the same checkpoint state)
        from diffusers.optimization import get_scheduler
        sched = get_scheduler(cfg.lr_schedule, opt, num_warmup_steps=warmup, num_training_steps=cfg.max_steps)
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay, foreach=cfg.ema_foreach)
    return TrainState(model, opt, sched, ema)


def to_device(x: torch.Tensor, device: torch.device, cfg: TrainConfig) -> torch.Tensor:
    """A host batch on `device`: through pinned memory without blocking the host when asked."""
    return host_to_device(x, device) if cfg.pin_memory else x.to(device)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """t, ε and condition dropout of step `step` on rank `rank`: the same on a resumed run."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank)


def apply_update(state: TrainState, cfg: TrainConfig) -> None:
    """After backward: clip, AdamW and warm-up step, EMA, and the step count."""
    torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
    state.optimizer.step()
    state.lr_schedule.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.ema.step(state.model.parameters())
    state.step += 1


def train_step(state: TrainState, encoder, loss_fn: VLoss, cond: torch.Tensor, target: torch.Tensor,
               cfg: TrainConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    model = state.model
    if cfg.compile and cfg.compile_mode in CUDA_GRAPH_MODES:
        torch.compiler.cudagraph_mark_step_begin()  # a new step: the last step's graph outputs may be reused
    cond, target = to_device(cond, device, cfg), to_device(target, device, cfg)
    if cfg.channels_last:
        target = target.contiguous(memory_format=torch.channels_last)
    tokens = encoder(encoder.preprocess_tensor(cond)).tokens                  # frozen, no grad
    drop = host_to_device(torch.rand(cond.shape[0], generator=generator) < cfg.cond_dropout, device)
    use_bf16 = device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        loss = loss_fn(model, target, {"tokens": tokens, "drop": drop}, generator)
    loss.backward()
    apply_update(state, cfg)
    return loss.detach()  # a tensor: reading it would make the host wait for the GPU every step


def new_loss(cfg: TrainConfig | None = None) -> VLoss:
    if cfg is None:
        return VLoss(make_scheduler())
    return VLoss(make_scheduler(), snr_gamma=cfg.snr_gamma, noise_offset=cfg.noise_offset)
