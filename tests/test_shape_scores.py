"""Scores that see shape: the two-sample tests, the CNN judge, the sample web's shape-and-colour judge."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from semantica.evaluation.classifier import fit_judge_held_out, two_sample_cnn_accuracy
from semantica.evaluation.metrics import pixel_features, two_sample_accuracy


def test_one_nn_two_sample_accuracy_by_hand():
    # two far-apart clusters: every point's nearest other point is from its own set → 1.0
    assert two_sample_accuracy(torch.tensor([[0.0], [0.1]]), torch.tensor([[5.0], [5.1]])) == 1.0
    # each real point has a fake twin nearer than any other real point → every row misread → 0.0
    assert two_sample_accuracy(torch.tensor([[0.0], [10.0]]), torch.tensor([[0.1], [10.1]])) == 0.0
    # the larger set is cut to the smaller's size (chance stays 0.5)
    assert two_sample_accuracy(torch.tensor([[0.0], [0.1], [7.0]]), torch.tensor([[5.0], [5.1]])) == 1.0


@pytest.fixture(scope="module")
def drawn(settings):
    from semantica.sample_web.topics import draw_pictures
    return draw_pictures(settings.stages.sample_web, 6, seed=5), draw_pictures(settings.stages.sample_web, 6, seed=6)


def test_cnn_two_sample_test_tells_noise_from_pictures_but_not_pictures_from_pictures(drawn):
    a, b = [p.image for p in drawn[0]], [p.image for p in drawn[1]]
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(len(a))]
    assert two_sample_cnn_accuracy(a, noise, seed=0) >= 0.9
    assert two_sample_cnn_accuracy(a, b, seed=0) <= 0.7            # two draws of one distribution
    assert two_sample_cnn_accuracy(a, b, seed=0) == two_sample_cnn_accuracy(a, b, seed=0)   # seeded
    assert two_sample_cnn_accuracy(a[:3], b[:3]) is None            # too few for two folds
    assert pixel_features(a[:2]).shape == (2, 16 * 16 * 3)


def test_held_out_judge_learns_labels_it_can_see(drawn):
    pics = drawn[0] + drawn[1]
    judge = fit_judge_held_out([p.image for p in pics], [f"topic{p.topic}" for p in pics], seed=0)
    assert judge.accuracy is not None and judge.accuracy >= 0.5    # chance 1/8


def _blob(hue: float, rng) -> Image.Image:
    from semantica.sample_web.drawing import _rgb
    img = Image.new("RGB", (128, 128), _rgb(rng.random(), 0.1, 0.8))
    r = rng.uniform(30, 50)
    ImageDraw.Draw(img).ellipse([64 - r, 64 - 0.7 * r, 64 + r, 64 + 0.7 * r], fill=_rgb(hue, 0.85, 0.85))
    return img


@pytest.mark.slow
def test_shape_and_colour_judge_sees_shape(settings, sample_web):
    """Held out: the sample web's own pictures. A blob of a topic's colour is that topic by hue, not
    for the judge; a topic's shape in another topic's colours is `other`."""
    from semantica.sample_web.drawing import topic_hue
    from semantica.sample_web.topics import OTHER, TopicClassifier, fit_shape_judge, load_pictures
    sw = settings.stages.sample_web
    pictures = load_pictures(sample_web)
    judge = fit_shape_judge(sw, pictures)
    print("judge", judge.accuracy, judge.shape_accuracy, judge.rejects)
    assert judge.accuracy >= 0.6 and judge.rejects >= 0.8, (judge.accuracy, judge.rejects)
    rng = np.random.default_rng(0)
    topics = [t for t in range(sw.num_topics) if t % 8 not in (0, 4)]   # not the circle or ring families
    blobs = [_blob(topic_hue(t, sw.num_topics), rng) for t in topics for _ in range(3)]
    labels = [t for t in topics for _ in range(3)]
    hue = TopicClassifier.fit(pictures)
    assert np.mean(hue.predict(blobs) == np.array(labels)) >= 0.9
    assert judge.score(blobs, [f"topic{t}" for t in labels]) <= 0.2
    assert set(judge.predict(blobs)) <= set(judge.labels) and OTHER in judge.labels
