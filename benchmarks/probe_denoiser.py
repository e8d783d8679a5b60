"""What a trained model predicts of a clean picture at each noise level: where does it stop seeing it?

For training targets of a pairs folder (each with its own condition), noised to step t with one seeded
noise draw, the model's x0 estimate x̂ = α_t z_t − σ_t v̂ is compared with the picture:
  mse          mean squared error over pixels ([-1, 1] scale)
  coarse mse   the same on 8×8-pixel means (the picture's layout and ground: what is decided at high noise)
  coarse var   the variance of those means over the pictures: the coarse mse of predicting their average
A model that has learnt the high-noise steps predicts a smooth average picture at t = 999 (coarse mse ≈ coarse
var) and recovers the coarse picture well before the fine one as t falls. `--grid` writes the pictures (top
row) and their estimates at each t below.
`--trajectory out.png` samples variations of the same pictures (DDIM, stages.evaluate's steps, `--guidance`) and
writes the x0 estimate every third step, top to bottom, and the sample: the step at which the layout is fixed.

  .venv/bin/python benchmarks/probe_denoiser.py RUN_DIR_OR_PIPELINE PAIRS_DIR [--at 200,400,600,800,900,950,999]
      [--pictures 8] [--grid out.png] [--trajectory out.png] [--guidance 2]
"""
from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from diffusers import DDIMScheduler  # noqa: E402
from PIL import Image  # noqa: E402

from semantica.models import predict  # noqa: E402
from semantica.pipeline import SemanticaPipeline  # noqa: E402
from semantica.training.data import _decode, load_examples  # noqa: E402
from semantica.training.diffusion import make_scheduler  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="a run folder (its pipeline/) or an exported pipeline folder")
    ap.add_argument("pairs", type=Path, help="a pairs folder (filter's or mine's output)")
    ap.add_argument("--at", default="200,400,600,800,900,950,999", help="training steps t to probe")
    ap.add_argument("--pictures", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", type=Path, help="write the pictures and their estimates as a PNG")
    ap.add_argument("--trajectory", type=Path, help="write a sampling run's x0 estimates as a PNG")
    ap.add_argument("--guidance", type=float, default=2.0, help="guidance of the --trajectory run")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps of the --trajectory run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    folder = args.model / "pipeline" if (args.model / "pipeline").is_dir() else args.model
    pipe = SemanticaPipeline.from_pretrained(folder)
    res = pipe.unet.config.sample_size
    table = load_examples(args.pairs).to_pydict()
    pick = np.random.default_rng(args.seed).choice(len(table["pair_id"]), args.pictures, replace=False)
    x0 = torch.tensor(np.stack([_decode(table["target_bytes"][i], res) for i in pick]))
    x0 = x0.permute(0, 3, 1, 2).float() / 127.5 - 1
    cond = [Image.open(io.BytesIO(table["cond_bytes"][i])).convert("RGB") for i in pick]
    with torch.no_grad():
        states = pipe.adapter(pipe.encoder(pipe.encoder.preprocess_pil(cond)).tokens)
    sched = make_scheduler()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(args.seed))
    coarse0 = F.avg_pool2d(x0, 8)
    rows = [x0]
    print(f"{args.model}: {len(pick)} training targets at {res}×{res}; coarse var {coarse0.var().item():.4f}")
    print("| t | SNR | mse | coarse mse |\n|---|---|---|---|")
    for t in [int(s) for s in args.at.split(",")]:
        tt = torch.full((len(pick),), t)
        z = sched.add_noise(x0, eps, tt)
        with torch.no_grad():
            v = predict(pipe.unet, z, tt, states)
        a2 = sched.alphas_cumprod[t]
        x_hat = a2.sqrt() * z - (1 - a2).sqrt() * v
        print(f"| {t} | {(a2 / (1 - a2)).item():.4f} | {F.mse_loss(x_hat, x0).item():.4f} | "
              f"{F.mse_loss(F.avg_pool2d(x_hat, 8), coarse0).item():.4f} |")
        rows.append(x_hat.clamp(-1, 1))
    if args.grid:
        save_rows(rows, args.grid)
    if args.trajectory:
        save_rows(trajectory(pipe, states, res, args), args.trajectory)
    return 0


def trajectory(pipe, states: torch.Tensor, res: int, args) -> list:
    """x0 estimates of a guided DDIM run from seeded noise: every third step, the last, and the sample."""
    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(args.steps)
    n = states.shape[0]
    uncond = pipe.adapter.unconditional(n).to(states.dtype)
    x = torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(args.seed))
    rows = []
    print(f"trajectory (guidance {args.guidance:g}): coarse std of the x0 estimates over the pictures")
    for i, t in enumerate(sched.timesteps):
        with torch.no_grad():
            v_u, v_c = predict(pipe.unet, torch.cat([x, x]), t, torch.cat([uncond, states])).chunk(2)
        out = sched.step(v_u + args.guidance * (v_c - v_u), t, x)
        if i % 3 == 0 or i == len(sched.timesteps) - 1:
            rows.append(out.pred_original_sample.clamp(-1, 1))
            print(f"  t {int(t)}: {F.avg_pool2d(out.pred_original_sample, 8).std(0).mean().item():.3f}")
        x = out.prev_sample
    return rows + [x.clamp(-1, 1)]


def save_rows(rows: list, path: Path) -> None:
    grid = torch.cat([torch.cat(list(r), 2) for r in rows], 1)
    img = Image.fromarray(((grid.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy())
    img.resize((img.width * 3, img.height * 3), Image.NEAREST).save(path)
    print("wrote", path)


if __name__ == "__main__":
    raise SystemExit(main())
