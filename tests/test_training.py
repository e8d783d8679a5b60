"""Training on Ray Train (CPU, gloo): learning, determinism, DDP sync, resume, export. What needs no Ray
(`train_step`, the loss, the augmentation) is in test_training_units.py."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from semantica.training.trainer import STATE_FILE, latest_checkpoint, run_train

from helpers import same_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train_settings(settings):
    train = dataclasses.replace(settings.stages.train, batch_size=16, checkpoint_every=10, log_every=10,
                                warmup_steps=10, learning_rate=1e-3)
    yield dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, train=train))
    import ray
    ray.shutdown()


def _state(run_dir):
    return torch.load(latest_checkpoint(run_dir) / STATE_FILE, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def demo_run(settings, mined, tiny_encoder, tmp_path_factory):
    """The demo's training, as `semantica demo` runs it: filtered pairs, the local profile's train stage."""
    from semantica.curation.filter import run_filter
    root = tmp_path_factory.mktemp("demo-run")
    run_filter(settings, mined, root / "filtered", encoder=str(tiny_encoder))
    summary = run_train(settings, root / "filtered", root / "run", encoder=str(tiny_encoder))
    return root / "run", summary


def test_tiny_model_learns(demo_run, settings):
    run, summary = demo_run
    steps = settings.stages.train.max_steps
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    first, last = history[0]["loss"], sum(r["loss"] for r in history[-3:]) / 3
    assert summary["steps"] == steps and history[0]["step"] == 1 and history[-1]["step"] == steps
    assert last < 0.5 * first, (first, last)  # v-prediction loss falls by a clear margin
    assert (run / "loss.png").exists() and "samples_per_s" in (run / "metrics.csv").read_text()


def test_topic_transfer_after_the_demos_training(demo_run, settings, sample_web, tmp_path):
    """Variations keep their condition's topic far above chance and above the unconditional model
    (topics by a classifier fitted on the sample web's pictures, never on generations)."""
    from semantica.evaluation.evaluate import run_evaluate
    from semantica.sample_web.topics import TopicClassifier, load_pictures, topic_transfer, write_reference
    pictures = load_pictures(sample_web)
    reference = write_reference(pictures, tmp_path / "reference")
    run_evaluate(settings.with_stage("evaluate", shots=[8], num_samples=32, repeats=1, guidance_scales=[0.0, 2.0]),
                 demo_run[0], reference, tmp_path / "ev")
    tt = topic_transfer(TopicClassifier.fit(pictures), tmp_path / "ev" / "samples",
                        settings.stages.sample_web.num_topics)
    share = tt["share_by_guidance"]
    print("topic transfer", share, "chance", tt["chance"])
    assert share[2.0] >= 0.6 and share[2.0] >= 4 * tt["chance"] and share[2.0] >= share[0.0] + 0.3, tt


def test_resume_after_a_checkpoint_equals_an_uninterrupted_run(mined, tiny_encoder, train_settings, tmp_path):
    enc = str(tiny_encoder)
    run_train(train_settings, mined, tmp_path / "whole", encoder=enc, max_steps=20)
    run_train(train_settings, mined, tmp_path / "cut", encoder=enc, max_steps=10)   # stops at a checkpoint
    assert _state(tmp_path / "cut")["step"] == 10
    run_train(train_settings, mined, tmp_path / "cut", encoder=enc, max_steps=20)   # same RUN_DIR: resumes
    whole, resumed = _state(tmp_path / "whole"), _state(tmp_path / "cut")
    # steps 1–10 and 11–20 ran in other processes than the whole run's: equal weights also show
    # the run is deterministic for a seed
    assert resumed["step"] == 20
    for part in ("model", "ema", "optimizer"):
        assert same_state(whole[part], resumed[part]), part
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 10, 20]


def test_two_workers_keep_identical_weights(mined, tiny_encoder, train_settings, tmp_path):
    digests = tmp_path / "digests"
    digests.mkdir()
    run_train(train_settings, mined, tmp_path / "ddp", encoder=str(tiny_encoder), max_steps=3, num_workers=2,
              digest_dir=digests)
    values = {p.name: p.read_text() for p in digests.iterdir()}
    assert set(values) == {"rank0.txt", "rank1.txt"} and len(set(values.values())) == 1


def test_export_loads_back_with_the_same_outputs(mined, tiny_encoder, train_settings, tmp_path):
    from PIL import Image
    from semantica.pipeline import SemanticaPipeline
    # trained with offset noise, which the export records for sampling (its model_index.json)
    train = dataclasses.replace(train_settings.stages.train, noise_offset=0.1)
    stages = dataclasses.replace(train_settings.stages, train=train)
    offset_settings = dataclasses.replace(train_settings, stages=stages)
    run_train(offset_settings, mined, tmp_path / "r", encoder=str(tiny_encoder), max_steps=10)
    pipe_dir = tmp_path / "r" / "pipeline"
    assert json.loads((tmp_path / "r" / "training_options.json").read_text())["train"]["noise_offset"] == 0.1
    assert not list(pipe_dir.rglob("*.bin")) and not list(pipe_dir.rglob("*.pt"))  # safetensors only
    index = json.loads((pipe_dir / "model_index.json").read_text())
    # the encoder and its processor are saved with the pipeline; the adapter's class is in the shared module
    assert index["adapter"] == ["semantica.models", "ConditionAdapter"] and index["image_encoder"][1] == "Dinov2Model"
    assert (pipe_dir / "image_encoder" / "model.safetensors").exists() and "encoder" not in index
    assert index["noise_offset"] == 0.1 and SemanticaPipeline.from_pretrained(pipe_dir).config.noise_offset == 0.1
    img = Image.new("RGB", (40, 40), (200, 30, 30))
    a = SemanticaPipeline.from_pretrained(pipe_dir)([img], num_variations=2, num_inference_steps=4, seed=3,
                                                    output_type="pt").images
    b = SemanticaPipeline.from_pretrained(pipe_dir)([img], num_variations=2, num_inference_steps=4, seed=3,
                                                    output_type="pt").images
    assert torch.equal(a[0], b[0]) and a[0].shape == (2, 3, 32, 32)
    assert not torch.equal(a[0][0], a[0][1])  # two variations differ
    # `semantica generate`: files per input, the same seed the same images, guidance changes them
    from semantica.evaluation.generate import generate
    src = tmp_path / "red.png"
    img.save(src)
    g1 = generate(tmp_path / "r", [src], 2, tmp_path / "g1", guidance=2.0, steps=4, seed=5)
    generate(tmp_path / "r" / "pipeline", [src], 2, tmp_path / "g2", guidance=2.0, steps=4, seed=5,
                  scheduler="dpmsolver++")
    generate(tmp_path / "r", [src], 2, tmp_path / "g0", guidance=0.0, steps=4, seed=5)
    generate(tmp_path / "r", [src], 2, tmp_path / "g1b", guidance=2.0, steps=4, seed=5)
    read = lambda d: [(d / "red" / f"{k}.png").read_bytes() for k in range(2)]  # noqa: E731
    assert read(tmp_path / "g1") == read(tmp_path / "g1b")
    assert read(tmp_path / "g1") != read(tmp_path / "g0")
    assert read(tmp_path / "g1") != read(tmp_path / "g2")
    assert g1.exists() and (tmp_path / "g1" / "red" / "grid.png").exists()


def test_base64_config_runs_one_step_at_batch_one(settings):
    from semantica.training.step import build_model
    cfg = settings.models["base64"]
    model = build_model(cfg, encoder_dim=768, num_tokens=257, seed=0)
    x = torch.randn(1, 3, cfg.resolution, cfg.resolution)
    v = model(x, torch.tensor([500]), torch.randn(1, 257, 768), torch.tensor([False]))
    v.pow(2).mean().backward()
    assert v.shape == x.shape
    assert all(p.grad is not None for p in model.unet.conv_in.parameters())


def test_bad_pairs_folders_and_outputs_are_refused_before_ray_and_bad_images_skipped(mined, tiny_encoder,
                                                                                     train_settings, tmp_path, caplog):
    """A --pairs that is missing, a file, or the --output itself: one line, before Ray or the encoder start,
    and no RUN_DIR made. Pairs whose image is absent from images/ or does not decode are skipped and counted;
    too few pairs for one step is said up front (was: a worker's error after Ray had started)."""
    import logging
    import shutil

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from semantica.errors import UserError
    from semantica.training.data import load_examples
    (tmp_path / "a-file").write_text("x")
    for pairs, message in ((tmp_path / "absent", "no such folder"), (tmp_path / "a-file", "a file; give the folder"),
                           (mined, "the output cannot be, or hold, the input")):
        out = mined if message.startswith("the output") else tmp_path / "r"
        with pytest.raises(UserError, match=message):
            run_train(train_settings, pairs, out, encoder=str(tiny_encoder), max_steps=1)
        assert out == mined or not out.exists()
    assert not (mined / "training_options.json").exists()
    other = tmp_path / "other"  # a folder of other files is not a RUN_DIR to resume in
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"other: holds other files and no training run"):
        run_train(train_settings, mined, other, encoder=str(tiny_encoder), max_steps=1)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    damaged = tmp_path / "damaged"
    shutil.copytree(mined, damaged)
    images = pq.read_table(damaged / "images")
    ids, data = images.column("image_id").to_pylist(), images.column("bytes").to_pylist()
    pairs = pq.read_table(damaged / "pairs").to_pylist()
    absent, corrupt = pairs[0]["cond_image_id"], pairs[1]["target_image_id"]
    keep = [i for i, x in enumerate(ids) if x != absent]
    fixed = pa.table({"image_id": [ids[i] for i in keep],
                      "bytes": [b"\x89PNG junk" if ids[i] == corrupt else data[i] for i in keep]})
    for f in (damaged / "images").glob("*.parquet"):
        f.unlink()
    pq.write_table(fixed, damaged / "images" / "part-0.parquet")
    with caplog.at_level(logging.WARNING):
        table = load_examples(damaged)
    uses = lambda image: sum(image in (p["cond_image_id"], p["target_image_id"]) for p in pairs)  # noqa: E731
    assert table.num_rows == len(pairs) - uses(absent)
    assert f"{uses(absent)} of {len(pairs)} pairs skipped: an image of theirs is not in" in caplog.text
    from semantica.training.data import decode_batch
    rows = table.to_pydict()
    batch = {"pair_id": np.array(rows["pair_id"], dtype=object), "cond_bytes": rows["cond_bytes"],
             "target_bytes": rows["target_bytes"]}
    decoded = decode_batch(batch, 32)
    bad = {p["pair_id"] for p in pairs if corrupt in (p["cond_image_id"], p["target_image_id"])} - {
        p["pair_id"] for p in pairs if absent in (p["cond_image_id"], p["target_image_id"])}
    assert len(decoded["pair_id"]) == len(decoded["cond"]) == table.num_rows - len(bad) > 0
    assert not bad & set(decoded["pair_id"])
    empty = decode_batch({"pair_id": np.array(["x"], dtype=object), "cond_bytes": [b""], "target_bytes": [b""]}, 32)
    assert empty["cond"].shape == (0, 36, 36, 3) and len(empty["pair_id"]) == 0
    twice = tmp_path / "twice"  # a pairs and an images part file copied twice: each pair trains once
    shutil.copytree(mined, twice)
    for sub in ("pairs", "images"):
        first = sorted((twice / sub).glob("*.parquet"))[0]
        shutil.copy(first, twice / sub / f"copy-{first.name}")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = load_examples(twice)
    assert again.equals(load_examples(mined))
    assert "rows repeat a key already read (pair_id); each is used once" in caplog.text
    assert "rows repeat a key already read (image_id)" in caplog.text
    few = tmp_path / "few"
    shutil.copytree(damaged, few)
    for f in (few / "pairs").glob("*.parquet"):
        f.unlink()
    usable = [p for p in pairs if not {absent, corrupt} & {p["cond_image_id"], p["target_image_id"]}]
    pq.write_table(pa.Table.from_pylist(usable[:3] + [pairs[1]]), few / "pairs" / "part-0.parquet")  # + a corrupt one
    with pytest.raises(UserError, match=r"--pairs .*few: 3 usable pairs; a step needs 16"):
        run_train(train_settings, few, tmp_path / "r-few", encoder=str(tiny_encoder), max_steps=1)
