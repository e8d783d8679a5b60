"""Where a demo training step's time goes on CPU, and what cuts it (plain loop, no Ray).

On a mined / filtered pairs folder and a tiny encoder (e.g. a demo's `demo-out/filtered` and
`demo-out/tiny-encoder`), with models.tiny (or --set-like overrides) at stages.train.batch_size:
  split    per step: augment (crop + flip of both images), the frozen encoder on the condition,
           the UNet's forward (loss), backward, clip + AdamW + EMA; at 1 and 2 torch threads
  variants samples/s of whole steps: as shipped (encoder every step), tokens cached per pair
           (the encoder on the un-augmented condition, once), channels_last on CPU, at 1 and 2
           threads; every variant runs in rounds interleaved with the others, so a load drift
           from other processes falls on all of them (report the median of the rounds)

  .venv/bin/python benchmarks/bench_cpu_step.py --pairs demo-out/filtered --encoder demo-out/tiny-encoder
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from semantica.config import load_settings  # noqa: E402
from semantica.encoders import load_encoder  # noqa: E402
from semantica.training.data import MARGIN, _decode, augment, load_examples  # noqa: E402
from semantica.training.step import apply_update, build_model, make_state, new_loss, step_generator, train_step  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def batches(pairs: Path, resolution: int, bs: int, n: int):
    """n batches of decoded (not yet augmented) pairs, in memory."""
    t = load_examples(pairs).to_pydict()
    size = int(round(resolution * MARGIN))
    cond = np.stack([_decode(b, size) for b in t["cond_bytes"]])
    target = np.stack([_decode(b, size) for b in t["target_bytes"]])
    ids = np.array(t["pair_id"])
    out = []
    for k in range(n):
        idx = np.arange(k * bs, (k + 1) * bs) % len(ids)
        out.append((cond[idx], target[idx], ids[idx]))
    return out


def split(state, encoder, loss_fn, cfg, model_cfg, data, steps: int) -> dict:
    """Seconds per step of each part, summed over `steps` steps."""
    parts = dict(augment=0.0, encoder=0.0, forward=0.0, backward=0.0, optimizer=0.0)
    model = state.model
    for k in range(steps):
        c, tg, ids = data[k % len(data)]
        t0 = time.perf_counter()
        cond = augment(c, ids, 0, cfg.seed, model_cfg.resolution, "cond")
        target = augment(tg, ids, 0, cfg.seed, model_cfg.resolution, "target")
        t1 = time.perf_counter()
        with torch.no_grad():
            tokens = encoder(encoder.preprocess_tensor(cond)).tokens
        t2 = time.perf_counter()
        g = step_generator(cfg.seed, state.step, 0)
        drop = torch.rand(cond.shape[0], generator=g) < cfg.cond_dropout
        loss = loss_fn(model, target, {"tokens": tokens, "drop": drop}, g)
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        apply_update(state, cfg)
        t5 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            parts[key] += dt
    return {k: v / steps for k, v in parts.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--steps", type=int, default=20, help="steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="default: stages.train.batch_size")
    args = ap.parse_args(argv)
    settings = load_settings(REPO / "pipelines.yaml", "local")
    cfg, model_cfg = settings.stages.train, settings.models[args.model]
    bs = args.batch or cfg.batch_size
    cfg = dataclasses.replace(cfg, batch_size=bs)
    encoder = load_encoder(args.encoder, device="cpu")
    probe = encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size)).tokens
    data = batches(args.pairs, model_cfg.resolution, bs, 16)
    n_params = sum(p.numel() for p in build_model(model_cfg, encoder.dim, probe.shape[1], 0).parameters())
    print(f"model {args.model}: {n_params / 1e6:.2f} M parameters, batch {bs}, "
          f"{torch.get_num_threads()} default threads")

    print("\n(1) split of one step (ms), plain loop, encoder on every step:")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        state = make_state(build_model(model_cfg, encoder.dim, probe.shape[1], cfg.seed), cfg)
        split(state, encoder, new_loss(), cfg, model_cfg, data, 3)  # warm-up
        parts = split(state, encoder, new_loss(), cfg, model_cfg, data, args.steps)
        total = sum(parts.values())
        print(f"  {threads} thread(s): " + ", ".join(f"{k} {v * 1e3:.1f} ({v / total:.0%})" for k, v in parts.items())
              + f"; total {total * 1e3:.1f} ms = {bs / total:.1f} samples/s")

    print("\n(2) whole steps (train_step), samples/s, median of rounds interleaved across variants:")
    variants = {}
    for threads in (1, 2):
        for name, over in (("as shipped", {}), ("channels_last", {"channels_last": True})):
            variants[(threads, name)] = dataclasses.replace(cfg, **over)
    states = {k: make_state(build_model(model_cfg, encoder.dim, probe.shape[1], cfg.seed), c)
              for k, c in variants.items()}
    for k, c in variants.items():
        if c.channels_last:
            states[k].model.to(memory_format=torch.channels_last)
    rates: dict = {k: [] for k in variants}
    loss_fn = new_loss()
    for _ in range(args.rounds):
        for k, c in variants.items():
            torch.set_num_threads(k[0])
            st = states[k]
            t = time.perf_counter()
            for i in range(args.steps):
                cnd, tg, ids = data[i % len(data)]
                cond = augment(cnd, ids, 0, c.seed, model_cfg.resolution, "cond")
                target = augment(tg, ids, 0, c.seed, model_cfg.resolution, "target")
                train_step(st, encoder, loss_fn, cond, target, c, step_generator(c.seed, st.step, 0),
                           torch.device("cpu"))
            rates[k].append(args.steps * bs / (time.perf_counter() - t))
    base = statistics.median(rates[(1, "as shipped")])
    for k, r in rates.items():
        m = statistics.median(r)
        print(f"  {k[0]} thread(s), {k[1]:<14} {m:7.1f} samples/s  ({m / base:.2f}× 1 thread as shipped; rounds "
              + ", ".join(f"{x:.0f}" for x in r) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
