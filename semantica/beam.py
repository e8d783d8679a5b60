"""Beam's PipelineOptions for a run, built from the profile's `beam:` mapping: what every Beam stage
(`mine`, `filter`) runs its pipeline with."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from semantica.config import Settings
from semantica.portable import runner_flags


def pipeline_options(settings: Settings, extra: Optional[list] = None) -> PipelineOptions:
    """The profile's `beam:` mapping as explicit flags (never sys.argv). A run adds what its workers
    need (a local worker pool's address, the staged package) through `beam_options`."""
    flags = []
    for k, v in settings.profile.beam.items():
        if isinstance(v, bool):
            if v:
                flags.append(f"--{k}")
        elif v != "":
            flags.append(f"--{k}={v}")
    return PipelineOptions(flags + list(extra or []))


@contextlib.contextmanager
def beam_options(settings: Settings, extra: Optional[list] = None) -> Iterator[PipelineOptions]:
    """pipeline_options for one run, with what its workers need while the block runs (semantica/portable.py):
    the local SDK worker pool that `environment_config: local` names, started here and stopped after, on
    failure too; or, for workers elsewhere with no `sdk_container_image`, semantica built as a wheel in a
    temporary folder and staged with --extra_package (nothing is written to the checkout)."""
    with runner_flags(settings.profile.beam) as flags:
        yield pipeline_options(settings, flags + list(extra or []))
