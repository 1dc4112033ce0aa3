"""A small *trained* pose student for the accuracy gate (trained once per session, ~15 s).

Four classes from four different groups of the synthetic generator (so they differ from the
first frame and the student is confident at every ratio), exact keypoints, 240 clips."""

from __future__ import annotations

import pytest
import yaml

CLASSES = ["handshake", "point", "wave_one_hand", "sit_down"]
CONFIG = {
    "seed": 0,
    "data": {"sampling": {"mode": "stride", "stride": 2}, "keypoints": "keypoints"},
    "student": {"model": {"inputs": ["keypoints"], "pose": {"joints": 18, "people": 2, "center_joints": [8, 11],
                                                             "dim": 64},
                          "head": {"name": "lstm", "hidden": 64}},
                "epochs": 25, "batch_size": 16, "optimizer": {"lr": 0.003},
                "losses": {"classification": {"kind": "ce"}}},
}


@pytest.fixture(scope="session")
def trained_pose(tmp_path_factory):
    """{"data": dataset dir, "pt": checkpoint, "onnx": its verified fp32 export}."""
    from edgeact.data.synth import generate
    from edgeact.export import export_onnx
    from edgeact.train import load_config, train

    root = tmp_path_factory.mktemp("gate")
    data = generate(root / "data", 240, seed=11, size=112, classes=CLASSES, splits=(0.6, 0.1, 0.3),
                    frame_range=(24, 40), workers=1)
    config = root / "student.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    train(load_config(config), data, root / "run", quiet=True)
    onnx_path = export_onnx(root / "run" / "student.pt", root / "run" / "student.onnx", verify_steps=2).path
    return {"data": data, "pt": root / "run" / "student.pt", "onnx": onnx_path}
