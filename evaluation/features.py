"""Feature spaces for the distribution metrics: the frozen encoder's, or Inception-v3's.

Each space turns PIL images into one float64 row per image (on the CPU), in batches.
- `encoder`: the pooled, L2-normalised embedding of the frozen encoder (DINOv2 in the
  paper's setting): Fréchet distance "in DINOv2 space".
- `inception`: the 2048-d pool features of the FID Inception-v3, from a local file the user
  provides (nothing is downloaded): either torch-fidelity's state dict
  (weights-inception-2015-12-05-6726825d.pth; needs torch-fidelity and torchvision, used through
  torchmetrics) or a TorchScript module (`torch.jit.save`) mapping uint8 [B, 3, 299, 299] to
  [B, 2048]. Images are resized to 299×299 with PIL's bicubic filter (antialiased) first.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from semantica.config_schema import FEATURE_SPACES
from semantica.errors import UserError

log = logging.getLogger(__name__)

INCEPTION_SIZE = 299
INCEPTION_HELP = ("Inception-v3 FID weights from a local file are needed for --features inception: pass "
                  "--inception-weights FILE (stages.evaluate.inception_weights), either torch-fidelity's "
                  "weights-inception-2015-12-05-6726825d.pth (with torch-fidelity and torchvision installed) or a "
                  "TorchScript module mapping uint8 [B,3,299,299] images to [B,2048] features. Nothing is downloaded; "
                  "`--features encoder` needs no extra file")


class EncoderFeatures:
    name = "encoder"

    def __init__(self, encoder, batch_size: int = 64):
        self.encoder, self.batch_size = encoder, batch_size

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.encoder.embed_pil(list(images), batch_size=self.batch_size).double().cpu()


class InceptionFeatures:
    name = "inception"

    def __init__(self, module: torch.nn.Module, batch_size: int = 32):
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.module, self.batch_size = module.eval().to(self.device), batch_size

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        rows = []
        for i in range(0, len(images), self.batch_size):
            batch = np.stack([np.asarray(im.convert("RGB").resize((INCEPTION_SIZE,) * 2, Image.BICUBIC))
                              for im in images[i:i + self.batch_size]])
            out = self.module(torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device))
            out = out[0] if isinstance(out, (tuple, list)) else out
            rows.append(out.reshape(len(batch), -1).double().cpu())
        return torch.cat(rows) if rows else torch.zeros(0, 2048, dtype=torch.float64)


def load_inception(weights: Optional[str]) -> InceptionFeatures:
    if not weights:
        raise UserError(INCEPTION_HELP)
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"--inception-weights {path}: no such file. {INCEPTION_HELP}")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
        log.info("inception: TorchScript module %s", path)
    except RuntimeError:  # not TorchScript: torch-fidelity's state dict, through torchmetrics
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
            module = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                        feature_extractor_weights_path=str(path))
        except ModuleNotFoundError as e:
            raise UserError(f"--inception-weights {path}: not a TorchScript file, and loading it as torch-fidelity "
                            f"weights needs torch-fidelity ({e}). {INCEPTION_HELP}") from None
        except (RuntimeError, KeyError, OSError) as e:
            raise UserError(f"--inception-weights {path}: not Inception-v3 FID weights "
                            f"({type(e).__name__}: {str(e)[:200]})") from None
        log.info("inception: torch-fidelity weights %s", path)
    features = InceptionFeatures(module)
    probe = features([Image.new("RGB", (8, 8))] * 2)
    if probe.ndim != 2 or probe.shape[0] != 2:
        raise UserError(f"--inception-weights {path}: gives features of shape {tuple(probe.shape)} for 2 images, "
                        f"not [2, D]")
    return features


def load_features(kind: str, encoder, inception_weights: Optional[str] = None):
    if kind == "encoder":
        return EncoderFeatures(encoder)
    if kind == "inception":
        return load_inception(inception_weights)
    raise UserError(f"--features {kind!r}: one of {', '.join(FEATURE_SPACES)}")
