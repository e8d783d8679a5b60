"""SemanticaPipeline (semantica/pipeline.py) the diffusers way: the frozen encoder and its image processor are
components, saved and loaded by diffusers and moved and cast by `to`; a call returns a SemanticaPipelineOutput;
exports of the older layout (the encoder named in model_index.json, the adapter's class in the training code)
still load, or fail in one line. A tiny untrained model and a tiny encoder built from a config: no hub."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from diffusers.utils import BaseOutput
from PIL import Image

from semantica.encoders import EncoderNotFound, load_encoder
from semantica.errors import UserError
from semantica.pipeline import SemanticaPipeline, SemanticaPipelineOutput
from semantica.tiny_encoder import build_tiny_encoder

KW = dict(num_inference_steps=2, seed=3, guidance_scale=2.0)
RED = Image.new("RGB", (40, 40), (200, 30, 30))


@pytest.fixture(scope="module")
def model(settings, tmp_path_factory):
    """UNet + adapter of the `tiny` config for the tiny encoder's tokens (a non-zero null condition, as trained)."""
    from semantica.training.step import build_model
    enc = load_encoder(str(build_tiny_encoder(tmp_path_factory.mktemp("probe"))), device="cpu")
    tokens = enc(torch.zeros(1, 3, enc.image_size, enc.image_size)).tokens.shape[1]
    m = build_model(settings.models["tiny"], enc.dim, tokens, seed=0)
    with torch.no_grad():
        m.adapter.null.normal_(generator=torch.Generator().manual_seed(0))
    return m


def _pipe(model, enc_dir) -> SemanticaPipeline:
    """A pipeline of its own (copies of the weights: tests cast them) with the encoder saved in `enc_dir`."""
    from semantica.training.diffusion import make_scheduler
    enc = load_encoder(str(enc_dir), device="cpu")
    return SemanticaPipeline(image_encoder=enc.model, feature_extractor=enc.processor,
                             unet=copy.deepcopy(model.unet).eval(), adapter=copy.deepcopy(model.adapter).eval(),
                             scheduler=DDIMScheduler.from_config(make_scheduler().config))


def _legacy_export(pipe: SemanticaPipeline, enc_dir, out, encoder="encoder"):
    """The folder `SemanticaPipeline.save_pretrained` wrote before the encoder was a component (training/pipeline.py
    at 2d45125): unet/, adapter/, scheduler/ by diffusers, the encoder folder copied to encoder/ (when it was a local
    folder), and a model_index.json naming the encoder and the adapter's class in the training code."""
    for name in ("unet", "adapter", "scheduler"):
        getattr(pipe, name).save_pretrained(out / name)
    if encoder == "encoder":
        shutil.copytree(enc_dir, out / "encoder")
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "SemanticaPipeline", "_diffusers_version": "0.42.1",
        "adapter": ["semantica.training.model", "ConditionAdapter"], "encoder": encoder,
        "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DConditionModel"]}, indent=2))
    return out


def test_save_load_generate_round_trip_needs_nothing_but_the_folder(model, tmp_path):
    enc_dir = build_tiny_encoder(tmp_path / "enc")
    pipe = _pipe(model, enc_dir)
    pipe.save_pretrained(tmp_path / "p")
    shutil.rmtree(enc_dir)  # the export carries its encoder
    files = {str(p.relative_to(tmp_path / "p")) for p in (tmp_path / "p").rglob("*") if p.is_file()}
    assert {"image_encoder/model.safetensors", "image_encoder/config.json",
            "feature_extractor/preprocessor_config.json", "unet/diffusion_pytorch_model.safetensors",
            "adapter/diffusion_pytorch_model.safetensors"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth"))]  # safetensors only
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["adapter"] == ["semantica.models", "ConditionAdapter"]  # the shared module, not training's
    assert index["image_encoder"] == ["transformers", "Dinov2Model"] and index["feature_extractor"][0] == "transformers"
    assert "encoder" not in index
    loaded = SemanticaPipeline.from_pretrained(tmp_path / "p")
    assert type(loaded.image_encoder) is type(pipe.image_encoder)
    assert type(loaded.feature_extractor) is type(pipe.feature_extractor)
    a = pipe([RED], num_variations=2, output_type="pt", **KW).images[0]
    b = loaded([RED], num_variations=2, output_type="pt", **KW).images[0]
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_the_offset_noise_a_model_was_trained_with_is_saved_and_sampled(model, tmp_path):
    """A pipeline built with noise_offset (the trainer's export passes stages.train.noise_offset) records it in
    model_index.json, gets it back from from_pretrained and starts sampling from that noise; 0 is the default."""
    enc_dir = build_tiny_encoder(tmp_path / "enc")
    plain = _pipe(model, enc_dir)
    assert plain.config.noise_offset == 0.0
    pipe = _pipe(model, enc_dir)
    pipe.register_to_config(noise_offset=0.3)
    pipe.save_pretrained(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "model_index.json").read_text())["noise_offset"] == 0.3
    loaded = SemanticaPipeline.from_pretrained(tmp_path / "p")
    assert loaded.config.noise_offset == 0.3
    a = loaded([RED], num_variations=2, output_type="pt", **KW).images[0]
    assert torch.equal(a, pipe([RED], num_variations=2, output_type="pt", **KW).images[0])
    assert not torch.equal(a, plain([RED], num_variations=2, output_type="pt", **KW).images[0])
    with pytest.raises(ValueError, match="noise_offset -0.1"):
        SemanticaPipeline(image_encoder=plain.image_encoder, feature_extractor=plain.feature_extractor,
                          unet=plain.unet, adapter=plain.adapter, scheduler=plain.scheduler, noise_offset=-0.1)


def test_to_moves_and_casts_the_encoder_and_dtype_loads_it_cast(model, tmp_path):
    pipe = _pipe(model, build_tiny_encoder(tmp_path / "enc"))
    pipe.save_pretrained(tmp_path / "p")
    pipe.to("cpu", torch.bfloat16)
    for name in ("image_encoder", "unet", "adapter"):
        assert {p.dtype for p in getattr(pipe, name).parameters()} == {torch.bfloat16}, name
    assert pipe.encoder.model is pipe.image_encoder  # the FrozenEncoder view wraps the registered model
    out = pipe([RED], num_variations=1, output_type="pt", **KW).images[0]
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    pipe.to(torch.float32)
    assert {p.dtype for p in pipe.image_encoder.parameters()} == {torch.float32}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # diffusers 0.42 prefers `dtype=`; both work
        old_name = SemanticaPipeline.from_pretrained(tmp_path / "p", torch_dtype=torch.bfloat16)
    for loaded in (old_name, SemanticaPipeline.from_pretrained(tmp_path / "p", dtype=torch.bfloat16)):
        assert {p.dtype for p in loaded.image_encoder.parameters()} == {torch.bfloat16}
        assert loaded.unet.dtype == loaded.adapter.dtype == torch.bfloat16
        assert torch.isfinite(loaded([RED], num_variations=1, output_type="pt", **KW).images[0]).all()


def test_output_dataclass_and_output_types(model, tmp_path):
    pipe = _pipe(model, build_tiny_encoder(tmp_path / "enc"))
    images = [RED, Image.new("RGB", (50, 30), (20, 90, 200)), Image.new("L", (32, 32), 128)]
    counts = [2, 1, 0]
    pt = pipe(images, num_variations=counts, output_type="pt", **KW)
    assert isinstance(pt, SemanticaPipelineOutput) and isinstance(pt, BaseOutput)
    assert pt[0] is pt.images and len(pt.images) == 3  # BaseOutput: by field name or by position
    assert [tuple(x.shape) for x in pt.images] == [(2, 3, 32, 32), (1, 3, 32, 32), (0, 3, 32, 32)]
    assert all(x.dtype == torch.float32 and x.device.type == "cpu" and 0 <= x.min() <= x.max() <= 1
               for x in pt.images[:2])
    np_out = pipe(images, num_variations=counts, output_type="np", **KW).images
    assert [x.shape for x in np_out] == [(2, 32, 32, 3), (1, 32, 32, 3), (0, 32, 32, 3)]
    assert all(isinstance(x, np.ndarray) and x.dtype == np.float32 for x in np_out)
    for p, n in zip(pt.images, np_out):
        np.testing.assert_allclose(p.permute(0, 2, 3, 1).numpy(), n, rtol=0, atol=1e-6)
    pil = pipe(images, num_variations=counts, **KW).images  # output_type="pil" by default
    assert [len(x) for x in pil] == counts and all(isinstance(im, Image.Image) and im.size == (32, 32)
                                                   for x in pil for im in x)
    for ims, n in zip(pil, np_out):
        for im, arr in zip(ims, n):
            assert np.array_equal(np.asarray(im), (arr * 255).round().astype(np.uint8))
    tup = pipe(images, num_variations=counts, output_type="pt", return_dict=False, **KW)
    assert isinstance(tup, tuple) and len(tup) == 1
    assert all(torch.equal(a, b) for a, b in zip(tup[0], pt.images))
    assert len(pipe(RED, num_variations=1, **KW).images) == 1  # one image alone: one input
    with pytest.raises(ValueError, match="output_type 'latent'"):
        pipe([RED], num_variations=1, output_type="latent", **KW)
    with pytest.raises(ValueError, match="2 counts for 1 images"):
        pipe([RED], num_variations=[1, 1], **KW)


def test_a_legacy_export_loads_and_saves_in_the_current_layout(model, tmp_path, caplog):
    from semantica.evaluation.generate import load_pipeline
    enc_dir = build_tiny_encoder(tmp_path / "enc")
    pipe = _pipe(model, enc_dir)
    ref = pipe([RED], num_variations=2, output_type="pt", **KW).images[0]
    old = _legacy_export(pipe, enc_dir, tmp_path / "old")
    with caplog.at_level("WARNING", logger="semantica.pipeline"):
        loaded = SemanticaPipeline.from_pretrained(old)
    assert "exported by an older semantica" in caplog.text and "save_pretrained" in caplog.text
    assert torch.equal(loaded([RED], num_variations=2, output_type="pt", **KW).images[0], ref)
    assert load_pipeline(old, device="cpu", precision="bf16").image_encoder.dtype == torch.bfloat16
    absolute = _legacy_export(pipe, enc_dir, tmp_path / "old-abs", encoder=str(enc_dir))  # a path, not copied
    assert torch.equal(SemanticaPipeline.from_pretrained(absolute)([RED], num_variations=2, output_type="pt",
                                                                   **KW).images[0], ref)
    loaded.save_pretrained(tmp_path / "new")  # the way to re-export
    index = json.loads((tmp_path / "new" / "model_index.json").read_text())
    assert "encoder" not in index and index["adapter"] == ["semantica.models", "ConditionAdapter"]
    caplog.clear()
    again = SemanticaPipeline.from_pretrained(tmp_path / "new")
    assert "older semantica" not in caplog.text
    assert torch.equal(again([RED], num_variations=2, output_type="pt", **KW).images[0], ref)


def test_a_legacy_export_without_its_encoder_is_one_clear_error(model, tmp_path):
    enc_dir = build_tiny_encoder(tmp_path / "enc")
    pipe = _pipe(model, enc_dir)
    gone = _legacy_export(pipe, enc_dir, tmp_path / "gone", encoder="facebook/dinov2-nonexistent")
    with pytest.raises(EncoderNotFound) as e:  # HF_HUB_OFFLINE (conftest): not in the cache
        SemanticaPipeline.from_pretrained(gone)
    msg = str(e.value)
    assert str(gone) in msg and "older semantica" in msg and "facebook/dinov2-nonexistent" in msg and "\n" not in msg
    nameless = _legacy_export(pipe, enc_dir, tmp_path / "nameless", encoder="")
    with pytest.raises(UserError, match="re-export it"):
        SemanticaPipeline.from_pretrained(nameless)


def test_loading_and_sampling_import_no_stage(model, tmp_path):
    """The pipeline module is shared: loading an export, new or old, and sampling import no training,
    evaluation or mining code (old exports name `semantica.training.model`; it is not imported)."""
    enc_dir = build_tiny_encoder(tmp_path / "enc")
    pipe = _pipe(model, enc_dir)
    pipe.save_pretrained(tmp_path / "new")
    _legacy_export(pipe, enc_dir, tmp_path / "old")
    code = f"""
import json, sys
from PIL import Image
from semantica.pipeline import SemanticaPipeline
for d in {[str(tmp_path / "new"), str(tmp_path / "old")]!r}:
    out = SemanticaPipeline.from_pretrained(d)(Image.new("RGB", (40, 40)), num_variations=1, num_inference_steps=1)
    assert len(out.images[0]) == 1
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[:2] in
                        (["semantica", "training"], ["semantica", "evaluation"], ["semantica", "mining"]))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_clip_and_siglip_encoders_save_and_load_as_components(settings, family, tmp_path):
    from semantica.training.diffusion import make_scheduler
    from semantica.training.step import build_model
    enc = load_encoder(str(build_tiny_encoder(tmp_path / "enc", family)), device="cpu")
    tokens = enc(torch.zeros(1, 3, enc.image_size, enc.image_size)).tokens.shape[1]
    m = build_model(settings.models["tiny"], enc.dim, tokens, seed=0)
    pipe = SemanticaPipeline(image_encoder=enc.model, feature_extractor=enc.processor, unet=m.unet.eval(),
                             adapter=m.adapter.eval(), scheduler=DDIMScheduler.from_config(make_scheduler().config))
    pipe.save_pretrained(tmp_path / "p")
    loaded = SemanticaPipeline.from_pretrained(tmp_path / "p")
    assert type(loaded.image_encoder) is type(enc.model) and loaded.encoder.family == enc.family
    kw = dict(num_variations=1, num_inference_steps=1, output_type="pt")
    assert torch.equal(pipe([RED], **kw).images[0], loaded([RED], **kw).images[0])


def test_a_pooled_condition_model_feeds_the_time_embedding_and_round_trips(settings, tmp_path):
    """models.*.pooled_condition: the UNet gets diffusers' projection class embedding, the mean adapter state goes
    into it (in training and in the pipeline), and the export loads and samples the same images."""
    import dataclasses
    from semantica.models import condition_kwargs
    from semantica.training.step import build_model
    enc_dir = build_tiny_encoder(tmp_path / "enc")
    enc = load_encoder(str(enc_dir), device="cpu")
    tokens = enc(torch.zeros(1, 3, enc.image_size, enc.image_size)).tokens
    m = build_model(dataclasses.replace(settings.models["tiny"], pooled_condition=True), enc.dim, tokens.shape[1], 0)
    assert m.unet.config.class_embed_type == "projection"
    states = m.adapter(torch.randn(2, *tokens.shape[1:], generator=torch.Generator().manual_seed(0)))
    kw = condition_kwargs(m.unet, states)
    assert torch.equal(kw["class_labels"], states.mean(1))
    x, t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([10, 500])
    with torch.no_grad():
        pooled = m.unet(x, t, **kw).sample
        zero = m.unet(x, t, encoder_hidden_states=states, class_labels=torch.zeros_like(kw["class_labels"])).sample
    assert not torch.allclose(pooled, zero)  # the pooled state changes the prediction
    pipe = _pipe(m, enc_dir)
    pipe.save_pretrained(tmp_path / "p")
    loaded = SemanticaPipeline.from_pretrained(tmp_path / "p")
    assert loaded.unet.config.class_embed_type == "projection"
    a = pipe([RED], num_variations=2, output_type="pt", **KW).images[0]
    assert torch.equal(a, loaded([RED], num_variations=2, output_type="pt", **KW).images[0])


def test_the_ancestral_scheduler_draws_each_images_noise_from_its_own_generator(model, tmp_path):
    """`ddpm` adds fresh noise at every step: from each image's generator, so an image is the same whatever the
    batch size or its batch-mates (up to float rounding: the convolutions' sums differ by batch), a seed repeats,
    and a variation differs from DDIM's of the same seed."""
    pipe = _pipe(model, build_tiny_encoder(tmp_path / "enc"))
    images = [RED, Image.new("RGB", (50, 30), (20, 90, 200))]
    ddim = pipe(images, num_variations=2, output_type="pt", **KW).images
    pipe.set_scheduler("ddpm")
    kw = dict(KW, num_inference_steps=4)
    whole = pipe(images, num_variations=2, output_type="pt", batch_size=4, **kw).images
    ones = pipe(images, num_variations=2, output_type="pt", batch_size=1, **kw).images
    again = pipe(images, num_variations=2, output_type="pt", batch_size=3, **kw).images
    for a, b, c in zip(whole, ones, again):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        torch.testing.assert_close(a, c, rtol=0, atol=1e-5)
    alone = pipe([images[0]], num_variations=2, output_type="pt", **kw).images[0]  # (a seed per input index)
    torch.testing.assert_close(alone, whole[0], rtol=0, atol=1e-5)  # its batch-mates do not matter
    assert not torch.allclose(whole[0], ddim[0], atol=1e-3)
    assert not torch.allclose(whole[0][0], whole[0][1], atol=1e-3)  # two variations, two noises
    with pytest.raises(ValueError, match="one of"):
        pipe.set_scheduler("euler")

