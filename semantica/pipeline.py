"""SemanticaPipeline: a diffusers DiffusionPipeline that turns images into variations.

Its components, all saved and loaded by diffusers' own `save_pretrained` / `from_pretrained`
(safetensors): the frozen image encoder (`image_encoder`, a transformers Dinov2Model /
CLIPVisionModel / SiglipVisionModel) and its image processor (`feature_extractor`), as in
diffusers' StableDiffusionImageVariationPipeline; the condition adapter, the UNet and the
scheduler. `SemanticaPipeline.from_pretrained(dir)` needs nothing else (no training code, no
hub), `pipe.to(device, dtype)` moves and casts every model, the encoder included. A call
returns a `SemanticaPipelineOutput`. Each output image has its own noise generator
(seed + index), so an image does not depend on batch size or on the other images of the batch.

This module is shared by training (which exports the pipeline) and evaluation (which samples
with it); it imports neither.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import PIL.Image
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler,
                       UNet2DConditionModel)
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from transformers import ImageProcessingMixin, PreTrainedModel

from semantica.config_schema import SCHEDULER_NAMES
from semantica.encoders import FrozenEncoder
from semantica.errors import UserError
from semantica.models import ConditionAdapter, draw_noise, predict

log = logging.getLogger(__name__)

# ddim and dpmsolver++ are deterministic from the starting noise; ddpm is ancestral (fresh noise every step,
# drawn from each image's own generator)
SCHEDULERS = {"ddim": DDIMScheduler, "dpmsolver++": DPMSolverMultistepScheduler, "ddpm": DDPMScheduler}
assert tuple(SCHEDULERS) == SCHEDULER_NAMES  # the names the config accepts (semantica/config_schema.py)
OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass
class SemanticaPipelineOutput(BaseOutput):
    """`images[i]`: the variations of input i, in [0, 1], by `output_type`: "pil" a list of PIL images,
    "np" an array [n_i, H, W, 3] (float32), "pt" a tensor [n_i, 3, H, W] (float32, on the CPU).
    `images[i][k]` is the k-th variation of input i whichever the type."""

    images: list


def _image_seed(seed: int, image: int, variation: int) -> int:
    """A distinct 63-bit seed per (seed, input, variation), however many of each."""
    return int(np.random.SeedSequence([seed, image, variation]).generate_state(1, np.uint64)[0] >> 1)


class SemanticaPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "image_encoder->adapter->unet"

    def __init__(self, image_encoder: PreTrainedModel, feature_extractor: ImageProcessingMixin,
                 unet: UNet2DConditionModel, adapter: ConditionAdapter, scheduler, noise_offset: float = 0.0):
        super().__init__()
        if image_encoder.config.hidden_size != adapter.config.encoder_dim:
            raise ValueError(f"image_encoder gives {image_encoder.config.hidden_size}-dim tokens; the adapter "
                             f"expects {adapter.config.encoder_dim}")
        if not noise_offset >= 0:
            raise ValueError(f"noise_offset {noise_offset!r}: at least 0 (the std of the per-channel noise offset)")
        self.register_modules(image_encoder=image_encoder, feature_extractor=feature_extractor, unet=unet,
                              adapter=adapter, scheduler=scheduler)
        # the offset noise the UNet was trained with (stages.train.noise_offset): sampling starts from the same
        # noise; saved in model_index.json and passed back by from_pretrained
        self.register_to_config(noise_offset=float(noise_offset))
        # pixel space: the UNet's output in [-1, 1] → PIL / np / pt in [0, 1] (not a component: nothing to save)
        self.image_processor = VaeImageProcessor(do_resize=False, do_normalize=True)

    @property
    def encoder(self) -> FrozenEncoder:
        """The registered encoder and processor as semantica's FrozenEncoder (patch tokens, pooled embeddings).
        A view of the same model: moving or casting the pipeline moves and casts it."""
        model = self.image_encoder
        return FrozenEncoder(model, self.feature_extractor, name=model.name_or_path, family=model.config.model_type)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        index = Path(pretrained_model_name_or_path) / "model_index.json"
        if index.is_file():
            config = json.loads(index.read_text())
            if "image_encoder" not in config:
                return cls._from_legacy_export(Path(pretrained_model_name_or_path), config, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_legacy_export(cls, folder: Path, config: dict, dtype=None, torch_dtype=None, **kwargs):
        """An export from before the encoder was a component (semantica 0.2.0, training/pipeline.py): the encoder
        is named in model_index.json (`"encoder"`: the folder `encoder/` beside it, a path or a hub id) and the
        adapter's class in the training code (`semantica.training.model`, never imported here). Loaded component by
        component, the encoder through load_encoder; the adapter's files are what ConditionAdapter (now in
        semantica.models) reads."""
        from semantica.encoders import EncoderNotFound, load_encoder
        how = (f"re-export it: `SemanticaPipeline.from_pretrained('{folder}').save_pretrained(NEW_DIR)` where its "
               f"encoder can be loaded, or `semantica train` on its run again")
        name = config.get("encoder")
        if not isinstance(name, str) or not name or config.get("adapter", [None])[-1] != "ConditionAdapter":
            raise UserError(f"{folder}: not a SemanticaPipeline export this version can read (no image_encoder "
                            f"component and no encoder name in model_index.json); {how}")
        if kwargs:
            raise TypeError(f"{folder}: an export of an older layout loads with dtype= only (got {sorted(kwargs)}); "
                            f"{how}")
        where = folder / name if (folder / name).is_dir() else name
        try:
            enc = load_encoder(str(where), device="cpu")
        except EncoderNotFound as e:
            raise EncoderNotFound(f"{folder}: exported by an older semantica, which named its encoder instead of "
                                  f"saving it: {e}; then {how}") from None
        import diffusers
        dtype = dtype or torch_dtype or torch.float32
        pipe = cls(image_encoder=enc.model.to(dtype), feature_extractor=enc.processor,
                   unet=UNet2DConditionModel.from_pretrained(folder / "unet", dtype=dtype),
                   adapter=ConditionAdapter.from_pretrained(folder / "adapter", dtype=dtype),
                   scheduler=getattr(diffusers, config["scheduler"][1]).from_pretrained(folder / "scheduler"))
        pipe.register_to_config(_name_or_path=str(folder))
        log.warning("%s: exported by an older semantica (encoder named, not saved as a component); loaded with the "
                    "encoder %s. `pipe.save_pretrained(DIR)` writes the current layout.", folder, where)
        return pipe

    def set_scheduler(self, name: str) -> None:
        if name not in SCHEDULERS:
            raise ValueError(f"scheduler {name!r}: one of {sorted(SCHEDULERS)}")
        self.scheduler = SCHEDULERS[name].from_config(self.scheduler.config)

    @torch.no_grad()
    def __call__(self, images: Union[PIL.Image.Image, Sequence[PIL.Image.Image]],
                 num_variations: Union[int, Sequence[int]] = 4, guidance_scale: float = 2.0,
                 num_inference_steps: int = 25, seed: int = 0, output_type: str = "pil", return_dict: bool = True,
                 batch_size: int = 32, progress: bool = False) -> Union[SemanticaPipelineOutput, tuple]:
        """For each input image, `num_variations` images (one count for all, or one per input).
        Returns a SemanticaPipelineOutput (`.images[i]`: the variations of input i), or with
        `return_dict=False` the tuple `(images,)`."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type {output_type!r}: one of {list(OUTPUT_TYPES)}")
        images = [images] if isinstance(images, PIL.Image.Image) else list(images)
        enc = self.encoder
        device = self._execution_device
        res = self.unet.config.sample_size
        counts = [num_variations] * len(images) if isinstance(num_variations, int) else list(num_variations)
        if len(counts) != len(images):
            raise ValueError(f"num_variations: {len(counts)} counts for {len(images)} images")
        # the adapter's dtype (bf16 weights: `pipe.to(torch.bfloat16)`, `torch_dtype=`); the encoder runs in its
        # own dtype and gives fp32 tokens
        dtype = self.adapter.dtype
        tokens = enc(enc.preprocess_pil(images)).tokens.to(device, dtype)
        offset = self.config.noise_offset  # every pipeline registers it (__init__), older exports as 0
        jobs = [(i, k) for i, n in enumerate(counts) for k in range(n)]
        samples: list = [[None] * n for n in counts]
        starts = range(0, len(jobs), batch_size)
        for start in (self.progress_bar(starts) if progress else starts):
            chunk = jobs[start:start + batch_size]
            # one generator per output image: its noise depends on (seed, input, variation) only
            gens = [torch.Generator().manual_seed(_image_seed(seed, i, k)) for i, k in chunk]
            noise = torch.stack([draw_noise((3, res, res), g, offset) for g in gens]).to(device)
            # an ancestral scheduler's noise comes from the same generators (one per image), after the start's
            # (pixel-wise: its fresh noise each step carries no offset; the deterministic samplers need none)
            step_kwargs = {"generator": gens} if isinstance(self.scheduler, DDPMScheduler) else {}
            cond = self.adapter(tokens[[i for i, _ in chunk]])
            uncond = self.adapter.unconditional(len(chunk)).to(cond.dtype)
            # x and the scheduler's arithmetic stay fp32 whatever the weights: only the UNet runs in `dtype`
            x = noise * self.scheduler.init_noise_sigma
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            for t in self.scheduler.timesteps:
                x_in = self.scheduler.scale_model_input(x, t).to(dtype)
                if guidance_scale == 1.0:
                    v = predict(self.unet, x_in, t, cond)
                elif guidance_scale == 0.0:  # the unconditional model alone: half the work
                    v = predict(self.unet, x_in, t, uncond)
                else:  # classifier-free guidance: v_u + g (v_c − v_u); g = 0 is the unconditional model
                    both = predict(self.unet, torch.cat([x_in, x_in]), t, torch.cat([uncond, cond]))
                    v_u, v_c = both.float().chunk(2)
                    v = v_u + guidance_scale * (v_c - v_u)
                x = self.scheduler.step(v.float(), t, x, **step_kwargs).prev_sample
            for (i, k), img in zip(chunk, x.float().clamp(-1, 1).cpu()):
                samples[i][k] = img
        out = [self.image_processor.postprocess(torch.stack(s) if s else torch.zeros(0, 3, res, res),
                                                output_type=output_type) for s in samples]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (out,)
        return SemanticaPipelineOutput(images=out)
