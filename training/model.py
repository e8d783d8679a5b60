"""The conditional diffusion model: a diffusers UNet2DConditionModel in pixel space whose
cross-attention reads the frozen encoder's patch tokens through a learned projection,
with a learned null condition for classifier-free guidance (`ConditionAdapter`, in semantica/models.py:
the exported pipeline needs it without training code)."""
from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from semantica.config import ModelConfig
# shared with the pipeline (semantica/pipeline.py); step.py imports the adapter here
from semantica.models import ConditionAdapter, predict


def build_unet(cfg: ModelConfig, heads: tuple[int, ...] | None = None) -> UNet2DConditionModel:
    """The UNet of a model config. In pipelines.yaml `attention_head_dim` is the width of one head;
    diffusers' UNet2DConditionModel reads its own `attention_head_dim` as the *number* of heads (a
    documented naming quirk, diffusers issue 2011), so it gets per-block head counts, channels ÷ width.
    `heads` overrides them (benchmarks rebuild the old layout with it)."""
    return UNet2DConditionModel(
        sample_size=cfg.resolution, in_channels=3, out_channels=3,
        block_out_channels=tuple(cfg.block_out_channels), down_block_types=tuple(cfg.down_block_types),
        up_block_types=tuple(cfg.up_block_types), layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.cross_attention_dim, attention_head_dim=heads or cfg.heads_per_block(),
        norm_num_groups=min(32, cfg.block_out_channels[0]),
        # pooled condition: diffusers' "projection" class embedding, added to the time embedding
        class_embed_type="projection" if cfg.pooled_condition else None,
        projection_class_embeddings_input_dim=cfg.cross_attention_dim if cfg.pooled_condition else None)


class Denoiser(torch.nn.Module):
    """UNet + adapter as one module, so that DDP's forward (and its gradient sync) covers both."""

    def __init__(self, unet: UNet2DConditionModel, adapter: ConditionAdapter):
        super().__init__()
        self.unet, self.adapter = unet, adapter

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        return predict(self.unet, x_t, t, self.adapter(tokens, drop))
