"""The team's real skeleton sets (../shared/datasets, see its README) open as edgeact skeleton
files with the README's counts and protocols. Skipped where the directory is absent, as it is
outside the team; nothing from it is copied into the repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeact.data import open_dataset

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the team's real skeleton sets) is absent")


# file: sequences, classes, (people, joints, coords), recorded visibility, {split: sequences} of the protocol
EXPECTED = {
    "nwucla.npz": (1484, 10, (1, 20, 3), False, {"train": 1020, "test": 464}),
    "penn_action.npz": (2326, 15, (1, 13, 2), True, {"train": 1258, "test": 1068}),
    "sbu_interaction.npz": (282, 8, (2, 15, 3), False,
                            {f"fold{k}:test": n for k, n in enumerate([55, 52, 56, 54, 65])}),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_real_skeleton_sets_match_their_readme(name):
    sequences, classes, shape, visibility, protocol = EXPECTED[name]
    ds = open_dataset(SHARED / name)
    assert len(ds.classes) == classes and len(ds.labels) == sequences
    assert (ds.people, len(ds.joint_names), ds.coords) == shape and ds.recorded_visibility == visibility
    for split, count in protocol.items():
        if split == "train":  # val is carved from the protocol's train
            assert len(ds.split("train")) + len(ds.split("val")) == count
        else:
            assert len(ds.split(split)) == count
    if ds.folds:  # every sequence is tested in exactly one fold
        assert ds.folds == tuple(f"fold{k}" for k in range(5))
        assert sum(protocol.values()) == sequences
    clip = ds.split(f"{ds.folds[0]}:train" if ds.folds else "train")[0]
    kp = clip.keypoints
    assert kp.dtype == np.float32 and kp.shape == (clip.num_frames, shape[0], shape[1], shape[2] + 1)
    assert np.isfinite(kp[kp[..., -1] > 0]).all()


CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REAL_CONFIGS = {"nwucla.yaml": "nwucla.npz", "penn_action.yaml": "penn_action.npz", "sbu.yaml": "sbu_interaction.npz",
                "sbu_kd.yaml": "sbu_interaction.npz"}


def _side_free(name: str) -> str:
    """A joint name with its side taken out: l_hip, hip_left -> hip."""
    for prefix in ("l_", "r_"):
        if name.startswith(prefix):
            return name[2:]
    for suffix in ("_left", "_right"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _side(name: str) -> str | None:
    if name.startswith("l_") or name.endswith("_left"):
        return "left"
    if name.startswith("r_") or name.endswith("_right"):
        return "right"
    return None


@pytest.mark.parametrize("config", REAL_CONFIGS)
def test_real_dataset_configs_describe_their_skeletons(config):
    """The shipped recipes' joint indices (mirror pairs, parents, centre, align) mean what their
    comments say on the files they train on: a mirror pair is one joint's left and right, every
    side joint is in a pair, a bone joins joints of the same side or the midline."""
    from edgeact.train.config import load_config

    cfg = load_config(CONFIGS / config)
    ds = open_dataset(SHARED / REAL_CONFIGS[config])
    pose = cfg.student.model["pose"]
    names = ds.joint_names
    assert (pose["people"], pose["joints"], pose["coords"]) == (ds.people, len(names), ds.coords)
    assert cfg.student.model["num_classes"] == len(ds.classes)

    pairs = cfg.data.augment.keypoints.mirror_pairs
    for a, b in pairs:
        assert _side_free(names[a]) == _side_free(names[b]), (names[a], names[b])
        assert {_side(names[a]), _side(names[b])} == {"left", "right"}, (names[a], names[b])
    paired = {j for pair in pairs for j in pair}
    assert paired == {j for j, n in enumerate(names) if _side(n)}, "every side joint is mirrored"

    parents = pose["parents"]
    assert len(parents) == len(names)
    for j, p in enumerate(parents):
        sides = {_side(names[j]), _side(names[p])} - {None}
        assert len(sides) <= 1, f"bone {names[p]} -> {names[j]} crosses sides"
    for j in pose["center_joints"]:
        assert _side(names[j]) is None or {_side(names[i]) for i in pose["center_joints"]} == {"left", "right"}
    if pose.get("align"):
        a, b = pose["align"]
        assert _side_free(names[a]) == _side_free(names[b]) and _side(names[a]) != _side(names[b])
