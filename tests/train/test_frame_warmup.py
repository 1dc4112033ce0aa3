"""The frame warm-up: per-frame classification of the RGB encoder before the sequence stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeact.checkpoint import load_checkpoint
from edgeact.data import open_dataset
from edgeact.data.clip_store import ClipStore
from edgeact.errors import ConfigError
from edgeact.train import load_config, train
from edgeact.train.config import FrameWarmup
from edgeact.train.frame_warmup import frame_picks

from .conftest import TINY_POSE, edgeact, write_config

RGB_STUDENT = {
    "seed": 2,
    "data": {"sampling": {"mode": "stride", "stride": 3}},
    "student": {"model": {"inputs": ["frames"], "encoder": {"name": "tsm_mobilenet_v2", "width": 0.1, "size": 32},
                          "head": {"name": "lstm", "hidden": 8}},
                "epochs": 1, "batch_size": 8},
}


def _with_warmup(epochs: int) -> dict:
    return {**RGB_STUDENT, "student": {**RGB_STUDENT["student"], "frame_warmup": {"epochs": epochs, "batch_size": 16}}}


def test_frames_are_picked_from_the_late_part_of_each_clip(tiny_data):
    store = ClipStore(open_dataset(tiny_data).split("train"))
    clips = np.arange(0, len(store), 2)
    cfg = FrameWarmup(epochs=1, frames_per_clip=5, from_ratio=0.6)
    picks = frame_picks(store, clips, cfg, np.random.default_rng(0))
    assert picks.shape == (5 * len(clips), 2)
    assert sorted(set(picks[:, 0].tolist())) == clips.tolist()
    n = store.num_frames[picks[:, 0]]
    assert np.all(picks[:, 1] >= np.floor(0.6 * n)) and np.all(picks[:, 1] < n)
    again = frame_picks(store, clips, cfg, np.random.default_rng(0))
    np.testing.assert_array_equal(picks, again)  # reproducible from the seed


def test_warmup_trains_the_encoder_and_is_reported(tiny_data, tmp_path):
    plain = train(load_config(write_config(tmp_path / "plain.yaml", RGB_STUDENT)), tiny_data, tmp_path / "plain",
                  quiet=True)
    warmed = train(load_config(write_config(tmp_path / "warm.yaml", _with_warmup(2))), tiny_data, tmp_path / "warm",
                   quiet=True)
    rows = warmed["train"]["student"]["frame_warmup"]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0.0 <= r["train_accuracy"] <= 1.0 and 0.0 <= r["val_accuracy"] <= 1.0 and r["loss"] > 0
               for r in rows)
    # the warm-up's time is part of the stage's training time
    assert warmed["train"]["seconds"]["student"] > rows[-1]["seconds"]
    assert "frame_warmup" not in plain["train"]["student"]
    log = (tmp_path / "warm" / "train.log").read_text()
    assert "student frame warm-up 2/2: loss=" in log
    # same seed and data: only the warm-up differs, and it moved the encoder
    a, _ = load_checkpoint(tmp_path / "plain" / "student.pt")
    b, _ = load_checkpoint(tmp_path / "warm" / "student.pt")
    assert not torch.equal(a.rgb.stem.conv.weight, b.rgb.stem.conv.weight)
    assert a.head.classifier.weight.shape == b.head.classifier.weight.shape  # the warm-up's classifier is gone
    assert json.loads((tmp_path / "warm" / "metrics.json").read_text())["train"]["student"]["frame_warmup"] == rows


def test_warmup_is_not_repeated_on_resume(tiny_data, tmp_path):
    config = _with_warmup(1)
    config["student"] = {**config["student"], "epochs": 2}
    cfg = load_config(write_config(tmp_path / "warm.yaml", config))
    straight = train(cfg, tiny_data, tmp_path / "straight", quiet=True)
    assert train(cfg, tiny_data, tmp_path / "resumed", quiet=True, stop_after=1) is None
    assert edgeact("train", "--data", tiny_data, "--out", tmp_path / "resumed", "--resume", "--quiet") == 0
    log = (tmp_path / "resumed" / "train.log").read_text()
    assert log.count("frame warm-up 1/1") == 1 and "resuming student at epoch 2/2" in log
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert resumed["accuracy"] == straight["accuracy"]
    losses = [[r["loss"] for r in m["train"]["student"]["frame_warmup"]] for m in (resumed, straight)]
    assert losses[0] == losses[1]  # the first call's warm-up, kept in the run state


def test_warmup_needs_a_frame_encoder(tiny_data, tmp_path):
    config = {**TINY_POSE, "teacher": None,
              "student": {**TINY_POSE["student"], "losses": {}, "frame_warmup": {"epochs": 1}}}
    with pytest.raises(ConfigError, match=r"^student\.frame_warmup needs a frame encoder, but the student model "
                                          r"reads keypoints only; remove student\.frame_warmup\.$"):
        train(load_config(write_config(tmp_path / "pose.yaml", config)), tiny_data, tmp_path / "run", quiet=True)
