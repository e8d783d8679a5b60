"""Typed, validated configuration loaded from `pipelines.yaml`.

`pipelines.yaml` is the single source of parameter values: the pydantic dataclasses of
`semantica.config_schema` (re-exported here) say which keys exist, what type and range each
has, and hold no defaults for stage parameters, so a value is never defined in two places.
Loading checks every key: an unknown key, a wrong type, a value out of range or a missing
value is a one-line `ConfigError` naming the file, the key path and the bad value. A profile
may override stage parameters; `--set key.path=value` overrides (the CLI turns its shorthand
flags into them too) override both.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import TypeAdapter, ValidationError

from semantica.config_schema import (STAGE_NAMES, BeamValue, DecodeConfig, DedupConfig, DownloadConfig,
                                     EvaluateConfig, FilterConfig, MineConfig, ModelConfig, PairsConfig,
                                     ParseConfig, PrefilterConfig, Profile, PublishConfig, RayConfig,
                                     SampleWebConfig, Settings, Stages, TrainConfig, _Invalid, section)
from semantica.errors import ConfigError

__all__ = ["STAGE_NAMES", "BeamValue", "DecodeConfig", "DedupConfig", "DownloadConfig", "EvaluateConfig",
           "FilterConfig", "MineConfig", "ModelConfig", "PairsConfig", "ParseConfig", "PrefilterConfig", "Profile",
           "PublishConfig", "RayConfig", "SampleWebConfig", "Settings", "Stages", "TrainConfig",
           "default_config_path", "load_settings"]


@section
class _Document:
    """pipelines.yaml as written: the base stages, the models and the profiles."""
    stages: Stages
    models: dict[str, ModelConfig]
    profiles: dict[str, Profile]


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
                  overrides: typing.Sequence[str] = (), labels: Optional[dict] = None) -> Settings:
    """Load, override, validate. Every profile is validated, not only the chosen one. `labels`: how the
    user wrote an override that came from a command's flag ({override: "--steps 0"}), for its errors."""
    path = Path(path) if path else default_config_path()
    raw = _read(path)
    # `--set stages.…` wins over the profile's own stage overrides too: applied after the merge
    stage_overrides = [o for o in overrides if o.partition("=")[0].strip().startswith("stages.")]
    for item in overrides:
        _apply_override(raw, item, path)
    # an error in a value given on the command line names it as given there
    given = {o.partition("=")[0].strip(): (labels or {}).get(o, f"--set {o}") for o in overrides}
    doc = _validate(_Document, raw, path, given=given)  # the base stages alone, so their errors name `stages.…`
    if profile not in doc.profiles:
        raise ConfigError(f"{path}: profiles: no profile {profile!r} (have: {', '.join(doc.profiles)})")
    chosen = None
    for name, prof in doc.profiles.items():
        if prof.model not in doc.models:
            raise ConfigError(f"{path}: profiles.{name}.model: {prof.model!r} is not one of "
                              f"models ({', '.join(doc.models)})")
        merged = _merge(copy.deepcopy(raw["stages"]), copy.deepcopy(prof.stages))
        if name == profile:
            for item in stage_overrides:
                _apply_override({"stages": merged}, item, path)
        # base stages passed above, so an error here comes from the profile's overrides
        # `stages.…` overrides apply to the chosen profile only; `profiles.NAME.…` ones to theirs
        stages = _validate(Stages, merged, path, ("profiles", name, "stages"),
                           given if name == profile else {k: v for k, v in given.items() if k.startswith("profiles.")})
        if name == profile:
            chosen = stages
    return Settings(source=str(path), profile_name=profile, profile=doc.profiles[profile],
                    stages=chosen, models=doc.models)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping: plain YAML keeps the last silently,
    so a second `train:` section would drop the first one's keys without a word. Keys that a `<<:`
    merge brings in may still be overridden, as YAML intends."""

    def __init__(self, stream):
        super().__init__(stream)
        self._checked: set[int] = set()  # an anchored mapping is flattened in place when first merged

    def flatten_mapping(self, node):
        # checked before the node's first flattening: that merges a `<<:` source's keys into it, in place
        if id(node) not in self._checked:
            self._checked.add(id(node))
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:  # an unhashable key: SafeLoader's own error names it
                    continue
                if seen is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {getattr(key_node, 'value', key)!r} (the same key as at "
                        f"line {seen + 1})", key_node.start_mark)
                first[key] = key_node.start_mark.line
        super().flatten_mapping(node)


def _read(path: Path) -> dict:
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if raw is None:
        raise ConfigError(f"{path}: empty (no settings in it): expected the mapping of stages, models and profiles "
                          f"that pipelines.yaml holds")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


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
        node[parts[-1]] = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


# --------------------------------------------------------------------------- errors
@functools.cache
def _adapter(tp: type) -> TypeAdapter:
    return TypeAdapter(tp)


def _validate(tp: type, value: Any, source: Path, prefix: tuple = (), given: Optional[dict] = None) -> Any:
    """`value` as a `tp`; pydantic's first error as one line: file (or the `--set` that gave the value, from
    `given`: {key path: override}), key path, value, what was expected."""
    try:
        return _adapter(tp).validate_python(value)
    except ValidationError as e:
        err = e.errors()[0]
        keys, field_tp, parent = _walk(tp, err["loc"])
        path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in prefix + keys)[1:]
        got = err.get("input")
        error = (err.get("ctx") or {}).get("error")
        key = f"{path}.{error.key}" if isinstance(error, _Invalid) else path
        # a profile's stage key is set as `stages.…` on the command line too (see load_settings)
        short = "stages." + key.split(".stages.", 1)[1] if key.startswith("profiles.") and ".stages." in key else key
        given = given or {}
        item = next((given[k] for k in (key, short) if k in given), None)
        if item is None and isinstance(error, _Invalid):  # a check of two keys: the one the user gave
            item = next((v for k, v in given.items() if k.startswith((f"{path}.", f"{short.rsplit('.', 1)[0]}."))),
                        None)
        where = f"{item}: {path}" if item else f"{source}: {path}"
        if isinstance(error, _Invalid):
            msg = f"{where}.{error.key}: {error.value!r} is invalid: expected {error.expected}"
        elif err["type"] == "missing":
            msg = f"{where}: missing (required, {_type_name(field_tp)})"
        elif err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            allowed = ", ".join(sorted(f.name for f in dataclasses.fields(parent)))
            msg = f"{where}: unknown key (allowed: {allowed})"
        else:
            msg = f"{where}: expected {_expected(field_tp)}, got {got!r} ({type(got).__name__})"
        raise ConfigError(msg) from None


def _walk(tp: Any, loc: tuple) -> tuple[tuple, Any, Any]:
    """pydantic's error location → (the keys in the YAML, the declared type there, its parent's type)."""
    keys, parent = [], None
    for part in loc:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if dataclasses.is_dataclass(tp) and isinstance(part, str):
            parent, tp = tp, typing.get_type_hints(tp).get(part, Any)
        elif origin is dict:
            parent, tp = tp, args[1]
        elif origin is tuple and isinstance(part, int):
            parent, tp = tp, args[0]
        else:  # a union member's tag: the union is what was expected
            break
        keys.append(part)
    return tuple(keys), tp, parent


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _expected(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    if origin is dict:
        return "a mapping"
    if origin is tuple:
        return f"a list of {_type_name(args[0])}"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    return _EXPECTED.get(tp, _type_name(tp))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
