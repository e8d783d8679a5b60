"""Frozen image encoders: one registry for filtering, training and evaluation.

DINOv2, CLIP and SigLIP vision towers through `transformers`, loaded from a hub id or a
local directory. An encoder gives patch tokens (for the diffusion model's
cross-attention) and a pooled, L2-normalised embedding (for similarity). It is frozen,
in eval mode, runs without gradients, in batches, and in bf16 on a GPU. Images go through
the encoder's own image processor (PIL input) or its torch equivalent (tensors already in
the training graph).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from safetensors import SafetensorError

from semantica.errors import UserError

log = logging.getLogger(__name__)

# model_type in config.json → (vision model class name, image processor class name)
FAMILIES = {
    "dinov2": ("Dinov2Model", "BitImageProcessor"),
    "clip": ("CLIPVisionModel", "CLIPImageProcessor"),
    "clip_vision_model": ("CLIPVisionModel", "CLIPImageProcessor"),
    "siglip": ("SiglipVisionModel", "SiglipImageProcessor"),
    "siglip_vision_model": ("SiglipVisionModel", "SiglipImageProcessor"),
}


class EncoderNotFound(UserError):
    pass


@dataclass
class Encoded:
    tokens: torch.Tensor   # [B, N, D]: every token of the last layer (CLS first where there is one)
    pooled: torch.Tensor   # [B, D]: L2-normalised


class FrozenEncoder(torch.nn.Module):
    """A vision tower that never trains. `name` says where it came from (hub id or path)."""

    def __init__(self, model: torch.nn.Module, processor, name: str, family: str):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.processor, self.name, self.family = processor, name, family
        size = getattr(processor, "crop_size", None) or processor.size
        self.image_size = int(size.get("height") or size.get("shortest_edge"))
        self.register_buffer("mean", torch.tensor(processor.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(processor.image_std).view(1, 3, 1, 1), persistent=False)

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    def train(self, mode: bool = True):  # stays in eval mode whatever its parent does
        return super().train(False)

    def preprocess_pil(self, images: Sequence) -> torch.Tensor:
        """The encoder's own preprocessing (its transformers image processor)."""
        return self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]

    def preprocess_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], [B, 3, H, W] → resized and normalised as the processor would."""
        x = (x.float().clamp(-1, 1) + 1) / 2
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                              antialias=True).clamp(0, 1)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> Encoded:
        dev = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        out = self.model(pixel_values=pixel_values.to(dev, dtype))
        pooled = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state[:, 0]
        return Encoded(tokens=out.last_hidden_state.float(), pooled=F.normalize(pooled.float(), dim=-1))

    @torch.no_grad()
    def embed_pil(self, images: Sequence, batch_size: int = 64) -> torch.Tensor:
        """Pooled embeddings of PIL images, in batches."""
        outs = [self(self.preprocess_pil(images[i:i + batch_size])).pooled for i in range(0, len(images), batch_size)]
        return torch.cat(outs) if outs else torch.zeros(0, self.dim)


def _device_dtype(device: Optional[str]) -> tuple[torch.device, torch.dtype]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return dev, (torch.bfloat16 if dev.type == "cuda" else torch.float32)


def _names_a_path(name: str) -> bool:
    """A name that can only be a local folder, never a hub id (ORG/NAME)."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") >= 2 or name.endswith("/")


def _local_or_missing(name: str) -> bool:
    """True for a local folder; an error for a path that names no folder."""
    if Path(name).is_dir():
        return True
    if _names_a_path(name):
        raise EncoderNotFound(f"encoder {name!r}: no such folder (a hub id is ORG/NAME; a local encoder "
                              f"is a folder saved with `save_pretrained` or `semantica tiny-encoder`)")
    return False


SAVED_FILES = {"config.json": ("config.json",), "preprocessor_config.json": ("preprocessor_config.json",),
               "the weights (model.safetensors or pytorch_model.bin)": ("model.safetensors", "pytorch_model.bin",
                                                                         "model.safetensors.index.json")}


def _not_found(name, local: bool, e: Exception) -> EncoderNotFound:
    reason = f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})"
    if local:  # a folder: say which of the files save_pretrained writes it lacks, no hub advice
        missing = [what for what, files in SAVED_FILES.items() if not any((Path(name) / f).exists() for f in files)]
        where = f"this folder lacks {', '.join(missing)}" if missing else "its saved files cannot be read"
        return EncoderNotFound(f"encoder {name!r}: cannot load: {where}; save the model and its image processor "
                               f"there with `save_pretrained`, or train a tiny one with `semantica tiny-encoder`. "
                               f"{reason}")
    return EncoderNotFound(
        f"encoder {name!r}: cannot load: it is not in the local Hugging Face cache and the hub cannot be reached "
        f"(offline?). Download it where there is a network (`huggingface-cli download {name}`) and copy the "
        f"cache, pass a local directory, or train a tiny one for offline runs with `semantica tiny-encoder`. "
        f"{reason}")


def check_encoder(name_or_path: str) -> None:
    """That `load_encoder` will find the encoder, reading its config only (no weights, no device)."""
    from transformers import AutoConfig
    local = _local_or_missing(str(name_or_path))
    try:
        AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise _not_found(name_or_path, local, e) from None


def load_encoder(name_or_path: str, device: Optional[str] = None) -> FrozenEncoder:
    """A hub id (facebook/dinov2-base, openai/clip-vit-base-patch16, google/siglip-base-patch16-224)
    or a local directory saved with `save_pretrained` (model + image processor)."""
    import transformers
    from transformers import AutoConfig, AutoImageProcessor
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    local = _local_or_missing(str(name_or_path))
    try:
        config = AutoConfig.from_pretrained(name_or_path)
        family = config.model_type
        if family not in FAMILIES:
            raise UserError(f"encoder {name_or_path!r}: model_type {family!r} is not one of {sorted(FAMILIES)}")
        model_cls = getattr(transformers, FAMILIES[family][0])
        dev, dtype = _device_dtype(device)
        model = model_cls.from_pretrained(name_or_path, torch_dtype=dtype)
        processor = AutoImageProcessor.from_pretrained(name_or_path)
    # ValueError: a directory without a model's config.json; SafetensorError: truncated or damaged weights
    except (OSError, ValueError, SafetensorError) as e:
        raise _not_found(name_or_path, local, e) from None
    log.info("encoder %s (%s, %d-dim) on %s", name_or_path, family, config.hidden_size, dev)
    return FrozenEncoder(model.to(dev), processor, str(name_or_path), family).to(dev)
