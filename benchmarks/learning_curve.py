"""One recipe's learning curve: a single training run (plain loop, as bench_recipe.py trains), its EMA
weights scored at several step counts with bench_recipe.py's held-out pictures and judge.

It answers "how far is the demo's budget from the goals": the demo trains 800 steps; the scores at
1,600 and 3,200 say what two and four times its compute would buy.

  .venv/bin/python benchmarks/learning_curve.py --demo-out demo-out [--at 400,800,1600,3200] [--seed 0]
      [--model tiny_fast] [--model-over '{"pooled_condition": true}'] [--train-over '{"learning_rate": 0.002}']
      [--grids DIR]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

import bench_recipe as br
from semantica.training.step import build_model, make_state, new_loss, step_generator, train_step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-out", type=Path, required=True,
                    help="a demo's output (filtered/, sample-web/, tiny-encoder/)")
    ap.add_argument("--model", default="tiny_fast", help="model config of pipelines.yaml")
    ap.add_argument("--model-over", default="{}", help="JSON: changes of the model config")
    ap.add_argument("--train-over", default="{}", help="JSON: changes of the local profile's stages.train")
    ap.add_argument("--bs", type=int, default=16, help="batch size")
    ap.add_argument("--at", default="400,800,1600,3200", help="steps at which to score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", default="2", help="guidance scales (comma-separated)")
    ap.add_argument("--tag", default="", help="a name for the JSON rows")
    ap.add_argument("--grids", type=Path, help="write the variations (condition left) at each step count here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings, enc, judge, reference = br.scoring_setup(a.demo_out)
    model_cfg = dataclasses.replace(settings.models[a.model], **json.loads(a.model_over))
    cfg = dataclasses.replace(settings.stages.train, seed=a.seed, batch_size=a.bs, **json.loads(a.train_over))
    data = br.Data(a.demo_out / "filtered", model_cfg.resolution, a.bs)
    probe = enc(torch.zeros(1, 3, enc.image_size, enc.image_size)).tokens
    state = make_state(build_model(model_cfg, enc.dim, probe.shape[1], a.seed), cfg)
    loss_fn = new_loss(cfg)
    at, train_s = [int(x) for x in a.at.split(",")], 0.0
    for step in range(1, at[-1] + 1):
        cond, target = data.batch(state.step, a.seed)
        t = time.perf_counter()
        train_step(state, enc, loss_fn, cond, target, cfg, step_generator(a.seed, state.step, 0), torch.device("cpu"))
        train_s += time.perf_counter() - t
        if step not in at:
            continue
        model = copy.deepcopy(state.model)
        state.ema.copy_to(model.parameters())
        for g in [float(v) for v in a.guidance.split(",")]:
            scores, evaluator, cond, samples = br.score(model, enc, reference, judge, settings.stages.evaluate, g,
                                                        a.seed, noise_offset=cfg.noise_offset)
            if a.grids:
                a.grids.mkdir(parents=True, exist_ok=True)
                evaluator.grid(cond, samples, a.grids / f"step{step}-seed{a.seed}-g{g:g}.png")
            print(json.dumps({"tag": a.tag, "step": step, "samples": step * a.bs, "train_s": round(train_s, 1),
                              "guidance": g, **{k: None if scores[k] is None else round(scores[k], 3)
                                                for k in br.SCORE_KEYS}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
