"""`semantica demo`: the whole system on this machine, stage after stage, on the sample web."""
from __future__ import annotations

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


def run_demo(settings: Settings, out: Path, overwrite: bool = False) -> int:
    from semantica.curation.filter import run_filter
    from semantica.curation.publish import run_publish
    from semantica.curation.sweep import write_sweep
    from semantica.mining.pipeline import run_mine
    from semantica.evaluation.evaluate import run_evaluate
    from semantica.evaluation.generate import generate
    from semantica.evaluation.report import fmt, summary_lines, write_report
    from semantica.sample_web.topics import (TopicClassifier, draw_pictures, fit_shape_judge, load_pictures,
                                             topic_transfer, write_reference)
    from semantica.tiny_encoder import train_tiny_encoder
    from semantica.training.trainer import run_train
    out = Path(out)
    prepare_output(out, overwrite)
    sw = settings.stages.sample_web
    sw = dataclasses.replace(sw, port=_free_port(sw.host))  # a busy default port must not stop the demo
    settings = local_only(dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, sample_web=sw)),
                          sw.host)
    settings.dump(out / "settings.json")
    timings = {}
    steps = 8

    t = time.perf_counter()
    log.info("[1/%d] sample web → %s", steps, out / "sample-web")
    manifest = write_sample_web(sw, out / "sample-web")
    timings["sample-web"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("[2/%d] mine (Beam %s) → %s", steps, settings.profile.beam.get("runner"), out / "mined")
    with serve_sample_web(out / "sample-web", host=sw.host, port=sw.port):
        stats = run_mine(settings, [str(out / "sample-web" / "warc")], out / "mined")
    timings["mine"] = time.perf_counter() - t
    score = score_mining(out / "sample-web", out / "mined")
    (out / "mining-score.json").write_text(json.dumps(score, indent=2) + "\n")

    t = time.perf_counter()
    log.info("[3/%d] tiny stand-in encoder (offline: no hub) → %s", steps, out / "tiny-encoder")
    encoder = str(train_tiny_encoder(out / "sample-web", out / "tiny-encoder", seed=sw.seed))
    timings["tiny-encoder"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("[4/%d] semantic filter + threshold sweep → %s", steps, out / "filtered")
    fstats = run_filter(settings, out / "mined", out / "filtered", encoder=encoder)
    sweep = write_sweep(settings.stages.filter, out / "filtered")
    timings["filter"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("[5/%d] publish → %s", steps, out / "published")
    pstats = run_publish(settings, out / "filtered", out / "published", name="semantica-sample-pairs")
    timings["publish"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("[6/%d] train (Ray Train, %s model, %d steps) → %s", steps, settings.profile.model,
             settings.stages.train.max_steps, out / "run")
    tstats = run_train(settings, out / "filtered", out / "run", encoder=encoder)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("[7/%d] generate variations → %s", steps, out / "variations")
    inputs = _demo_inputs(out / "sample-web", out / "inputs", sw.num_topics)
    ev_cfg = settings.stages.evaluate
    grid_path = generate(out / "run", inputs, 4, out / "variations", guidance=ev_cfg.guidance, steps=ev_cfg.steps,
                         scheduler=ev_cfg.scheduler, seed=ev_cfg.seed, precision=ev_cfg.precision)
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    log.info("[8/%d] evaluate: few-shot metrics, guidance sweep, topic transfer → %s", steps, out / "evaluation")
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
    report = write_report(out / "evaluation", ev)  # again, now with topic transfer
    timings["evaluate"] = time.perf_counter() - t

    c = manifest["counts"]
    print(f"demo: sample web: {c['pages']} pages, {c['refs']} image references, {c['pairs']} ground-truth pairs "
          f"→ {out / 'sample-web'}")
    print(f"demo: mined: {stats['pages']['parsed']} pages, {stats['images']} images, {stats['pairs']} pairs "
          f"→ {out / 'mined'} (stats.json)")
    print("demo: mining vs ground truth: " + ", ".join(f"{k} {v:.3f}" for k, v in score.items()))
    print(f"demo: filter kept {fstats['pairs_kept']} of {fstats['pairs_in']} pairs in "
          f"[{fstats['low']}, {fstats['high']}] (dropped {fstats['drops']['filter']}); sweep: {sweep}")
    print(f"demo: published {pstats['pairs']} pairs, {pstats['images']} images → {out / 'published'} "
          f"(card: {out / 'published' / 'README.md'})")
    print(f"demo: trained {tstats['steps']} steps on {tstats['pairs']} pairs, final loss {tstats['final_loss']:.4f} "
          f"→ {tstats['pipeline']} (loss plot: {out / 'run' / 'loss.png'})")
    print(f"demo: variations (input left, 4 variations right): {grid_path}")
    for line in summary_lines(ev, 3):
        print(f"demo: few-shot {line}")
    print("demo: guidance sweep (consistency / diversity): " + ", ".join(
        f"{r['guidance']:g}: {fmt(r['consistency'], 2)} / {fmt(r['diversity'], 2)}" for r in ev["guidance"]))
    print(f"demo: topic transfer (hue only): {transfer['summary']}")
    print(f"demo: shape-aware scores on {ev['reference']['images']} held-out pictures (judge: shape CNN + hue, "
          f"held-out accuracy {fmt(ev['topic_judge']['held_out_accuracy'], 3)}; realism: held-out accuracy of a CNN "
          f"telling variations from real pictures, 0.5 = indistinguishable; diversity ÷ real same-topic), by guidance: "
          + ", ".join(f"{r['guidance']:g}: transfer {fmt(r['topic_transfer_shape'], 2)}, realism "
                      f"{fmt(r['realism_c2st'], 2)} (1-NN {fmt(r['realism_1nn'], 2)}), diversity ratio "
                      f"{fmt(r['diversity_ratio'], 2)}" for r in ev["guidance"]))
    print(f"demo: report: {report} (metrics: {out / 'evaluation' / 'metrics.json'})")
    print("demo: stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return 0
