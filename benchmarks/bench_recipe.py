"""Training recipes compared under one compute budget, scored on held-out pictures (plain loop, no Ray).

On a filtered pairs folder, its sample web and tiny encoder (a demo's `demo-out/filtered`,
`demo-out/sample-web`, `demo-out/tiny-encoder`), each variant (a change of the local profile's model
and / or its stages.train, or another model config) trains with `train_step` in this process on the decoded
pairs, augmented as the trainer does (seeded per pair and epoch; one torch thread, as the Ray
worker). Budget: `--budget` steps of the first variant; every other variant gets as many steps
as fit in the same seconds, from per-step costs measured first in this run, interleaved (the
machine is shared, so wall-clock budgets would hand the noise to whichever runs under load).
Scores (evaluation/evaluate.py's Evaluator, guidance `--guidance`): on the sample web's topics
drawn anew (8 held-out pictures a topic, in no training pair), 2 conditions per topic × 4
variations: topic transfer by the CNN judge (trained on other drawn pictures, accuracy printed on
the sample web's own), realism (1-NN two-sample accuracy, 0.5 = indistinguishable), diversity ÷
real same-topic diversity, consistency. Mean ± std over `--seeds`; a Markdown table at the end.

  .venv/bin/python benchmarks/bench_recipe.py --demo-out demo-out [--budget 800] [--seeds 0,1] [--guidance 2,4]
      [--variants 0,1] [--steps 800,770 (another run's step counts: run seeds in parallel)] [--grids DIR]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
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
from semantica.training.step import build_model, make_state, new_loss, step_generator, train_step  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# name: (changes of the local profile's model, changes of its stages.train); the first is the baseline
VARIANTS = {
    "local as shipped (tiny_fast, min-SNR-5, lr 1e-3)": ({}, {}),
    "+ pooled condition": ({"pooled_condition": True}, {}),
    "+ pooled condition, lr 2e-3": ({"pooled_condition": True}, {"learning_rate": 0.002}),
    "+ pooled condition, cond dropout 0.2": ({"pooled_condition": True}, {"cond_dropout": 0.2}),
    "+ pooled condition, 32-32-64 channels": ({"pooled_condition": True, "block_out_channels": (32, 32, 64)}, {}),
    "tiny (32-64, attention 16×16), min-SNR-5": ("tiny", {}),
    "+ cosine LR decay to 0": ({}, {"lr_schedule": "cosine"}),
    "+ linear LR decay to 0": ({}, {"lr_schedule": "linear"}),
    "+ cosine LR decay, lr 2e-3": ({}, {"lr_schedule": "cosine", "learning_rate": 0.002}),
    "lr 2e-3 (constant)": ({}, {"learning_rate": 0.002}),
    # the weight of the high-noise steps, where the condition decides the layout: 5x min-SNR-5's there, against
    # the low-noise steps (x0-error weights min(SNR, 1) and SNR + 1 against min(SNR, 5))
    "min-SNR-1": ({}, {"snr_gamma": 1.0}),
    "plain v-prediction (no min-SNR)": ({}, {"snr_gamma": 0.0}),
    # more, smaller updates for the same samples: batch 64 at the same samples did far worse than 16 (README)
    "batch 8": ({}, {"batch_size": 8}),
    "batch 8, lr 7e-4 (1e-3 / sqrt 2)": ({}, {"batch_size": 8, "learning_rate": 0.0007}),
    # the inputs' grounds come out one mid grey (their mean): offset noise hides the mean colour from mid-noise on
    "noise offset 0.1": ({}, {"noise_offset": 0.1}),
    "noise offset 0.2": ({}, {"noise_offset": 0.2}),
    # 51db4bc (the README's ninth round) also had variants 14-18: 4 and 8 GroupNorm groups, Min-SNR-5 with t drawn by
    # its weight, and two 2×2-patch UNets; none beat the shipped recipe and their options were removed after it
    # c251d78 had variant 16, self-conditioning (models.*.self_condition): no gain at 2,400 steps (README, eleventh)
}
VARIANT_INDEX = {n: i for i, n in enumerate(VARIANTS)}
SCORE_KEYS = ("topic_transfer_shape", "realism_c2st", "realism_1nn", "diversity_ratio", "consistency")


class Data:
    """Every pair decoded once; batches as the trainer forms them (a seeded shuffle per epoch)."""

    def __init__(self, pairs: Path, resolution: int, bs: int):
        t = load_examples(pairs).to_pydict()
        size = int(round(resolution * MARGIN))
        self.cond = np.stack([_decode(b, size) for b in t["cond_bytes"]])
        self.target = np.stack([_decode(b, size) for b in t["target_bytes"]])
        self.ids = np.array(t["pair_id"])
        self.res, self.bs = resolution, bs

    def batch(self, step: int, seed: int, bs: int = 0):
        bs = bs or self.bs  # a variant's own stages.train.batch_size
        per_epoch = len(self.ids) // bs
        epoch, i = divmod(step, per_epoch)
        order = np.random.default_rng(seed * 7919 + epoch).permutation(len(self.ids))[i * bs:(i + 1) * bs]
        ids = self.ids[order]
        return (augment(self.cond[order], ids, epoch, seed, self.res, "cond"),
                augment(self.target[order], ids, epoch, seed, self.res, "target"))


def configs(settings, name):
    model_over, train_over = VARIANTS[name]
    model = settings.models[model_over] if isinstance(model_over, str) else dataclasses.replace(settings.model,
                                                                                                **model_over)
    return model, dataclasses.replace(settings.stages.train, **train_over)


def step_costs(settings, names, encoder, data, rounds: int = 3, steps: int = 3) -> dict:
    """Seconds per train_step of each variant: median of interleaved rounds."""
    probe = encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size)).tokens
    states, loss = {}, {}
    for n in names:
        model_cfg, cfg = configs(settings, n)
        states[n] = (make_state(build_model(model_cfg, encoder.dim, probe.shape[1], 0), cfg), cfg)
        loss[n] = new_loss(cfg)
    times: dict = {n: [] for n in names}
    for r in range(rounds + 1):
        for n in names:
            st, cfg = states[n]
            t = time.perf_counter()
            for _ in range(steps):
                c, x = data.batch(st.step, 0, cfg.batch_size)
                train_step(st, encoder, loss[n], c, x, cfg, step_generator(0, st.step, 0), torch.device("cpu"))
            if r:  # round 0 warms up
                times[n].append((time.perf_counter() - t) / steps)
    return {n: statistics.median(v) for n, v in times.items()}


def train(settings, name, encoder, data, steps: int, seed: int, ema_decays=()):
    """The variant's model with its EMA weights, and {label: model} for each other EMA decay in `ema_decays`
    ("raw": the weights themselves), averaged over the same run: one training scores every decay."""
    from diffusers.training_utils import EMAModel
    model_cfg, cfg = configs(settings, name)
    cfg = dataclasses.replace(cfg, seed=seed, max_steps=steps)  # a decaying LR reaches 0 at the last step
    probe = encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size)).tokens
    state = make_state(build_model(model_cfg, encoder.dim, probe.shape[1], seed), cfg)
    extra = {d: EMAModel(state.model.parameters(), decay=float(d), foreach=True) for d in ema_decays if d != "raw"}
    loss_fn = new_loss(cfg)
    for _ in range(steps):
        c, x = data.batch(state.step, seed, cfg.batch_size)
        train_step(state, encoder, loss_fn, c, x, cfg, step_generator(seed, state.step, 0), torch.device("cpu"))
        for ema in extra.values():
            ema.step(state.model.parameters())
    others = {}
    for d in ema_decays:
        other = copy.deepcopy(state.model)
        if d != "raw":
            extra[d].copy_to(other.parameters())
        others[f"ema {d}" if d != "raw" else "no EMA"] = other
    state.ema.copy_to(state.model.parameters())
    return state.model, others


def score(model, encoder, reference, judge, ev, guidance: float, seed: int, sampler: str = "",
          noise_offset: float = 0.0) -> dict:
    """`sampler`: "name:steps" (a SemanticaPipeline scheduler and its steps); "" is stages.evaluate's DDIM.
    `noise_offset`: the offset noise the model was trained with (sampling draws the same)."""
    from diffusers import DDIMScheduler
    from semantica.evaluation.evaluate import Evaluator
    from semantica.evaluation.features import load_features
    from semantica.pipeline import SemanticaPipeline
    from semantica.training.diffusion import make_scheduler
    pipe = SemanticaPipeline(image_encoder=encoder.model, feature_extractor=encoder.processor,
                             unet=model.unet.eval(), adapter=model.adapter.eval(),
                             scheduler=DDIMScheduler.from_config(make_scheduler().config),
                             noise_offset=noise_offset)
    if sampler:
        name, steps = sampler.split(":")
        pipe.set_scheduler(name)
        ev = dataclasses.replace(ev, steps=int(steps))
    ev = dataclasses.replace(ev, num_samples=4 * 2 * len(set(reference.labels)))
    evaluator = Evaluator(pipe, reference, load_features("encoder", encoder), encoder, ev, judge=judge)
    rng = np.random.default_rng(seed)
    cond = sorted(int(i) for label in sorted(evaluator.by_label)
                  for i in rng.choice(evaluator.by_label[label], size=2, replace=False))
    samples = evaluator.sample(cond, guidance, seed)
    return evaluator.score(cond, samples, seed), evaluator, cond, samples


def scoring_setup(demo_out: Path):
    """(local settings, the demo's tiny encoder, the shape-and-colour judge, the held-out reference: 8 pictures
    a topic drawn anew with seed 1): what every recipe is scored with, here and in learning_curve.py."""
    from semantica.evaluation.reference import Reference
    from semantica.sample_web.topics import draw_pictures, fit_shape_judge, load_pictures
    settings = load_settings(REPO / "pipelines.yaml", "local")
    encoder = load_encoder(str((demo_out / "tiny-encoder").resolve()), device="cpu")
    sw = settings.stages.sample_web
    judge = fit_shape_judge(sw, load_pictures(demo_out / "sample-web"))
    print(f"judge: held-out accuracy {judge.accuracy:.3f} on the sample web's pictures", flush=True)
    held = draw_pictures(sw, 8, seed=1)
    reference = Reference(images=[p.image for p in held], names=[p.picture_id for p in held],
                          labels=[f"topic{p.topic}" for p in held])
    return settings, encoder, judge, reference


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-out", type=Path, required=True,
                    help="a demo's output (filtered/, sample-web/, tiny-encoder/)")
    ap.add_argument("--budget", type=int, default=150, help="steps of the first variant; the others get its seconds")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--guidance", default="2", help="guidance scales to score each model at (comma-separated)")
    ap.add_argument("--variants", default="", help="comma-separated indices into VARIANTS (default: all)")
    ap.add_argument("--steps", default="", help="steps of each chosen variant, comma-separated (skips the cost "
                                                 "measurement: reuse one run's figures in a parallel run)")
    ap.add_argument("--json", type=Path, help="append one JSON row per run and guidance")
    ap.add_argument("--grids", type=Path, help="write each run's variations (condition left) as a PNG here")
    ap.add_argument("--samplers", default="", help="score each model with each of these samplers too, "
                    "comma-separated name:steps (e.g. ddim:50,dpmsolver++:25,ddpm:50); default: stages.evaluate's")
    ap.add_argument("--ema-decays", default="", help="also score these EMA decays of each run, comma-separated "
                    "('raw': the weights without EMA); the variant's own decay is scored as always")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = list(VARIANTS)
    if args.variants:
        names = [names[int(i)] for i in args.variants.split(",")]
    settings, encoder, judge, reference = scoring_setup(args.demo_out)
    data = Data(args.demo_out / "filtered", settings.model.resolution, settings.stages.train.batch_size)
    if args.steps:
        steps = dict(zip(names, (int(x) for x in args.steps.split(","))))
        seconds = None  # fixed steps: no time budget
    else:
        costs = step_costs(settings, names, encoder, data)
        seconds = args.budget * costs[names[0]]
        steps = {n: max(1, round(seconds / costs[n])) for n in names}
        for n in names:
            print(f"cost {n}: {costs[n] * 1e3:.0f} ms/step → {steps[n]} steps", flush=True)
    print("steps: --steps " + ",".join(str(steps[n]) for n in names), flush=True)
    scales = [float(g) for g in args.guidance.split(",")]
    decays = [d for d in args.ema_decays.split(",") if d]
    samplers = [x for x in args.samplers.split(",") if x]
    rows: dict = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for base in names:
            t = time.perf_counter()
            model, others = train(settings, base, encoder, data, steps[base], seed, decays)
            t_train = time.perf_counter() - t
            for label, model in [("", model)] + list(others.items()):
                tag = f"variant{VARIANT_INDEX[base]}" + (f"-{label.replace(' ', '')}" if label else "")
                for g, sampler in [(g, sm) for g in scales for sm in [""] + samplers]:
                    scores, evaluator, cond, samples = score(model, encoder, reference, judge,
                                                             settings.stages.evaluate, g, seed, sampler,
                                                             configs(settings, base)[1].noise_offset)
                    detail = ", ".join(x for x in (label, sampler) if x)  # "", "ema 0.99", "ddpm:50", or both
                    n = f"{base} [{detail}]" if detail else base
                    steps[n] = steps[base]
                    rows.setdefault((n, g), []).append(scores)
                    print(f"seed {seed} {n} guidance {g:g}: train {t_train:.0f}s, "
                          + ", ".join(f"{k} {scores[k]:.3f}" for k in SCORE_KEYS), flush=True)
                    if args.grids:
                        args.grids.mkdir(parents=True, exist_ok=True)
                        where = f"-{sampler.replace(':', '')}" if sampler else ""
                        evaluator.grid(cond, samples, args.grids / f"{tag}{where}-seed{seed}-g{g:g}.png")
                    if args.json:
                        with args.json.open("a") as f:
                            f.write(json.dumps({"variant": n, "seed": seed, "guidance": g, "steps": steps[n],
                                                "train_s": t_train, **{k: scores[k] for k in SCORE_KEYS}}) + "\n")
    budget = (f"fixed steps --steps {args.steps}" if seconds is None
              else f"budget: {args.budget} steps of the first, {seconds:.0f} s at this run's step cost")
    print(f"\n| variant ({budget}) | steps | guidance | " + " | ".join(SCORE_KEYS) + " |")
    print("|---|---|---|" + "---|" * len(SCORE_KEYS))
    for (n, g), rs in rows.items():
        cells = []
        for k in SCORE_KEYS:
            v = [r[k] for r in rs if r[k] is not None]
            cells.append(f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}" if v else "n/a")
        print(f"| {n} | {steps[n]} | {g:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
