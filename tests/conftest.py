"""Shared fixtures: the shipped pipelines.yaml, one sample web per session, ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from semantica.config import load_settings

from helpers import REPO, SHARED_WARC, free_port, offline

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ["HF_HUB_OFFLINE"] = "1"  # no model or dataset from a hub: tests build and save their own
os.environ["HF_DATASETS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def settings():
    return load_settings(REPO / "pipelines.yaml", "local")


@pytest.fixture(scope="session")
def sample_web_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def sample_web(tmp_path_factory, settings, sample_web_port):
    """The default sample web, linked to a free port so parallel runs do not collide."""
    import dataclasses
    from semantica.sample_web import write_sample_web
    out = tmp_path_factory.mktemp("sample-web")
    cfg = dataclasses.replace(settings.stages.sample_web, port=sample_web_port)
    write_sample_web(cfg, out, overwrite=True)
    return out


@pytest.fixture(scope="session")
def shared_warc() -> Path:
    if not SHARED_WARC.is_dir():
        pytest.skip(f"{SHARED_WARC} not present (the shared test WARCs live beside the checkout)")
    return SHARED_WARC


@pytest.fixture(scope="session")
def mined(sample_web, sample_web_port, settings, tmp_path_factory):
    """The sample web mined once per session (Beam DirectRunner, 2 worker processes)."""
    from semantica.mining.pipeline import run_mine
    from semantica.sample_web import serve_sample_web
    out = tmp_path_factory.mktemp("mined")
    with serve_sample_web(sample_web, port=sample_web_port):
        run_mine(offline(settings), [str(sample_web / "warc")], out, overwrite=True, allow_private=True)
    return out


@pytest.fixture(scope="session")
def tiny_encoder(sample_web, tmp_path_factory):
    from semantica.tiny_encoder import train_tiny_encoder
    return train_tiny_encoder(sample_web, tmp_path_factory.mktemp("tiny-encoder"), steps=300, seed=0)
