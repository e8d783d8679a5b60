"""A trained run scored as `semantica demo` scores it: the shape-and-colour judge, 64 held-out pictures
(8 a topic, drawn anew), k = 8 conditions × 2 seeds, guidance 0 / 2 / 4, and the demo's grid.

  .venv/bin/python benchmarks/score_run.py RUN_DIR SAMPLE_WEB OUT [GUIDANCE_SCALES, default 0,2,4]
"""
import sys
import time
from pathlib import Path

import torch
torch.set_num_threads(1)  # small nets on a shared 2-core machine (README, "Training on 2 CPU cores")
from semantica.config import load_settings
from semantica.demo import _demo_inputs
from semantica.evaluation.evaluate import run_evaluate
from semantica.evaluation.generate import generate
from semantica.sample_web.topics import draw_pictures, fit_shape_judge, load_pictures, write_reference
run, sw_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
scales = [float(g) for g in (sys.argv[4] if len(sys.argv) > 4 else "0,2,4").split(",")]
s = load_settings(Path("pipelines.yaml"), "local"); sw = s.stages.sample_web
t = time.time()
pics = load_pictures(sw_dir)
judge = fit_shape_judge(sw, pics)
print("judge", judge.accuracy, judge.shape_accuracy, judge.rejects, time.time() - t, flush=True)
ref = write_reference(draw_pictures(sw, 8, seed=1), out / "reference")
ev = run_evaluate(s.with_stage("evaluate", shots=[8], repeats=2, guidance_scales=scales), run, ref, out / "ev",
                  judge=judge, overwrite=True)
SCORES = ("topic_transfer_shape", "realism_c2st", "realism_1nn", "diversity_ratio", "consistency")
for r in ev["guidance"]:
    print(r["guidance"], {k: r[k] for k in SCORES})
f = ev["few_shot"][0]
print("few-shot k=8, 2 seeds:", {k: f[k] for k in SCORES})
inputs = _demo_inputs(sw_dir, out / "inputs", sw.num_topics)
e = s.stages.evaluate  # as the demo generates
print(generate(run, inputs, 4, out / "variations", guidance=e.guidance, steps=e.steps, scheduler=e.scheduler,
               seed=e.seed, precision=e.precision, overwrite=True))
print("seconds", time.time() - t)
