"""Training configs: --set overrides, exact error sentences, every shipped config builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeact.errors import ConfigError
from edgeact.models import build_model
from edgeact.train.config import TrainConfig, apply_overrides, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
MINIMAL = {"student": {"model": {"inputs": ["keypoints"], "head": {"name": "lstm", "hidden": 8}}}}


def test_set_parses_values_as_yaml():
    data = apply_overrides(MINIMAL, ["student.epochs=3", "student.optimizer.lr=1e-3", "data.augment.enabled=false",
                                     "data.augment.keypoints.scale=[0.8, 1.2]", "student.model.head.hidden=32",
                                     "teacher=null", "seed= 7"])
    cfg = TrainConfig.from_dict(data)
    assert cfg.student.epochs == 3
    assert cfg.student.optimizer.lr == 1e-3  # PyYAML reads 1e-3 as a string; number fields accept it
    assert cfg.data.augment.enabled is False
    assert cfg.data.augment.keypoints.scale == (0.8, 1.2)
    assert cfg.student.model["head"] == {"name": "lstm", "hidden": 32}
    assert cfg.teacher is None and cfg.seed == 7
    assert MINIMAL["student"]["model"]["head"]["hidden"] == 8  # the input is not modified


def test_set_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError) as err:
        apply_overrides(MINIMAL, ["student.optimiser.lr=0.1"])
    assert str(err.value) == ("--set student.optimiser.lr=0.1: unknown key 'optimiser' in student. Did you mean "
                              "'optimizer'? Valid keys: model, epochs, batch_size, optimizer, losses, select, val_every, "
                              "pretrained, frame_warmup.")
    with pytest.raises(ConfigError, match=r"unknown key 'sed' in the top level\. Did you mean 'seed'\?"):
        apply_overrides(MINIMAL, ["sed=1"])


@pytest.mark.parametrize("item, message", [
    ("student.epochs", "--set takes KEY=VALUE (e.g. student.epochs=3), got 'student.epochs'."),
    ("=3", "--set takes KEY=VALUE (e.g. student.epochs=3), got '=3'."),
    ("seed.x=1", "--set seed.x=1: 'seed' is a value, not a section."),
])
def test_set_malformed(item, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(MINIMAL, [item])
    assert str(err.value) == message


def test_model_keys_are_checked_by_build_model_with_the_stage_prefix():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(apply_overrides(MINIMAL, ["student.model.head.hiden=3"]))
    assert str(err.value).startswith("student.model: Unknown key 'hiden' in model config section 'head'. "
                                     "Did you mean 'hidden'?")


@pytest.mark.parametrize("override, message", [
    ("student.epochs=three", "Config 'student.epochs' must be an integer, got str 'three'."),
    ("student.epochs=0", "Config 'student.epochs' must be >= 1, got 0."),
    ("student.losses.classification.kind=ce2",
     "Unknown value 'ce2' for 'student.losses.classification.kind'. Did you mean 'ce'? Valid choices: ce, bce."),
    ("student.losses.logit_kd.weight=0.5",
     "student.losses use a teacher (feature_kd or logit_kd weight > 0) but the config has no 'teacher' section; "
     "add one or set those weights to 0."),
    ("data.unlabeled_fraction=0.99", "Config 'data.unlabeled_fraction' must be between 0.0 and 0.95, got 0.99."),
])
def test_invalid_values(override, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(apply_overrides(MINIMAL, [override]))
    assert str(err.value) == message


def test_unknown_key_in_a_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("student:\n  model: {inputs: [keypoints], head: {name: gru}}\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith("Unknown key 'epoch' in section 'student'. Did you mean 'epochs'?")
    with pytest.raises(ConfigError, match="Cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_teacher_may_not_distill():
    data = apply_overrides(MINIMAL, ["teacher.model={inputs: [keypoints], head: {name: gru}}",
                                     "teacher.losses.self_kd.weight=1"])
    with pytest.raises(ConfigError, match="The teacher learns from labels only"):
        TrainConfig.from_dict(data)


def test_round_trip_through_to_dict():
    cfg = load_config(CONFIGS[0])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_shipped_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"synth_pose", "synth_rgb", "synth_fusion", "synth_gru_selfkd"} <= names
    assert len(names) >= 7  # plus the real-dataset configs


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_parses_and_builds_its_models(path):
    cfg = load_config(path)
    student = build_model({"num_classes": 12, **cfg.student.model})
    assert student.is_streamable, f"{path.name}: the student must stream"
    if cfg.teacher is not None:
        teacher = build_model({"num_classes": 12, **cfg.teacher.model})
        assert teacher.input_spec == student.input_spec
    if path.stem.startswith("synth_"):
        assert cfg.data.sampling.mode == "stride", "synthetic configs deploy: stride sampling"
