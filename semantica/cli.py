"""`semantica`: one command per stage. Parses flags, loads pipelines.yaml, calls the stage.

Library code never reads argv; this module is the only place that does.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from semantica import __version__
from semantica.config import Settings, load_settings
from semantica.errors import UserError

log = logging.getLogger("semantica")
COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


def _common(parser: argparse.ArgumentParser, top: bool, config_flag: bool = True) -> None:
    """Options every command takes, before or after its name (`train` keeps --config for the model
    config, as its interface says: give pipelines.yaml before the command name there)."""
    d = {} if top else {"default": argparse.SUPPRESS}
    if config_flag:
        parser.add_argument("--config", type=Path, help="pipelines.yaml to use (default: ./pipelines.yaml, "
                            "then the one shipped with semantica)", **({"default": None} if top else d))
    parser.add_argument("--profile", help="profile of pipelines.yaml (default: local)",
                        **({"default": "local"} if top else d))
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY.PATH=VALUE",
                        help="override a pipelines.yaml value, e.g. --set stages.mine.seed=3 (repeatable)",
                        **({"default": []} if top else d))
    parser.add_argument("--debug", action="store_true", help="debug logs and full tracebacks",
                        **({"default": False} if top else d))


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers expected, e.g. 1,5,10") from None


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers expected, e.g. 0,1,2,4") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="semantica",
        description="Mine image pairs from web crawls, train a conditional diffusion model on them, "
                    "generate variations and score them.")
    p.add_argument("--version", action="version", version=f"semantica {__version__}")
    _common(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        _common(sp, top=False, config_flag=name != "train")
        return sp

    sp = add("sample-web", "Write a synthetic crawl (WARC files, served images, ground truth) to OUT.")
    sp.add_argument("out", type=Path, metavar="OUT", help="folder to write the sample web to")
    sp.add_argument("--seed", type=int, help="random seed (stages.sample_web.seed)")
    sp.add_argument("--pages", type=int, help="number of pages (stages.sample_web.num_pages)")
    sp.add_argument("--domains", type=int, help="number of domains (stages.sample_web.num_domains)")
    sp.add_argument("--port", type=int, help="port the served images are linked at (stages.sample_web.port)")
    sp.add_argument("--overwrite", action="store_true", help="replace OUT if it is not empty")

    sp = add("serve", "Serve a sample web's images on loopback until interrupted (Ctrl-C).")
    sp.add_argument("folder", type=Path, metavar="DIR", help="a folder written by `semantica sample-web`")
    sp.add_argument("--host", help="address to bind (default: the sample web's host)")
    sp.add_argument("--port", type=int, help="port (default: the port the sample web links to)")

    sp = add("mine", "Mine image pairs from WARC files into pages/, refs/, images/, pairs/ (Parquet) + stats.json.")
    sp.add_argument("--input", "-i", dest="inputs", action="extend", nargs="+", required=True, metavar="WARC",
                    help="WARC or ARC files (gzip, zstd or plain): paths, globs (quoted or expanded by the "
                         "shell), folders, s3:// gs:// https:// URLs, .txt/.paths(.gz) listings, or "
                         "cc:CC-MAIN-YYYY-WW[:START-END]; several after one flag, or the flag repeated")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                    help="output folder: pages/, refs/, images/, pairs/ (Parquet) and stats.json")
    sp.add_argument("--allow-private-network", action="store_true", default=None,
                    help="let downloads reach loopback / private addresses (tests and the demo; "
                         "stages.mine.download.allow_private_network)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")
    sp.add_argument("--seed", type=int, help="seed of pair sampling (stages.mine.seed)")
    sp.add_argument("--no-download", dest="download", action="store_false", default=None,
                    help="archive mode: use only the images the crawl holds, never the network "
                         "(stages.mine.download.enabled=false; others count fetch:not_captured)")

    sp = add("config", "Print the settings a command would run with (pipelines.yaml + profile + --set).")

    sp = add("filter", "Score mined pairs by frozen-encoder similarity; keep those in [low, high]; "
                       "--sweep reports what each threshold pair would keep.")
    sp.add_argument("--pairs", type=Path, required=True, metavar="DIR", help="output of `semantica mine`")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                    help="output folder: pairs/ (kept), rejected/, images/, embeddings/, stats.json")
    sp.add_argument("--encoder", help="hub id or local directory (stages.filter.encoder)")
    sp.add_argument("--low", type=float, help="stages.filter.low")
    sp.add_argument("--high", type=float, help="stages.filter.high")
    sp.add_argument("--sweep", action="store_true", help="also write sweep/ (JSON, HTML with examples, PNG)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")

    sp = add("publish", "Write a curated, self-contained pairs dataset: Parquet and WebDataset shards, "
                        "a dataset card, a contact sheet and checksums, after opt-out and safety filtering.")
    sp.add_argument("--pairs", type=Path, required=True, metavar="DIR", help="output of `semantica filter` (or mine)")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                    help="dataset folder: data/, webdataset/, README.md (the card), SHA256SUMS")
    sp.add_argument("--opt-out", metavar="FILE", help="URL or domain patterns to remove, one a line")
    sp.add_argument("--name", default="semantica-pairs", help="dataset name in the card")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")

    sp = add("train", "Train the conditional diffusion model on pairs with Ray Train; rerunning with the same "
                      "RUN_DIR resumes from its latest checkpoint. Ends with RUN_DIR/pipeline (diffusers).")
    sp.add_argument("--pairs", type=Path, required=True, metavar="DIR",
                    help="output of `semantica filter`, `mine` or `publish`")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="RUN_DIR",
                    help="run folder: checkpoints, metrics and the exported pipeline/ (an existing one resumes)")
    sp.add_argument("--model", dest="model_config", metavar="MODEL", help="model config of pipelines.yaml "
                    "(tiny | base64; default: the profile's, profiles.P.model)")
    sp.add_argument("--config", dest="train_config", metavar="PATH_OR_MODEL",
                    help="pipelines.yaml, as for every command (a model config name here is deprecated: use --model)")
    sp.add_argument("--encoder", help="hub id or local directory (stages.train.encoder)")
    sp.add_argument("--max-steps", type=int, help="stages.train.max_steps")
    sp.add_argument("--num-workers", type=int, help="Ray Train workers (profiles.P.ray.num_workers)")
    sp.add_argument("--seed", type=int, help="stages.train.seed")

    sp = add("generate", "K variations of each input image: OUT/<name>/<k>.png, a grid per input and OUT/grid.png.")
    sp.add_argument("--model", type=Path, required=True, metavar="DIR", help="a training run or an exported pipeline")
    sp.add_argument("--input", "-i", dest="inputs", type=Path, nargs="+", required=True, metavar="IMG",
                    help="input images (one or more)")
    sp.add_argument("--num", type=int, default=4, metavar="K", help="variations per input (default 4)")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                    help="output folder: DIR/<name>/<k>.png, a grid per input and DIR/grid.png")
    sp.add_argument("--guidance", type=float, help="classifier-free guidance scale (0: unconditional; "
                    "stages.evaluate.guidance)")
    sp.add_argument("--steps", type=int, help="sampling steps (stages.evaluate.steps)")
    sp.add_argument("--scheduler", help="ddim | dpmsolver++ (stages.evaluate.scheduler)")
    sp.add_argument("--seed", type=int, help="random seed of the noise (stages.evaluate.seed)")
    sp.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="sampling weights: auto = bf16 on a GPU, "
                    "fp32 on CPU (stages.evaluate.precision)")

    sp = add("evaluate", "Few-shot generation metrics: condition on k reference images, generate, score against the "
                         "whole reference set (FID, KID, precision, recall; consistency, diversity), over seeds; "
                         "a guidance sweep; OUT/metrics.json and OUT/report.html.")
    sp.add_argument("--model", type=Path, required=True, metavar="DIR", help="a training run or an exported pipeline")
    sp.add_argument("--reference", type=Path, required=True, metavar="FOLDER_OR_PARQUET",
                    help="an image folder (sub-folders = labels) or Parquet file(s) with an image bytes column")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                    help="output folder: metrics.json, report.html, plots/, grids/, samples/")
    sp.add_argument("--shots", type=_int_list, metavar="K,K,…", help="conditioning set sizes (stages.evaluate.shots)")
    sp.add_argument("--num-samples", type=int, metavar="N",
                    help="images generated per run (stages.evaluate.num_samples)")
    sp.add_argument("--repeats", type=int, help="seeds per k (stages.evaluate.repeats)")
    sp.add_argument("--features", choices=("encoder", "inception"), help="feature space of FID/KID/precision/recall "
                    "(stages.evaluate.features)")
    sp.add_argument("--inception-weights", metavar="FILE",
                    help="local Inception-v3 FID weights for --features inception")
    sp.add_argument("--encoder", help="hub id or folder of the encoder for encoder features, consistency and "
                    "diversity (default: the model's own)")
    sp.add_argument("--guidance", type=float, help="guidance of the few-shot runs (stages.evaluate.guidance)")
    sp.add_argument("--guidance-scales", type=_float_list, metavar="G,G,…",
                    help="the sweep (stages.evaluate.guidance_scales; empty: none)")
    sp.add_argument("--steps", type=int, help="sampling steps (stages.evaluate.steps)")
    sp.add_argument("--scheduler", help="ddim | dpmsolver++ (stages.evaluate.scheduler)")
    sp.add_argument("--seed", type=int, help="stages.evaluate.seed")
    sp.add_argument("--max-reference", type=int, metavar="N", help="read at most N reference images")
    sp.add_argument("--per-class", action=argparse.BooleanOptionalAction, default=None,
                    help="with a labelled reference, also condition on one image per label (stages.evaluate.per_class)")
    sp.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="sampling weights: auto = bf16 on a GPU, "
                    "fp32 on CPU (stages.evaluate.precision)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")

    sp = add("tiny-encoder", "Train the tiny stand-in encoder on a sample web (for offline runs and tests).")
    sp.add_argument("sample_web", type=Path, metavar="SAMPLE_WEB", help="a folder written by `semantica sample-web`")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                    help="folder to save the encoder in (loadable as --encoder DIR)")
    sp.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    sp = add("run", "Run the stages in order for a profile: mine → filter → publish → train (→ evaluate with "
                    "--reference), each into its own folder under DIR (mined/, filtered/, published/, run/, "
                    "evaluation/). Encoders come from stages.filter.encoder / stages.train.encoder (set them with "
                    "--set for offline runs).")
    sp.add_argument("--input", "-i", dest="inputs", action="extend", nargs="+", required=True, metavar="WARC",
                    help="as for `semantica mine --input` (several, or the flag repeated)")
    sp.add_argument("--no-download", dest="download", action="store_false", default=None,
                    help="as for `semantica mine`")
    sp.add_argument("--output", "-o", type=Path, required=True, metavar="DIR",
                    help="output folder: one sub-folder per stage")
    sp.add_argument("--allow-private-network", action="store_true", default=None, help="as for `semantica mine`")
    sp.add_argument("--reference", type=Path, metavar="FOLDER_OR_PARQUET",
                    help="also evaluate the trained model against this reference set (as `semantica evaluate`)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR's stage folders")

    sp = add("demo", "The whole system on this machine: sample web and every stage that exists so far.")
    sp.add_argument("--output", type=Path, default=Path("demo-out"), help="demo folder (default: demo-out)")
    sp.add_argument("--overwrite", action="store_true", help="replace the demo folder if it exists")
    return p


# Per-command flags that set a pipelines.yaml value: shorthands for `--set KEY=VALUE`, applied after
# the --set flags (so they win); {profile} is the chosen profile. A flag left out (None) leaves the config's value.
FLAG_KEYS: dict[str, dict[str, str]] = {
    "sample-web": {"seed": "stages.sample_web.seed", "pages": "stages.sample_web.num_pages",
                   "domains": "stages.sample_web.num_domains", "port": "stages.sample_web.port"},
    "mine": {"seed": "stages.mine.seed", "download": "stages.mine.download.enabled",
             "allow_private_network": "stages.mine.download.allow_private_network"},
    "run": {"download": "stages.mine.download.enabled",
            "allow_private_network": "stages.mine.download.allow_private_network"},
    "filter": {"encoder": "stages.filter.encoder", "low": "stages.filter.low", "high": "stages.filter.high"},
    "train": {"encoder": "stages.train.encoder", "max_steps": "stages.train.max_steps", "seed": "stages.train.seed",
              "model_config": "profiles.{profile}.model", "num_workers": "profiles.{profile}.ray.num_workers"},
    "generate": {f: f"stages.evaluate.{f}" for f in ("guidance", "steps", "scheduler", "seed", "precision")},
    "evaluate": {f: f"stages.evaluate.{f}" for f in (
        "shots", "num_samples", "repeats", "features", "inception_weights", "guidance", "guidance_scales", "steps",
        "scheduler", "seed", "per_class", "precision")},
}


def _overrides_from_flags(args: argparse.Namespace) -> list[str]:
    """The command's flags as `--set` overrides (values as JSON, which YAML reads back as they were)."""
    return [f"{key.format(profile=args.profile)}={json.dumps(value)}"
            for flag, key in FLAG_KEYS.get(args.command, {}).items()
            if (value := getattr(args, flag, None)) is not None]


@command("sample-web")
def _sample_web(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.sample_web import write_sample_web
    m = write_sample_web(settings.stages.sample_web, args.out, overwrite=args.overwrite)
    c = m["counts"]
    print(f"{args.out}: {c['pages']} pages, {c['refs']} image references ({c['refs_kept']} to keep), "
          f"{c['pairs']} pairs, {len(m['warc_files'])} WARC files; serve its images with "
          f"`semantica serve {args.out}`")
    return 0


@command("serve")
def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.sample_web.server import make_server
    manifest_path = args.folder / "manifest.json"
    cfg = json.loads(manifest_path.read_text())["config"] if manifest_path.exists() else {}
    host = args.host or cfg.get("host", "127.0.0.1")
    port = args.port or cfg.get("port", settings.stages.sample_web.port)
    server = make_server(args.folder, host, port)
    print(f"serving {args.folder / 'static'} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


@command("mine")
def _mine(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.mining.pipeline import run_mine
    stats = run_mine(settings, args.inputs, args.output, overwrite=args.overwrite)
    print(f"{args.output}: {stats['pages']['parsed']} pages, {stats['refs']['total']} image references, "
          f"{stats['images']} images, {stats['pairs']} pairs in {stats['seconds']:.1f}s (see stats.json)")
    return 0


@command("filter")
def _filter(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.curation.filter import run_filter
    stats = run_filter(settings, args.pairs, args.output, overwrite=args.overwrite)
    print(f"{args.output}: kept {stats['pairs_kept']} of {stats['pairs_in']} pairs in "
          f"[{stats['low']}, {stats['high']}] ({stats['drops']['filter']}) with {stats['encoder']}")
    if args.sweep:
        from semantica.curation.sweep import write_sweep
        path = write_sweep(settings.stages.filter, args.output)
        print(f"{path}: threshold sweep")
    return 0


@command("publish")
def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.curation.publish import run_publish
    stats = run_publish(settings, args.pairs, args.output, opt_out_file=args.opt_out, overwrite=args.overwrite,
                        name=args.name)
    print(f"{args.output}: {stats['pairs']} pairs, {stats['images']} images published "
          f"(dropped: {stats['drops']['publish']}); card in {args.output / 'README.md'}")
    return 0


@command("train")
def _train(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.training.trainer import run_train
    s = run_train(settings, args.pairs, args.output)
    print(f"{args.output}: {s['steps']} steps on {s['pairs']} pairs in {s['seconds']}s, final loss "
          f"{s['final_loss']:.4f}; pipeline: {s['pipeline']}")
    return 0


@command("generate")
def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.evaluation.generate import generate
    ev = settings.stages.evaluate
    path = generate(args.model, args.inputs, args.num, args.output, guidance=ev.guidance, steps=ev.steps,
                    scheduler=ev.scheduler, seed=ev.seed, precision=ev.precision)
    print(f"{args.output}: {len(args.inputs)} × {args.num} variations; grid: {path}")
    return 0


@command("evaluate")
def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.evaluation.evaluate import run_evaluate
    from semantica.evaluation.report import summary_lines
    m = run_evaluate(settings, args.model, args.reference, args.output, encoder=args.encoder,
                     max_reference=args.max_reference, overwrite=args.overwrite)
    for line in summary_lines(m):
        print(line)
    print(f"{args.output}: metrics.json, report.html ({m['features']} features, {m['seconds']}s)")
    return 0


@command("tiny-encoder")
def _tiny_encoder(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.tiny_encoder import train_tiny_encoder
    print(train_tiny_encoder(args.sample_web, args.output, steps=args.steps, seed=args.seed))
    return 0


@command("run")
def _run(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.curation.filter import run_filter
    from semantica.curation.publish import run_publish
    from semantica.mining.pipeline import run_mine
    from semantica.training.trainer import run_train
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    settings.dump(out / "settings.json")
    stats = run_mine(settings, args.inputs, out / "mined", overwrite=args.overwrite)
    print(f"{out / 'mined'}: {stats['images']} images, {stats['pairs']} pairs")
    f = run_filter(settings, out / "mined", out / "filtered", overwrite=args.overwrite)
    print(f"{out / 'filtered'}: kept {f['pairs_kept']} of {f['pairs_in']} pairs")
    p = run_publish(settings, out / "filtered", out / "published", overwrite=args.overwrite)
    print(f"{out / 'published'}: {p['pairs']} pairs published")
    t = run_train(settings, out / "filtered", out / "run")
    print(f"{out / 'run'}: {t['steps']} steps; pipeline {t['pipeline']}")
    if args.reference:
        from semantica.evaluation.evaluate import run_evaluate
        from semantica.evaluation.report import summary_lines
        m = run_evaluate(settings, out / "run", args.reference, out / "evaluation", overwrite=args.overwrite)
        for line in summary_lines(m):
            print(line)
        print(f"{out / 'evaluation'}: metrics.json, report.html")
    return 0


@command("config")
def _config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.to_dict(), indent=2, sort_keys=True))
    return 0


@command("demo")
def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.demo import run_demo
    return run_demo(settings, args.output, overwrite=args.overwrite)


def _one_cpu_thread_unless_set() -> None:
    """One CPU thread per process (torch, OpenMP) unless OMP_NUM_THREADS says otherwise. The CPU work here is
    small models and many short ops: on an idle 2-core machine 2 threads are ~1.3x faster, but with other
    processes busy (Beam and Ray workers, or anything else) torch's default of a thread per core made them
    10-50x slower. Set before Beam or Ray start workers, which inherit it (a Ray train worker then takes its
    own CPUs); a GPU does its work whatever this says."""
    import os
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch
        torch.set_num_threads(1)


def _train_config_flag(args: argparse.Namespace) -> None:
    """`train --config` named the model config before 0.2; it now names pipelines.yaml, as everywhere.
    A value that is no file and no .yaml path is still read as a model name, with a warning."""
    value = args.train_config
    if Path(value).is_file() or value.endswith((".yaml", ".yml")):
        args.config = Path(value)
    else:
        log.warning("train --config %s: naming the model config with --config is deprecated; use --model %s",
                    value, value)
        args.model_config = args.model_config or value


def main(argv: Optional[Sequence[str]] = None) -> int:
    from semantica.logs import setup_logging
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.debug)
    _one_cpu_thread_unless_set()
    if not args.debug:  # Ray Data logs every dataset execution at INFO and draws its own bars on the console
        import os
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if args.command == "train" and args.train_config:
        _train_config_flag(args)
    try:
        settings = load_settings(args.config, args.profile, list(args.overrides) + _overrides_from_flags(args))
        t0 = time.perf_counter()
        rc = COMMANDS[args.command](args, settings)
        log.debug("%s finished in %.1fs", args.command, time.perf_counter() - t0)
        return rc
    except UserError as e:
        if args.debug:
            raise
        print(f"semantica {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"semantica {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line unless --debug
        if args.debug:
            raise
        print(f"semantica {args.command}: internal error: {type(e).__name__}: {e} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
