"""The keypoint baseline, and the property it measures: early frames tell the group, not the class."""

from __future__ import annotations

import numpy as np
import pytest

from edgeact.data.baseline import RATIOS, evaluate, features, main, mirror
from edgeact.data.synth import generate
from edgeact.data.synth_clip import make_clip
from edgeact.errors import InputError


@pytest.fixture(scope="module")
def baseline_dataset(tmp_path_factory):
    """Half the clips in test, so accuracies are estimated from 72 clips, not a handful."""
    path = tmp_path_factory.mktemp("baseline") / "ds"
    return generate(path, 144, seed=0, size=32, frame_range=(24, 48), splits=(0.5, 0.0, 0.5), workers=2)


def test_features_ignore_where_and_how_big_the_figures_are():
    kp = make_clip(0, 1, "push", 64, (40, 40)).keypoints
    moved = kp.copy()
    seen = moved[..., 2] > 0
    moved[..., :2][seen] = moved[..., :2][seen] * 1.7 + np.array([5.0, -3.0])
    for ratio in (0.2, 1.0):
        np.testing.assert_allclose(features(kp, ratio), features(moved, ratio), atol=1e-4)
    assert not np.allclose(features(kp, 0.2), features(kp, 1.0))


def test_mirror_swaps_sides_and_is_its_own_inverse():
    kp = make_clip(0, 2, "wave_one_hand", 64, (40, 40)).keypoints
    twice = mirror(mirror(kp))
    seen = kp[..., 2] > 0
    np.testing.assert_array_equal(twice[..., :2][seen], kp[..., :2][seen])
    assert not np.allclose(features(mirror(kp), 1.0), features(kp, 1.0))


def test_groups_are_recognisable_early_and_classes_only_late(baseline_dataset):
    result = evaluate(baseline_dataset)
    assert result.ratios == RATIOS and len(result.accuracy) == 10
    early = np.mean(result.accuracy[:2])
    assert early < 0.45, result.table()  # ~1/3: within the group, a guess
    assert result.group_accuracy >= 0.85, result.table()  # ...but the group is known
    assert result.accuracy[-1] >= 0.85, result.table()  # the whole clip gives the class away
    assert result.accuracy[-1] > early + 0.4


def test_command_line_prints_the_table(small_dataset, capsys):
    main([str(small_dataset), "--view", "noisy_keypoints"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ratio", "accuracy"]
    assert len([line for line in out.splitlines() if line.strip().startswith(("0.", "1.0"))]) == 10
    assert "of errors stay within the true group" in out


def test_unknown_view(baseline_dataset):
    with pytest.raises(InputError, match=r"^view must be one of keypoints, noisy_keypoints; got 'frames'\.$"):
        evaluate(baseline_dataset, view="frames")
