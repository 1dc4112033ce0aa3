"""`edgeact train --data FILE.npz#foldK` trains a pose model on a skeleton file (wiring only:
one epoch on the tiny fixture), and `edgeact eval` reads the same fold's test split."""

from __future__ import annotations

import json

import pytest
import yaml

from edgeact.cli import main
from tests.data.skeleton_files import write_skeleton_file

pytest.importorskip("torch")

POSE = {"joints": 3, "coords": 3, "people": 2, "joint_channels": [4], "relation_channels": [4], "dim": 8}
CONFIG = {
    "seed": 0,
    "data": {"keypoints": "keypoints", "sampling": {"mode": "stride", "stride": 1}, "augment": {"enabled": False}},
    "student": {"model": {"inputs": ["keypoints"], "pose": POSE, "head": {"name": "gru", "hidden": 8}},
                "epochs": 1, "batch_size": 8},
}


def test_train_and_eval_on_one_fold_of_a_skeleton_file(tmp_path):
    data = write_skeleton_file(tmp_path / "tiny.npz", people=2, coords=3, folds=4)
    config = tmp_path / "pose.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data", f"{data}#fold1", "--out", str(run), "--quiet",
                 "--threads", "1"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["split"], metrics["num_clips"]) == ("test", 6)  # fold1 tests sequences 1, 5, ..., 21
    assert metrics["train"]["student"]["epochs"] == 1
    assert main(["eval", "--model", str(run / "student.pt"), "--data", f"{data}#fold1", "--split", "test",
                 "--keypoints", "keypoints", "--out", str(tmp_path / "eval.json"), "--quiet"]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["data"] == f"{data}#fold1" and evaluated["num_clips"] == 6
    assert list(evaluated["per_class"]) == ["wave", "kick", "hug"]
