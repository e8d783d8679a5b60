"""Sampling throughput: `SemanticaPipeline` against diffusers' generic sampling loop.

For each resolution (32×32 and 64×64: the `tiny` model config at both sizes, random weights,
a random tiny stand-in encoder; `--model base64` for the paper-size UNet on a GPU) and each
step count (25, 50), both sides turn the same condition images into the same number of
variations with the same UNet, condition adapter, DDIM scheduler and classifier-free
guidance (scale 2, so two UNet passes per step), images/s end to end (encoding the
conditions and PIL output included):
  (a) ours      SemanticaPipeline.__call__: per-image seeded noise, batches of 32
  (b) baseline  the textbook diffusers loop (`scheduler.set_timesteps`, `scale_model_input`,
                `unet(...).sample`, `scheduler.step(...).prev_sample`) on one batch of noise from
                one generator, outputs converted with `numpy_to_pil`
Order A-B-B-A per setting (a load drift cancels); ratio = (a) / (b). CUDA when available.

  .venv/bin/python benchmarks/bench_sample.py [--images 16] [--steps 25 50] [--sizes 32 64]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16, help="images per measurement (4 variations per condition)")
    ap.add_argument("--steps", type=int, nargs="+", default=[25, 50])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--model", default="tiny", help="model config of pipelines.yaml (its resolution is replaced)")
    args = ap.parse_args()

    import torch
    from diffusers import DDIMScheduler
    from diffusers.utils import numpy_to_pil
    from PIL import Image

    from semantica.config import load_settings
    from semantica.encoders import load_encoder
    from semantica.tiny_encoder import build_tiny_encoder
    from semantica.training.diffusion import make_scheduler
    from semantica.pipeline import SemanticaPipeline
    from semantica.training.step import build_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    settings = load_settings(None, "local", [])
    guidance, per_cond = 2.0, 4
    conds = [Image.new("RGB", (64, 64), (40 * i % 255, 90, 200 - 30 * i)) for i in range(args.images // per_cond)]
    print(f"device {device}, torch threads {torch.get_num_threads()}, model {args.model}, "
          f"{len(conds)} conditions × {per_cond} variations, guidance {guidance}")
    with tempfile.TemporaryDirectory() as tmp:
        enc_dir = build_tiny_encoder(Path(tmp) / "enc")
        enc = load_encoder(str(enc_dir), device=device)
        n_tokens = enc(torch.zeros(1, 3, enc.image_size, enc.image_size, device=device)).tokens.shape[1]
        print(f"{'size':>5} {'steps':>5} {'ours img/s':>11} {'baseline img/s':>15} {'ratio':>6}")
        for size in args.sizes:
            cfg = dataclasses.replace(settings.models[args.model], resolution=size)
            model = build_model(cfg, enc.dim, n_tokens, seed=0).to(device).eval()
            pipe = SemanticaPipeline(image_encoder=enc.model, feature_extractor=enc.processor, unet=model.unet,
                                     adapter=model.adapter,
                                     scheduler=DDIMScheduler.from_config(make_scheduler().config)).to(device)
            sched = DDIMScheduler.from_config(make_scheduler().config)

            def ours(steps: int) -> list:
                return pipe(conds, num_variations=per_cond, guidance_scale=guidance, num_inference_steps=steps,
                            seed=0).images

            @torch.no_grad()
            def baseline(steps: int) -> list:
                tokens = enc(enc.preprocess_pil(conds)).tokens.repeat_interleave(per_cond, 0)
                cond = model.adapter(tokens)
                both = torch.cat([model.adapter.unconditional(len(cond)).to(cond.dtype), cond])
                x = torch.randn((len(cond), 3, size, size), generator=torch.Generator().manual_seed(0)).to(device)
                sched.set_timesteps(steps, device=device)
                x = x * sched.init_noise_sigma
                for t in sched.timesteps:
                    x_in = sched.scale_model_input(torch.cat([x, x]), t)
                    v_u, v_c = model.unet(x_in, t, encoder_hidden_states=both).sample.chunk(2)
                    x = sched.step(v_u + guidance * (v_c - v_u), t, x).prev_sample
                return numpy_to_pil(((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).float().cpu().numpy())

            def timed(fn, steps: int) -> float:
                if device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                out = fn(steps)
                if device == "cuda":
                    torch.cuda.synchronize()
                n = sum(len(o) for o in out) if isinstance(out[0], list) else len(out)
                assert n == args.images, n
                return time.perf_counter() - t

            ours(2), baseline(2)  # warm-up
            for steps in args.steps:
                a1 = timed(ours, steps)
                b1, b2 = timed(baseline, steps), timed(baseline, steps)
                a2 = timed(ours, steps)
                a, b = args.images * 2 / (a1 + a2), args.images * 2 / (b1 + b2)
                print(f"{size:>5} {steps:>5} {a:>11.2f} {b:>15.2f} {a / b:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
