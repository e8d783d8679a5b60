"""pipelines.yaml loads into typed settings; every mistake names file, key path and value."""
from __future__ import annotations

import dataclasses
import shutil

import pytest
import yaml

from semantica.config import ModelConfig, load_settings
from semantica.errors import ConfigError

from helpers import REPO

YAML = REPO / "pipelines.yaml"


def test_every_profile_loads():
    for profile in ("local", "portable", "dataflow", "spark", "flink"):
        s = load_settings(YAML, profile)
        assert s.profile.beam["runner"]
        assert isinstance(s.model, ModelConfig)
    assert load_settings(YAML, "local").profile.beam["runner"] == "DirectRunner"
    assert load_settings(YAML, "dataflow").stages.train.encoder == "facebook/dinov2-base"  # profile override
    assert load_settings(YAML, "local").stages.filter.high == 0.995  # local profile: the tiny encoder


def test_set_overrides_yaml():
    s = load_settings(YAML, "local", ["stages.mine.dedup.page_hamming=3", "stages.evaluate.shots=[1, 2]"])
    assert s.stages.mine.dedup.page_hamming == 3
    assert s.stages.evaluate.shots == (1, 2)   # over the local profile's own shots
    assert load_settings(YAML, "local", ["stages.filter.high=0.9"]).stages.filter.high == 0.9


@pytest.mark.parametrize("override, message", [
    # a value given on the command line is named as given there, not as the file's
    ("stages.mine.seed=abc", "--set stages.mine.seed=abc: stages.mine.seed: expected an integer, got 'abc'"),
    ("stages.mine.dedup.bands=8", "stages.mine.dedup.bands: unknown key"),
    ("stages.mine.download.allow_private_network=1",
     "stages.mine.download.allow_private_network: expected true or false, got 1"),
    ("stages.evaluate.shots=[1, x]", "stages.evaluate.shots[1]: expected an integer, got 'x'"),
    ("stages.filter.low=0.99", "stages.filter.low: 0.99 is invalid"),
    ("stages.train.compile_mode=fastest", "stages.train.compile_mode: 'fastest' is invalid"),
    ("stages.train.lr_schedule=step", "stages.train.lr_schedule: 'step' is invalid"),
    ("stages.evaluate.scheduler=euler", "stages.evaluate.scheduler: 'euler' is invalid"),
    ("stages.evaluate.features=clip", "stages.evaluate.features: 'clip' is invalid"),
    ("stages.mine.dedup.near_dup_hamming=9", "stages.mine.dedup.near_dup_hamming: 9 is invalid"),
    ("stages.mine.dedup.lsh_max_bucket=1", "stages.mine.dedup.lsh_max_bucket: 1 is invalid"),
    ("profiles.local.model=huge", "profiles.local.model: 'huge' is not one of models"),
    ("profiles.spark.stages.mine.reader=lxml",
     "--set profiles.spark.stages.mine.reader=lxml: profiles.spark.stages.mine.reader: 'lxml' is invalid"),
    ("profiles.local.stages.train.max_steps=0", "profiles.local.stages.train.max_steps: 0 is invalid"),
    # ranges: each would fail later inside a job, or give wrong output
    ("stages.mine.download_threads=0", "stages.mine.download_threads: 0 is invalid: expected at least 1"),
    ("stages.mine.pairs.max_pairs_per_page=-1", "stages.mine.pairs.max_pairs_per_page: -1 is invalid"),
    ("stages.mine.download.timeout_s=-1.0", "stages.mine.download.timeout_s: -1.0 is invalid"),
    ("stages.mine.prefilter.min_images_per_page=70", "stages.mine.prefilter.max_images_per_page: 64 is invalid"),
    ("stages.mine.dedup.page_hamming=65", "stages.mine.dedup.page_hamming: 65 is invalid"),
    ("stages.filter.high=2.0", "stages.filter.high: 2.0 is invalid"),
    # a check of two keys names the one given on the command line
    ("stages.filter.high=0.2", "--set stages.filter.high=0.2: stages.filter.low: 0.3 is invalid"),
    ("profiles.local.ray.num_workers=0", "profiles.local.ray.num_workers: 0 is invalid"),
    ("stages.filter.batch_size=0", "stages.filter.batch_size: 0 is invalid"),
    ("stages.publish.shard_rows=0", "stages.publish.shard_rows: 0 is invalid"),
    ("stages.train.batch_size=0", "stages.train.batch_size: 0 is invalid"),
    ("stages.train.learning_rate=-1.0", "stages.train.learning_rate: -1.0 is invalid"),
    ("stages.train.ema_decay=1.0", "stages.train.ema_decay: 1.0 is invalid"),
    ("stages.evaluate.steps=0", "stages.evaluate.steps: 0 is invalid"),
    ("stages.evaluate.guidance_scales=[0.0, -1.0]", "stages.evaluate.guidance_scales: [0.0, -1.0] is invalid"),
    ("stages.filter.sweep_lows=[]", "stages.filter.sweep_lows: [] is invalid: expected one or more values"),
    ("models.tiny.resolution=0", "models.tiny.resolution: 0 is invalid: expected a positive multiple of 2"),
    ("models.tiny.layers_per_block=0", "models.tiny.layers_per_block: 0 is invalid"),
    ("nosuchsection.x=1", "nosuchsection is not a section"),
    ("stages.mine.seed", "expected KEY.PATH=VALUE"),
])
def test_bad_values_name_key_and_value(override, message):
    with pytest.raises(ConfigError) as e:
        load_settings(YAML, "local", [override])
    assert message in str(e.value)


def test_missing_value_and_unknown_profile(tmp_path):
    raw = yaml.safe_load(YAML.read_text())
    del raw["stages"]["train"]["batch_size"]
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"p.yaml: stages.train.batch_size: missing \(required, int\)"):
        load_settings(p)
    with pytest.raises(ConfigError, match="no profile 'gpu'"):
        load_settings(YAML, "gpu")


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_settings(bad)
    top = tmp_path / "top.yaml"
    top.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_settings(top)
    for text in ("", "# only a comment\n", "---\n"):  # YAML reads each as null
        (tmp_path / "empty.yaml").write_text(text)
        with pytest.raises(ConfigError, match=r"empty.yaml: empty \(no settings in it\)"):
            load_settings(tmp_path / "empty.yaml")


def test_a_key_given_twice_is_an_error_but_a_merge_key_may_be_overridden(tmp_path):
    """Plain YAML keeps the last of two equal keys without a word: a second `train:` would silently drop
    the first's keys. Keys brought in by a `<<:` merge may still be overridden (pipelines.yaml does so)."""
    from semantica.config import _UniqueKeyLoader
    text = YAML.read_text()
    twice = tmp_path / "twice.yaml"
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("    max_steps:"))  # a base stages key
    twice.write_text("\n".join(lines[:at + 1] + [lines[at]] + lines[at + 1:]) + "\n")
    with pytest.raises(ConfigError, match=rf"twice.yaml: not valid YAML: duplicate key 'max_steps' "
                                          rf"\(the same key as at line {at + 1}\)"):
        load_settings(twice)
    assert yaml.load("a: &x {k: 1, j: 2}\nb: {<<: *x, k: 3}\nc: {<<: *x, k: 4}\n", Loader=_UniqueKeyLoader) == {
        "a": {"k": 1, "j": 2}, "b": {"k": 3, "j": 2}, "c": {"k": 4, "j": 2}}


def test_settings_written_beside_a_run_round_trip(tmp_path):
    """settings.json, read back as a pipelines.yaml of its own, gives the settings it was written from:
    every value, the `--set` ones included. (Its `stages` are already merged with the profile's own
    stage overrides and the --set values, so the profile comes back without its `stages`; re-applied,
    they would undo a --set of a key the profile also sets, e.g. dataflow's train.batch_size.)"""
    import json
    s = load_settings(YAML, "dataflow", ["stages.mine.seed=12345", "stages.train.batch_size=3",
                                         "stages.evaluate.shots=[2, 7]"])
    s.dump(tmp_path / "settings.json")
    d = json.loads((tmp_path / "settings.json").read_text())
    assert d["profile_name"] == "dataflow" and d["stages"]["mine"]["dedup"]["lsh_bands"] == 8
    assert (d["stages"]["mine"]["seed"], d["stages"]["train"]["batch_size"], d["stages"]["evaluate"]["shots"]) \
        == (12345, 3, [2, 7])
    again_yaml = tmp_path / "again.yaml"
    again_yaml.write_text(yaml.safe_dump({"stages": d["stages"], "models": d["models"],
                                          "profiles": {d["profile_name"]: {**d["profile"], "stages": {}}}}))
    again = load_settings(again_yaml, d["profile_name"])
    assert again.stages == s.stages and again.models == s.models and again.profile.ray == s.profile.ray
    assert json.loads(json.dumps(again.to_dict())) == {**d, "source": str(again_yaml),
                                                       "profile": {**d["profile"], "stages": {}}}


def test_default_path_prefers_env(tmp_path, monkeypatch):
    from semantica.config import default_config_path
    copy = tmp_path / "mine.yaml"
    shutil.copy(YAML, copy)
    monkeypatch.setenv("SEMANTICA_CONFIG", str(copy))
    assert default_config_path() == copy
    monkeypatch.delenv("SEMANTICA_CONFIG")
    monkeypatch.chdir(tmp_path)
    assert default_config_path().name == "pipelines.yaml"  # the checkout's copy


def test_a_replaced_section_is_validated_as_loading_validates_it():
    s = load_settings(YAML, "local")
    assert s.with_stage("evaluate", shots=[2], guidance=1).stages.evaluate.shots == (2,)  # YAML's list, an int
    with pytest.raises(ValueError, match="num_samples"):
        dataclasses.replace(s.stages.evaluate, num_samples=2)
    with pytest.raises(ValueError, match="valid integer"):
        s.with_stage("train", max_steps="10")
