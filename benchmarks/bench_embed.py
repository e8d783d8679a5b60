"""Embedding throughput (images/s) of the tiny stand-in encoder on CPU, and a DINOv2-B projection.

Builds the tiny DINOv2-architecture encoder (`build_tiny_encoder`, untrained: throughput does
not depend on the weights; 32 px input, 2 layers, 64-dim), loads it with `load_encoder`
(device cpu) and embeds --images (default 1,000) sample-web style pictures of ~128 px with
`embed_pil(batch_size=64)`. Baseline: the encoder's preprocessing alone (`preprocess_pil`,
its transformers image processor) on the same images and batches; also the forward pass alone
on the preprocessed tensors; each the best of --repeats runs. The ratios show where the time
goes. Timed at 1 torch thread and at torch's default (one per core): with another process
busy on the machine, a small model's many short ops lose far more to thread synchronisation
than they gain.

Then DINOv2-B (ViT-B/14; transformers' Dinov2Config() defaults: hidden 768, 12 layers, 224 px,
256 patches + CLS = 257 tokens), random weights, nothing downloaded: its forward FLOPs per
image by formula and by torch's FlopCounterMode, its CPU images/s at batch 8, the image
processor of facebook/dinov2-base (shortest edge 256, centre crop 224, bicubic) on the same
images, and a projection for one H100 at an assumed utilisation of its dense bf16 peak.

  .venv/bin/python benchmarks/bench_embed.py [--images 1000] [--repeats 3] [--vitb-batches 2] [--mfu 0.4]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the models are built here
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from semantica.encoders import load_encoder  # noqa: E402
from semantica.sample_web.drawing import draw_topic_picture  # noqa: E402
from semantica.tiny_encoder import IMAGENET_MEAN, IMAGENET_STD, build_tiny_encoder  # noqa: E402

H100_BF16_DENSE = 989e12  # FLOP/s, H100 SXM dense bf16 (no sparsity)


def best(repeats: int, fn, *args, **kw) -> tuple[float, object]:
    """Fastest of `repeats` timed runs (other processes share this machine) and its result."""
    return min((_common.timed(fn, *args, **kw) for _ in range(repeats)), key=lambda r: r[0])


def batched(fn, images: list, batch: int) -> None:
    for i in range(0, len(images), batch):
        fn(images[i:i + batch])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="pictures to embed (default 1,000)")
    ap.add_argument("--batch", type=int, default=64, help="embed_pil batch size (default 64)")
    ap.add_argument("--vitb-batch", type=int, default=8, help="DINOv2-B CPU batch size (default 8)")
    ap.add_argument("--vitb-batches", type=int, default=2,
                    help="DINOv2-B CPU batches timed, after one warm-up (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="tiny encoder and processor timings: best of (default 3)")
    ap.add_argument("--mfu", type=float, default=0.4, help="assumed share of the H100's dense bf16 peak (default 0.4)")
    args = ap.parse_args()
    rng = random.Random(0)
    images = [draw_topic_picture(rng, i % 8, 8, rng.randint(112, 144), rng.randint(112, 144))
              for i in range(args.images)]
    print(f"{len(images):,} pictures of 112-144 px (sample-web drawings); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {len(os.sched_getaffinity(0))} CPUs")

    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        enc = load_encoder(str(build_tiny_encoder(Path(tmp) / "tiny", "dinov2")), device="cpu")
    cfg = enc.model.config
    print(f"tiny encoder: {cfg.image_size} px, patch {cfg.patch_size}, {cfg.num_hidden_layers} layers, hidden "
          f"{cfg.hidden_size}, {sum(p.numel() for p in enc.parameters()):,} params")
    n, default_threads = len(images), torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        enc.embed_pil(images[:args.batch], batch_size=args.batch)  # warm-up
        t_pre, _ = best(args.repeats, batched, enc.preprocess_pil, images, args.batch)
        pixels = [enc.preprocess_pil(images[i:i + args.batch]) for i in range(0, n, args.batch)]
        t_fwd, _ = best(args.repeats, lambda: [enc(x) for x in pixels])
        t_embed, out = best(args.repeats, enc.embed_pil, images, batch_size=args.batch)
        assert out.shape == (n, enc.dim)
        print(f"\n{f'tiny encoder, batch {args.batch}, {threads} torch thread(s)':<40}{'images/s':>10}{'s':>8}"
              f"{'share of embed_pil':>20}")
        for name, t in (("preprocess_pil alone (baseline)", t_pre), ("forward alone (preprocessed tensors)", t_fwd),
                        ("embed_pil (preprocess + forward)", t_embed)):
            print(f"{name:<40}{n / t:>10,.0f}{t:>8.2f}{t / t_embed:>19.0%}")
        print(f"embed_pil runs at {t_pre / t_embed:.2f}x the speed of its preprocessing alone (same-run ratio)")
    torch.set_num_threads(default_threads)

    # DINOv2-B: FLOPs per image, CPU images/s, and an H100 projection
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model
    c = Dinov2Config()
    torch.manual_seed(0)
    vitb = Dinov2Model(c).eval()
    params = sum(p.numel() for p in vitb.parameters())
    tokens = (c.image_size // c.patch_size) ** 2 + 1
    f_dense, f_attn = 2 * params * tokens, 2 * c.num_hidden_layers * 2 * tokens ** 2 * c.hidden_size
    eager = Dinov2Model(Dinov2Config(attn_implementation="eager")).eval()  # FlopCounterMode misses CPU sdpa
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        eager(pixel_values=torch.randn(1, 3, c.image_size, c.image_size))
    f_counted = counter.get_total_flops()
    by_op = {str(k).replace("aten.", ""): v / 1e9 for k, v in counter.get_flop_counts()["Global"].items()}
    del eager
    print(f"\nDINOv2-B (Dinov2Config(): hidden {c.hidden_size}, {c.num_hidden_layers} layers, {c.image_size} px, patch "
          f"{c.patch_size}): {params / 1e6:.1f}M params, {tokens} tokens")
    print("forward FLOPs/image = 2 x params x tokens + 2 x layers x 2 x tokens^2 x hidden")
    print(f"                    = 2 x {params / 1e6:.1f}M x {tokens} + 2 x {c.num_hidden_layers} x 2 x {tokens}^2 x "
          f"{c.hidden_size} = {f_dense / 1e9:.1f} + {f_attn / 1e9:.1f} = {(f_dense + f_attn) / 1e9:.1f} GFLOP")
    print(f"FlopCounterMode, one image, eager attention: {f_counted / 1e9:.1f} GFLOP ("
          + ", ".join(f"{k} {v:.2f}" for k, v in by_op.items())
          + f"); {f_counted / (f_dense + f_attn):.1%} of the formula")
    x = torch.randn(args.vitb_batch, 3, c.image_size, c.image_size)
    with torch.no_grad():
        vitb(pixel_values=x)  # warm-up
        t_vitb, _ = _common.timed(lambda: [vitb(pixel_values=x) for _ in range(args.vitb_batches)])
    cpu_ips = args.vitb_batch * args.vitb_batches / t_vitb
    proc = BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                             do_center_crop=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, do_convert_rgb=True)
    t_proc, _ = best(args.repeats, batched, lambda b: proc(images=b, return_tensors="pt"), images, args.batch)
    proc_ips = n / t_proc
    gpu_ips = args.mfu * H100_BF16_DENSE / f_counted
    print(f"\n{'DINOv2-B':<52}{'images/s':>10}{'vs CPU forward':>16}")
    cpu_label = f"CPU forward, fp32, batch {args.vitb_batch}, {default_threads} threads ({args.vitb_batches} batches)"
    print(f"{cpu_label:<52}{cpu_ips:>10,.1f}{1:>15.0f}x")
    print(f"{'CPU image processor 256/224 (measured, this machine)':<52}"
          f"{proc_ips:>10,.0f}{proc_ips / cpu_ips:>15,.0f}x")
    print(f"{'H100 forward, projected':<52}{gpu_ips:>10,.0f}{gpu_ips / cpu_ips:>15,.0f}x")
    print(f"projection assumes {args.mfu:.0%} of {H100_BF16_DENSE / 1e12:.0f} TFLOP/s dense bf16 = "
          f"{args.mfu * H100_BF16_DENSE / 1e12:.0f} TFLOP/s sustained and {f_counted / 1e9:.1f} GFLOP/image (counted); "
          f"preprocessing not included")
    print(f"the image processor runs on one thread: feeding that rate takes ~{gpu_ips / proc_ips:,.0f} such CPU cores "
          f"(or resize + normalise on the GPU); JPEG decoding comes on top")


if __name__ == "__main__":
    main()
