"""Model classes shared by the stages: training builds and trains them, the pipeline
(semantica/pipeline.py) samples with them, so neither stage imports the other."""
from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config


class ConditionAdapter(ModelMixin, ConfigMixin):
    """Encoder tokens [B, N, encoder_dim] → cross-attention states [B, N, cross_attention_dim].

    `null` is the learned "no condition" (all N tokens): training swaps it in for a share of
    the batch (condition dropout), sampling uses it for the unconditional branch of guidance.
    """

    @register_to_config
    def __init__(self, encoder_dim: int, cross_attention_dim: int, num_tokens: int):
        super().__init__()
        self.norm = torch.nn.LayerNorm(encoder_dim)
        self.proj = torch.nn.Linear(encoder_dim, cross_attention_dim)
        self.null = torch.nn.Parameter(torch.zeros(1, num_tokens, cross_attention_dim))

    def forward(self, tokens: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        states = self.proj(self.norm(tokens))
        if drop is not None:  # drop: [B] bool, True → the null condition
            states = torch.where(drop[:, None, None], self.null.expand_as(states).to(states.dtype), states)
        return states

    def unconditional(self, batch: int) -> torch.Tensor:
        return self.null.expand(batch, -1, -1)


def condition_kwargs(unet, states: torch.Tensor) -> dict:
    """The UNet's condition arguments for adapter states [B, N, D]: cross-attention on every token and,
    for a UNet built with a pooled condition (`class_embed_type="projection"`), their mean added to the
    time embedding, so every ResNet block sees the condition, not only the attention blocks. Stable
    unCLIP's image variations pass their image embedding the same way."""
    if unet.config.class_embed_type == "projection":
        return {"encoder_hidden_states": states, "class_labels": states.mean(1)}
    return {"encoder_hidden_states": states}


def draw_noise(shape, generator: torch.Generator, offset: float = 0.0) -> torch.Tensor:
    """ε for images of `shape` [..., C, H, W] from `generator`: N(0, I), plus, with `offset` > 0, one N(0, offset²)
    constant per image and channel ("offset noise": Guttenberg 2023, diffusers' `--noise_offset`). Pixel-wise
    noise hides an image's mean colour only at the highest noise levels (its mean over H·W pixels has std
    1/√(HW)), where the loss weights steps least, so a model samples every ground near the data's mean tone;
    the offset hides it from mid-noise on. Training and sampling draw it alike (the sampler's ODE starts from
    the noise it was trained on). offset 0 draws exactly what plain `randn` draws."""
    eps = torch.randn(shape, generator=generator)
    if offset:
        eps = eps + offset * torch.randn((*shape[:-2], 1, 1), generator=generator)
    return eps


def predict(unet, x: torch.Tensor, t, states: torch.Tensor) -> torch.Tensor:
    """The UNet's output (v̂) for noised images x and adapter states: what training and sampling both call."""
    return unet(x, t, **condition_kwargs(unet, states)).sample
