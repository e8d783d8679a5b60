"""`semantica demo`: the whole system on this machine, stage after stage, on the sample web."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import time
from pathlib import Path

from semantica.config import Settings
from semantica.outputs import prepare_output
from semantica.sample_web import serve_sample_web, write_sample_web
from semantica.sample_web.score import score_mining

log = logging.getLogger(__name__)
HELD_OUT_PER_TOPIC = 8  # evaluation reference: 8 new pictures of each topic
STAGES = 8


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def local_only(settings: Settings, host: str) -> Settings:
    """Downloads may reach only the sample web's server: nothing leaves the machine."""
    mine = settings.stages.mine
    mine = dataclasses.replace(mine, download=dataclasses.replace(mine.download, allowed_hosts=(host,),
                                                                  allow_private_network=True))
    return dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, mine=mine))


def _demo_inputs(sample_web: Path, folder: Path, num_topics: int) -> list[Path]:
    """One content picture per topic of the sample web, written as files to condition on."""
    import pyarrow.parquet as pq
    folder.mkdir(parents=True, exist_ok=True)
    paths, seen = [], set()
    for a in pq.read_table(sample_web / "ground_truth" / "assets.parquet").to_pylist():
        if a["topic"] >= 0 and a["topic"] not in seen and a["stored"] == "server" and a["format"] == "jpeg" \
                and "-small" not in a["url"] and "-thumb" not in a["url"]:
            seen.add(a["topic"])
            src = sample_web / "static" / a["url"].split("/", 3)[3]
            dst = folder / f"topic{a['topic']}.jpg"
            dst.write_bytes(src.read_bytes())
            paths.append(dst)
    return sorted(paths)[:num_topics]


@contextlib.contextmanager
def _stage(timings: dict, name: str, number: int, what: str):
    """Log "[k/8] what" and time the stage into `timings[name]`."""
    log.info("[%d/%d] %s", number, STAGES, what)
    t = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t


def run_demo(settings: Settings, out: Path, overwrite: bool = False) -> int:
    """The whole system on the sample web, stage after stage, into OUT; prints where each output is."""
    from semantica.evaluation.generate import generate
    from semantica.mining.pipeline import run_mine
    from semantica.tiny_encoder import train_tiny_encoder
    from semantica.training.trainer import run_train
    out = Path(out)
    prepare_output(out, overwrite)
    sw = settings.stages.sample_web
    sw = dataclasses.replace(sw, port=_free_port(sw.host))  # a busy default port must not stop the demo
    settings = local_only(dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, sample_web=sw)),
                          sw.host)
    settings.dump(out / "settings.json")
    timings: dict = {}
    with _stage(timings, "sample-web", 1, f"sample web → {out / 'sample-web'}"):
        manifest = write_sample_web(sw, out / "sample-web")
    with _stage(timings, "mine", 2, f"mine (Beam {settings.profile.beam.get('runner')}) → {out / 'mined'}"):
        with serve_sample_web(out / "sample-web", host=sw.host, port=sw.port):
            stats = run_mine(settings, [str(out / "sample-web" / "warc")], out / "mined")
    score = score_mining(out / "sample-web", out / "mined")
    (out / "mining-score.json").write_text(json.dumps(score, indent=2) + "\n")
    with _stage(timings, "tiny-encoder", 3, f"tiny stand-in encoder (offline: no hub) → {out / 'tiny-encoder'}"):
        encoder = str(train_tiny_encoder(out / "sample-web", out / "tiny-encoder", seed=sw.seed))
    curated = _curate(settings, out, encoder, timings)
    with _stage(timings, "train", 6, f"train (Ray Train, {settings.profile.model} model, "
                                     f"{settings.stages.train.max_steps} steps) → {out / 'run'}"):
        tstats = run_train(settings, out / "filtered", out / "run", encoder=encoder)
    with _stage(timings, "generate", 7, f"generate variations → {out / 'variations'}"):
        inputs = _demo_inputs(out / "sample-web", out / "inputs", sw.num_topics)
        ev_cfg = settings.stages.evaluate
        grid_path = generate(out / "run", inputs, 4, out / "variations", guidance=ev_cfg.guidance, steps=ev_cfg.steps,
                             scheduler=ev_cfg.scheduler, seed=ev_cfg.seed, precision=ev_cfg.precision)
    with _stage(timings, "evaluate", 8, f"evaluate: few-shot metrics, guidance sweep, topic transfer → "
                                        f"{out / 'evaluation'}"):
        ev, report = _evaluate(settings, out)
    c = manifest["counts"]
    print(f"demo: sample web: {c['pages']} pages, {c['refs']} image references, {c['pairs']} ground-truth pairs "
          f"→ {out / 'sample-web'}")
    print(f"demo: mined: {stats['pages']['parsed']} pages, {stats['images']} images, {stats['pairs']} pairs "
          f"→ {out / 'mined'} (stats.json)")
    print("demo: mining vs ground truth: " + ", ".join(f"{k} {v:.3f}" for k, v in score.items()))
    for line in curated:
        print(line)
    print(f"demo: trained {tstats['steps']} steps on {tstats['pairs']} pairs in {timings['train']:.0f} s, final loss "
          f"{tstats['final_loss']:.4f} → {tstats['pipeline']} (loss plot: {out / 'run' / 'loss.png'})")
    print(f"demo: variations (input left, 4 variations right): {grid_path}")
    _print_scores(ev)
    print(f"demo: report: {report} (metrics: {out / 'evaluation' / 'metrics.json'})")
    print("demo: stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return 0


def _curate(settings: Settings, out: Path, encoder: str, timings: dict) -> list[str]:
    """Stages 4-5: semantic filter + threshold sweep, then publish; their summary lines."""
    from semantica.curation.filter import run_filter
    from semantica.curation.publish import run_publish
    from semantica.curation.sweep import write_sweep
    with _stage(timings, "filter", 4, f"semantic filter + threshold sweep → {out / 'filtered'}"):
        fstats = run_filter(settings, out / "mined", out / "filtered", encoder=encoder)
        sweep = write_sweep(settings.stages.filter, out / "filtered")
    with _stage(timings, "publish", 5, f"publish → {out / 'published'}"):
        pstats = run_publish(settings, out / "filtered", out / "published", name="semantica-sample-pairs")
    return [f"demo: filter kept {fstats['pairs_kept']} of {fstats['pairs_in']} pairs in "
            f"[{fstats['low']}, {fstats['high']}] (dropped {fstats['drops']['filter']}); sweep: {sweep}",
            f"demo: published {pstats['pairs']} pairs, {pstats['images']} images → {out / 'published'} "
            f"(card: {out / 'published' / 'README.md'})"]


def _evaluate(settings: Settings, out: Path) -> tuple[dict, Path]:
    """Stage 8 on held-out pictures with the shape-and-colour judge, plus the hue score; (metrics, report)."""
    from semantica.evaluation.evaluate import run_evaluate
    from semantica.evaluation.report import write_report
    from semantica.sample_web.topics import (TopicClassifier, draw_pictures, fit_shape_judge, load_pictures,
                                             topic_transfer, write_reference)
    sw = settings.stages.sample_web
    pictures = load_pictures(out / "sample-web")
    # held-out pictures: the sample web's topics, drawn anew, in no training pair
    reference = write_reference(draw_pictures(sw, HELD_OUT_PER_TOPIC, seed=1), out / "reference")
    # the shape-and-colour judge learns from drawn pictures; the sample web's own are its test set
    judge = fit_shape_judge(sw, pictures, seed=settings.stages.evaluate.seed)
    ev = run_evaluate(settings, out / "run", reference, out / "evaluation", judge=judge)
    ev["topic_judge"]["trained_on"] = (f"{len(judge.labels)} × 100 pictures drawn as the sample web draws them "
                                       f"(held out: the sample web's {len(pictures)} pictures)")
    # topics by a classifier fitted on the sample web's own pictures, never on generations
    transfer = topic_transfer(TopicClassifier.fit(pictures), out / "evaluation" / "samples", sw.num_topics)
    g = settings.stages.evaluate.guidance
    shares = transfer["share_by_guidance"]
    transfer["summary"] = (
        f"hue: {shares[g]:.2f} of the variations at guidance {g:g} have their condition's topic (hue classifier "
        f"fitted on the sample web's pictures; {transfer['variations_per_guidance']} variations of "
        f"{max(settings.stages.evaluate.shots)} conditions); chance {transfer['chance']:.3f}; the unconditional "
        f"model (guidance 0) {shares.get(0.0, float('nan')):.2f}. By guidance: "
        + ", ".join(f"{k:g}: {v:.2f}" for k, v in shares.items()))
    ev["topic_transfer"] = transfer
    return ev, write_report(out / "evaluation", ev)  # again, now with topic transfer


def _print_scores(ev: dict) -> None:
    """The few-shot, guidance-sweep, hue and shape-aware lines of the demo's summary."""
    from semantica.evaluation.report import fmt, summary_lines
    for line in summary_lines(ev, 3):
        print(f"demo: few-shot {line}")
    print("demo: guidance sweep (consistency / diversity): " + ", ".join(
        f"{r['guidance']:g}: {fmt(r['consistency'], 2)} / {fmt(r['diversity'], 2)}" for r in ev["guidance"]))
    print(f"demo: topic transfer (hue only): {ev['topic_transfer']['summary']}")
    print(f"demo: shape-aware scores on {ev['reference']['images']} held-out pictures (judge: shape CNN + hue, "
          f"held-out accuracy {fmt(ev['topic_judge']['held_out_accuracy'], 3)}; realism: held-out accuracy of a CNN "
          f"telling variations from real pictures, 0.5 = indistinguishable; diversity ÷ real same-topic), by guidance: "
          + ", ".join(f"{r['guidance']:g}: transfer {fmt(r['topic_transfer_shape'], 2)}, realism "
                      f"{fmt(r['realism_c2st'], 2)} (1-NN {fmt(r['realism_1nn'], 2)}), diversity ratio "
                      f"{fmt(r['diversity_ratio'], 2)}" for r in ev["guidance"]))
