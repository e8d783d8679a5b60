"""The flags of `semantica` and of each of its commands: build_parser().

Each command's own flags are in a function of their own; COMMAND_FLAGS lists the commands in the
order `semantica --help` shows them. semantica/cli.py parses with this parser and runs the command.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from semantica import __version__


def _common(parser: argparse.ArgumentParser, top: bool, config_flag: bool = True) -> None:
    """Options every command takes, before or after its name (`train` keeps --config for the model
    config, as its interface says: give pipelines.yaml before the command name there)."""
    d = {} if top else {"default": argparse.SUPPRESS}
    if config_flag:
        parser.add_argument("--config", type=Path, help="pipelines.yaml to use (default: ./pipelines.yaml, "
                            "then the one shipped with semantica)", **({"default": None} if top else d))
    parser.add_argument("--profile", help="profile of pipelines.yaml (default: local)",
                        **({"default": "local"} if top else d))
    # its own dest after the command name: argparse would otherwise replace the list given before it
    parser.add_argument("--set", dest="overrides" if top else "overrides_after_command", action="append",
                        metavar="KEY.PATH=VALUE",
                        help="override a pipelines.yaml value, e.g. --set stages.mine.seed=3 (repeatable)",
                        **({"default": []} if top else d))
    parser.add_argument("--debug", action="store_true", help="debug logs and full tracebacks",
                        **({"default": False} if top else d))


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port}: a TCP port is 1..65535")
    return port


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: at least 1")
    return n


REMOTE_SCHEMES = ("gs", "s3", "hdfs", "azfs")  # Beam's filesystems besides the local one


def _output_location(text: str) -> str:
    """`mine --output`: a local folder, or a Beam filesystem URL (gs://, s3://, hdfs://, azfs://) kept as
    typed: Path() folds the '//' (gs://b/x → gs:/b/x), and Beam would then write to a local folder `gs:`."""
    if "://" not in text:
        return str(Path(text))
    if text.split("://", 1)[0].lower() not in REMOTE_SCHEMES:
        schemes = " / ".join(s + "://" for s in REMOTE_SCHEMES)
        raise argparse.ArgumentTypeError(f"{text!r}: a local folder or a {schemes} URL (a Beam filesystem)")
    return text


def _local_folder(text: str) -> Path:
    """The output of a command that writes local files: a URL is refused, not folded into a local path."""
    if "://" in text:
        schemes = ", ".join(s + "://" for s in REMOTE_SCHEMES)
        raise argparse.ArgumentTypeError(f"{text!r}: a local folder is needed here; only `semantica mine "
                                         f"--output` writes to a Beam filesystem ({schemes})")
    return Path(text)


def _int_list(text: str) -> list[int]:
    """`1,5,10` → [1, 5, 10] (the type of --shots)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers expected, e.g. 1,5,10") from None


def _float_list(text: str) -> list[float]:
    """`0,1,2.5` → [0.0, 1.0, 2.5] (the type of --guidance-scales)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers expected, e.g. 0,1,2,4") from None


def _sample_web_flags(sp: argparse.ArgumentParser) -> None:
    """`sample-web OUT`: the sample web's size, seed and port."""
    sp.add_argument("out", type=Path, metavar="OUT", help="folder to write the sample web to")
    sp.add_argument("--seed", type=int, help="random seed (stages.sample_web.seed)")
    sp.add_argument("--pages", type=int, help="number of pages (stages.sample_web.num_pages)")
    sp.add_argument("--domains", type=int, help="number of domains (stages.sample_web.num_domains)")
    sp.add_argument("--port", type=int, help="port the served images are linked at (stages.sample_web.port)")
    sp.add_argument("--overwrite", action="store_true", help="replace OUT if it is not empty")


def _serve_flags(sp: argparse.ArgumentParser) -> None:
    """`serve DIR`: where to serve a sample web's images."""
    sp.add_argument("folder", type=Path, metavar="DIR", help="a folder written by `semantica sample-web`")
    sp.add_argument("--host", help="address to bind (default: the sample web's host)")
    sp.add_argument("--port", type=_port, help="port (default: the port the sample web links to)")


def _mine_flags(sp: argparse.ArgumentParser) -> None:
    """`mine`: the crawl to read, the output folder, and download settings."""
    sp.add_argument("--input", "-i", dest="inputs", action="extend", nargs="+", required=True, metavar="WARC",
                    help="WARC or ARC files (gzip, zstd or plain): paths, globs (quoted or expanded by the "
                         "shell), folders, s3:// gs:// https:// URLs, .txt/.paths(.gz) listings, or "
                         "cc:CC-MAIN-YYYY-WW[:START-END]; several after one flag, or the flag repeated")
    sp.add_argument("--output", "-o", type=_output_location, required=True, metavar="DIR",
                    help="output folder: pages/, refs/, images/, pairs/ (Parquet) and stats.json; local, "
                         "or a Beam filesystem URL (gs://, s3://, hdfs://, azfs://)")
    sp.add_argument("--allow-private-network", action="store_true", default=None,
                    help="let downloads reach loopback / private addresses (tests and the demo; "
                         "stages.mine.download.allow_private_network)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")
    sp.add_argument("--seed", type=int, help="seed of pair sampling (stages.mine.seed)")
    sp.add_argument("--no-download", dest="download", action="store_false", default=None,
                    help="archive mode: use only the images the crawl holds, never the network "
                         "(stages.mine.download.enabled=false; others count fetch:not_captured)")


def _filter_flags(sp: argparse.ArgumentParser) -> None:
    """`filter`: mined pairs in, kept pairs out, the encoder and the thresholds."""
    sp.add_argument("--pairs", type=Path, required=True, metavar="DIR", help="output of `semantica mine`")
    sp.add_argument("--output", "-o", type=_local_folder, required=True, metavar="DIR",
                    help="output folder: pairs/ (kept), rejected/, images/, embeddings/, stats.json")
    sp.add_argument("--encoder", help="hub id or local directory (stages.filter.encoder)")
    sp.add_argument("--low", type=float, help="stages.filter.low")
    sp.add_argument("--high", type=float, help="stages.filter.high")
    sp.add_argument("--sweep", action="store_true", help="also write sweep/ (JSON, HTML with examples, PNG)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")


def _publish_flags(sp: argparse.ArgumentParser) -> None:
    """`publish`: filtered pairs in, the dataset folder out, opt-outs and its name."""
    sp.add_argument("--pairs", type=Path, required=True, metavar="DIR", help="output of `semantica filter` (or mine)")
    sp.add_argument("--output", "-o", type=_local_folder, required=True, metavar="DIR",
                    help="dataset folder: data/, webdataset/, README.md (the card), SHA256SUMS")
    sp.add_argument("--opt-out", metavar="FILE", help="URL or domain patterns to remove, one a line")
    sp.add_argument("--name", default="semantica-pairs", help="dataset name in the card")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")


def _train_flags(sp: argparse.ArgumentParser) -> None:
    """`train`: pairs in, the run folder, the model config, encoder and step settings."""
    sp.add_argument("--pairs", type=Path, required=True, metavar="DIR",
                    help="output of `semantica filter`, `mine` or `publish`")
    sp.add_argument("--output", "-o", type=_local_folder, required=True, metavar="RUN_DIR",
                    help="run folder: checkpoints, metrics and the exported pipeline/ (an existing one resumes)")
    sp.add_argument("--model", dest="model_config", metavar="MODEL", help="model config of pipelines.yaml "
                    "(tiny_fast | tiny | base64, or any under models:; default: the profile's, profiles.P.model)")
    sp.add_argument("--config", dest="train_config", metavar="PATH_OR_MODEL",
                    help="pipelines.yaml, as for every command (a model config name here is deprecated: use --model)")
    sp.add_argument("--encoder", help="hub id or local directory (stages.train.encoder)")
    sp.add_argument("--max-steps", type=int, help="stages.train.max_steps")
    sp.add_argument("--num-workers", type=int, help="Ray Train workers (profiles.P.ray.num_workers)")
    sp.add_argument("--seed", type=int, help="stages.train.seed")


def _generate_flags(sp: argparse.ArgumentParser) -> None:
    """`generate`: the model, the input images, and sampling settings."""
    sp.add_argument("--model", type=Path, required=True, metavar="DIR", help="a training run or an exported pipeline")
    sp.add_argument("--input", "-i", dest="inputs", type=Path, nargs="+", required=True, metavar="IMG",
                    help="input images (one or more)")
    sp.add_argument("--num", type=int, default=4, metavar="K", help="variations per input (default 4)")
    sp.add_argument("--output", "-o", type=_local_folder, required=True, metavar="DIR",
                    help="output folder: DIR/<name>/<k>.png, a grid per input and DIR/grid.png")
    sp.add_argument("--guidance", type=float, help="classifier-free guidance scale (0: unconditional; "
                    "stages.evaluate.guidance)")
    sp.add_argument("--steps", type=int, help="sampling steps (stages.evaluate.steps)")
    sp.add_argument("--scheduler", help="ddim | dpmsolver++ | ddpm (ancestral) (stages.evaluate.scheduler)")
    sp.add_argument("--seed", type=int, help="random seed of the noise (stages.evaluate.seed)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")
    sp.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="sampling weights: auto = bf16 on a GPU, "
                    "fp32 on CPU (stages.evaluate.precision)")


def _evaluate_flags(sp: argparse.ArgumentParser) -> None:
    """`evaluate`: the model, the reference set, and the metrics' and sampling settings."""
    sp.add_argument("--model", type=Path, required=True, metavar="DIR", help="a training run or an exported pipeline")
    sp.add_argument("--reference", type=Path, required=True, metavar="FOLDER_OR_PARQUET",
                    help="an image folder (sub-folders = labels) or Parquet file(s) with an image bytes column")
    sp.add_argument("--output", "-o", type=_local_folder, required=True, metavar="DIR",
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
    sp.add_argument("--scheduler", help="ddim | dpmsolver++ | ddpm (ancestral) (stages.evaluate.scheduler)")
    sp.add_argument("--seed", type=int, help="stages.evaluate.seed")
    sp.add_argument("--max-reference", type=_at_least_one, metavar="N", help="read at most N reference images")
    sp.add_argument("--per-class", action=argparse.BooleanOptionalAction, default=None,
                    help="with a labelled reference, also condition on one image per label (stages.evaluate.per_class)")
    sp.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="sampling weights: auto = bf16 on a GPU, "
                    "fp32 on CPU (stages.evaluate.precision)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")


def _tiny_encoder_flags(sp: argparse.ArgumentParser) -> None:
    """`tiny-encoder SAMPLE_WEB`: where to save the encoder, steps and seed."""
    sp.add_argument("sample_web", type=Path, metavar="SAMPLE_WEB", help="a folder written by `semantica sample-web`")
    sp.add_argument("--output", "-o", type=_local_folder, required=True, metavar="DIR",
                    help="folder to save the encoder in (loadable as --encoder DIR)")
    sp.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")


def _run_flags(sp: argparse.ArgumentParser) -> None:
    """`run`: the crawl, the output folder, and an optional reference set to evaluate against."""
    sp.add_argument("--input", "-i", dest="inputs", action="extend", nargs="+", required=True, metavar="WARC",
                    help="as for `semantica mine --input` (several, or the flag repeated)")
    sp.add_argument("--no-download", dest="download", action="store_false", default=None,
                    help="as for `semantica mine`")
    sp.add_argument("--output", "-o", type=_local_folder, required=True, metavar="DIR",
                    help="output folder: one sub-folder per stage")
    sp.add_argument("--allow-private-network", action="store_true", default=None, help="as for `semantica mine`")
    sp.add_argument("--reference", type=Path, metavar="FOLDER_OR_PARQUET",
                    help="also evaluate the trained model against this reference set (as `semantica evaluate`)")
    sp.add_argument("--overwrite", action="store_true", help="replace DIR's stage folders")


def _demo_flags(sp: argparse.ArgumentParser) -> None:
    """`demo`: the demo folder."""
    sp.add_argument("--output", type=_local_folder, default=Path("demo-out"), help="demo folder (default: demo-out)")
    sp.add_argument("--overwrite", action="store_true", help="replace the demo folder if it exists")


# Each command: its name, its help (also its description) and the function that adds its own flags
# (None: the common ones only), in the order `semantica --help` lists them.
COMMAND_FLAGS = (
    ("sample-web", "Write a synthetic crawl (WARC files, served images, ground truth) to OUT.", _sample_web_flags),
    ("serve", "Serve a sample web's images on loopback until interrupted (Ctrl-C).", _serve_flags),
    ("mine", "Mine image pairs from WARC files into pages/, refs/, images/, pairs/ (Parquet) + stats.json.",
     _mine_flags),
    ("config", "Print the settings a command would run with (pipelines.yaml + profile + --set).", None),
    ("filter", "Score mined pairs by frozen-encoder similarity; keep those in [low, high]; "
               "--sweep reports what each threshold pair would keep.",
     _filter_flags),
    ("publish", "Write a curated, self-contained pairs dataset: Parquet and WebDataset shards, "
                "a dataset card, a contact sheet and checksums, after opt-out and safety filtering.",
     _publish_flags),
    ("train", "Train the conditional diffusion model on pairs with Ray Train; rerunning with the same "
              "RUN_DIR resumes from its latest checkpoint. Ends with RUN_DIR/pipeline (diffusers).",
     _train_flags),
    ("generate", "K variations of each input image: OUT/<name>/<k>.png, a grid per input and OUT/grid.png.",
     _generate_flags),
    ("evaluate", "Few-shot generation metrics: condition on k reference images, generate, score against the "
                 "whole reference set (FID, KID, precision, recall; consistency, diversity), over seeds; "
                 "a guidance sweep; OUT/metrics.json and OUT/report.html.",
     _evaluate_flags),
    ("tiny-encoder", "Train the tiny stand-in encoder on a sample web (for offline runs and tests).",
     _tiny_encoder_flags),
    ("run", "Run the stages in order for a profile: mine → filter → publish → train (→ evaluate with "
            "--reference), each into its own folder under DIR (mined/, filtered/, published/, run/, "
            "evaluation/). Encoders come from stages.filter.encoder / stages.train.encoder (set them with "
            "--set for offline runs).",
     _run_flags),
    ("demo", "The whole system on this machine: sample web and every stage that exists so far.", _demo_flags),
)


def build_parser() -> argparse.ArgumentParser:
    """`semantica`'s parser: the common options, then one sub-command for each of COMMAND_FLAGS."""
    p = argparse.ArgumentParser(
        prog="semantica",
        description="Mine image pairs from web crawls, train a conditional diffusion model on them, "
                    "generate variations and score them.")
    p.add_argument("--version", action="version", version=f"semantica {__version__}")
    _common(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_, add_flags in COMMAND_FLAGS:
        sp = sub.add_parser(name, help=help_, description=help_)
        _common(sp, top=False, config_flag=name != "train")
        if add_flags is not None:
            add_flags(sp)
    return p
