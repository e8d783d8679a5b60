"""`semantica`: one command per stage. Parses flags (semantica/cli_args.py), loads pipelines.yaml, calls the stage.

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

from semantica.cli_args import build_parser
from semantica.config import Settings, load_settings
from semantica.errors import UserError

log = logging.getLogger("semantica")
COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {}


def command(name: str):
    """Decorator: the function runs `semantica NAME`."""
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


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
    return list(_flag_labels(args))


def _flag_labels(args: argparse.Namespace) -> dict[str, str]:
    """{override: the flag as the user gave it}, so that a bad value's error names the flag."""
    return {f"{key.format(profile=args.profile)}={json.dumps(value)}": f"--{flag.replace('_', '-')} {value}"
            for flag, key in FLAG_KEYS.get(args.command, {}).items()
            if (value := getattr(args, flag, None)) is not None}


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
                    scheduler=ev.scheduler, seed=ev.seed, precision=ev.precision, overwrite=args.overwrite)
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
    print(train_tiny_encoder(args.sample_web, args.output, steps=args.steps, seed=args.seed, overwrite=args.overwrite))
    return 0


@command("run")
def _run(args: argparse.Namespace, settings: Settings) -> int:
    from semantica.curation.filter import run_filter
    from semantica.curation.publish import run_publish
    from semantica.mining.pipeline import run_mine
    from semantica.training.trainer import run_train
    from semantica.encoders import check_encoder
    from semantica.outputs import check_local_output
    out = args.output
    check_local_output(out)  # the stages' folders go under it
    # what later stages need, checked before the mining run (which may take hours) rather than after it
    if args.reference and not args.reference.exists():
        raise UserError(f"--reference {args.reference}: no such file or folder")
    for name in dict.fromkeys((settings.stages.filter.encoder, settings.stages.train.encoder)):
        check_encoder(name)
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
        overrides = list(args.overrides) + list(getattr(args, "overrides_after_command", []))
        flags = _flag_labels(args)
        settings = load_settings(args.config, args.profile, overrides + list(flags), labels=flags)
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
    except BrokenPipeError:  # whoever read our output stopped (`semantica config | head`): no error to print
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so Python's own last flush cannot fail
        return 141  # 128 + SIGPIPE, what a shell reports for a C tool in the same place
    except Exception as e:  # a bug: one line unless --debug
        if args.debug:
            raise
        print(f"semantica {args.command}: internal error: {type(e).__name__}: {e} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
