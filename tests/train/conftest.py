"""A tiny generated dataset and tiny configs shared by the training tests (generated once)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from edgeact.data.synth import generate
from edgeact.train.cli import register

POSE = {"joints": 18, "people": 2, "center_joints": [8, 11], "joint_channels": [4], "relation_channels": [4],
        "dim": 8}

# pose only, every stage and KD term that needs no frames; dropout so the RNG state matters on resume
TINY_POSE = {
    "seed": 3,
    "data": {"sampling": {"mode": "stride", "stride": 2}},
    "teacher": {"model": {"inputs": ["keypoints"], "pose": POSE, "head": {"name": "gru", "hidden": 4, "bidirectional": True}},
                "epochs": 2, "batch_size": 4, "optimizer": {"lr": 0.01}},
    "student": {"model": {"inputs": ["keypoints"], "pose": POSE, "head": {"name": "gru", "hidden": 8, "dropout": 0.3}},
                "epochs": 2, "batch_size": 4, "optimizer": {"lr": 0.01},
                "losses": {"logit_kd": {"weight": 0.5, "temperature": 2.0}, "self_kd": {"weight": 0.5},
                           "kd_reduction": "sum"}},
}

# frames + keypoints, M1's two stages; teacher features (2 x 8) differ from the student's (8): projection
TINY_FUSION = {
    "seed": 1,
    "data": {"sampling": {"mode": "stride", "stride": 2}},
    "teacher": {"model": {"inputs": ["frames", "keypoints"], "pose": POSE,
                          "encoder": {"name": "tsm_mobilenet_v2", "width": 0.1, "size": 32, "shift": "bidirectional"},
                          "head": {"name": "two_stage", "hidden": 8, "bidirectional": True}},
                "epochs": 1, "batch_size": 8},
    "student": {"model": {"inputs": ["frames", "keypoints"], "pose": POSE,
                          "encoder": {"name": "tsm_mobilenet_v2", "width": 0.1, "size": 32},
                          "head": {"name": "two_stage", "hidden": 8}},
                "epochs": 1, "batch_size": 8,
                "losses": {"classification": {"kind": "bce"}, "feature_kd": {"weight": 1.0}}},
}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """24 clips of 16-24 frames at 64x64."""
    return generate(tmp_path_factory.mktemp("train_data") / "tiny", 24, seed=5, size=64, frame_range=(16, 24),
                    workers=1)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def edgeact(*argv: str) -> int:
    """Run `edgeact train|eval ...` through the registered subcommands."""
    parser = argparse.ArgumentParser(prog="edgeact")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="session")
def fusion_run(tiny_data, tmp_path_factory) -> Path:
    """A finished two-stage (frames + keypoints) run: teacher, student with feature KD."""
    root = tmp_path_factory.mktemp("fusion")
    config = write_config(root / "fusion.yaml", TINY_FUSION)
    assert edgeact("train", "--config", config, "--data", tiny_data, "--out", root / "run", "--quiet",
                   "--threads", "1") == 0
    return root / "run"
