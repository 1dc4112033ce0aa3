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
