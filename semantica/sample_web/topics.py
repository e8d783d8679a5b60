"""The sample web's labelled pictures, and topic classifiers fitted on them.

Topic transfer (does a variation keep its condition's topic?) is scored by classifiers that
have never seen a generated image:
- *hue*: nearest centroid on saturation-weighted hue histograms of the sample web's own
  pictures. It sees colour families, not shapes: a blob of the right colour passes.
- *shape and colour*: the CNN judge of evaluation/classifier.py, trained on fresh pictures
  drawn as the sample web draws its content (other random draws, so the sample web's own
  pictures are its held-out test set).
`draw_pictures` also gives held-out references: pictures of the sample web's topics that no
training pair contains.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from semantica.errors import UserError

HUE_BINS = 36


@dataclass(frozen=True)
class Picture:
    picture_id: str
    topic: int
    image: Image.Image   # RGB, full size


def load_pictures(sample_web: Path) -> list[Picture]:
    """One image per content picture of a sample web (its full-size copy), with its topic."""
    from semantica.images import to_rgb
    from semantica.mining.warc_io import iter_records
    sample_web = Path(sample_web)
    assets_path = sample_web / "ground_truth" / "assets.parquet"
    if not assets_path.exists():
        raise UserError(f"{sample_web}: not a sample web (no ground_truth/assets.parquet)")
    warc = {}
    for f in sorted((sample_web / "warc").glob("*.warc.gz")):
        for rec in iter_records(str(f), "fastwarc", 1 << 24, []):
            warc[rec.uri] = rec.body
    seen, out = set(), []
    for a in pq.read_table(assets_path).to_pylist():
        if a["topic"] < 0 or a["picture_id"] in seen or "-small" in a["url"] or "-thumb" in a["url"]:
            continue
        seen.add(a["picture_id"])
        data = warc.get(a["url"]) if a["stored"] == "warc" else \
            (sample_web / "static" / a["url"].split("/", 3)[3]).read_bytes()
        out.append(Picture(a["picture_id"], a["topic"], to_rgb(Image.open(io.BytesIO(data)))))
    return out


def hue_histogram(image: Image.Image, size: int = 32) -> np.ndarray:
    hsv = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC).convert("HSV"), dtype=np.float32) / 255.0
    hist, _ = np.histogram(hsv[..., 0], bins=HUE_BINS, range=(0, 1), weights=hsv[..., 1] ** 2 * hsv[..., 2])
    return hist / (hist.sum() + 1e-6)


class TopicClassifier:
    """Nearest centroid (L1) on hue histograms."""

    def __init__(self, images: Sequence[Image.Image], topics: Sequence[int]):
        feats, topics = np.stack([hue_histogram(im) for im in images]), np.asarray(topics)
        self.topics = np.array(sorted(set(topics.tolist())))
        self.centroids = np.stack([feats[topics == t].mean(0) for t in self.topics])

    @classmethod
    def fit(cls, pictures: Sequence[Picture]) -> "TopicClassifier":
        return cls([p.image for p in pictures], [p.topic for p in pictures])

    def predict(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not len(images):
            return np.zeros(0, dtype=int)
        feats = np.stack([hue_histogram(im) for im in images])
        return self.topics[np.abs(feats[:, None, :] - self.centroids[None]).sum(-1).argmin(1)]


def write_reference(pictures: Sequence[Picture], folder: Path) -> Path:
    """The pictures as an image folder labelled by topic (topic<T>/<picture>.png)."""
    for p in pictures:
        sub = Path(folder) / f"topic{p.topic}"
        sub.mkdir(parents=True, exist_ok=True)
        p.image.save(sub / f"{p.picture_id}.png")
    return Path(folder)


def topic_transfer(classifier: TopicClassifier, samples: Path, num_topics: int) -> dict:
    """Per guidance scale of an evaluation's sweep (OUT/samples), the share of variations whose
    predicted topic is their condition's (conditions labelled topic<T> by `write_reference`)."""
    import json
    conditions = json.loads((Path(samples) / "conditions.json").read_text())
    out = {}
    for folder in sorted(Path(samples).glob("guidance*"), key=lambda p: float(p.name[len("guidance"):])):
        hits = total = 0
        for c in conditions:
            if not str(c["label"]).startswith("topic"):
                raise UserError(f"{samples}/conditions.json: condition {c['name']} has label {c['label']!r}, "
                                f"not topic<T>: the reference was not written by write_reference")
            topic = int(str(c["label"]).removeprefix("topic"))
            files = sorted((folder / c["folder"]).glob("*.png"))
            with_topic = classifier.predict([Image.open(f).convert("RGB") for f in files])
            hits, total = hits + int((with_topic == topic).sum()), total + len(files)
        out[float(folder.name[len("guidance"):])] = hits / total if total else float("nan")
    return {"share_by_guidance": out, "chance": 1.0 / num_topics, "variations_per_guidance": total}


def draw_pictures(cfg, per_topic: int, seed: int) -> list[Picture]:
    """`per_topic` new pictures of each of the sample web's topics (`cfg`: its SampleWebConfig), drawn as
    the sample web draws content pictures, from a random stream of their own (`seed`)."""
    from semantica.sample_web.drawing import draw_topic_picture
    rng = random.Random(f"semantica-drawn/{cfg.seed}/{seed}")
    out = []
    for topic in range(cfg.num_topics):
        for i in range(per_topic):
            s = cfg.image_size * rng.uniform(0.9, 1.3)  # the sample web's sizes and aspect ratios
            ax, ay = rng.choice(((1, 1), (4, 3), (3, 4), (3, 2)))
            w, h = int(s * ax / max(ax, ay)) // 2 * 2, int(s * ay / max(ax, ay)) // 2 * 2
            out.append(Picture(f"drawn{seed}-t{topic}-{i:04d}", topic,
                               draw_topic_picture(rng, topic, cfg.num_topics, w, h)))
    return out


OTHER = "other"  # the judge's class for a shape in another topic's colour


def recolour(image: Image.Image, shift: float) -> Image.Image:
    """The picture with every hue turned by `shift` of a full turn (a shape in another colour family)."""
    hsv = np.asarray(image.convert("RGB").convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(shift * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def mismatched(pictures: Sequence[Picture], num_topics: int, seed: int) -> list[Image.Image]:
    """Each picture recoloured into another topic's colour family: right shape, wrong colour."""
    rng = random.Random(seed)
    return [recolour(p.image, rng.randrange(1, num_topics) / num_topics) for p in pictures]


def silhouette(image: Image.Image) -> Image.Image:
    """Saturation × value as grey: the coloured subject bright on the sample web's pale grounds, with
    its colour gone, so that a classifier of it can only learn shape."""
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float32)
    return Image.fromarray((hsv[..., 1] * hsv[..., 2] / 255).astype(np.uint8)).convert("RGB")


class ShapeAndColourJudge:
    """Topic = shape family *and* colour family. A CNN that cannot see colour (it reads silhouettes)
    names the shape, the hue classifier names the colour; a picture is of topic T only when both
    say T, else `other`. (A CNN trained on the topics as they are learns the colour alone, which
    separates them: it called a plain ellipse of a topic's colour that topic every time;
    84 % when also taught recoloured misfits as `other`.)"""

    def __init__(self, shape, hue: TopicClassifier):
        self.shape, self.hue = shape, hue
        self.labels = shape.labels + [OTHER]
        self.accuracy = self.shape_accuracy = self.rejects = None

    def predict(self, images: Sequence[Image.Image]) -> list:
        shapes, hues = self.shape.predict([silhouette(im) for im in images]), self.hue.predict(images)
        return [s if s == f"topic{h}" else OTHER for s, h in zip(shapes, hues)]

    def score(self, images: Sequence[Image.Image], labels: Sequence) -> float:
        pred = self.predict(images)
        return float(np.mean([p == t for p, t in zip(pred, labels)])) if pred else float("nan")


def fit_shape_judge(cfg, held_out: Sequence[Picture], per_topic: int = 100, seed: int = 0) -> ShapeAndColourJudge:
    """The shape-and-colour judge, trained on `per_topic` drawn pictures a topic (never on the sample
    web's own or on generations; ~40 s on one core). Measured on `held_out` (the sample web's
    pictures): `accuracy` (both right), `shape_accuracy` (the CNN alone), `rejects` (the share of
    them, recoloured into another topic's colours, called `other`)."""
    from semantica.evaluation.classifier import fit_judge
    train = draw_pictures(cfg, per_topic, seed=10_000 + seed)
    shape = fit_judge([silhouette(p.image) for p in train], [f"topic{p.topic}" for p in train],
                      seed=seed, steps=500, width=24)
    judge = ShapeAndColourJudge(shape, TopicClassifier.fit(train))
    labels = [f"topic{p.topic}" for p in held_out]
    judge.accuracy = judge.score([p.image for p in held_out], labels)
    judge.shape_accuracy = shape.score([silhouette(p.image) for p in held_out], labels)
    judge.rejects = judge.score(mismatched(held_out, cfg.num_topics, seed + 1), [OTHER] * len(held_out))
    return judge
