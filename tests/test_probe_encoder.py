"""benchmarks/probe_encoder.py: the kNN probe behind the README's "what the condition carries"."""
from __future__ import annotations

import importlib.util

import numpy as np
import torch

from helpers import REPO


def _probe_module():
    spec = importlib.util.spec_from_file_location("probe_encoder", REPO / "benchmarks" / "probe_encoder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_knn_accuracy_is_one_on_separable_clusters_and_falls_with_shuffled_labels():
    knn = _probe_module().knn_accuracy
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 5
    labels = np.repeat(np.arange(4), 10)
    ref = centres[labels] + 0.1 * torch.randn(40, 16, generator=g)
    query = centres[labels] + 0.1 * torch.randn(40, 16, generator=g)
    assert knn(ref, labels, query, labels) == 1.0
    shuffled = np.random.default_rng(0).permutation(labels)
    assert knn(ref, shuffled, query, labels) < 0.6


def test_probe_finds_the_stand_in_encoders_topics(tiny_encoder, settings):
    r = _probe_module().probe(str(tiny_encoder), settings.stages.sample_web)
    assert r["topic_pooled"] >= 0.9  # what the stand-in is trained for
    assert all(0.0 <= v <= 1.0 for v in r.values())
    assert r["shape_chance"] == 1 / 8
