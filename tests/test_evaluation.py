"""Evaluation: the metrics on constructed inputs, reference loading, the few-shot loop, Inception path."""
from __future__ import annotations

import io
import json
import math
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from semantica.errors import UserError
from semantica.evaluation.metrics import (consistency, diversity, frechet_distance, kernel_distance,
                                          precision_recall)
from semantica.evaluation.reference import load_reference


def _gauss(n, d, seed, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


# ----------------------------------------------------------------------------- metrics
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    a = _gauss(400, 8, 0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # two samples of one Gaussian: small; a mean shift of 1 in each of 8 dims adds about ‖Δμ‖² = 8
    same = frechet_distance(a, _gauss(400, 8, 1))
    shifted = frechet_distance(a, _gauss(400, 8, 1, shift=1.0))
    assert same < 0.5 and shifted == pytest.approx(8 + same, abs=0.6)
    # scaling the spread by 2 (Σ = 4I vs I): Tr(I + 4I − 2·2I) = d = 8
    assert frechet_distance(a, 2 * _gauss(4000, 8, 2)) == pytest.approx(8, rel=0.15)


def test_kid_is_near_zero_for_one_distribution_and_seeded():
    a, b = _gauss(300, 8, 0), _gauss(300, 8, 1)
    same, _ = kernel_distance(a, b, seed=0)
    shifted, _ = kernel_distance(a, _gauss(300, 8, 1, shift=1.0), seed=0)
    assert abs(same) < 0.05 and shifted > 1.0
    assert kernel_distance(a, b, seed=3, subset_size=50) == kernel_distance(a, b, seed=3, subset_size=50)


def test_precision_recall_match_values_worked_out_by_hand():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # k=1: every real point's ball has radius 1 (its nearest neighbour is 1 away), so the real
    # manifold is [-1, 4]. Fakes 0.5 and 10: 0.5 is inside, 10 is not → precision 1/2. Their own
    # radius is 9.5 (each other's distance): the ball around 0.5 covers all four real points → recall 1.
    assert precision_recall(real, torch.tensor([[0.5], [10.0]]), k=1) == (0.5, 1.0)
    # Fakes 0.1, 0.3, 0.5: radii 0.2 each; the fake manifold is [-0.1, 0.7] → only real 0 is covered
    # → recall 1/4; all three fakes lie within 1 of real 0 → precision 1.
    assert precision_recall(real, torch.tensor([[0.1], [0.3], [0.5]]), k=1) == (1.0, 0.25)
    # k=2 in 2-D: real corners of a unit square; each corner's neighbours are at 1, 1 and √2, so
    # its 2nd-nearest radius is 1. Fake (0.5, 0.5) is 0.71 from every corner: inside; (3, 3) is 2.83
    # from (1, 1): outside; (1.5, 1) is 0.5 from (1, 1): inside → precision 2/3.
    sq = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    fakes = torch.tensor([[0.5, 0.5], [3.0, 3.0], [1.5, 1.0]])
    # fake radii (k=2): (0.5,.5)→(1.5,1) 1.118, →(3,3) 3.54: 2nd = 3.54; (3,3): 2.5, 3.54 → 3.54;
    # (1.5,1): 1.118, 2.5 → 2.5. Every real corner is within 3.54 of (0.5, 0.5) → recall 1.
    p, r = precision_recall(sq, fakes, k=2)
    assert p == pytest.approx(2 / 3) and r == 1.0


def test_consistency_and_diversity_by_hand():
    cond = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    var = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]),      # cos 1 and 0 to [1, 0]
           torch.tensor([[0.0, 2.0], [0.0, 3.0]])]      # cos 1 and 1 to [0, 1]
    assert consistency(cond, var) == pytest.approx(0.75)
    # pairwise 1 − cos: first group 1, second group 0 → mean 0.5
    assert diversity(var) == pytest.approx(0.5)
    assert math.isnan(diversity([torch.ones(1, 2)]))  # one variation: no pair to measure


# ----------------------------------------------------------------------------- the report
def _metrics(model: str, reference: str) -> dict:
    scores = {k: {"mean": 0.5, "std": 0.0} for k in ("fid", "kid", "precision", "recall", "consistency", "diversity",
                                                   "topic_transfer_shape", "realism_c2st", "realism_1nn",
                                                   "diversity_ratio")}
    run = {"shots": 1, "guidance": 2.0, **{k: v["mean"] for k, v in scores.items()}}
    return {"model": model, "reference": {"path": reference, "images": 3, "labels": 2, "skipped": {},
                                          "diversity_same_label": 0.1},
            "topic_judge": {"trained_on": "a <b>judge</b>", "held_out_accuracy": 1.0},
            "features": "encoder", "encoder": "enc", "settings": {"num_samples": 4, "steps": 2, "scheduler": "ddim",
                                                                 "seed": 0, "repeats": 1, "guidance": 2.0},
            "few_shot": [{"shots": 1, **scores}], "per_class": None, "guidance": [run],
            "topic_transfer": {"summary": "5 < 6 & 7 > 1"}}


def test_report_escapes_what_it_prints(tmp_path):
    """Paths, names and summaries are text in report.html, never markup (a reference folder may be called
    anything); the page comes from the template shipped with the package."""
    from semantica.evaluation.report import write_report
    html = write_report(tmp_path, _metrics("runs/<script>alert(1)</script>", "ref/<cats & dogs>")).read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>ref/&lt;cats &amp; dogs&gt;</code>" in html
    assert "trained on a &lt;b&gt;judge&lt;/b&gt;" in html and "<p>5 &lt; 6 &amp; 7 &gt; 1</p>" in html
    assert "<th>FID ↓</th>" in html and "<td>0.5000 ± 0.0000</td>" in html
    assert "<img src='plots/guidance.png'>" in html


def test_report_template_is_package_data():
    """An installed semantica finds its template: setup.cfg ships every file of evaluation/templates/."""
    import configparser
    import fnmatch
    from helpers import REPO
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    patterns = cfg["options.package_data"]["semantica.evaluation"].split()
    templates = [p.relative_to(REPO / "evaluation").as_posix() for p in (REPO / "evaluation" / "templates").iterdir()]
    assert "templates/report.html.j2" in templates
    assert all(any(fnmatch.fnmatch(t, pat) for pat in patterns) for t in templates), (templates, patterns)


# ----------------------------------------------------------------------------- reference sets
def _png(colour, size=(20, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def test_reference_folder_labels_by_subfolder_and_skips_bad_files(tmp_path):
    for label, colour in (("cats", "red"), ("dogs", "blue")):
        (tmp_path / label).mkdir()
        for i in range(2):
            (tmp_path / label / f"{i}.png").write_bytes(_png(colour))
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image, not read")
    ref = load_reference(tmp_path)
    assert len(ref.images) == 4 and ref.labels == ["cats", "cats", "dogs", "dogs"]
    assert ref.skipped == {"undecodable": 1}


def test_reference_pixel_cap_skips_a_real_image_over_it(tmp_path):
    for i in range(2):
        (tmp_path / f"small{i}.png").write_bytes(_png("red"))            # 400 pixels
    (tmp_path / "large.png").write_bytes(_png("blue", (64, 64)))         # 4,096 pixels
    ref = load_reference(tmp_path, max_pixels=1000)
    assert len(ref.images) == 2 and ref.skipped == {"undecodable": 1}
    assert len(load_reference(tmp_path).images) == 3


def _bomb_png(side: int) -> bytes:
    """A 10×10 PNG whose header (CRC fixed) claims side × side pixels: refused before decoding."""
    buf = io.BytesIO()
    Image.new("1", (10, 10)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = side.to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def test_reference_parquet_from_mining_and_hostile_rows(tmp_path):
    rows = [{"image_id": "a", "bytes": _png("red")}, {"image_id": "b", "bytes": b"garbage"},
            {"image_id": "c", "bytes": _bomb_png(100_000)}, {"image_id": "d", "bytes": _png("green")},
            {"image_id": "e", "bytes": None}]
    (tmp_path / "images").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "images" / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist([{"pair_id": "x"}]), tmp_path / "images" / "pairs-0.parquet")
    ref = load_reference(tmp_path)  # a mining output folder: reads DIR/images/*.parquet
    assert len(ref.images) == 2 and ref.skipped == {"undecodable": 3} and ref.labels == [None, None]
    assert ref.names[0].endswith("part-0.parquet#0")
    pq.write_table(pa.Table.from_pylist([{"bytes": _png("blue")}] * 3), tmp_path / "images" / "part-1.parquet")
    assert len(load_reference(tmp_path, limit=3).images) == 3  # the limit holds across files
    pq.write_table(pa.Table.from_pylist([{"url": "x"}]), tmp_path / "nocol.parquet")
    with pytest.raises(UserError, match="nocol.parquet: no image column"):
        load_reference(tmp_path / "nocol.parquet")
    with pytest.raises(UserError, match="no such file"):
        load_reference(tmp_path / "missing")


# ----------------------------------------------------------------------------- the few-shot loop
@pytest.fixture(scope="module")
def untrained_pipeline(settings, tiny_encoder, tmp_path_factory):
    """A tiny SemanticaPipeline straight from its config (no training): the loop, not the quality."""
    from diffusers import DDIMScheduler
    from semantica.encoders import load_encoder
    from semantica.pipeline import SemanticaPipeline
    from semantica.training.diffusion import make_scheduler
    from semantica.training.step import build_model
    enc = load_encoder(str(tiny_encoder), device="cpu")
    tokens = enc(torch.zeros(1, 3, enc.image_size, enc.image_size)).tokens.shape[1]
    model = build_model(settings.models["tiny"], enc.dim, tokens, seed=0)
    out = tmp_path_factory.mktemp("untrained") / "pipeline"
    SemanticaPipeline(image_encoder=enc.model, feature_extractor=enc.processor, unet=model.unet.eval(),
                      adapter=model.adapter.eval(),
                      scheduler=DDIMScheduler.from_config(make_scheduler().config)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def reference_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    for label, colours in (("warm", ("red", "orange", "yellow")), ("cold", ("blue", "cyan", "navy"))):
        (folder / label).mkdir()
        for i, c in enumerate(colours):
            img = Image.new("RGB", (48, 48), c)
            img.paste(Image.new("RGB", (16, 16), "white"), (8 * i, 8 * i))
            img.save(folder / label / f"{i}.png")
    return folder


def _evaluate(settings, model, reference, out, judge=None, **kw):
    """run_evaluate with stages.evaluate's values `kw` (over small ones, for speed), and `judge`."""
    from semantica.evaluation.evaluate import run_evaluate
    args = dict(shots=[1, 2], num_samples=4, repeats=2, steps=2, guidance_scales=[0.0, 2.0])
    args.update(kw)
    return run_evaluate(settings.with_stage("evaluate", **args), model, reference, out, judge=judge)


def test_few_shot_loop_writes_metrics_report_and_is_deterministic(settings, untrained_pipeline, reference_folder,
                                                                  tmp_path):
    m = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "a")
    assert [f["shots"] for f in m["few_shot"]] == [1, 2]
    for f in m["few_shot"]:
        assert len(f["runs"]) == 2 and all(len(r["conditions"]) == f["shots"] for r in f["runs"])
        assert f["runs"][0]["conditions"] != f["runs"][1]["conditions"]  # repeats draw other conditions
        for key in ("fid", "kid", "precision", "recall", "consistency", "diversity"):
            assert set(f[key]) == {"mean", "std"} and f[key]["mean"] == f[key]["mean"]  # not nan
    assert [r["guidance"] for r in m["guidance"]] == [0.0, 2.0]
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert on_disk["few_shot"][0]["fid"] == m["few_shot"][0]["fid"]
    html = (tmp_path / "a" / "report.html").read_text()
    assert "plots/few_shot.png" in html and "plots/guidance.png" in html and "grids/shots2.png" in html
    for p in ("plots/few_shot.png", "plots/guidance.png", "grids/guidance0.png", "samples/conditions.json",
              "samples/guidance2/000/0.png"):
        assert (tmp_path / "a" / p).exists(), p
    # the same seed: the same conditions and the same scores; another seed: other conditions
    again = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "b")
    strip = lambda mm: [[{k: v for k, v in r.items() if k != "seconds"} for r in f["runs"]]  # noqa: E731
                        for f in mm["few_shot"]]
    assert strip(again) == strip(m)
    other = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "c", seed=7)
    assert strip(other) != strip(m)
    with pytest.raises(UserError, match="not empty"):
        _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "a")


def test_more_shots_than_reference_images_is_a_clear_error(settings, untrained_pipeline, reference_folder, tmp_path):
    with pytest.raises(UserError, match=r"--shots \[7\]"):
        _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "x", shots=[7], num_samples=8)
    assert not (tmp_path / "x").exists()  # refused before any output folder is made


class _MeanColour(torch.nn.Module):
    """A stand-in 'Inception': uint8 [B, 3, H, W] → per-channel means and a coarse 2×2 pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255
        return torch.cat([x.mean(dim=(2, 3)), torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)], dim=1)


def test_inception_features_load_a_local_torchscript_file(settings, untrained_pipeline, reference_folder, tmp_path):
    weights = tmp_path / "inception.pt"
    torch.jit.script(_MeanColour()).save(str(weights))
    m = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "inc", features="inception",
                  inception_weights=str(weights), shots=[2], repeats=1, guidance_scales=[2.0])
    assert m["features"] == "inception"
    # the FID is the Fréchet distance of the file's features (resized to 299 × 299 as uint8) of the reference
    # against the generated pictures (the sweep's, saved as PNG): not the encoder's space, not other pictures.
    # An untrained model's noise has other colour means than the references: a distance well above 0.
    def features(paths):
        x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((299, 299), Image.BICUBIC)) for p in paths])
        return _MeanColour()(torch.from_numpy(x).permute(0, 3, 1, 2)).double()
    expected = frechet_distance(features(sorted(reference_folder.rglob("*.png"))),
                                features(sorted((tmp_path / "inc" / "samples" / "guidance2").rglob("*.png"))))
    assert expected > 0.01 and m["guidance"][0]["fid"] == pytest.approx(expected, rel=1e-5)
    # without a file, or with a file that is neither TorchScript nor loadable weights: one clear error
    with pytest.raises(UserError, match="--inception-weights FILE"):
        _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "n1", features="inception")
    (tmp_path / "junk.pth").write_bytes(b"not weights")
    with pytest.raises(UserError, match="junk.pth"):
        _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "n2", features="inception",
                  inception_weights=str(tmp_path / "junk.pth"))
    assert not (tmp_path / "n1").exists() and not (tmp_path / "n2").exists()  # refused before any output


def test_cli_evaluate(untrained_pipeline, reference_folder, tmp_path, capsys):
    from semantica.cli import main
    rc = main(["evaluate", "--model", str(untrained_pipeline), "--reference", str(reference_folder), "-o",
               str(tmp_path / "e"), "--shots", "1,3", "--num-samples", "4", "--repeats", "1", "--steps", "2",
               "--guidance-scales", "0,1"])
    out = capsys.readouterr().out
    assert rc == 0 and "k=1:" in out and "k=3:" in out and (tmp_path / "e" / "report.html").exists()
    assert main(["evaluate", "--model", str(tmp_path), "--reference", str(reference_folder), "-o",
                 str(tmp_path / "f"), "--shots", "1"]) == 2
    assert "no model_index.json" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()  # a model that will not load leaves no output folder behind


@pytest.mark.parametrize("damage", ["index", "unet_config", "unet_weights"])
def test_a_damaged_pipeline_is_a_clear_error_and_leaves_no_output(untrained_pipeline, reference_folder, tmp_path,
                                                                   capsys, damage):
    """model_index.json or a component's config that is not JSON, or a component's weights missing: one line
    naming the folder (was an internal error), for evaluate and generate, and no output folder is made."""
    import shutil

    from semantica.cli import main
    bad = tmp_path / "bad"
    shutil.copytree(untrained_pipeline, bad)
    if damage == "index":
        (bad / "model_index.json").write_text("junk")
    elif damage == "unet_config":
        (bad / "unet" / "config.json").write_text("{not json")
    else:
        for f in (bad / "unet").glob("diffusion_pytorch_model*"):
            f.unlink()
    image = next(reference_folder.rglob("*.png"))
    for argv in (["evaluate", "--model", str(bad), "--reference", str(reference_folder), "-o", str(tmp_path / "e"),
                  "--shots", "1", "--num-samples", "4"],
                 ["generate", "--model", str(bad), "--input", str(image), "-o", str(tmp_path / "g"), "--steps", "2"]):
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        assert f"{bad}: cannot load this pipeline: " in err and "internal error" not in err, err
    assert not (tmp_path / "e").exists() and not (tmp_path / "g").exists()
    if damage == "index":  # an unknown scheduler is refused before the output is made too
        assert main(["generate", "--model", str(untrained_pipeline), "--input", str(image), "-o",
                     str(tmp_path / "s"), "--scheduler", "nope"]) == 2
        assert "--scheduler" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_one_variation_per_condition_leaves_diversity_unmeasured(settings, untrained_pipeline, reference_folder,
                                                                  tmp_path):
    m = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "d", shots=[4], num_samples=4,
                  guidance_scales=[])
    f = m["few_shot"][0]
    assert f["diversity"] == {"mean": None, "std": None} and f["consistency"]["mean"] is not None
    assert "n/a" in (tmp_path / "d" / "report.html").read_text()
    json.loads((tmp_path / "d" / "metrics.json").read_text())  # valid JSON: no NaN


def test_per_class_runs_take_one_image_of_each_label(settings, untrained_pipeline, reference_folder, tmp_path):
    m = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "p", shots=[1], guidance_scales=[],
                  per_class=True)
    pc = m["per_class"]
    assert pc["shots"] == 2 and len(pc["runs"]) == 2
    for run in pc["runs"]:  # one "warm" and one "cold" picture each time
        assert sorted(c.split("/")[-2] for c in run["conditions"]) == ["cold", "warm"]
    assert "one per label (2)" in (tmp_path / "p" / "report.html").read_text()
    # no judge given: one trained on 3/4 of the reference, scored on the rest (one picture of each of the
    # two labels: an accuracy of 0, 1/2 or 1)
    assert m["topic_judge"]["trained_on"] == "3/4 of the reference"
    assert m["topic_judge"]["held_out_accuracy"] in (0.0, 0.5, 1.0)
    off = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "q", shots=[1], guidance_scales=[],
                    per_class=False)
    assert off["per_class"] is None


class _RedderIsWarm:
    """A stand-in topic judge: "warm" where red outweighs blue. Records the labels it is asked about."""
    accuracy = 0.5

    def __init__(self):
        self.asked = []

    def score(self, images, labels) -> float:
        self.asked.append(list(labels))
        means = [np.asarray(im.convert("RGB"), dtype=float).mean((0, 1)) for im in images]
        return float(np.mean([("warm" if m[0] > m[2] else "cold") == t for m, t in zip(means, labels)]))


def test_labelled_reference_gets_the_scores_that_see_shape(settings, untrained_pipeline, reference_folder, tmp_path):
    judge = _RedderIsWarm()
    # seed 1 draws one condition of each label: real pictures of both labels are left for the realism tests
    m = _evaluate(settings, untrained_pipeline, reference_folder, tmp_path / "s", shots=[2], num_samples=8,
                  repeats=1, guidance_scales=[2.0], judge=judge, seed=1)
    assert m["topic_judge"] == {"trained_on": "given", "held_out_accuracy": 0.5}
    run = m["guidance"][0]
    # topic transfer: the judge's score of the variations, each with the label of its condition
    # (samples/ holds the sweep's variations by condition; conditions.json their labels)
    images, wanted = [], []
    conditions = json.loads((tmp_path / "s" / "samples" / "conditions.json").read_text())
    for c in conditions:
        folder = tmp_path / "s" / "samples" / "guidance2" / c["folder"]
        files = sorted(folder.glob("*.png"), key=lambda f: int(f.stem))
        images += [Image.open(f) for f in files]
        wanted += [c["label"]] * len(files)
    assert len(images) == 8 and set(wanted) <= {"warm", "cold"} and wanted in judge.asked
    assert run["topic_transfer_shape"] == judge.score(images, wanted)
    # diversity against that of real pictures of one label
    assert m["reference"]["diversity_same_label"] > 0
    assert run["diversity_ratio"] == pytest.approx(run["diversity"] / m["reference"]["diversity_same_label"])
    # realism against real pictures of the conditions' labels, the conditions left out (3 pictures a label),
    # as many as there are variations of that label: the 1-NN test needs 2 of them, the CNN's 2 folds 4
    labels = [c["label"] for c in conditions]
    assert sorted(labels) == ["cold", "warm"]
    real = sum(min(wanted.count(label), 3 - labels.count(label)) for label in set(labels))
    assert (run["realism_1nn"] is None) == (real < 2) and (run["realism_c2st"] is None) == (real < 4), (real, run)
    assert all(run[k] is None or 0.0 <= run[k] <= 1.0 for k in ("realism_c2st", "realism_1nn"))
    report = (tmp_path / "s" / "report.html").read_text()
    assert "topic transfer (shape)" in report and "trained on given" in report


def test_unlabelled_reference_leaves_the_labelled_scores_out(settings, untrained_pipeline, reference_folder, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, f in enumerate(sorted(reference_folder.rglob("*.png"))):
        (flat / f"{i}.png").write_bytes(f.read_bytes())
    m = _evaluate(settings, untrained_pipeline, flat, tmp_path / "u", shots=[2], repeats=1, guidance_scales=[])
    assert m["topic_judge"] is None
    assert m["few_shot"][0]["topic_transfer_shape"] == {"mean": None, "std": None}
