"""Typed, validated configuration loaded from `pipelines.yaml`.

`pipelines.yaml` is the single source of parameter values: the dataclasses here say
which keys exist and what type each has, and hold no defaults for stage parameters, so
a value is never defined in two places. Loading checks every key: an unknown key, a
wrong type or a missing value is a `ConfigError` naming the file, the key path and the
bad value. A profile may override stage parameters; `--set key.path=value` flags
override both.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from semantica.errors import ConfigError

STAGE_NAMES = ("sample_web", "mine", "filter", "publish", "train", "evaluate")


# --------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class SampleWebConfig:
    seed: int
    num_pages: int
    num_domains: int
    num_topics: int
    num_warc_files: int
    min_content_images: int
    max_content_images: int
    image_size: int
    in_warc_fraction: float
    host: str
    port: int

    def validate(self, where: str) -> None:
        _check(self.num_topics >= 2, where, "num_topics", self.num_topics, "at least 2")
        _check(self.num_domains >= 3, where, "num_domains", self.num_domains,
               "at least 3 (the shared banner must span more domains than mine allows)")
        _check(self.num_pages >= 12 * self.num_domains // 2, where, "num_pages", self.num_pages,
               "at least 6 pages per domain (each domain's logo must repeat)")
        _check(2 <= self.min_content_images <= self.max_content_images <= 8, where,
               "min_content_images", self.min_content_images, "2 <= min <= max <= 8")
        _check(64 <= self.image_size <= 512, where, "image_size", self.image_size, "64..512")
        _check(0.0 <= self.in_warc_fraction <= 1.0, where, "in_warc_fraction",
               self.in_warc_fraction, "within [0, 1]")
        _check(1 <= self.num_warc_files <= 64, where, "num_warc_files", self.num_warc_files, "1..64")
        _check(0 < self.port < 65536, where, "port", self.port, "a TCP port")


@dataclass(frozen=True)
class PrefilterConfig:
    allowed_schemes: tuple[str, ...]
    blocked_extensions: tuple[str, ...]
    min_declared_side: int
    max_aspect_ratio: float
    min_images_per_page: int
    max_images_per_page: int


@dataclass(frozen=True)
class DownloadConfig:
    timeout_s: float
    retries: int
    max_bytes: int
    user_agent: str
    allow_private_network: bool
    allowed_hosts: tuple[str, ...]
    honour_noai: bool
    enabled: bool = True   # false: archive mode, only what the crawl holds (fetch:not_captured otherwise)


@dataclass(frozen=True)
class DecodeConfig:
    max_pixels: int
    min_side: int
    max_memory_mb: int

    def validate(self, where: str) -> None:
        _check(self.max_memory_mb >= 32, where, "max_memory_mb", self.max_memory_mb, "at least 32")


@dataclass(frozen=True)
class ParseConfig:
    max_tags: int
    max_depth: int
    main_content_max_tags: int

    def validate(self, where: str) -> None:
        _check(self.max_tags >= 1000, where, "max_tags", self.max_tags, "at least 1000")
        _check(self.max_depth >= 32, where, "max_depth", self.max_depth, "at least 32")


@dataclass(frozen=True)
class DedupConfig:
    page_hamming: int
    near_dup_hamming: int
    lsh_bands: int
    lsh_max_bucket: int
    max_pages_per_image: int
    max_domains_per_image: int

    def validate(self, where: str) -> None:
        _check(self.lsh_bands in (1, 2, 4, 8, 16, 32, 64), where, "lsh_bands", self.lsh_bands,
               "a divisor of 64")
        _check(self.lsh_max_bucket >= 2, where, "lsh_max_bucket", self.lsh_max_bucket, "at least 2")
        _check(self.near_dup_hamming < self.lsh_bands, where, "near_dup_hamming",
               self.near_dup_hamming,
               "below lsh_bands (pigeonhole: only then do all such pairs share a band)")


@dataclass(frozen=True)
class PairsConfig:
    min_pair_hamming: int
    max_pairs_per_page: int


@dataclass(frozen=True)
class MineConfig:
    seed: int
    reader: str
    commoncrawl_base_url: str
    main_content: bool
    max_html_bytes: int
    download_threads: int
    parse: ParseConfig
    prefilter: PrefilterConfig
    download: DownloadConfig
    decode: DecodeConfig
    dedup: DedupConfig
    pairs: PairsConfig

    def validate(self, where: str) -> None:
        _check(self.reader in ("fastwarc", "warcio"), where, "reader", self.reader,
               "'fastwarc' or 'warcio'")


@dataclass(frozen=True)
class FilterConfig:
    encoder: str
    batch_size: int
    low: float
    high: float
    sweep_lows: tuple[float, ...]
    sweep_highs: tuple[float, ...]

    def validate(self, where: str) -> None:
        _check(-1.0 <= self.low < self.high <= 1.0, where, "low", self.low,
               "-1 <= low < high <= 1")


@dataclass(frozen=True)
class PublishConfig:
    shard_rows: int
    webdataset: bool
    licence: str
    opt_out: tuple[str, ...]
    url_blocklist: Optional[str]
    phash_blocklist: Optional[str]
    phash_block_hamming: int
    safety_classifier: Optional[str]


@dataclass(frozen=True)
class TrainConfig:
    seed: int
    encoder: str
    max_steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    grad_clip: float
    ema_decay: float
    cond_dropout: float
    snr_gamma: float          # Min-SNR-γ loss weighting; 0: plain v-prediction MSE
    checkpoint_every: int
    log_every: int
    # the GPU fast path: each is off on CPU (local profile) and on in the GPU profiles
    channels_last: bool
    compile: bool
    tf32: bool
    fused_optimizer: bool
    ema_foreach: bool
    pin_memory: bool
    gradient_checkpointing: bool


@dataclass(frozen=True)
class EvaluateConfig:
    seed: int
    shots: tuple[int, ...]
    num_samples: int
    repeats: int
    steps: int
    scheduler: str
    guidance: float
    guidance_scales: tuple[float, ...]
    features: str
    inception_weights: str
    per_class: bool
    precision: str

    def validate(self, where: str) -> None:
        _check(self.precision in ("auto", "bf16", "fp32"), where, "precision", self.precision,
               "'auto' (bf16 on a GPU, fp32 on CPU), 'bf16' or 'fp32'")


@dataclass(frozen=True)
class Stages:
    sample_web: SampleWebConfig
    mine: MineConfig
    filter: FilterConfig
    publish: PublishConfig
    train: TrainConfig
    evaluate: EvaluateConfig


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelConfig:
    resolution: int
    block_out_channels: tuple[int, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: int
    cross_attention_dim: int
    attention_head_dim: int

    def validate(self, where: str) -> None:
        n = len(self.block_out_channels)
        _check(len(self.down_block_types) == n == len(self.up_block_types), where,
               "down_block_types", list(self.down_block_types),
               f"one block type per entry of block_out_channels ({n})")
        _check(self.resolution % (2 ** (n - 1)) == 0, where, "resolution", self.resolution,
               f"divisible by {2 ** (n - 1)}")
        w = self.attention_head_dim
        _check(w > 0 and w % 8 == 0, where, "attention_head_dim", w,
               "a head width that is a multiple of 8 (fused attention kernels want it)")
        for i, c in enumerate(self.block_out_channels):
            if i in self.attention_blocks():
                _check(c % w == 0, where, "attention_head_dim", w,
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
BeamValue = Union[bool, int, float, str]


@dataclass(frozen=True)
class RayConfig:
    address: Optional[str]
    num_workers: int
    use_gpu: bool
    cpus_per_worker: float
    gpus_per_worker: float


@dataclass(frozen=True)
class Profile:
    description: str
    beam: dict[str, BeamValue]
    ray: RayConfig
    model: str
    stages: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        _check("runner" in self.beam, where, "beam.runner", None, "a Beam runner name")


@dataclass(frozen=True)
class Settings:
    """What one command runs with: the stages as the chosen profile sets them."""
    source: str
    profile_name: str
    profile: Profile
    stages: Stages
    models: dict[str, ModelConfig]

    @property
    def model(self) -> ModelConfig:
        return self.models[self.profile.model]

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def dump(self, path: Path) -> None:
        """Write the resolved settings beside a run, so it can be reproduced."""
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- loading
def default_config_path() -> Path:
    """pipelines.yaml: $SEMANTICA_CONFIG, ./pipelines.yaml, the checkout's, or the installed copy."""
    if os.environ.get("SEMANTICA_CONFIG"):
        return Path(os.environ["SEMANTICA_CONFIG"])
    candidates = [Path.cwd() / "pipelines.yaml",
                  Path(__file__).resolve().parent.parent / "pipelines.yaml",
                  Path(sys.prefix) / "share" / "semantica" / "pipelines.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError("no pipelines.yaml found (looked in: " + ", ".join(map(str, candidates))
                      + "); pass --config PATH")


def load_settings(path: Optional[Path] = None, profile: str = "local",
                  overrides: typing.Sequence[str] = ()) -> Settings:
    """Load, override, validate. Every profile is validated, not only the chosen one."""
    path = Path(path) if path else default_config_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    # `--set stages.…` wins over the profile's own stage overrides too: applied after the merge
    stage_overrides = [o for o in overrides if o.partition("=")[0].strip().startswith("stages.")]
    for item in overrides:
        _apply_override(raw, item, path)
    _only_keys(raw, {"stages", "models", "profiles"}, str(path), "")
    for key in ("stages", "models", "profiles"):
        if key not in raw:
            raise ConfigError(f"{path}: {key}: missing (required)")

    where = str(path)
    models = _build(dict[str, ModelConfig], raw["models"], where, "models")
    profiles = _build(dict[str, Profile], raw["profiles"], where, "profiles")
    base_stages = _build(Stages, raw["stages"], where, "stages")
    del base_stages  # validated on its own so errors name `stages.…`, not a profile
    if profile not in profiles:
        raise ConfigError(f"{path}: profiles: no profile {profile!r} (have: {', '.join(profiles)})")
    chosen = None
    for name, prof in profiles.items():
        if prof.model not in models:
            raise ConfigError(f"{path}: profiles.{name}.model: {prof.model!r} is not one of "
                              f"models ({', '.join(models)})")
        merged = _merge(copy.deepcopy(raw["stages"]), prof.stages)
        if name == profile:
            for item in stage_overrides:
                _apply_override({"stages": merged}, item, path)
        # base stages passed above, so an error here comes from the profile's overrides
        stages = _build(Stages, merged, where, f"profiles.{name}.stages")
        if name == profile:
            chosen = stages
    return Settings(source=str(path), profile_name=profile, profile=profiles[profile],
                    stages=chosen, models=models)


def _apply_override(raw: dict, item: str, path: Path) -> None:
    """`a.b.c=value`, value parsed as a YAML scalar (so 3 is an int, true a bool)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    node = raw
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            if isinstance(node, dict) and p not in node and parts[0] == "profiles" and i >= 2:
                nxt = node.setdefault(p, {})  # a profile may override a stage key it did not set
            else:
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is not a section of {path}")
        node = nxt
    try:
        node[parts[-1]] = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def _check(ok: bool, where: str, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{where}.{key}: {value!r} is invalid: expected {expected}")


def _only_keys(data: dict, allowed: set, source: str, keypath: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        at = f"{keypath}." if keypath else ""
        raise ConfigError(f"{source}: {at}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _build(tp: Any, value: Any, source: str, keypath: str) -> Any:
    """Convert parsed YAML into `tp`, checking every key and type on the way."""
    origin = typing.get_origin(tp)
    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{source}: {keypath}: expected {expected}, got {value!r} "
                          f"({type(value).__name__})")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail(f"a mapping of {tp.__name__} fields")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        _only_keys(value, set(fields), source, keypath)
        kwargs = {}
        for name, f in fields.items():
            sub = f"{keypath}.{name}" if keypath else name
            if name not in value:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ConfigError(f"{source}: {sub}: missing (required, {_type_name(hints[name])})")
                continue
            kwargs[name] = _build(hints[name], value[name], source, sub)
        obj = tp(**kwargs)
        if hasattr(obj, "validate"):
            obj.validate(f"{source}: {keypath}")
        return obj
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:  # scalars only: try each member in order
            if arg is type(None):
                continue
            try:
                return _build(arg, value, source, keypath)
            except ConfigError:
                pass
        fail(" or ".join(_type_name(a) for a in args))
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            fail("a mapping")
        return {str(k): _build(vt, v, source, f"{keypath}.{k}") for k, v in value.items()}
    if origin is tuple:
        (item_t, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            fail(f"a list of {_type_name(item_t)}")
        return tuple(_build(item_t, v, source, f"{keypath}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    raise TypeError(f"config type {tp!r} not supported")  # a bug in this module, not user error


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
