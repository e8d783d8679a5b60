"""`semantica generate`: K variations of each input image, written as OUT/<stem>/<k>.png, with a
grid per input (input left, variations right) and one grid of everything (OUT/grid.png)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from semantica.errors import UserError
from semantica.outputs import check_output, prepare_output

log = logging.getLogger(__name__)


def load_pipeline(model: Path, device: Optional[str] = None, precision: str = "auto"):
    """A training run (RUN_DIR/pipeline) or an exported pipeline folder, on the GPU when there is one.
    precision: "auto" loads bf16 weights on a GPU and fp32 on CPU (where bf16 is no faster); "bf16", "fp32".
    Every model of the pipeline, its frozen encoder included, gets that dtype and device."""
    import torch
    from semantica.pipeline import SemanticaPipeline
    model = Path(model)
    folder = model / "pipeline" if (model / "pipeline" / "model_index.json").exists() else model
    if not (folder / "model_index.json").exists():
        raise UserError(f"{model}: neither a training run (RUN_DIR/pipeline) nor an exported pipeline "
                        f"(no model_index.json)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = precision == "bf16" or (precision == "auto" and torch.device(device).type == "cuda")
    dtype = torch.bfloat16 if bf16 else torch.float32
    try:
        pipe = SemanticaPipeline.from_pretrained(folder, dtype=dtype)
    except UserError:
        raise
    # a damaged export: model_index.json or a component's config not JSON (JSONDecodeError is a ValueError),
    # a component's files missing (OSError), weights of another shape (RuntimeError from load_state_dict)
    except (OSError, ValueError, RuntimeError) as e:
        reason = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        raise UserError(f"{folder}: cannot load this pipeline: {type(e).__name__}: {reason[:300]}") from e
    return pipe.to(device)


def grid(rows: Sequence[Sequence[Image.Image]], cell: int = 96, gap: int = 4) -> Image.Image:
    cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (cols * (cell + gap), len(rows) * (cell + gap)), "white")
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            sheet.paste(img.convert("RGB").resize((cell, cell), Image.NEAREST if img.width < cell else Image.BICUBIC),
                        (j * (cell + gap) + (gap if j else 0), i * (cell + gap)))
    return sheet


def generate(model: Path, inputs: Sequence[Path], num: int, out: Path, *, guidance: float, steps: int, seed: int,
             scheduler: Optional[str] = None, precision: str = "auto", overwrite: bool = False) -> Path:
    """`num` variations of each input. guidance, steps and seed have no defaults here: callers pass
    stages.evaluate's (pipelines.yaml); scheduler None keeps the pipeline's own."""
    if num < 1:
        raise UserError(f"--num: {num} variations; give at least 1")
    images = []
    for p in inputs:
        try:
            images.append(Image.open(p).convert("RGB"))
        except (OSError, ValueError) as e:
            raise UserError(f"--input {p}: not an image ({type(e).__name__}: {e})") from None
    stems = [Path(p).stem for p in inputs]
    if len(set(stems)) != len(stems):
        raise UserError("--input: two inputs share a file name; their variations would overwrite each other")
    check_output(out, overwrite, [model, *inputs])  # before the model loads: a bad output costs nothing
    pipe = load_pipeline(model, precision=precision)
    if scheduler:
        try:
            pipe.set_scheduler(scheduler)
        except ValueError as e:
            raise UserError(f"--scheduler: {e}") from None
    prepare_output(out, overwrite, [model, *inputs])  # only now: a model that will not load leaves no folder
    variations = pipe(images, num_variations=num, guidance_scale=guidance, num_inference_steps=steps,
                      seed=seed).images
    out = Path(out)
    rows = []
    for stem, src, outs in zip(stems, images, variations):
        folder = out / stem
        folder.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(outs):
            img.save(folder / f"{k}.png")
        grid([[src] + outs]).save(folder / "grid.png")
        rows.append([src] + outs)
    grid(rows).save(out / "grid.png")
    log.info("%d inputs × %d variations → %s", len(images), num, out)
    return out / "grid.png"
