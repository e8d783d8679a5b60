"""Training framework overhead: `run_train` (Ray Train + ray.data) against a plain PyTorch loop.

Writes the default sample web (free port), serves it on 127.0.0.1, mines it with `run_mine`
(downloads from 127.0.0.1 only) and trains the tiny stand-in encoder (--encoder-steps, 50).
Then, with the same model config (models.tiny), batch size (stages.train.batch_size, 16)
and mined pairs, it measures samples/s of:
  (a) run_train     `semantica train` as shipped (local profile: 1 Ray worker with 1 CPU,
                    gloo): steady state from metrics.jsonl (the samples_per_s rows after
                    step 10), and N x batch / wall time of the whole call (Ray start-up,
                    dataset, trainer, checkpoint, export included)
  (b) plain loop    baseline: build_model + make_state + train_step N times in this process,
                    on batches decoded (load_examples + decode_batch) and augmented once, in
                    memory; half its steps before run_train, half after (a load drift from
                    other processes cancels); at 1 torch thread, as the Ray worker
                    (OMP_NUM_THREADS = its 1 CPU) and this whole process; optionally also at
                    torch's default thread count (--default-threads-steps)
  (c) data path     the ray.data dataset of make_dataset, iter_batches(16, drop_last, local
                    shuffle 256, as the worker) + augment of both images, no model, N batches
  (d) data path at 64 px (base64's resolution) on web-sized photos: --data-pairs pairs of JPEGs of
                    640x480 to 1600x1067 (quality 85, photo-like detail), written as a mined folder;
                    decode + resize + augment of both images, per CPU core: in this process (1
                    core, the batches of make_dataset) with JPEG draft decoding as shipped and with
                    a full decode (before), and through ray.data (make_dataset + iter_batches, as
                    the worker) with the CPUs Ray has, divided by them
Steady state: steps 11-N, by the mean and by the median of 10-step windows (metrics.jsonl's
rows). Framework overhead = (b) / (a), steady state, same thread count; every figure is a
same-run ratio.

  .venv/bin/python benchmarks/bench_train.py [--steps 80] [--encoder-steps 50] [--data-pairs 2048]
  .venv/bin/python benchmarks/bench_train.py --data-only     # (d) alone
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
logging.basicConfig(level=logging.ERROR)  # Beam, Ray and transformers log every step otherwise
import torch  # noqa: E402

import _common  # noqa: E402
from semantica.config import load_settings  # noqa: E402
from semantica.encoders import load_encoder  # noqa: E402
from semantica.mining.pipeline import run_mine  # noqa: E402
from semantica.outputs import mark_complete  # noqa: E402
from semantica.sample_web import serve_sample_web, write_sample_web  # noqa: E402
from semantica.tiny_encoder import train_tiny_encoder  # noqa: E402
from semantica.training.data import augment, decode_batch, load_examples, make_dataset  # noqa: E402
from semantica.training.step import build_model, make_state, new_loss, step_generator, train_step  # noqa: E402
from semantica.training.trainer import run_train  # noqa: E402


def plain_steps(batches: list, encoder, model_cfg, cfg):
    """Seconds of each train_step, one per next(), on in-memory batches (one model and state)."""
    probe = encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size)).tokens
    state = make_state(build_model(model_cfg, encoder.dim, probe.shape[1], cfg.seed), cfg)
    loss_fn, dev, k = new_loss(), torch.device("cpu"), 0
    while True:
        cond, target = batches[k % len(batches)]
        k += 1
        yield _common.timed(train_step, state, encoder, loss_fn, cond, target, cfg,
                            step_generator(cfg.seed, state.step, 0), dev)[0]


def rates(step_seconds: list, bs: int) -> tuple[float, float]:
    """(mean, median of 10-step windows) samples/s, as metrics.jsonl's rows are windows of 10."""
    win = [10 * bs / sum(step_seconds[i:i + 10]) for i in range(0, len(step_seconds) - 9, 10)]
    return len(step_seconds) * bs / sum(step_seconds), statistics.median(win)


def _threads() -> int:
    return torch.get_num_threads()


def data_path(mined: Path, resolution: int, batch: int, steps: int, seed: int) -> int:
    """Take `steps` batches (cond + target augmented) from make_dataset's ray.data dataset, epoch after epoch."""
    ds, _ = make_dataset(mined, resolution)
    done, epoch = 0, 0
    while done < steps:
        for b in ds.iter_batches(batch_size=batch, drop_last=True, local_shuffle_buffer_size=256,
                                 local_shuffle_seed=seed * 7919 + epoch):
            augment(b["cond"], b["pair_id"], epoch, seed, resolution, "cond")
            augment(b["target"], b["pair_id"], epoch, seed, resolution, "target")
            done += 1
            if done == steps:
                break
        epoch += 1
    return done


def write_photo_pairs(folder: Path, n_pairs: int, n_images: int = 256, seed: int = 0) -> int:
    """A mined folder (images/ + pairs/) of `n_pairs` pairs drawn from `n_images` web-sized JPEG photos (a pair
    row carries its images' bytes, so every pair is decoded anew, as in training); returns the average size."""
    import io
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image, ImageFilter
    rng = np.random.default_rng(seed)
    ids, blobs = [], []
    for i in range(n_images):
        w, h = [(640, 480), (800, 600), (1024, 768), (1200, 800), (1600, 1067)][i % 5]
        small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)  # shapes and gradients...
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
        arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 12, (h, w, 3)).astype(np.int16)  # ...and texture
        buf = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
        ids.append(f"img{i:05d}")
        blobs.append(buf.getvalue())
    (folder / "images").mkdir(parents=True)
    (folder / "pairs").mkdir()
    pq.write_table(pa.table({"image_id": ids, "bytes": blobs}), folder / "images" / "images-0.parquet")
    cond = rng.integers(0, n_images, n_pairs)
    target = (cond + rng.integers(1, n_images, n_pairs)) % n_images
    pq.write_table(pa.table({"pair_id": [f"p{k:06d}" for k in range(n_pairs)], "cond_image_id": [ids[i] for i in cond],
                             "target_image_id": [ids[i] for i in target]}), folder / "pairs" / "pairs-0.parquet")
    mark_complete(folder)
    return sum(map(len, blobs)) // len(blobs)


def _decode_full(data: bytes, size: int):
    """training/data.py's decode before JPEG draft decoding: the baseline of (d)."""
    import io
    import numpy as np
    from PIL import Image
    from semantica.images import to_rgb
    img = to_rgb(Image.open(io.BytesIO(data)))
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def data_path_64(tmp: Path, n_pairs: int, seed: int) -> list:
    """(d): rows (name, pairs/s per core)."""
    import numpy as np
    from semantica.training import data as tdata
    res, bs = 64, 64
    folder = tmp / "photos"
    avg = write_photo_pairs(folder, n_pairs, seed=seed)
    table = load_examples(folder).slice(0, 512).to_pydict()  # in process: the first 512 pairs are enough
    rows = []
    for name, decode in (("shipped (JPEG draft + reducing_gap)", tdata._decode),
                         ("full decode (before)", _decode_full)):
        t0 = time.perf_counter()
        n_in = len(table["pair_id"]) // bs * bs
        for i in range(0, n_in, bs):
            ids = table["pair_id"][i:i + bs]
            size = int(round(res * tdata.MARGIN))
            for which in ("cond", "target"):
                imgs = np.stack([decode(b, size) for b in table[f"{which}_bytes"][i:i + bs]])
                augment(imgs, ids, 0, seed, res, which)
        rows.append((f"(d) 1 core, in process, {name}", n_in / (time.perf_counter() - t0)))
    import ray
    if not ray.is_initialized():
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 _temp_dir=tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    data_path(folder, res, bs, 4, seed)  # warm-up: Ray's worker processes start and import
    t_c, done = _common.timed(data_path, folder, res, bs, n_pairs // bs, seed)
    rows.append((f"(d) ray.data + augment, {cpus} CPUs, per core (one epoch)", done * bs / t_c / cpus))
    print(f"(d) {n_pairs} pairs of 256 web-sized JPEGs (640x480 to 1600x1067, {avg // 1024} KB on average) at {res} px")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=80, help="training steps N of each path (default 80)")
    ap.add_argument("--encoder-steps", type=int, default=50,
                    help="tiny encoder training steps (default 50; its quality does not change throughput)")
    ap.add_argument("--default-threads-steps", type=int, default=0, metavar="M",
                    help="also time the plain loop for M steps at torch's default thread count (default 0: not; "
                         "with other processes busy, 2 threads ran 12x slower than 1 here)")
    ap.add_argument("--data-pairs", type=int, default=2048,
                    help="photo pairs of the 64 px data path (d) (default 2048)")
    ap.add_argument("--data-only", action="store_true", help="measure (d) alone")
    args = ap.parse_args()
    if args.data_only:
        torch.set_num_threads(1)
        with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
            for name, rate in data_path_64(Path(tmp), args.data_pairs, 0):
                print(f"{name:<64}{rate:>8.1f} pairs/s")
        return
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this process, as the 1-CPU Ray worker: tiny ops lose to thread sync under load
    s = load_settings(Path(__file__).resolve().parent.parent / "pipelines.yaml", "local")
    port = _common.free_port()
    web_cfg = dataclasses.replace(s.stages.sample_web, port=port)
    mine = s.stages.mine
    mine = dataclasses.replace(mine, download=dataclasses.replace(mine.download, allowed_hosts=("127.0.0.1",)))
    s = dataclasses.replace(s, stages=dataclasses.replace(s.stages, sample_web=web_cfg, mine=mine))
    cfg, model_cfg, n = s.stages.train, s.models["tiny"], args.steps

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        web, mined = Path(tmp) / "web", Path(tmp) / "mined"
        write_sample_web(web_cfg, web)
        with serve_sample_web(web, port=port):
            t_mine, stats = _common.timed(run_mine, s, [str(web / "warc")], mined, overwrite=True, allow_private=True)
        t_enc, enc_path = _common.timed(train_tiny_encoder, web, Path(tmp) / "encoder", steps=args.encoder_steps)
        encoder = load_encoder(str(enc_path), device="cpu")
        table = load_examples(mined)
        rows = decode_batch(table.to_pydict(), model_cfg.resolution)
        bs = cfg.batch_size
        res = model_cfg.resolution
        batches = [(augment(rows["cond"][i:i + bs], rows["pair_id"][i:i + bs], 0, cfg.seed, res, "cond"),
                    augment(rows["target"][i:i + bs], rows["pair_id"][i:i + bs], 0, cfg.seed, res, "target"))
                   for i in range(0, table.num_rows - bs + 1, bs)]
        print(f"sample web mined in {t_mine:.1f} s: {table.num_rows} pairs ({len(batches)} batches of {bs} an epoch); "
              f"tiny encoder trained in {t_enc:.1f} s ({args.encoder_steps} steps); model 'tiny' "
              f"({model_cfg.resolution} px, {model_cfg.block_out_channels}); N = {n} steps; {os.cpu_count()} CPUs")

        plain = plain_steps(batches, encoder, model_cfg, cfg)
        warm = [next(plain) for _ in range(10)]
        half = (n - 10) // 20 * 10
        before = [next(plain) for _ in range(half)]  # the plain loop brackets run_train in time:
        run_dir = Path(tmp) / "run"                  # a load drift from other processes cancels
        t_a, summary = _common.timed(run_train, s, mined, run_dir, encoder=str(enc_path), max_steps=n,
                                     model_name="tiny")
        after = [next(plain) for _ in range(n - 10 - half)]
        hist = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        win = [(b["step"] - a["step"], b["steps_per_s"] * bs) for a, b in zip(hist, hist[1:]) if a["step"] >= 10]
        a_steady = (sum(k for k, _ in win) * bs / sum(k * bs / v for k, v in win), statistics.median(v for _, v in win))
        t_c, _ = _common.timed(data_path, mined, model_cfg.resolution, bs, n, cfg.seed)
        import ray
        ray_threads = ray.get(ray.remote(num_cpus=1)(_threads).remote())
        ray.shutdown()
        d_rows = data_path_64(Path(tmp), args.data_pairs, cfg.seed)
        m, bd = args.default_threads_steps, None
        if m > 10:
            torch.set_num_threads(default_threads)
            bd = rates(list(itertools.islice(plain_steps(batches, encoder, model_cfg, cfg), m))[10:], bs)

    b1 = rates(before + after, bs)
    print(f"\n{'path (batch ' + str(bs) + ', ' + str(n) + ' steps), samples/s':<60}{'mean':>8}{'median':>8}"
          f"{'vs (a) mean':>13}")
    table_rows = [
        (f"(a) run_train, steady state (metrics.jsonl, steps 11-{n})", a_steady),
        (f"(a) run_train, {n} x {bs} / wall {t_a:.1f} s (fit {summary['seconds']} s)", (n * bs / t_a, None)),
        (f"(b) plain loop, 1 thread, steps 11-{n} (baseline)", b1),
        (f"(b)   of which steps 11-{10 + half}, before run_train", rates(before, bs)),
        (f"(b)   of which steps {11 + half}-{n}, after run_train", rates(after, bs)),
        (f"(b) plain loop, 1 thread, all {n} steps", (n * bs / sum(warm + before + after), None)),
        (f"(c) data path alone: ray.data + augment, {n} batches", (n * bs / t_c, None))]
    if bd is not None:
        table_rows.append((f"(b) plain loop, {default_threads} threads, steps 11-{m}", bd))
    for name, (mean, med) in table_rows:
        print(f"{name:<60}{mean:>8.1f}{'' if med is None else f'{med:.1f}':>8}{mean / a_steady[0]:>12.2f}x")
    for name, rate in d_rows:
        print(f"{name:<60}{rate:>8.1f} pairs/s per core (64 px)")
    print(f"torch threads in a 1-CPU Ray task (as the 1-CPU train worker): {ray_threads}")
    print(f"framework overhead (b)/(a), steady state, 1 thread each: {b1[0] / a_steady[0]:.2f}x by the mean, "
          f"{b1[1] / a_steady[1]:.2f}x by the median of 10-step windows")
    print(f"whole run_train call: {t_a:.1f} s for {n} steps; the same steps in the plain loop: "
          f"{sum(warm + before + after):.1f} s ({t_a / sum(warm + before + after):.1f}x); loss at step {n}: "
          f"{summary['final_loss']:.4f}")

if __name__ == "__main__":
    main()
