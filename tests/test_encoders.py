"""The encoder registry: every family builds from a tiny config, saves, reloads, and gives
tokens and embeddings of the documented shapes; a missing model fails in one clear line."""
from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from semantica.encoders import EncoderNotFound, check_encoder, load_encoder
from semantica.tiny_encoder import build_tiny_encoder


def _images(n=3):
    out = []
    for k in range(n):
        img = Image.new("RGB", (50 + 10 * k, 40), (20 * k, 100, 200))
        ImageDraw.Draw(img).ellipse([5, 5, 30, 30], fill=(255, 0, 0))
        out.append(img)
    return out


@pytest.mark.parametrize("family, tokens", [("dinov2", 17), ("clip", 17), ("siglip", 16)])
def test_each_family_saves_reloads_and_encodes(family, tokens, tmp_path):
    path = build_tiny_encoder(tmp_path / family, family)
    enc = load_encoder(str(path), device="cpu")
    x = enc.preprocess_pil(_images())
    assert x.shape == (3, 3, 32, 32)
    out = enc(x)
    assert out.tokens.shape == (3, tokens, 64) and out.pooled.shape == (3, 64)  # 4×4 patches (+ CLS)
    assert torch.allclose(out.pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    again = load_encoder(str(path), device="cpu")(x)  # save → load → same output
    assert torch.equal(out.pooled, again.pooled)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training  # frozen stays in eval mode


def test_tensor_preprocessing_matches_the_processor(tmp_path):
    enc = load_encoder(str(build_tiny_encoder(tmp_path / "d", "dinov2")), device="cpu")
    img = _images(1)[0].resize((32, 32))
    via_pil = enc.preprocess_pil([img])
    t = torch.from_numpy(__import__("numpy").asarray(img, dtype="float32") / 127.5 - 1).permute(2, 0, 1)[None]
    assert torch.allclose(enc.preprocess_tensor(t), via_pil, atol=0.02)


def test_missing_model_offline_is_a_clear_error(tmp_path):
    with pytest.raises(EncoderNotFound, match="facebook/dinov2-nonexistent.*not in the local Hugging Face cache"):
        load_encoder("facebook/dinov2-nonexistent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderNotFound, match="this folder lacks config.json, preprocessor_config.json, the weights"):
        load_encoder(str(tmp_path / "empty"))
    for path in (tmp_path / "nothere", "./nothere", "/nonexistent/enc", f"{tmp_path}/nothere/"):
        with pytest.raises(EncoderNotFound, match="no such folder"):  # not "download it from the hub"
            load_encoder(str(path))
        with pytest.raises(EncoderNotFound, match="no such folder"):
            check_encoder(str(path))
    with pytest.raises(EncoderNotFound, match="this folder lacks config.json"):
        check_encoder(str(tmp_path / "empty"))
    with pytest.raises(EncoderNotFound, match="not in the local Hugging Face cache"):
        check_encoder("facebook/dinov2-nonexistent")
    check_encoder(str(build_tiny_encoder(tmp_path / "saved")))  # its config is enough: no weights loaded
    import shutil
    for damage, message in (("preprocessor", r"this folder lacks preprocessor_config.json; save the model and its "
                                             r"image processor there with `save_pretrained`"),
                            ("weights", r"its saved files cannot be read.*SafetensorError")):
        broken = shutil.copytree(tmp_path / "saved", tmp_path / damage)
        if damage == "preprocessor":
            (broken / "preprocessor_config.json").unlink()
        else:
            (broken / "model.safetensors").write_bytes((broken / "model.safetensors").read_bytes()[:100])
        with pytest.raises(EncoderNotFound, match=message) as e:
            load_encoder(str(broken))
        assert "huggingface-cli download" not in str(e.value)  # a folder, not a hub id
