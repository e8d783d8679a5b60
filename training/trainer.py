"""`semantica train`: the Ray Train TorchTrainer launch, checkpoints, resume, metrics, export.

The per-step logic lives in step.py and runs the same without Ray; this module only
decides where it runs (ScalingConfig: workers, GPUs; DDP over gloo on CPU, nccl on GPU),
streams the ray.data shard to each worker, reports metrics and checkpoints with
`ray.train.report`, and resumes from the latest checkpoint of RUN_DIR.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import torch

from semantica.config import ModelConfig, Settings, TrainConfig
from semantica.errors import UserError

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"
STEP_FILE = "step.txt"  # beside state.pt, so finding the latest checkpoint reads no weights
HEADS_FILE = "attention_heads.json"  # beside state.pt: the heads per block its UNet was built with
MODEL_FILE = "model_config.json"  # beside state.pt: the model config its UNet was built from (checkpoints since 0.2.1)


def _train_loop(config: dict) -> None:
    """Runs in every Ray worker: batches of its dataset shard, one `train_step` each, until cfg.max_steps."""
    import ray.train
    from semantica.training.data import augment
    from semantica.training.step import step_generator, train_step

    cfg, model_cfg, state, encoder, loss_fn, device = _worker_setup(config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    shard = ray.train.get_dataset_shard("train")
    per_worker = max(1, cfg.batch_size // world)
    report = Reporter(Path(config["run_dir"]), cfg, model_cfg, per_worker * world, rank, state.step)
    while state.step < cfg.max_steps:
        skip, seen = state.batch_in_epoch, 0
        for i, batch in enumerate(shard.iter_batches(batch_size=per_worker, drop_last=True,
                                                     local_shuffle_buffer_size=256,
                                                     local_shuffle_seed=cfg.seed * 7919 + state.epoch)):
            seen += 1
            if i < skip:
                continue  # a resumed run skips what the checkpoint already trained on
            cond = augment(batch["cond"], batch["pair_id"], state.epoch, cfg.seed, model_cfg.resolution, "cond")
            target = augment(batch["target"], batch["pair_id"], state.epoch, cfg.seed, model_cfg.resolution, "target")
            loss = train_step(state, encoder, loss_fn, cond, target, cfg, step_generator(cfg.seed, state.step, rank),
                              device)
            state.batch_in_epoch = i + 1
            done = state.step >= cfg.max_steps
            report(state, loss, done)
            if done:
                _write_digest(config, state, rank)
                break
        else:
            if seen == 0:
                raise UserError(f"the training data gives no full batch of {per_worker} pairs per worker")
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0


def _worker_setup(config: dict):
    """(train config, model config, TrainState, encoder, loss, device) of one worker: the model built, or
    restored from the checkpoint Ray hands a restarted worker or the run's latest one, and wrapped for DDP."""
    import ray.train
    import ray.train.torch
    from semantica.encoders import load_encoder
    from semantica.training.step import (build_model, configure_backends, make_state, new_loss, prepare_encoder,
                                         prepare_model)

    cfg = TrainConfig(**config["train"])
    model_cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["model"].items()})
    device = ray.train.torch.get_device()
    if device.type == "cpu":  # small CPU models lose to thread sync when threads outnumber the worker's CPUs
        torch.set_num_threads(max(1, int(config["cpus_per_worker"])))
    configure_backends(cfg, device)
    encoder = load_encoder(config["encoder"], device=str(device))
    probe = encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size, device=device)).tokens
    encoder = prepare_encoder(encoder, cfg)  # after the probe: its batch of 1 would be a compilation of its own
    model = prepare_model(build_model(model_cfg, encoder.dim, probe.shape[1], cfg.seed), cfg, device)
    state = make_state(model, cfg)
    ckpt = ray.train.get_checkpoint()  # set when Ray restarts workers after a failure
    if ckpt is None and config.get("resume_from"):  # a new `semantica train` on an existing RUN_DIR
        ckpt = ray.train.Checkpoint.from_directory(config["resume_from"])
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state.load_state_dict(torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False))
        log.info("rank %d: resumed at step %d", ray.train.get_context().get_world_rank(), state.step)
    state.model = ray.train.torch.prepare_model(model)
    return cfg, model_cfg, state, encoder, new_loss(cfg), device


class Reporter:
    """Metrics every `log_every` steps (rank 0 appends them to metrics.jsonl) and a checkpoint every
    `checkpoint_every` steps and at the end, reported with its metrics through `ray.train.report`. Other steps
    return at once: nothing reads the loss, so the host runs ahead of the GPU."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, model_cfg: ModelConfig, global_batch: int, rank: int,
                 step: int):
        self.run_dir, self.cfg, self.model_cfg = run_dir, cfg, model_cfg
        self.global_batch, self.rank = global_batch, rank
        self.window = (time.perf_counter(), step)  # start of the current logging window: time, step

    def __call__(self, state, loss: torch.Tensor, done: bool) -> None:
        import ray.train
        cfg = self.cfg
        # Metrics alone are not reported to Ray: a worker's report waits until Ray Train's controller took the
        # previous one, and it looks every 2 s (its health-check interval; one result queued per worker). A
        # report every 10 demo steps capped the demo at 5 steps/s (with 2 threads, a third of its time spent waiting).
        # So only rank 0 logs (metrics.jsonl), and every rank reports with the checkpoints.
        checkpoint = state.step % cfg.checkpoint_every == 0 or done
        log_now = self.rank == 0 and (state.step % cfg.log_every == 0 or done or state.step == 1)
        if not (log_now or checkpoint):
            return  # other ranks read no loss (a GPU sync) for metrics no one would see
        metrics = {"step": state.step, "loss": float(loss), "lr": state.lr_schedule.get_last_lr()[0],
                   "epoch": state.epoch}
        if log_now:
            (t0, step0), now = self.window, time.perf_counter()
            metrics["steps_per_s"] = (state.step - step0) / (now - t0) if now > t0 else 0.0
            metrics["samples_per_s"] = metrics["steps_per_s"] * self.global_batch
            self.window = (now, state.step)
            with open(self.run_dir / "metrics.jsonl", "a") as f:  # the full history (Ray keeps only checkpoints')
                f.write(json.dumps(metrics) + "\n")
        if checkpoint:
            with tempfile.TemporaryDirectory() as d:
                if self.rank == 0:
                    self._save(state, Path(d))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d) if self.rank == 0 else None)

    def _save(self, state, folder: Path) -> None:
        torch.save(state.state_dict(), folder / STATE_FILE)
        # "<step> <bytes of state.pt>": a copy torn by a kill is recognised and skipped
        (folder / STEP_FILE).write_text(f"{state.step} {(folder / STATE_FILE).stat().st_size}")
        (folder / HEADS_FILE).write_text(json.dumps(list(self.model_cfg.heads_per_block())))
        (folder / MODEL_FILE).write_text(json.dumps(asdict(self.model_cfg), indent=1))


def _write_digest(config: dict, state, rank: int) -> None:
    """Tests: every rank writes the sum of its final weights (equal on every rank after DDP)."""
    if config.get("digest_dir"):
        raw = state.model.module if hasattr(state.model, "module") else state.model
        digest = sum(float(p.double().abs().sum()) for p in raw.parameters())
        Path(config["digest_dir"], f"rank{rank}.txt").write_text(repr(digest))


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest checkpoint Ray wrote under RUN_DIR (by training step)."""
    best, best_step = None, -1
    for marker in Path(run_dir).glob("ray/**/" + STEP_FILE):
        fields = marker.read_text().split()  # "<step> <bytes>" (older checkpoints: "<step>")
        if not 1 <= len(fields) <= 2 or not all(f.isdigit() for f in fields):
            continue  # a marker torn by a kill mid-copy (empty or cut): not a checkpoint
        state = marker.parent / STATE_FILE
        complete = state.exists() and (len(fields) < 2 or state.stat().st_size == int(fields[1]))
        if complete and int(fields[0]) > best_step:
            best, best_step = marker.parent, int(fields[0])
    return best


RAY_TMP_PREFIX = "semantica-ray-"


def ray_temp_dir() -> str:
    """A local Ray's session folder: /tmp/semantica-ray-<pid> (its sockets need a short path). Folders of
    processes that are gone (a run killed with SIGKILL has no exit hook) are removed first, so reruns after
    kills leave no growing pile; a run that exits removes its own."""
    import atexit
    root = Path(tempfile.gettempdir())
    for old in root.glob(RAY_TMP_PREFIX + "*"):
        pid = old.name[len(RAY_TMP_PREFIX):]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = root / f"{RAY_TMP_PREFIX}{os.getpid()}"
    path.mkdir(exist_ok=True)
    atexit.register(_end_session, path)
    return str(path)


def _end_session(path: Path) -> None:
    """At exit: stop the local Ray first (its exit hook, registered on import, would run after this one and
    write its last logs into the folder), then remove its session folder."""
    import ray
    if ray.is_initialized():
        ray.shutdown()
    shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_layout(checkpoint: Path, model_cfg: ModelConfig) -> None:
    """The checkpoint's UNet must be the one `model_cfg` builds. Some keys (a head width) change no weight shape,
    so another config could load without error and compute another function. Since 0.2.1 a checkpoint holds
    its model config (MODEL_FILE); older ones hold their heads per block (HEADS_FILE) or, before heads were
    widths, nothing."""
    folder = Path(checkpoint)
    if (folder / MODEL_FILE).exists():
        saved = json.loads((folder / MODEL_FILE).read_text())
        now = json.loads(json.dumps(asdict(model_cfg)))
        diff = [f"{k}: {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
                if saved.get(k, now.get(k)) != now.get(k)]
        if diff:
            raise UserError(f"{checkpoint}: trained with another model config ({'; '.join(diff)}): resume with the "
                            f"model it was trained with (--model), or train into a new RUN_DIR")
        return
    f = folder / HEADS_FILE
    n = len(model_cfg.block_out_channels)
    saved = json.loads(f.read_text()) if f.exists() else [model_cfg.attention_head_dim] * n
    now = list(model_cfg.heads_per_block())
    if any(saved[i] != now[i] for i in model_cfg.attention_blocks()):
        raise UserError(f"{checkpoint}: its UNet has {saved} attention heads per block, the model config gives {now} "
                        f"(attention_head_dim = {model_cfg.attention_head_dim} is a head width since semantica 0.2; "
                        f"before, diffusers read it as a head count): train into a new RUN_DIR")


def run_train(settings: Settings, pairs_dir: Path, run_dir: Path, encoder: Optional[str] = None,
              max_steps: Optional[int] = None, num_workers: Optional[int] = None, seed: Optional[int] = None,
              model_name: Optional[str] = None, digest_dir: Optional[Path] = None) -> dict:
    """Train on PAIRS_DIR into RUN_DIR (resuming from its latest checkpoint) with Ray Train; export the EMA
    weights as RUN_DIR/pipeline. The arguments override the settings' stages.train and profile."""
    from ray.data import DataContext
    from semantica.training.data import make_dataset

    run_dir = Path(run_dir).resolve()
    options, model_cfg = _options(settings, pairs_dir, run_dir, encoder, max_steps, num_workers, seed, model_name,
                                  digest_dir)
    _start_ray(settings.profile.ray, options["num_workers"])
    DataContext.get_current().execution_options.preserve_order = True  # same batches on a resumed run
    ds, n_pairs = make_dataset(Path(pairs_dir), model_cfg.resolution)
    world = options["num_workers"]
    per_worker = max(1, settings.stages.train.batch_size // world)
    if n_pairs < per_worker * world:  # known now: no need to start the workers to find out
        raise UserError(f"--pairs {pairs_dir}: {n_pairs} usable pairs; a step needs {per_worker * world} "
                        f"({per_worker} per worker × {world}): give more pairs or lower stages.train.batch_size")
    resume = latest_checkpoint(run_dir)
    if resume is not None:
        check_layout(resume, model_cfg)
        log.info("resuming from %s", resume)
    options["resume_from"] = str(resume) if resume else None
    t0 = time.perf_counter()
    _trainer(options, ds, settings.profile.ray, run_dir).fit()
    seconds = time.perf_counter() - t0
    final = latest_checkpoint(run_dir)
    if final is None:
        raise RuntimeError(f"{run_dir}: training reported no checkpoint")
    history = _write_metrics(run_dir)
    export(final, run_dir / "pipeline", model_cfg, options["encoder"], noise_offset=options["train"]["noise_offset"])
    summary = {"pairs": n_pairs, "steps": options["max_steps"], "seconds": round(seconds, 1),
               "checkpoint": str(final), "pipeline": str(run_dir / "pipeline"),
               "final_loss": history[-1]["loss"] if history else None}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _options(settings: Settings, pairs_dir, run_dir: Path, encoder, max_steps, num_workers, seed, model_name,
             digest_dir) -> tuple[dict, ModelConfig]:
    """The workers' config (also written to RUN_DIR/training_options.json) and the model config. A missing
    encoder or an unknown model name fails here, in one line."""
    from semantica.encoders import load_encoder
    cfg = settings.stages.train
    # the run's seed and length into the workers' config too, so training_options.json says what ran
    cfg = replace(cfg, seed=cfg.seed if seed is None else seed, max_steps=max_steps or cfg.max_steps)
    model_name = model_name or settings.profile.model
    if model_name not in settings.models:
        raise UserError(f"--model {model_name!r}: not one of models ({', '.join(settings.models)})")
    model_cfg, ray_cfg = settings.models[model_name], settings.profile.ray
    from semantica.outputs import check_local_output
    from semantica.training.data import check_pairs
    check_pairs(Path(pairs_dir))  # before the encoder loads and RUN_DIR is made: a wrong --pairs costs nothing
    check_local_output(run_dir, [pairs_dir])
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / "training_options.json").exists():
        # a RUN_DIR resumes, so there is no --overwrite here; a folder of other files would get a run mixed in
        raise UserError(f"--output {run_dir}: holds other files and no training run (no training_options.json): "
                        f"give a new or empty folder, or the RUN_DIR of an earlier `semantica train` to resume it")
    encoder = encoder or cfg.encoder
    if Path(encoder).is_dir():  # Ray workers run in another directory: give them an absolute path
        encoder = str(Path(encoder).resolve())
    load_encoder(encoder, device="cpu")
    run_dir.mkdir(parents=True, exist_ok=True)
    options = {"pairs": str(Path(pairs_dir).resolve()), "encoder": encoder, "model_name": model_name,
               "model": asdict(model_cfg), "train": asdict(cfg), "max_steps": cfg.max_steps,
               "num_workers": num_workers or ray_cfg.num_workers, "use_gpu": ray_cfg.use_gpu,
               "cpus_per_worker": ray_cfg.cpus_per_worker, "profile": settings.profile_name,
               "digest_dir": str(digest_dir) if digest_dir else None, "run_dir": str(run_dir)}
    (run_dir / "training_options.json").write_text(json.dumps(options, indent=2) + "\n")
    return options, model_cfg


def _start_ray(ray_cfg, workers: int) -> None:
    """Connect to the profile's Ray cluster, or start a local Ray with CPUs for the workers and ray.data."""
    import ray
    # a local Ray needs CPUs beyond the train workers' for the ray.data tasks, or those never start
    # (logical CPUs: Ray only counts them)
    needed = int(workers * ray_cfg.cpus_per_worker) + 1
    if ray.is_initialized() and not ray_cfg.address and ray.cluster_resources().get("CPU", 0) < needed:
        ray.shutdown()  # our own local Ray, started for fewer workers
    if not ray.is_initialized():
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        local_cpus = (os.cpu_count() or 2) + needed
        ray.init(address=ray_cfg.address, num_cpus=None if ray_cfg.address else local_cpus,
                 include_dashboard=False, log_to_driver=False, configure_logging=False,
                 **({} if ray_cfg.address else {"_temp_dir": ray_temp_dir()}))


def _trainer(options: dict, ds, ray_cfg, run_dir: Path):
    """The TorchTrainer: DDP over gloo (CPU) or nccl (GPU), checkpoints under RUN_DIR/ray, two restarts."""
    import ray.train
    from ray.data import DataContext
    from ray.train.torch import TorchConfig, TorchTrainer
    gpus = {"GPU": ray_cfg.gpus_per_worker} if ray_cfg.use_gpu else {}
    return TorchTrainer(
        _train_loop,
        train_loop_config=options,
        torch_config=TorchConfig(backend="nccl" if ray_cfg.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=options["num_workers"], use_gpu=ray_cfg.use_gpu,
                                               resources_per_worker={"CPU": ray_cfg.cpus_per_worker, **gpus}),
        run_config=ray.train.RunConfig(name="ray", storage_path=str(run_dir),
                                       failure_config=ray.train.FailureConfig(max_failures=2),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=3)),
        datasets={"train": ds},
        dataset_config=ray.train.DataConfig(execution_options=DataContext.get_current().execution_options),
    )


def _write_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl as rank 0 wrote it, one row per step (a resumed run's rows replace those a
    killed run logged after its last checkpoint), plus a CSV and a loss plot."""
    path = run_dir / "metrics.jsonl"
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows[r["step"]] = r
    history = [rows[k] for k in sorted(rows)]
    path.write_text("".join(json.dumps(r) + "\n" for r in history))
    with (run_dir / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "epoch", "steps_per_s", "samples_per_s"])
        w.writeheader()
        w.writerows(history)
    if history:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["step"] for r in history], [r["loss"] for r in history])
        ax.set_xlabel("step")
        ax.set_ylabel("v-prediction loss")
        ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(run_dir / "loss.png", dpi=100)
        plt.close(fig)
    return history


def load_trained(checkpoint_dir: Path, model_cfg: ModelConfig, encoder, use_ema: bool = True):
    """(unet, adapter) of a checkpoint, with EMA weights by default. `encoder`: its name, or the loaded encoder."""
    from diffusers.training_utils import EMAModel
    from semantica.encoders import load_encoder
    from semantica.training.step import build_model
    check_layout(checkpoint_dir, model_cfg)
    enc = load_encoder(encoder, device="cpu") if isinstance(encoder, (str, Path)) else encoder
    probe = enc(torch.zeros(1, 3, enc.image_size, enc.image_size)).tokens
    sd = torch.load(Path(checkpoint_dir) / STATE_FILE, map_location="cpu", weights_only=False)
    model = build_model(model_cfg, enc.dim, probe.shape[1], seed=0)
    model.load_state_dict(sd["model"])
    if use_ema:
        ema = EMAModel(model.parameters())
        ema.load_state_dict(sd["ema"])
        ema.copy_to(model.parameters())
    return model.unet, model.adapter


def export(checkpoint_dir: Path, out: Path, model_cfg: ModelConfig, encoder: str, noise_offset: float = 0.0) -> Path:
    """The EMA weights as a SemanticaPipeline (safetensors), loadable without training code: the frozen encoder
    (fp32) and its image processor are components of it, saved beside the UNet and the adapter, and the offset
    noise it was trained with (sampling draws the same) in its model_index.json."""
    from diffusers import DDIMScheduler
    from semantica.encoders import load_encoder
    from semantica.pipeline import SemanticaPipeline
    from semantica.training.diffusion import make_scheduler
    enc = load_encoder(encoder, device="cpu")
    unet, adapter = load_trained(checkpoint_dir, model_cfg, enc)
    scheduler = DDIMScheduler.from_config(make_scheduler().config)
    pipe = SemanticaPipeline(image_encoder=enc.model, feature_extractor=enc.processor, unet=unet.eval(),
                             adapter=adapter.eval(), scheduler=scheduler, noise_offset=noise_offset)
    if Path(out).exists():
        shutil.rmtree(out)
    pipe.save_pretrained(out)
    return Path(out)
