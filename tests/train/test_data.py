"""Augmentation, batching and exact offline forwards of padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeact.data.skeleton import J
from edgeact.errors import ConfigError
from edgeact.models import build_model
from edgeact.train.augment import ClipAugmenter
from edgeact.train.config import TrainConfig
from edgeact.train.data import BucketBatchSampler, choose_labeled, collate, forward_exact


def augment_config(**data):
    student = {"model": {"inputs": ["keypoints"], "head": {"name": "gru"}}}
    return TrainConfig.from_dict({"data": {"augment": data}, "student": student}).data.augment


def keypoints_clip(T: int = 3) -> np.ndarray:
    kp = np.zeros((T, 1, 18, 3), np.float32)
    kp[..., 0] = np.arange(18) * 2.0 + 10  # x grows with the joint index
    kp[..., 1] = 50.0
    kp[..., 2] = 1.0
    kp[:, :, J["l_ear"]] = 0.0  # a missing joint
    return kp


def test_keypoint_mirror_swaps_left_and_right():
    cfg = augment_config(keypoints={"mirror": 1.0, "scale": [1, 1], "translate": 0.0, "joint_dropout": 0.0})
    _, out = ClipAugmenter(cfg, frames=False, joints=18)(np.random.default_rng(0), None, keypoints_clip())
    kp = keypoints_clip()
    centre = kp[..., 0][kp[..., 2] > 0].mean()
    # the new right wrist is the old left wrist, mirrored about the centre
    assert out[0, 0, J["r_wrist"], 0] == pytest.approx(2 * centre - kp[0, 0, J["l_wrist"], 0])
    assert out[0, 0, J["r_ear"]].tolist() == [0.0, 0.0, 0.0]  # the missing l_ear became r_ear, still missing
    assert out[0, 0, J["l_ear"], 2] == 1.0


def test_joint_dropout_removes_whole_joints():
    cfg = augment_config(keypoints={"joint_dropout": 0.5, "mirror": 0.0})
    _, out = ClipAugmenter(cfg, frames=False, joints=18)(np.random.default_rng(1), None, keypoints_clip(20))
    dropped = out[..., 2] == 0
    assert 0.3 < dropped.mean() < 0.7
    assert np.all(out[dropped] == 0.0)


def test_a_3d_turn_is_about_the_vertical_axis_and_keeps_the_body():
    cfg = augment_config(keypoints={"rotate": 90.0, "scale": [1, 1], "translate": 0.0, "mirror": 0.0,
                                    "joint_dropout": 0.0, "vertical_axis": 1})
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.normal(size=(4, 1, 20, 3)).astype(np.float32), np.ones((4, 1, 20, 1), np.float32)], -1)
    _, out = ClipAugmenter(cfg, frames=False, joints=20)(np.random.default_rng(2), None, kp)
    np.testing.assert_allclose(out[..., 1], kp[..., 1], atol=1e-5)  # heights stay
    centre = kp[..., :3].reshape(-1, 3).mean(0)
    radius = lambda a: np.hypot(a[..., 0] - centre[0], a[..., 2] - centre[2])  # noqa: E731
    np.testing.assert_allclose(radius(out), radius(kp), atol=1e-4)  # a turn: distances to the axis stay
    assert not np.allclose(out[..., 0], kp[..., 0])


def test_swap_people_swaps_the_two_people_and_draws_nothing_when_off():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.normal(size=(5, 2, 15, 3)).astype(np.float32), np.ones((5, 2, 15, 1), np.float32)], -1)
    plain = {"scale": [1, 1], "translate": 0.0, "mirror": 0.0, "joint_dropout": 0.0}
    _, out = ClipAugmenter(augment_config(keypoints={**plain, "swap_people": 1.0}), frames=False, joints=15)(
        np.random.default_rng(1), None, kp)
    # (identity geometry still subtracts and adds back the centre: float32 rounding)
    np.testing.assert_allclose(out[:, 0], kp[:, 1], atol=1e-6)
    np.testing.assert_allclose(out[:, 1], kp[:, 0], atol=1e-6)
    # off: the same draws (and output) as a config without the option
    with_off = dict(keypoints={"swap_people": 0.0, "joint_dropout": 0.3, "rotate": 10.0, "mirror": 0.0})
    without = dict(keypoints={"joint_dropout": 0.3, "rotate": 10.0, "mirror": 0.0})
    a = ClipAugmenter(augment_config(**with_off), frames=False, joints=15)(np.random.default_rng(4), None, kp)[1]
    b = ClipAugmenter(augment_config(**without), frames=False, joints=15)(np.random.default_rng(4), None, kp)[1]
    np.testing.assert_array_equal(a, b)
    # one person: nothing to swap, nothing drawn
    one = kp[:, :1]
    _, out = ClipAugmenter(augment_config(keypoints={**plain, "swap_people": 1.0}), frames=False, joints=15)(
        np.random.default_rng(1), None, one)
    np.testing.assert_allclose(out, one, atol=1e-6)


def test_frames_and_keypoints_share_crop_and_flip():
    cfg = augment_config(frames={"crop_scale": [0.25, 0.25], "crop_ratio": [1, 1], "flip": 1.0, "brightness": 0.0,
                                 "contrast": 0.0, "saturation": 0.0}, keypoints={"joint_dropout": 0.0})
    frames = np.zeros((2, 40, 40, 3), np.uint8)
    kp = np.zeros((2, 1, 18, 3), np.float32)
    frames[:, 12, 12] = 255  # a bright dot, and a joint right on it
    kp[:, 0, J["r_wrist"]] = (12, 12, 1)
    for seed in range(20):
        out_frames, out_kp = ClipAugmenter(cfg, frames=True, joints=18)(np.random.default_rng(seed), frames, kp)
        assert out_frames.shape == (2, 20, 20, 3)
        ys, xs = np.nonzero(out_frames[0, :, :, 0])
        if len(xs) == 0:  # the crop missed the dot, so the joint must be missing too
            assert out_kp[0, 0, J["l_wrist"], 2] == 0 and out_kp[0, 0, J["r_wrist"], 2] == 0
            continue
        # flipped: the joint is now the left wrist, on the dot once the crop is stretched to 40x40
        # (crop pixel i -> centre 2 i + 0.5)
        assert out_kp[0, 0, J["l_wrist"], 2] == 1
        assert out_kp[0, 0, J["l_wrist"], :2].tolist() == pytest.approx([2 * xs[0] + 0.5, 2 * ys[0] + 0.5])


def test_mirror_needs_pairs_for_other_skeletons():
    cfg = augment_config(keypoints={"mirror": 0.5})
    with pytest.raises(ConfigError, match="needs 'mirror_pairs'"):
        ClipAugmenter(cfg, frames=False, joints=25)
    cfg = augment_config(keypoints={"mirror": 0.5, "mirror_pairs": [[0, 1]]})
    ClipAugmenter(cfg, frames=False, joints=25)


def test_bucket_sampler_covers_every_clip_and_shards_evenly():
    lengths = np.random.default_rng(0).integers(5, 40, 37)
    single = BucketBatchSampler(lengths, 4, seed=1)
    single.set_epoch(3)
    batches = list(single)
    assert len(batches) == len(single)
    assert sorted(i for b in batches for _, i in b) == list(range(37))
    assert all(epoch == 3 for b in batches for epoch, _ in b)
    single.set_epoch(4)
    assert list(single) != batches  # a new order each epoch
    ranks = [BucketBatchSampler(lengths, 4, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    shards = [list(s) for s in ranks]
    assert len(shards[0]) == len(shards[1]) == len(ranks[0])  # DDP needs equal step counts
    assert {i for s in shards for b in s for _, i in b} == set(range(37))


def test_labeled_subset_is_per_class():
    labels = np.repeat(np.arange(4), 10)
    labeled = choose_labeled(labels, 0.9, seed=0)
    assert [int(labeled[labels == c].sum()) for c in range(4)] == [1, 1, 1, 1]
    assert choose_labeled(labels, 0.0, seed=0).all()


def test_forward_exact_keeps_padding_out_of_a_bidirectional_teacher():
    torch.manual_seed(0)
    teacher = build_model({"inputs": ["keypoints"], "num_classes": 3, "pose": {"dim": 8, "joint_channels": [4],
                                                                                "relation_channels": [4]},
                           "head": {"name": "gru", "hidden": 4, "bidirectional": True}}).eval()
    clips = [torch.rand(n, 1, 18, 3) * 100 for n in (5, 3, 5)]
    batch = collate([{"keypoints": c, "label": 0, "labeled": True, "length": len(c)} for c in clips])
    assert batch["mask"].tolist()[1] == [True, True, True, False, False]
    with torch.no_grad():
        out = forward_exact(teacher, {"keypoints": batch["keypoints"]}, batch["lengths"])
        alone = teacher.forward_offline({"keypoints": clips[1][None]})
        padded = teacher.forward_offline({"keypoints": batch["keypoints"]})
    torch.testing.assert_close(out["logits"][1, :3], alone["logits"][0])
    assert not torch.allclose(padded["logits"][1, :3], alone["logits"][0])  # what padding would have done
