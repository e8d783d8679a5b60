"""Shared fixtures: the shipped pipelines.yaml, one sample web per session, ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from semantica.config import load_settings

REPO = Path(__file__).resolve().parent.parent
SHARED_WARC = REPO.parent / "shared" / "data" / "warc"

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
