"""GPU training and sampling figures for anyone with an NVIDIA GPU: train step, UNet alone, encoder, sampling.

Everything runs in one process, so every figure is also a ratio to the shipped configuration measured
beside it. The model is pipelines.yaml's `base64` UNet; the encoder is DINOv2-base shaped (768-dim,
patch 14, 224 px, 257 tokens) with random weights, saved and loaded with the real loading code
(`load_encoder`), so nothing comes from a hub. Inputs are random images in [-1, 1] on the host, as the
data path hands them over.

  train step   `train_step` (encoder + UNet + loss + backward + clip + AdamW + EMA, bf16 autocast) at
               each per-GPU batch, for:
                 shipped    the layout as shipped before the fix (diffusers' `attention_head_dim` = 64
                            *heads* per block, i.e. widths 3-12) and no fast path
                 heads      attention heads of width 64 (pipelines.yaml's `attention_head_dim`)
                 +cl        + channels_last and cuDNN autotuning
                 +opt       + fused AdamW, foreach EMA, TF32, pinned non-blocking copies
                 +ckpt      + gradient checkpointing (memory for time)
                 fast-heuristic  + torch.compile of the UNet, Inductor choosing layouts: it picks NCHW
                            for UNets, and cuDNN copies tensors back to NHWC around the convs
                 fast       + torch.compile keeping NHWC (`compile_channels_last`): the GPU profiles'
                            fast path
                 fast+graphs  + `compile_mode: reduce-overhead`: each step's forward and backward replayed
                            as CUDA graphs (no kernel-launch gaps)
                 fast+tune  + `compile_tune_kernels`: inductor times its fused kernels' block sizes
                 fast+graphs+tune  both
                 fast+graphs+enc  fast+graphs + `compile_encoder`: the frozen encoder compiled too
                 fast+graphs+enc+ddp  the same inside DistributedDataParallel (nccl, world size 1), as Ray's
                            `prepare_model` wraps it: compiled UNet and CUDA graphs under DDP's gradient hooks
  unet         UNet forward + backward alone (bf16 autocast), shipped vs heads+cl
  encoder      frozen encoder forward, images/s, eager and compiled (`compile_encoder`)
  sampling     SemanticaPipeline, 128 images, guidance 2 (two UNet passes a step), DDIM at 25 and 50
               steps: fp32 weights (TF32 off, torch's default), fp32 under bf16 autocast, bf16 weights

FLOPs are counted with torch.utils.flop_counter.FlopCounterMode over one eager step (model FLOPs:
recomputation under checkpointing is not counted); MFU is against the device's dense bf16 peak (a
table by device name; "unknown" otherwise). Memory is torch's peak allocation in the variant.

  python benchmarks/bench_gpu.py [--batches 64,128] [--steps 5] [--rounds 3] [--json FILE]
  python benchmarks/bench_gpu.py --smoke     # all of it at tiny sizes, on CPU too (the suite runs it)

Runs without Ray, and from a checkout on PYTHONPATH without installing semantica (only torch,
transformers, diffusers, pyyaml and pydantic are needed).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
import semantica  # noqa: E402

try:
    import semantica.training  # noqa: F401  installed: setup.cfg maps the stage folders into semantica.*
except ImportError:  # a bare checkout: map them the same way
    semantica.__path__.append(str(ROOT))
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from semantica.config import ModelConfig, TrainConfig, load_settings  # noqa: E402
from semantica.encoders import load_encoder  # noqa: E402
from semantica.training.step import (build_model, configure_backends, make_state, new_loss,  # noqa: E402
                                     prepare_encoder, prepare_model, step_generator, train_step)

# dense bf16 tensor-core peaks, TFLOP/s, from the vendors' datasheets (no sparsity); longest match wins
BF16_PEAK_TFLOPS = {"H200": 989.4, "GH200": 989.4, "H100": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "H800": 989.4, "B200": 2250.0, "A100": 312.0, "A800": 312.0, "L40S": 362.1, "L40": 181.0,
                    "L4": 121.0, "RTX 6000 Ada": 364.2, "RTX 4090": 165.2, "A6000": 154.8, "V100": None}
FAST_KEYS = ("channels_last", "compile", "compile_channels_last", "tf32", "fused_optimizer", "ema_foreach",
             "pin_memory", "gradient_checkpointing", "compile_tune_kernels", "compile_encoder")


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    hits = [k for k in BF16_PEAK_TFLOPS if k in name]
    tf = BF16_PEAK_TFLOPS[max(hits, key=len)] if hits else None
    return tf * 1e12 if tf else None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def timed_rounds(fn, device: torch.device, warmup: int, steps: int, rounds: int) -> float:
    """Seconds per call: the median over `rounds` of (wall time of `steps` calls) / steps, after warm-up.
    Calls within a round are not synchronised, as in training (the host runs ahead)."""
    for _ in range(warmup):
        fn()
    sync(device)
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        per.append((time.perf_counter() - t0) / steps)
    return statistics.median(per)


class Bench:
    def __init__(self, device: torch.device, peak: float | None, json_path: Path | None):
        self.device, self.peak, self.json_path, self.rows = device, peak, json_path, []
        self.flops: dict = {}  # (old layout?, batch) → model FLOPs of one train step
        self.profiled = False

    def record(self, section: str, name: str, batch: int, seconds: float, flops: float | None = None,
               unit: str = "samples/s", **extra) -> dict:
        row = {"section": section, "name": name, "batch": batch, "seconds": seconds, "rate": batch / seconds,
               "unit": unit, "flops": flops,
               "tflops": flops / seconds / 1e12 if flops else None,
               "mfu": flops / seconds / self.peak if flops and self.peak else None,
               "peak_gib": peak_gib(self.device), **extra}
        self.rows.append(row)
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a"
        mem = f"{row['peak_gib']:.1f} GiB" if row["peak_gib"] is not None else "n/a"
        print(f"  {section:<9} {name:<34} batch {batch:>4}: {row['rate']:>9.1f} {unit}, "
              f"{seconds * 1e3:>8.1f} ms, MFU {mfu}, peak {mem}", flush=True)
        if self.json_path:
            with open(self.json_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        return row


def make_encoder(folder: Path, smoke: bool) -> Path:
    """DINOv2-base shaped (or tiny for --smoke), random weights, saved as a hub model would be."""
    from transformers import Dinov2Config, Dinov2Model
    from semantica.tiny_encoder import tiny_config, tiny_processor
    torch.manual_seed(0)
    if smoke:
        cfg, size = tiny_config("dinov2"), 32
    else:
        cfg, size = Dinov2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072, patch_size=14, image_size=224), 224
    Dinov2Model(cfg).save_pretrained(folder)
    tiny_processor("dinov2", size).save_pretrained(folder)
    return folder


def train_variants(base: TrainConfig, smoke: bool) -> list[tuple[str, TrainConfig, bool]]:
    """(name, train config, old head layout?) in the order of the module docstring."""
    off = dataclasses.replace(base, compile_mode="default", **{k: False for k in FAST_KEYS})
    cl = dataclasses.replace(off, channels_last=True)
    opt = dataclasses.replace(cl, fused_optimizer=True, ema_foreach=True, tf32=True, pin_memory=True)
    fast = dataclasses.replace(opt, compile=not smoke, compile_channels_last=True)
    return [("shipped", off, True), ("heads", off, False), ("+cl", cl, False), ("+opt", opt, False),
            ("+ckpt", dataclasses.replace(opt, gradient_checkpointing=True), False),
            *([] if smoke else [("fast-heuristic", dataclasses.replace(opt, compile=True), False)]),
            ("fast", fast, False), *([("fast+ddp", fast, False)] if smoke else []),
            *([] if smoke else [(f"fast+{name}", dataclasses.replace(fast, **kw), False) for name, kw in (
                ("graphs", {"compile_mode": "reduce-overhead"}), ("tune", {"compile_tune_kernels": True}),
                ("graphs+tune", {"compile_mode": "reduce-overhead", "compile_tune_kernels": True}),
                ("graphs+enc", {"compile_mode": "reduce-overhead", "compile_encoder": True}),
                ("graphs+enc+ddp", {"compile_mode": "reduce-overhead", "compile_encoder": True}))])]


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel over a one-process group, as Ray's `prepare_model` wraps each worker's model."""
    import torch.distributed as dist
    if not dist.is_initialized():  # a file store: no port to pick
        store = dist.FileStore(tempfile.mkstemp(prefix="bench-gpu-ddp-")[1], 1)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=0, world_size=1)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def bench_train(b: Bench, model_cfg: ModelConfig, cfgs, encoder, batch: int, args, count_only: bool = False,
                enc_path: Path | None = None) -> None:
    dev = b.device
    shared_encoder = encoder
    res = model_cfg.resolution
    n_tokens = encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size, device=dev)).tokens.shape[1]
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(batch, 3, res, res, generator=g) * 2 - 1, torch.rand(batch, 3, res, res, generator=g) * 2 - 1)
            for _ in range(2)]
    old_heads = (model_cfg.attention_head_dim,) * len(model_cfg.block_out_channels)  # the quirk as shipped
    for name, cfg, old in cfgs:
        reset_memory(dev)
        configure_backends(cfg, dev)
        torch.manual_seed(cfg.seed)
        model = build_model(model_cfg, encoder.dim, n_tokens, cfg.seed)
        if old:
            from semantica.training.model import build_unet
            model.unet = build_unet(model_cfg, heads=old_heads)
        if cfg.compile:  # a fresh, static compilation per batch (not a dynamic-shape recompile of the last)
            torch._dynamo.reset()
        model = prepare_model(model, cfg, dev)
        # a compiled encoder is a fresh copy: the shared one stays eager for the other variants
        encoder = prepare_encoder(load_encoder(str(enc_path), device=str(dev)), cfg) if (
            cfg.compile_encoder and enc_path is not None) else shared_encoder
        state, loss_fn, k = make_state(model, cfg), new_loss(), [0]
        if name.endswith("+ddp"):
            state.model = wrap_ddp(model, dev)

        def step():
            cond, target = data[k[0] % 2]
            k[0] += 1
            return train_step(state, encoder, loss_fn, cond, target, cfg, step_generator(0, k[0], 0), dev)

        if (old, batch) not in b.flops:  # model FLOPs of one step, eager: the same for every fast setting
            if cfg.compile or cfg.gradient_checkpointing:  # count on the plain model (no recomputation)
                plain = dataclasses.replace(cfg, compile=False, gradient_checkpointing=False, compile_encoder=False)
                bench_train(b, model_cfg, [("(flops)", plain, old)], encoder, batch, args, count_only=True)
            else:
                with FlopCounterMode(display=False) as fc:
                    step()
                b.flops[(old, batch)] = fc.get_total_flops()
        if count_only:
            return
        reset_memory(dev)  # the peak of this variant, not of the eager model that counted its FLOPs
        t0 = time.perf_counter()
        step()  # the first step compiles under `compile`
        sync(dev)
        first = time.perf_counter() - t0
        sec = timed_rounds(step, dev, args.warmup, args.steps, args.rounds)
        b.record("train", name, batch, sec, b.flops[(old, batch)], first_step_s=round(first, 1))
        if args.profile_steps and name == args.profile_variant and not b.profiled:
            b.profiled = True
            try:  # a trace that fails (a profiler/CUDA-graph clash, say) must not cost the variants after it
                profile_steps(step, dev, args.profile_steps)
            except Exception as e:
                print(f"profile failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
        state = model = None  # free them before the next variant (`step` holds `state`)
        encoder = shared_encoder  # and a compiled copy of the encoder
    configure_backends(dataclasses.replace(cfgs[0][1], tf32=False), dev)


KERNEL_KINDS = (  # kernel-name substrings → what the time went to (first match wins)
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("optimizer+EMA", ("multi_tensor", "adam", "foreach", "fused_adam")),
    ("conv (cuDNN)", ("conv", "cudnn", "implicit", "dgrad", "wgrad", "fprop", "xmma")),
    ("matmul", ("gemm", "cutlass", "nvjet", "matmul", "cublas", "::mm", "addmm", "bmm")),
    ("fused pointwise/norm (Triton)", ("triton",)),
    ("copies", ("memcpy", "memset", "copy")),
)


def profile_steps(step, device: torch.device, n: int) -> None:
    """Where a step's GPU time goes: kernel time by kind, the busiest kernels, and how busy the GPU was."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    t0 = time.perf_counter()
    with profile(activities=acts, record_shapes=True) as prof:
        for _ in range(n):
            step()
        sync(device)
    wall = time.perf_counter() - t0
    key = "device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if (device.type != "cuda" or e.device_type.name == "CUDA")
              and "CompiledFxGraph" not in e.key]  # a compiled graph's host range spans its kernels: not a kernel
    kinds: dict[str, float] = {}
    for e in events:
        low = e.key.lower()
        kind = "fused pointwise/norm (Triton)" if low.startswith("triton_") else next(  # inductor names its
            (k for k, subs in KERNEL_KINDS if any(x in low for x in subs)), "other")  # kernels after the ops fused
        kinds[kind] = kinds.get(kind, 0.0) + getattr(e, key) / 1e6
    busy = sum(kinds.values())
    print(f"profile of {n} steps: wall {wall * 1e3:.0f} ms, kernel time {busy * 1e3:.0f} ms "
          f"({busy / wall:.0%} of wall; under the profiler)", flush=True)
    for kind, sec in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<32} {sec * 1e3 / n:9.1f} ms/step  {sec / max(busy, 1e-12):6.1%}", flush=True)
    copies = [e for e in prof.key_averages(group_by_input_shape=True)
              if e.device_type.name == "CPU" and e.key in ("aten::copy_", "aten::clone", "aten::contiguous",
                                                           "aten::_to_copy")]
    print("  host ops behind the copies (GPU ms/step, calls/step, input shapes):", flush=True)
    for e in sorted(copies, key=lambda e: -e.device_time_total)[:12]:
        print(f"    {e.device_time_total / 1e3 / n:8.1f}  {e.count // n:5d}  {e.key} {str(e.input_shapes)[:120]}",
              flush=True)
    print("  busiest kernels (ms/step, calls/step):", flush=True)
    kernels = sorted(events, key=lambda e: -getattr(e, key))
    for e in kernels[:15]:
        print(f"    {getattr(e, key) / 1e3 / n:8.1f}  {e.count // n:5d}  {e.key[:110]}", flush=True)
    fused = [e for e in kernels if e.key.startswith("triton_")]  # inductor's kernels: triton_{red,per,poi}_fused_…
    by_kind = {k: sum(getattr(e, key) for e in fused if e.key.startswith(f"triton_{k}_")) / 1e3 / n
               for k in ("red", "per", "poi")}
    print(f"  inductor's fused kernels, ms/step: reductions {by_kind['red']:.1f}, persistent reductions "
          f"{by_kind['per']:.1f}, pointwise {by_kind['poi']:.1f}; the busiest:", flush=True)
    for e in fused[:12]:
        print(f"    {getattr(e, key) / 1e3 / n:8.1f}  {e.count // n:5d}  {e.key[:110]}", flush=True)


def bench_unet(b: Bench, model_cfg: ModelConfig, batch: int, n_tokens: int, enc_dim: int, args) -> None:
    dev = b.device
    res = model_cfg.resolution
    old_heads = (model_cfg.attention_head_dim,) * len(model_cfg.block_out_channels)
    from semantica.training.model import build_unet
    for name, heads, cl in (("shipped", old_heads, False), ("heads+cl", None, True)):
        reset_memory(dev)
        torch.backends.cudnn.benchmark = cl
        unet = build_unet(model_cfg, heads=heads).to(dev)
        if cl:
            unet.to(memory_format=torch.channels_last)
        x = torch.randn(batch, 3, res, res, device=dev)
        x = x.contiguous(memory_format=torch.channels_last) if cl else x
        t = torch.randint(0, 1000, (batch,), device=dev)
        ctx = torch.randn(batch, n_tokens, model_cfg.cross_attention_dim, device=dev)

        def fwd_bwd():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                out = unet(x, t, encoder_hidden_states=ctx).sample
            out.float().pow(2).mean().backward()

        with FlopCounterMode(display=False) as fc:
            fwd_bwd()
        sec = timed_rounds(fwd_bwd, dev, args.warmup, args.steps, args.rounds)
        b.record("unet", name, batch, sec, fc.get_total_flops())
        unet = None  # free it before the next variant (`fwd_bwd` holds it)


def bench_encoder(b: Bench, encoder, batch: int, args, enc_path: Path) -> int:
    dev = b.device
    x = torch.randn(batch, 3, encoder.image_size, encoder.image_size, device=dev)
    with FlopCounterMode(display=False) as fc:
        out = encoder(x)
    sec = timed_rounds(lambda: encoder(x), dev, args.warmup, args.steps, args.rounds)
    b.record("encoder", f"{encoder.family} forward", batch, sec, fc.get_total_flops(), unit="images/s")
    if not args.smoke:  # `compile_encoder`: a fresh copy, compiled (its first call compiles)
        torch._dynamo.reset()
        on = dataclasses.replace(load_settings(ROOT / "pipelines.yaml", "dataflow").stages.train, compile_encoder=True)
        compiled = prepare_encoder(load_encoder(str(enc_path), device=str(dev)), on)
        t0 = time.perf_counter()
        compiled(x)
        sync(dev)
        first = time.perf_counter() - t0
        sec = timed_rounds(lambda: compiled(x), dev, args.warmup, args.steps, args.rounds)
        b.record("encoder", f"{encoder.family} forward, compiled", batch, sec, fc.get_total_flops(),
                 unit="images/s", first_step_s=round(first, 1))
    return out.tokens.shape[1]


def bench_sampling(b: Bench, model_cfg: ModelConfig, enc_path: Path, n_tokens: int, enc_dim: int,
                   n_images: int, steps_list, rounds: int) -> None:
    from diffusers import DDIMScheduler
    from PIL import Image
    from semantica.training.diffusion import make_scheduler
    from semantica.pipeline import SemanticaPipeline
    dev = b.device
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # torch's fp32 default
    torch.manual_seed(0)
    model = build_model(model_cfg, enc_dim, n_tokens, 0)
    with torch.no_grad():  # a non-zero null condition, as after training
        model.adapter.null.normal_()
    enc = load_encoder(str(enc_path), device="cpu")  # fp32; `pipe.to(dev, dtype)` moves and casts it with the rest
    pipe = SemanticaPipeline(image_encoder=enc.model, feature_extractor=enc.processor, unet=model.unet.eval(),
                             adapter=model.adapter.eval(), scheduler=DDIMScheduler.from_config(make_scheduler().config))
    pipe.set_progress_bar_config(disable=True)
    images = [Image.new("RGB", (96, 96), (40 * i % 255, 90, 160)) for i in range(4)]
    counts = [n_images // 4] * 4
    for steps in steps_list:
        for name, dtype, autocast in (("fp32", torch.float32, False), ("fp32 + bf16 autocast", torch.float32, True),
                                      ("bf16 weights", torch.bfloat16, False)):
            reset_memory(dev)
            pipe.to(dev, dtype)

            def run(n_steps):
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
                    return pipe(images, num_variations=counts, guidance_scale=2.0, num_inference_steps=n_steps,
                                seed=0, output_type="pt", batch_size=n_images)

            run(2)  # warm-up: kernels, cuDNN and cuBLAS handles
            sec = timed_rounds(lambda: run(steps), dev, warmup=0, steps=1, rounds=rounds)
            b.record("sampling", f"{steps} steps, {name}", n_images, sec, unit="images/s")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "n/a" if x is None else format(x, fmt)


def table(b: Bench) -> None:
    """Every row, with its ratio to the baseline of its section and batch (shipped; fp32 for sampling)."""
    print("\nsummary (ratio: against `shipped` of the same section and batch; sampling: against fp32 at the "
          "same steps)")
    print(f"{'section':<9} {'variant':<34} {'batch':>5} {'rate':>10} {'ratio':>7} {'ms':>9} {'TFLOP/s':>8} "
          f"{'MFU':>6} {'GiB':>6}")
    for r in b.rows:
        base_name = r["name"].split(",")[0] + ", fp32" if r["section"] == "sampling" else "shipped"
        base = next((x for x in b.rows if x["section"] == r["section"] and x["batch"] == r["batch"]
                     and x["name"] == base_name), None)
        ratio = f"{r['rate'] / base['rate']:.2f}x" if base else ""
        print(f"{r['section']:<9} {r['name']:<34} {r['batch']:>5} {r['rate']:>10.1f} {ratio:>7} "
              f"{r['seconds'] * 1e3:>9.1f} {_num(r['tflops']):>8} {_pct(r['mfu']):>6} {_num(r['peak_gib']):>6}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--batches", default="64,128", help="per-GPU batches of the train step (default 64,128)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; the median is reported (default 3)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (default 2)")
    ap.add_argument("--sections", default="encoder,train,unet,sampling,compile",
                    help="which parts to run, in this order (default all; `compile` = the fast path's "
                         "compiled train step at each batch, last because it compiles)")
    ap.add_argument("--compile-batches", type=lambda t: [int(x) for x in t.split(",")],
                    help="per-GPU batches of the compiled fast path, in this order (default: --batches, largest first)")
    ap.add_argument("--variants", help="only these train variants, comma-separated, run in that order (default all: "
                    "shipped,heads,+cl,+opt,+ckpt,fast-heuristic,fast,fast+graphs,fast+tune,fast+graphs+tune,fast+graphs+enc,"
                    "fast+graphs+enc+ddp)")
    ap.add_argument("--profile-steps", type=int, default=0,
                    help="after the first figure of --profile-variant, trace this many steps with torch.profiler "
                         "and print kernel time by kind (default 0: no trace)")
    ap.add_argument("--profile-variant", default="fast", help="the train variant --profile-steps traces (default fast)")
    ap.add_argument("--sample-images", type=int, default=128, help="images per sampling run (default 128)")
    ap.add_argument("--json", type=Path, help="append every row to this JSON-lines file as it is measured")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (tiny model, tiny encoder, batch 2), no "
                    "compilation: checks the script end to end in seconds, on CPU too")
    args = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu":  # tiny models on a shared CPU: one thread, or thread sync dominates
        torch.set_num_threads(1)
    from diffusers.utils import logging as diffusers_logging
    diffusers_logging.set_verbosity_error()  # `pipe.to(dtype)` warns on every cast
    settings = load_settings(ROOT / "pipelines.yaml", "dataflow")  # a GPU profile: its train stage's fast path
    model_cfg = settings.models["tiny" if args.smoke else "base64"]
    batches = [2] if args.smoke else [int(x) for x in args.batches.split(",")]
    if args.smoke:
        args.steps, args.rounds, args.warmup, args.sample_images = 1, 1, 1, 4
    sections = args.sections.split(",")
    peak = peak_flops(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; dense bf16 peak: "
          f"{f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}; model "
          f"{'tiny' if args.smoke else 'base64'} {model_cfg.block_out_channels} at {model_cfg.resolution} px, "
          f"head width {model_cfg.attention_head_dim}", flush=True)
    b = Bench(dev, peak, args.json)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        enc_path = make_encoder(Path(tmp) / "encoder", args.smoke)
        encoder = load_encoder(str(enc_path), device=str(dev))
        n_params = sum(p.numel() for p in build_model(model_cfg, encoder.dim, 1, 0).parameters())
        print(f"UNet + adapter: {n_params / 1e6:.1f} M parameters; encoder {encoder.dim}-dim at "
              f"{encoder.image_size} px", flush=True)
        n_tokens = encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size, device=dev)).tokens.shape[1]
        variants = train_variants(settings.stages.train, args.smoke)
        if args.variants:
            wanted = args.variants.split(",")
            unknown = sorted(set(wanted) - {v[0] for v in variants})
            if unknown:
                ap.error(f"--variants: unknown {unknown}; known: {[v[0] for v in variants]}")
            variants = [next(v for v in variants if v[0] == w) for w in wanted]  # in the order asked
        if args.profile_steps and args.profile_variant not in {v[0] for v in variants}:
            ap.error(f"--profile-variant: {args.profile_variant!r} is not among the variants run "
                     f"({[v[0] for v in variants]})")
        for section in sections:
            try:
                run_section(section, b, args, model_cfg, encoder, enc_path, n_tokens, variants, batches)
            except Exception as e:  # one failing part (an OOM, say) still leaves the others' figures
                import traceback
                traceback.print_exc()
                print(f"section {section} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
    table(b)
    return 0


def run_section(section: str, b: Bench, args, model_cfg, encoder, enc_path, n_tokens, variants, batches) -> None:
    if section == "encoder":
        bench_encoder(b, encoder, 4 if args.smoke else 256, args, enc_path)
    elif section == "train":
        eager = [v for v in variants if not v[1].compile]
        for batch in batches:  # every eager variant at the largest batch, the ends at the others
            chosen = eager if batch == max(batches) else [v for v in eager if v[0] in ("shipped", "+opt")]
            bench_train(b, model_cfg, chosen if not args.smoke else variants, encoder, batch, args, enc_path=enc_path)
    elif section == "unet":
        bench_unet(b, model_cfg, max(batches), n_tokens, encoder.dim, args)
    elif section == "sampling":
        bench_sampling(b, model_cfg, enc_path, n_tokens, encoder.dim, args.sample_images,
                       (2,) if args.smoke else (25, 50), args.rounds if args.smoke else 1)
    elif section == "compile" and not args.smoke:
        for batch in args.compile_batches or sorted(batches, reverse=True):
            bench_train(b, model_cfg, [v for v in variants if v[1].compile], encoder, batch, args, enc_path=enc_path)


if __name__ == "__main__":
    sys.exit(main())
