"""`semantica evaluate`: the paper's few-shot protocol, and the consistency–diversity trade-off.

Few-shot: for each k in `shots` and each repeat, condition on k reference images drawn at random
(seeded by (seed, k, repeat)), generate `num_samples` images in all (split evenly over the k
conditions), and score them against the *whole* reference set (FID, KID; precision and recall against a seeded
subsample of the reference of the generated set's size, as the metric's authors compare sets of
one size) in the chosen feature space; consistency and diversity in the frozen encoder's space. Repeats give
mean ± std. With a labelled reference (`per_class`), the same over one random image per label.
Guidance sweep: the conditions of the largest k's first repeat, sampled at each
guidance scale, so consistency and diversity can be read side by side.
With a labelled reference, every run also gets scores that see shape: topic transfer by a CNN
judge trained on the reference's labelled pictures (never on generations; its held-out accuracy
is in metrics.json), realism as a classifier two-sample test against reference pictures of the
same labels (1-NN leave-one-out on 16×16 pixels; 0.5 = indistinguishable), and diversity as a
ratio to that of real same-label pictures.

Writes OUT/metrics.json, OUT/report.html, OUT/plots/*.png, OUT/grids/*.png and the sweep's
samples (OUT/samples/guidance<G>/<condition>/<i>.png, OUT/samples/conditions.json).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from statistics import mean, stdev
from typing import Optional, Sequence

import numpy as np

from semantica.config import EvaluateConfig, Settings
from semantica.errors import UserError
from semantica.evaluation.features import load_features
from semantica.evaluation.generate import grid, load_pipeline
from semantica.evaluation.metrics import (consistency, diversity, frechet_distance, kernel_distance, pixel_features,
                                          precision_recall, two_sample_accuracy)
from semantica.evaluation.reference import load_reference
from semantica.logs import progress
from semantica.outputs import check_output, prepare_output

log = logging.getLogger(__name__)

SCORES = ("fid", "kid", "precision", "recall", "consistency", "diversity")
LABELLED_SCORES = ("topic_transfer_shape", "realism_c2st", "realism_1nn", "diversity_ratio")  # None without labels
GRID_ROWS, GRID_COLS = 8, 8
K_NEAREST = 3  # the k of precision/recall's k-NN radii (Kynkäänniemi et al.)
PER_CLASS = 0  # the "k" of the one-image-per-label runs (never a real shot count)


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` samples over `parts` conditions: the first `total % parts` get one more."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def run_seed(seed: int, *keys: int) -> int:
    """An independent seed per (seed, k, repeat): conditions and noise never overlap across runs."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


class Evaluator:
    """Holds the pipeline, the reference set and its features; samples and scores one run at a time."""

    def __init__(self, pipe, reference, space, encoder, ev: EvaluateConfig, k_nearest: int = 3, judge=None):
        self.pipe, self.ref, self.space, self.encoder, self.ev = pipe, reference, space, encoder, ev
        self.k_nearest, self.judge = k_nearest, judge
        log.info("embedding %d reference images (%s features)", len(reference.images), space.name)
        self.ref_features = space(reference.images)
        self.ref_embeddings = self.ref_features if space.name == "encoder" else \
            encoder.embed_pil(reference.images).double().cpu()
        self.by_label: dict = {}
        for i, label in enumerate(reference.labels):
            if label is not None:
                self.by_label.setdefault(label, []).append(i)
        self.ref_pixels = pixel_features(reference.images) if judge is not None else None
        # what real pictures of one label differ by: the yardstick of the variations' diversity
        self.real_diversity = diversity([self.ref_embeddings[idx] for idx in self.by_label.values()]) \
            if self.by_label else float("nan")

    def conditions(self, k: int, repeat: int) -> list[int]:
        rng = np.random.default_rng(run_seed(self.ev.seed, k, repeat))
        if k == PER_CLASS:  # one random image of each label
            by_label: dict = {}
            for i, label in enumerate(self.ref.labels):
                by_label.setdefault(label, []).append(i)
            return sorted(int(rng.choice(by_label[label])) for label in sorted(by_label))
        return sorted(rng.choice(len(self.ref.images), size=k, replace=False).tolist())

    def sample(self, cond: Sequence[int], guidance: float, seed: int) -> list[list]:
        counts = split_evenly(self.ev.num_samples, len(cond))
        return self.pipe([self.ref.images[i] for i in cond], num_variations=counts, guidance_scale=guidance,
                         num_inference_steps=self.ev.steps, seed=seed).images

    def score(self, cond: Sequence[int], samples: list[list], seed: int) -> dict:
        flat = [im for group in samples for im in group]
        feats = self.space(flat)
        emb = feats if self.space.name == "encoder" else self.encoder.embed_pil(flat).double().cpu()
        groups, start = [], 0
        for group in samples:
            groups.append(emb[start:start + len(group)])
            start += len(group)
        kid, kid_std = kernel_distance(self.ref_features, feats, seed=seed)
        # precision/recall on sets of one size (as Kynkäänniemi et al.): k-NN radii grow as a set
        # thins out, so a small generated set against the whole reference would inflate recall
        n = min(len(feats), len(self.ref_features))
        rng = np.random.default_rng(seed)
        real = self.ref_features[np.sort(rng.choice(len(self.ref_features), size=n, replace=False))]
        # all the generations, unless the reference is the smaller set: then a random subset of them
        fake = feats[np.sort(rng.choice(len(feats), size=n, replace=False))]
        precision, recall = precision_recall(real, fake, k=self.k_nearest)
        div = diversity(groups)
        return {"fid": frechet_distance(self.ref_features, feats), "kid": kid, "kid_std": kid_std,
                "precision": precision, "recall": recall,
                "consistency": consistency(self.ref_embeddings[list(cond)], groups), "diversity": div,
                **self.labelled_scores(cond, samples, div, seed)}

    def labelled_scores(self, cond: Sequence[int], samples: list[list], div: float, seed: int) -> dict:
        """Shape-aware topic transfer, realism (two-sample test) and the diversity ratio; None without labels."""
        labels = [self.ref.labels[i] for i in cond]
        if self.judge is None or any(label is None for label in labels):
            return dict.fromkeys(LABELLED_SCORES)
        flat = [im for group in samples for im in group]
        wanted = [label for label, group in zip(labels, samples) for _ in group]
        # real pictures of the same labels, as many of each as it has variations (never the conditions)
        rng = np.random.default_rng(seed + 1)
        real, count = [], {}
        for label in wanted:
            count[label] = count.get(label, 0) + 1
        for label, n in sorted(count.items()):
            pool = [j for j in self.by_label[label] if j not in set(cond)]
            real += rng.choice(pool, size=min(n, len(pool)), replace=False).tolist() if pool else []
        from semantica.evaluation.classifier import two_sample_cnn_accuracy
        fake = pixel_features(flat)[rng.permutation(len(flat))]
        nn1 = two_sample_accuracy(self.ref_pixels[rng.permutation(real)], fake) if len(real) > 1 else None
        return {"topic_transfer_shape": self.judge.score(flat, wanted),
                "realism_c2st": two_sample_cnn_accuracy([self.ref.images[i] for i in real], flat, seed=seed),
                "realism_1nn": nn1, "diversity_ratio": div / self.real_diversity if self.real_diversity > 0 else None}

    def grid(self, cond: Sequence[int], samples: list[list], path: Path) -> None:
        rows = [[self.ref.images[i]] + group[:GRID_COLS] for i, group in zip(cond, samples)][:GRID_ROWS]
        path.parent.mkdir(parents=True, exist_ok=True)
        grid(rows, cell=64).save(path)


def _summary(runs: list[dict]) -> dict:
    """Mean ± std over the repeats; a score a run could not measure (None: e.g. diversity with one
    variation per condition) is left out, and is None when no run measured it."""
    out = {}
    for key in SCORES + LABELLED_SCORES:
        vals = [r[key] for r in runs if r[key] is not None]
        std = stdev(vals) if len(vals) > 1 else 0.0
        out[key] = {"mean": mean(vals), "std": std} if vals else {"mean": None, "std": None}
    return out


def _measured(scores: dict) -> dict:
    """NaN (not measurable) → None, so metrics.json stays valid JSON."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in scores.items()}


def _save_samples(folder: Path, names: list[str], samples: list[list]) -> None:
    for j, (name, group) in enumerate(zip(names, samples)):
        sub = folder / f"{j:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(group):
            img.save(sub / f"{i}.png")


def _pipeline_and_encoder(model: Path, encoder: Optional[str], ev: EvaluateConfig):
    """(the model's pipeline, with `ev.scheduler` if set; the encoder of the scores: `encoder`, else the model's)."""
    pipe = load_pipeline(model, precision=ev.precision)
    if ev.scheduler:
        try:
            pipe.set_scheduler(ev.scheduler)
        except ValueError as e:
            raise UserError(f"--scheduler: {e}") from None
    if encoder:
        from semantica.encoders import load_encoder
        return pipe, load_encoder(encoder)
    return pipe, pipe.encoder


def _checked_reference(reference: Path, max_reference: Optional[int], ev: EvaluateConfig):
    """The reference set, refused where it is too small for precision/recall or for the shot counts."""
    ref = load_reference(reference, limit=max_reference)
    if len(ref.images) < K_NEAREST + 1:
        raise UserError(f"--reference {reference}: {len(ref.images)} readable images; precision/recall need at "
                        f"least {K_NEAREST + 1}")
    too_many = [k for k in ev.shots if k > len(ref.images) or k > ev.num_samples]
    if too_many:
        raise UserError(f"--shots {too_many}: more conditions than reference images ({len(ref.images)}) "
                        f"or samples ({ev.num_samples})")
    return ref


def _topic_judge(ref, labels: list, judge, ev: EvaluateConfig) -> tuple:
    """(judge, metrics.json's topic_judge): `judge` or one fit on a reference of 2+ labels, all labelled; else None."""
    if not (len(labels) > 1 and all(x is not None for x in ref.labels)):
        return None, None
    if judge is None:
        from semantica.evaluation.classifier import fit_judge_held_out
        judge = fit_judge_held_out(ref.images, ref.labels, seed=ev.seed)
        judge_info = {"trained_on": "3/4 of the reference", "held_out_accuracy": judge.accuracy}
    else:
        judge_info = {"trained_on": "given", "held_out_accuracy": judge.accuracy}
    log.info("topic judge: held-out accuracy %s", judge.accuracy)
    return judge, judge_info


def _jobs(ev: EvaluateConfig, labels: list) -> list[tuple]:
    """Every run, as (kind, k, repeat, guidance): the few-shot runs, the per-class ones, the guidance sweep."""
    jobs = [("few-shot", k, r, ev.guidance) for k in ev.shots for r in range(ev.repeats)]
    if ev.per_class and len(labels) > 1 and len(labels) <= ev.num_samples:
        jobs += [("per-class", PER_CLASS, r, ev.guidance) for r in range(ev.repeats)]
    elif ev.per_class:
        log.info("per-class runs skipped: the reference has %d labels (needs 2 to num_samples=%d)", len(labels),
                 ev.num_samples)
    return jobs + [("guidance", max(ev.shots), 0, g) for g in ev.guidance_scales]


def _run_jobs(evaluator: Evaluator, jobs: list[tuple], ev: EvaluateConfig, out: Path) -> tuple[dict, list, list]:
    """Sample, score and draw each run (and save the sweep's samples): (few-shot runs by k, per-class, sweep)."""
    ref, k_sweep = evaluator.ref, max(ev.shots)
    few_shot: dict = {k: [] for k in ev.shots}
    per_class: list = []
    sweep, cache = [], {}
    for kind, k, r, g in progress(jobs, desc="evaluate", unit="run"):
        seed_run = run_seed(ev.seed, k, r)
        cond = evaluator.conditions(k, r)
        if (k, r, g) in cache:  # the sweep's point at the default guidance is a few-shot run already
            samples, scores = cache[(k, r, g)]
        else:
            t = time.perf_counter()
            samples = evaluator.sample(cond, g, seed_run)
            scores = _measured(evaluator.score(cond, samples, seed_run))
            scores["seconds"] = round(time.perf_counter() - t, 2)
            if (k, r) == (k_sweep, 0) and g == ev.guidance:
                cache[(k, r, g)] = samples, scores
        run = {"shots": k, "repeat": r, "guidance": g, "seed": seed_run,
               "conditions": [ref.names[i] for i in cond], **scores}
        log.info("%s k=%d repeat=%d guidance=%g: %s", kind, k, r, g, ", ".join(
            f"{key} {scores[key]:.4f}" if scores[key] is not None else f"{key} n/a" for key in SCORES))
        if kind == "few-shot":
            few_shot[k].append(run)
            if r == 0:
                evaluator.grid(cond, samples, out / "grids" / f"shots{k}.png")
        elif kind == "per-class":
            per_class.append({**run, "shots": len(cond)})
            if r == 0:
                evaluator.grid(cond, samples, out / "grids" / "per_class.png")
        else:
            sweep.append(run)
            evaluator.grid(cond, samples, out / "grids" / f"guidance{g:g}.png")
            _save_samples(out / "samples" / f"guidance{g:g}", [ref.names[i] for i in cond], samples)
            (out / "samples" / "conditions.json").write_text(json.dumps(
                [{"folder": f"{j:03d}", "name": ref.names[i], "label": ref.labels[i]} for j, i in enumerate(cond)],
                indent=1) + "\n")
    return few_shot, per_class, sweep


def run_evaluate(settings: Settings, model: Path, reference: Path, out: Path, *, encoder: Optional[str] = None,
                 max_reference: Optional[int] = None, overwrite: bool = False, judge=None) -> dict:
    """Few-shot evaluation with `settings.stages.evaluate` (set its values with `--set` or `dataclasses.replace`).
    `encoder`: the encoder of the encoder features, consistency and diversity (default: the model's own);
    `judge`: a TopicJudge (evaluation/classifier.py) for the labelled scores; by default, with a
    labelled reference, one is trained on 3/4 of the reference and its accuracy measured on the rest."""
    import dataclasses
    from semantica.evaluation.report import write_report
    t0 = time.perf_counter()
    ev = settings.stages.evaluate  # num_samples ≥ 4, repeats ≥ 1, shots ≥ 1: checked by EvaluateConfig
    out = Path(out)
    ref = _checked_reference(reference, max_reference, ev)  # before the output and the model: a bad one costs nothing
    inputs = [model, reference] + ([encoder] if encoder and Path(encoder).exists() else [])
    check_output(out, overwrite, inputs)  # before the model loads: a bad output costs nothing
    pipe, enc = _pipeline_and_encoder(model, encoder, ev)
    space = load_features(ev.features, enc, ev.inception_weights or None)
    labels = sorted({x for x in ref.labels if x is not None})
    judge, judge_info = _topic_judge(ref, labels, judge, ev)
    prepare_output(out, overwrite, inputs)  # only now: a model or weights that will not load leave no folder
    evaluator = Evaluator(pipe, ref, space, enc, ev, k_nearest=K_NEAREST, judge=judge)
    few_shot, per_class, sweep = _run_jobs(evaluator, _jobs(ev, labels), ev, out)
    metrics = {
        "model": str(model), "reference": {"path": str(reference), "images": len(ref.images),
                                           "labels": len({x for x in ref.labels if x is not None}),
                                           "skipped": ref.skipped,
                                           "diversity_same_label": None if math.isnan(evaluator.real_diversity)
                                           else evaluator.real_diversity},
        "topic_judge": judge_info,
        "features": space.name, "encoder": enc.name, "settings": dataclasses.asdict(ev),
        "few_shot": [{"shots": k, **_summary(runs), "runs": runs} for k, runs in few_shot.items()],
        "per_class": {"shots": len(labels), **_summary(per_class), "runs": per_class} if per_class else None,
        "guidance": sweep, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_report(out, metrics)
    return metrics
