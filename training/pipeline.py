"""SemanticaPipeline: a diffusers DiffusionPipeline that turns images into variations.

It holds the UNet, the condition adapter and the scheduler, and names its frozen encoder
(a hub id, or a folder saved beside the pipeline as `encoder/`). `save_pretrained` writes
safetensors only; `SemanticaPipeline.from_pretrained(dir)` loads it without training code.
Each output image has its own noise generator (seed + index), so an image does not depend
on batch size or on the other images of the batch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, UNet2DConditionModel
from PIL import Image

from semantica.training.model import ConditionAdapter

SCHEDULERS = {"ddim": DDIMScheduler, "dpmsolver++": DPMSolverMultistepScheduler}


def _image_seed(seed: int, image: int, variation: int) -> int:
    """A distinct 63-bit seed per (seed, input, variation), however many of each."""
    return int(np.random.SeedSequence([seed, image, variation]).generate_state(1, np.uint64)[0] >> 1)


class SemanticaPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DConditionModel, adapter: ConditionAdapter, scheduler, encoder: str = ""):
        super().__init__()
        self.register_modules(unet=unet, adapter=adapter, scheduler=scheduler)
        self.register_to_config(encoder=encoder)
        self._encoder = None

    def save_pretrained(self, save_directory, **kwargs):
        kwargs.setdefault("safe_serialization", True)  # safetensors, never pickle
        enc = self.config.encoder
        if enc and Path(enc).is_dir() and not Path(enc).is_relative_to(Path(save_directory).resolve()):
            import shutil
            shutil.copytree(enc, Path(save_directory) / "encoder", dirs_exist_ok=True)
            self.register_to_config(encoder="encoder")
        super().save_pretrained(save_directory, **kwargs)
        self.register_to_config(encoder=enc)

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        pipe = super().from_pretrained(path, **kwargs)
        if pipe.config.encoder == "encoder" and (Path(path) / "encoder").is_dir():
            pipe.register_to_config(encoder=str(Path(path) / "encoder"))
        return pipe

    @property
    def encoder(self):
        if self._encoder is None:
            from semantica.encoders import load_encoder
            self._encoder = load_encoder(self.config.encoder, device=str(self.device))
        return self._encoder

    def set_scheduler(self, name: str) -> None:
        if name not in SCHEDULERS:
            raise ValueError(f"scheduler {name!r}: one of {sorted(SCHEDULERS)}")
        self.scheduler = SCHEDULERS[name].from_config(self.scheduler.config)

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], num_variations: Union[int, Sequence[int]] = 4,
                 guidance_scale: float = 2.0, num_inference_steps: int = 25, seed: int = 0, output_type: str = "pil",
                 batch_size: int = 32, progress: bool = False) -> list:
        """For each input image, `num_variations` images (one count for all, or one per input);
        returns a list (per input) of lists."""
        enc = self.encoder
        device = self.device
        res = self.unet.config.sample_size
        counts = [num_variations] * len(images) if isinstance(num_variations, int) else list(num_variations)
        if len(counts) != len(images):
            raise ValueError(f"num_variations: {len(counts)} counts for {len(images)} images")
        # the adapter's dtype (bf16 weights: `pipe.to(torch.bfloat16)`, `torch_dtype=`); the encoder keeps its own
        dtype = self.adapter.dtype
        tokens = enc(enc.preprocess_pil(list(images))).tokens.to(device, dtype)
        jobs = [(i, k) for i, n in enumerate(counts) for k in range(n)]
        out: list = [[None] * n for n in counts]
        starts = range(0, len(jobs), batch_size)
        for start in (self.progress_bar(starts) if progress else starts):
            chunk = jobs[start:start + batch_size]
            # one generator per output image: its noise depends on (seed, input, variation) only
            noise = torch.stack([torch.randn((3, res, res), generator=torch.Generator().manual_seed(
                _image_seed(seed, i, k))) for i, k in chunk]).to(device)
            cond = self.adapter(tokens[[i for i, _ in chunk]])
            uncond = self.adapter.unconditional(len(chunk)).to(cond.dtype)
            # x and the scheduler's arithmetic stay fp32 whatever the weights: only the UNet runs in `dtype`
            x = noise * self.scheduler.init_noise_sigma
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            for t in self.scheduler.timesteps:
                x_in = self.scheduler.scale_model_input(x, t).to(dtype)
                if guidance_scale == 1.0:
                    v = self.unet(x_in, t, encoder_hidden_states=cond).sample
                elif guidance_scale == 0.0:  # the unconditional model alone: half the work
                    v = self.unet(x_in, t, encoder_hidden_states=uncond).sample
                else:  # classifier-free guidance: v_u + g (v_c − v_u); g = 0 is the unconditional model
                    both = self.unet(torch.cat([x_in, x_in]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
                    v_u, v_c = both.float().chunk(2)
                    v = v_u + guidance_scale * (v_c - v_u)
                x = self.scheduler.step(v.float(), t, x).prev_sample
            x = (x.float().clamp(-1, 1) + 1) / 2
            for (i, k), img in zip(chunk, x):
                out[i][k] = img.cpu() if output_type == "pt" else Image.fromarray(
                    (img.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))
        return out
