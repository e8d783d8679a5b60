"""The sections of `pipelines.yaml` as frozen pydantic dataclasses: which keys exist, their types
and their ranges (`semantica.config` loads the file into them and re-exports every name here).

No stage parameter has a default here: `pipelines.yaml` holds every value, so none is written twice.
Scalars are strict, as YAML writes them; a range check (`check`) runs whenever a section is built,
by loading or by `dataclasses.replace`.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any, Optional, Union

from pydantic import BeforeValidator, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic.dataclasses import dataclass

from semantica.errors import ConfigError

# sampler names (semantica/pipeline.py maps them to diffusers schedulers) and feature spaces of the scores
# (evaluation/features.py): here, so that a typo is a config error before any model loads
SCHEDULER_NAMES = ("ddim", "dpmsolver++", "ddpm")
FEATURE_SPACES = ("encoder", "inception")

STAGE_NAMES = ("sample_web", "mine", "filter", "publish", "train", "evaluate")

# Scalars are strict, as YAML writes them: 1 is no bool, '3' no integer (an integer is a number, though)
Bool, Int, Float, Str = StrictBool, StrictInt, StrictFloat, StrictStr
section = dataclass(frozen=True, config=ConfigDict(extra="forbid"))


class _Invalid(ValueError):
    """A value of the right type out of its range: `key` of the section being checked."""

    def __init__(self, key: str, value: Any, expected: str):
        super().__init__(f"{key}: {value!r} is invalid: expected {expected}")
        self.key, self.value, self.expected = key, value, expected


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise _Invalid(key, value, expected)


class _Section:
    """A section with range checks beyond its types: run whenever one is built (loaded or replaced)."""

    def check(self) -> None:
        """Raise `_Invalid` (through `_check`) for the first value out of range."""

    def __post_init__(self) -> None:
        self.check()

    def validate(self, where: str) -> None:
        """The range checks again, as a ConfigError naming `where` (file and key path)."""
        try:
            self.check()
        except _Invalid as e:
            raise ConfigError(f"{where}.{e.key}: {e.value!r} is invalid: expected {e.expected}") from None


# --------------------------------------------------------------------------- stages
@section
class SampleWebConfig(_Section):
    seed: Int
    num_pages: Int
    num_domains: Int
    num_topics: Int
    num_warc_files: Int
    min_content_images: Int
    max_content_images: Int
    image_size: Int
    in_warc_fraction: Float
    host: Str
    port: Int

    def check(self) -> None:
        _check(self.num_topics >= 2, "num_topics", self.num_topics, "at least 2")
        _check(self.num_domains >= 3, "num_domains", self.num_domains,
               "at least 3 (the shared banner must span more domains than mine allows)")
        _check(self.num_pages >= 12 * self.num_domains // 2, "num_pages", self.num_pages,
               "at least 6 pages per domain (each domain's logo must repeat)")
        _check(2 <= self.min_content_images <= self.max_content_images <= 8,
               "min_content_images", self.min_content_images, "2 <= min <= max <= 8")
        _check(64 <= self.image_size <= 512, "image_size", self.image_size, "64..512")
        _check(0.0 <= self.in_warc_fraction <= 1.0, "in_warc_fraction", self.in_warc_fraction, "within [0, 1]")
        _check(1 <= self.num_warc_files <= 64, "num_warc_files", self.num_warc_files, "1..64")
        _check(0 < self.port < 65536, "port", self.port, "a TCP port")


@section
class PrefilterConfig(_Section):
    allowed_schemes: tuple[Str, ...]
    blocked_extensions: tuple[Str, ...]
    min_declared_side: Int
    max_aspect_ratio: Float
    min_images_per_page: Int
    max_images_per_page: Int

    def check(self) -> None:
        _check(self.min_declared_side >= 0, "min_declared_side", self.min_declared_side, "at least 0")
        _check(self.max_aspect_ratio >= 1.0, "max_aspect_ratio", self.max_aspect_ratio, "at least 1")
        _check(self.min_images_per_page >= 1, "min_images_per_page", self.min_images_per_page, "at least 1")
        _check(self.max_images_per_page >= max(2, self.min_images_per_page), "max_images_per_page",
               self.max_images_per_page, "at least 2 and at least min_images_per_page")


@section
class DownloadConfig(_Section):
    timeout_s: Float
    retries: Int
    max_bytes: Int
    user_agent: Str
    allow_private_network: Bool
    allowed_hosts: tuple[Str, ...]
    honour_noai: Bool
    enabled: Bool   # false: archive mode, only what the crawl holds (fetch:not_captured otherwise)

    def check(self) -> None:
        _check(self.timeout_s > 0, "timeout_s", self.timeout_s, "above 0 seconds")
        _check(self.retries >= 0, "retries", self.retries, "at least 0")
        _check(self.max_bytes >= 1024, "max_bytes", self.max_bytes, "at least 1024")


@section
class DecodeConfig(_Section):
    max_pixels: Int
    min_side: Int
    max_memory_mb: Int

    def check(self) -> None:
        _check(self.max_pixels >= 1, "max_pixels", self.max_pixels, "at least 1")
        _check(self.min_side >= 1, "min_side", self.min_side, "at least 1")
        _check(self.max_memory_mb >= 32, "max_memory_mb", self.max_memory_mb, "at least 32")


@section
class ParseConfig(_Section):
    max_tags: Int
    max_depth: Int
    main_content_max_tags: Int

    def check(self) -> None:
        _check(self.max_tags >= 1000, "max_tags", self.max_tags, "at least 1000")
        _check(self.max_depth >= 32, "max_depth", self.max_depth, "at least 32")
        _check(self.main_content_max_tags >= 0, "main_content_max_tags", self.main_content_max_tags, "at least 0")


@section
class DedupConfig(_Section):
    page_hamming: Int
    near_dup_hamming: Int
    lsh_bands: Int
    lsh_max_bucket: Int
    max_pages_per_image: Int
    max_domains_per_image: Int

    def check(self) -> None:
        for key in ("page_hamming", "near_dup_hamming"):
            _check(0 <= getattr(self, key) <= 64, key, getattr(self, key), "0..64 (bits of a pHash)")
        for key in ("max_pages_per_image", "max_domains_per_image"):
            _check(getattr(self, key) >= 1, key, getattr(self, key), "at least 1")
        _check(self.lsh_bands in (1, 2, 4, 8, 16, 32, 64), "lsh_bands", self.lsh_bands, "a divisor of 64")
        _check(self.lsh_max_bucket >= 2, "lsh_max_bucket", self.lsh_max_bucket, "at least 2")
        _check(self.near_dup_hamming < self.lsh_bands, "near_dup_hamming", self.near_dup_hamming,
               "below lsh_bands (pigeonhole: only then do all such pairs share a band)")


@section
class PairsConfig(_Section):
    min_pair_hamming: Int
    max_pairs_per_page: Int

    def check(self) -> None:
        _check(-1 <= self.min_pair_hamming <= 64, "min_pair_hamming", self.min_pair_hamming,
               "-1..64 (-1: keep identical pairs too)")
        _check(self.max_pairs_per_page >= 1, "max_pairs_per_page", self.max_pairs_per_page, "at least 1")


@section
class MineConfig(_Section):
    seed: Int
    reader: Str
    commoncrawl_base_url: Str
    main_content: Bool
    max_html_bytes: Int
    download_threads: Int
    parse: ParseConfig
    prefilter: PrefilterConfig
    download: DownloadConfig
    decode: DecodeConfig
    dedup: DedupConfig
    pairs: PairsConfig

    def check(self) -> None:
        _check(self.reader in ("fastwarc", "warcio"), "reader", self.reader, "'fastwarc' or 'warcio'")
        _check(self.max_html_bytes >= 1024, "max_html_bytes", self.max_html_bytes, "at least 1024")
        _check(self.download_threads >= 1, "download_threads", self.download_threads, "at least 1")


@section
class FilterConfig(_Section):
    encoder: Str
    batch_size: Int
    low: Float
    high: Float
    sweep_lows: tuple[Float, ...]
    sweep_highs: tuple[Float, ...]

    def check(self) -> None:
        _check(-1.0 <= self.high <= 1.0, "high", self.high, "a cosine similarity, within [-1, 1]")
        _check(-1.0 <= self.low < self.high, "low", self.low, f"within [-1, high = {self.high})")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "at least 1")
        for key in ("sweep_lows", "sweep_highs"):
            values = getattr(self, key)
            _check(len(values) >= 1, key, list(values), "one or more values to sweep")
            _check(all(-1.0 <= v <= 1.0 for v in values), key, list(values), "cosine similarities within [-1, 1]")


@section
class PublishConfig(_Section):
    shard_rows: Int
    webdataset: Bool
    licence: Str
    opt_out: tuple[Str, ...]
    url_blocklist: Optional[Str]
    phash_blocklist: Optional[Str]
    phash_block_hamming: Int
    safety_classifier: Optional[Str]

    def check(self) -> None:
        _check(self.shard_rows >= 1, "shard_rows", self.shard_rows, "at least 1")
        _check(0 <= self.phash_block_hamming <= 64, "phash_block_hamming", self.phash_block_hamming,
               "0..64 (bits of a pHash)")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
LR_SCHEDULES = ("constant", "cosine", "linear")


@section
class TrainConfig(_Section):
    seed: Int
    encoder: Str
    max_steps: Int
    batch_size: Int
    learning_rate: Float
    warmup_steps: Int
    lr_schedule: Str          # after the warm-up: constant, or decayed to 0 at max_steps (cosine, linear)
    grad_clip: Float
    ema_decay: Float
    cond_dropout: Float
    snr_gamma: Float          # Min-SNR-γ loss weighting; 0: plain v-prediction MSE
    noise_offset: Float       # std of a per-image, per-channel constant added to ε (offset noise); 0: none
    checkpoint_every: Int
    log_every: Int
    # the GPU fast path: each is off on CPU (local profile) and on in the GPU profiles
    channels_last: Bool
    compile: Bool
    compile_channels_last: Bool  # inductor keeps NHWC inside the compiled graph (see training/step.py)
    compile_mode: Str         # torch.compile's mode; "reduce-overhead" replays each step as CUDA graphs
    compile_tune_kernels: Bool  # inductor times its fused kernels' block sizes (coordinate descent)
    compile_encoder: Bool     # torch.compile of the frozen encoder's forward too
    tf32: Bool
    fused_optimizer: Bool
    ema_foreach: Bool
    pin_memory: Bool
    gradient_checkpointing: Bool

    def check(self) -> None:
        _check(self.compile_mode in COMPILE_MODES, "compile_mode", self.compile_mode,
               "one of " + ", ".join(COMPILE_MODES) + " (torch.compile's modes)")
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule, "one of " + ", ".join(LR_SCHEDULES))
        for key in ("max_steps", "batch_size", "checkpoint_every", "log_every"):
            _check(getattr(self, key) >= 1, key, getattr(self, key), "at least 1")
        _check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "at least 0")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "above 0")
        _check(self.grad_clip > 0, "grad_clip", self.grad_clip, "above 0")
        _check(0.0 <= self.ema_decay < 1.0, "ema_decay", self.ema_decay, "within [0, 1)")
        _check(0.0 <= self.cond_dropout <= 1.0, "cond_dropout", self.cond_dropout, "within [0, 1]")
        _check(self.snr_gamma >= 0, "snr_gamma", self.snr_gamma, "at least 0 (0: no Min-SNR weighting)")
        _check(self.noise_offset >= 0, "noise_offset", self.noise_offset, "at least 0 (0: plain Gaussian noise)")


@section
class EvaluateConfig(_Section):
    seed: Int
    shots: tuple[Int, ...]
    num_samples: Int
    repeats: Int
    steps: Int
    scheduler: Str
    guidance: Float
    guidance_scales: tuple[Float, ...]
    features: Str
    inception_weights: Str
    per_class: Bool
    precision: Str

    def check(self) -> None:
        _check(bool(self.shots) and min(self.shots) >= 1, "shots", list(self.shots), "one or more k ≥ 1")
        _check(self.num_samples >= 4, "num_samples", self.num_samples, "at least 4")
        _check(self.repeats >= 1, "repeats", self.repeats, "at least 1")
        _check(self.steps >= 1, "steps", self.steps, "at least 1 sampling step")
        _check(self.guidance >= 0, "guidance", self.guidance, "at least 0 (0: unconditional)")
        _check(all(g >= 0 for g in self.guidance_scales), "guidance_scales", list(self.guidance_scales),
               "scales of at least 0")
        _check(self.precision in ("auto", "bf16", "fp32"), "precision", self.precision,
               "'auto' (bf16 on a GPU, fp32 on CPU), 'bf16' or 'fp32'")
        _check(self.scheduler in SCHEDULER_NAMES, "scheduler", self.scheduler, " | ".join(SCHEDULER_NAMES))
        _check(self.features in FEATURE_SPACES, "features", self.features, " | ".join(FEATURE_SPACES))


@section
class Stages:
    sample_web: SampleWebConfig
    mine: MineConfig
    filter: FilterConfig
    publish: PublishConfig
    train: TrainConfig
    evaluate: EvaluateConfig


# --------------------------------------------------------------------------- models
@section
class ModelConfig(_Section):
    resolution: Int
    block_out_channels: tuple[Int, ...]
    down_block_types: tuple[Str, ...]
    up_block_types: tuple[Str, ...]
    layers_per_block: Int
    cross_attention_dim: Int
    attention_head_dim: Int
    pooled_condition: Bool = False  # the mean condition token also joins the time embedding (every block sees it)

    def check(self) -> None:
        n = len(self.block_out_channels)
        _check(len(self.down_block_types) == n == len(self.up_block_types), "down_block_types",
               list(self.down_block_types), f"one block type per entry of block_out_channels ({n})")
        _check(n >= 1 and all(c >= 1 for c in self.block_out_channels), "block_out_channels",
               list(self.block_out_channels), "one or more channel counts, each at least 1")
        _check(self.resolution >= 2 ** (n - 1) and self.resolution % (2 ** (n - 1)) == 0, "resolution",
               self.resolution, f"a positive multiple of {2 ** (n - 1)}")
        for key in ("layers_per_block", "cross_attention_dim"):
            _check(getattr(self, key) >= 1, key, getattr(self, key), "at least 1")
        w = self.attention_head_dim
        _check(w > 0 and w % 8 == 0, "attention_head_dim", w,
               "a head width that is a multiple of 8 (fused attention kernels want it)")
        for i, c in enumerate(self.block_out_channels):
            if i in self.attention_blocks():
                _check(c % w == 0, "attention_head_dim", w,
                       f"a divisor of block_out_channels[{i}] = {c} (heads of equal width)")

    def attention_blocks(self) -> set[int]:
        """Indices of the blocks that attend: cross-attention down/up blocks and the mid block (last)."""
        n = len(self.block_out_channels)
        return ({i for i, t in enumerate(self.down_block_types) if "CrossAttn" in t}
                | {n - 1 - i for i, t in enumerate(self.up_block_types) if "CrossAttn" in t} | {n - 1})

    def heads_per_block(self) -> tuple[int, ...]:
        """Attention heads of each block: channels ÷ head width (`attention_head_dim` is a width here)."""
        return tuple(max(1, c // self.attention_head_dim) for c in self.block_out_channels)


# --------------------------------------------------------------------------- profiles
BeamValue = Union[Bool, Int, Float, Str]


@section
class RayConfig(_Section):
    address: Optional[Str]
    num_workers: Int
    use_gpu: Bool
    cpus_per_worker: Float
    gpus_per_worker: Float

    def check(self) -> None:
        _check(self.num_workers >= 1, "num_workers", self.num_workers, "at least 1")
        _check(self.cpus_per_worker > 0, "cpus_per_worker", self.cpus_per_worker, "above 0")
        _check(self.gpus_per_worker >= 0, "gpus_per_worker", self.gpus_per_worker, "at least 0")


@section
class Profile(_Section):
    description: Str
    beam: dict[str, BeamValue]
    ray: RayConfig
    model: Str
    # stage overrides, validated once merged over `stages:` (so errors name profiles.P.stages.…)
    stages: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = \
        dataclasses.field(default_factory=dict)

    def check(self) -> None:
        _check("runner" in self.beam, "beam.runner", None, "a Beam runner name")


@section
class Settings:
    """What one command runs with: the stages as the chosen profile sets them."""
    source: Str
    profile_name: Str
    profile: Profile
    stages: Stages
    models: dict[str, ModelConfig]

    @property
    def model(self) -> ModelConfig:
        return self.models[self.profile.model]

    def with_stage(self, name: str, **changes: Any) -> Settings:
        """A copy with some values of stage `name` changed, validated as loading validates them."""
        stage = dataclasses.replace(getattr(self.stages, name), **changes)
        return dataclasses.replace(self, stages=dataclasses.replace(self.stages, **{name: stage}))

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def dump(self, path: Path) -> None:
        """Write the resolved settings beside a run, so it can be reproduced."""
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
