import pytest
import torch

from edgeact.errors import ConfigError
from edgeact.config import parse_config
from edgeact.models.pose import PoseConfig, PoseEncoder

from .support import random_keypoints


def _encoder(**overrides) -> PoseEncoder:
    torch.manual_seed(0)
    return PoseEncoder(PoseConfig(**{"dim": 16, **overrides})).eval()


def _transform(kp: torch.Tensor, scale: float, shift: tuple[float, ...]) -> torch.Tensor:
    coords = kp.shape[-1] - 1
    return torch.cat((kp[..., :coords] * scale + torch.tensor(shift), kp[..., coords:]), dim=-1)


@pytest.mark.parametrize("overrides", [{}, {"center_joints": (8, 11)}, {"coords": 3, "joints": 25}])
def test_invariant_to_where_and_how_large_the_person_is(overrides):
    enc = _encoder(**overrides)
    kp = random_keypoints(4, joints=enc.cfg.joints, coords=enc.cfg.coords)  # [4,1,J,C+1]
    moved = _transform(kp, 2.5, (100.0, -40.0, 7.0)[: enc.cfg.coords])
    torch.testing.assert_close(enc(moved), enc(kp), atol=1e-5, rtol=1e-5)


def test_missing_joints_are_zeroed_with_a_visibility_channel():
    enc = _encoder()
    kp = random_keypoints(3)
    joints, *_ = enc.normalize(kp)  # [3,1,J,3]
    missing = kp[..., 2] == 0
    assert missing.any()
    assert torch.equal(joints[..., :2][missing], torch.zeros_like(joints[..., :2][missing]))
    assert torch.equal(joints[..., 2], kp[..., 2])
    # the values a pose estimator leaves in missing joints (NaN here) never matter
    assert torch.equal(enc(kp), enc(torch.nan_to_num(kp, nan=1e6)))


def test_no_visible_joint_is_finite_including_gradients():
    enc = _encoder(people=2).train()
    kp = torch.zeros(2, 2, 18, 3, requires_grad=True)
    out = enc(kp)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
    assert torch.isfinite(kp.grad).all()


def test_single_visible_joint_is_finite():
    kp = torch.zeros(1, 1, 18, 3)
    kp[0, 0, 3] = torch.tensor([320.0, 200.0, 1.0])
    joints, centre, scale, *_ = _encoder().normalize(kp)
    assert torch.isfinite(joints).all()
    assert torch.equal(centre[0, 0], torch.tensor([320.0, 200.0]))
    assert 0 < scale.item() < 1e-5  # only the floor: no unit in it (the joints are all zero anyway)


def test_centre_falls_back_to_visible_joints_when_anchor_joints_are_missing():
    enc = _encoder(center_joints=(8, 11))
    kp = torch.nan_to_num(random_keypoints(1, generator=torch.Generator().manual_seed(3)))
    kp[..., 2] = 1.0
    kp[..., [8, 11], :] = torch.tensor([0.0, 0.0, 0.0])
    _, centre, *_ = enc.normalize(kp)
    visible = kp[0, 0, kp[0, 0, :, 2] > 0, :2]
    torch.testing.assert_close(centre[0, 0], visible.mean(0))
    kp[..., 8, :] = torch.tensor([50.0, 60.0, 1.0])
    _, centre, *_ = enc.normalize(kp)
    assert torch.equal(centre[0, 0], torch.tensor([50.0, 60.0]))


def test_people_are_ordered_left_to_right_so_input_order_does_not_matter():
    enc = _encoder(people=3)
    kp = random_keypoints(5, people=3)
    kp[:, 2, :, 2] = 0.0  # the third person is absent
    swapped = kp[:, [2, 1, 0]]
    torch.testing.assert_close(enc(swapped), enc(kp), atol=0, rtol=0)
    assert enc(kp).shape == (5, 3 * 16)


def test_relative_placement_of_two_people_is_encoded():
    enc = _encoder(people=2)
    kp = torch.nan_to_num(random_keypoints(1, people=2, generator=torch.Generator().manual_seed(1)))
    kp[..., 2] = 1.0
    apart = kp.clone()
    apart[:, 1, :, 0] += 200.0  # same poses, the right person further away
    assert not torch.allclose(enc(kp), enc(apart))


def test_leading_dims_are_kept():
    enc = _encoder()
    assert enc(random_keypoints(2, 7)).shape == (2, 7, 16)


def test_config_rejects_centre_joint_out_of_range():
    with pytest.raises(ConfigError) as err:
        parse_config(PoseConfig, {"joints": 14, "center_joints": [8, 14]}, "pose")
    assert str(err.value) == "Model config 'pose.center_joints' has [14], outside 0..13."


THREE_D = {"joints": 20, "coords": 3, "center_joints": (0,), "features": ("position", "bone", "velocity"),
           "parents": (0, 0, 1, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18), "align": (12, 16)}


def _clip(people=1, joints=20, coords=3, steps=6):
    kp = torch.nan_to_num(random_keypoints(1, steps, people=people, joints=joints, coords=coords,
                                           generator=torch.Generator().manual_seed(4)))
    kp[..., -1] = (kp[..., -1] > 0).float()
    return kp  # [1,T,P,J,C+1]


@pytest.mark.parametrize("overrides", [{}, THREE_D, {**THREE_D, "people": 2},
                                       {**THREE_D, "people": 2, "align": (), "features": ("position", "group")}])
@pytest.mark.parametrize("factor", [1e-3, 1e3])
def test_the_unit_does_not_matter(overrides, factor):
    """Kinect metres, millimetres or pixels: the same skeleton gives the same output (the old
    1-unit floor on the body scale left metres unscaled)."""
    cfg = {"coords": 3, "joints": 20, **overrides}
    enc = _encoder(**cfg)
    kp = _clip(people=cfg.get("people", 1))
    other = torch.cat((kp[..., :3] * factor, kp[..., 3:]), dim=-1)
    torch.testing.assert_close(enc(other), enc(kp), atol=1e-5, rtol=1e-4)


def test_align_makes_the_camera_azimuth_irrelevant():
    enc = _encoder(**THREE_D)  # one person: several are ordered by their x, which a turn changes
    kp = _clip()
    kp[..., -1] = 1.0  # every joint seen: the align pair is always there to turn by
    angle = torch.tensor(1.1)
    c, s = torch.cos(angle), torch.sin(angle)
    turned = kp.clone()
    turned[..., 0], turned[..., 2] = c * kp[..., 0] - s * kp[..., 2], s * kp[..., 0] + c * kp[..., 2]  # about y
    torch.testing.assert_close(enc(turned), enc(kp), atol=1e-5, rtol=1e-4)
    unaligned = _encoder(**{**THREE_D, "align": ()})
    assert not torch.allclose(unaligned(turned), unaligned(kp), atol=1e-3)


def test_velocity_steps_equal_the_offline_differences():
    enc = _encoder(**THREE_D)
    kp = _clip(steps=5)
    offline = enc(kp)[0]  # [T,dim]
    state = None
    for t in range(kp.shape[1]):
        step, state = enc.step(kp[:, t], state)
        torch.testing.assert_close(step[0], offline[t], atol=1e-6, rtol=0)
    assert set(state) == {"prev", "prev_centre", "seen"}
    still = kp[:, :1].expand(1, 3, *kp.shape[2:])  # a person who does not move: velocity 0 after t=0
    out = enc(still)[0]
    torch.testing.assert_close(out[1], out[2], atol=1e-6, rtol=0)


@pytest.mark.parametrize("section, message", [
    ({"features": ["position", "bone"]},
     "Model config 'pose.features' has 'bone', which needs 'pose.parents' with one parent per joint (18), got 0."),
    ({"features": ["position", "position"]}, "Model config 'pose.features' lists a feature twice: ['position', 'position']."),
    ({"align": [1, 2]}, "Model config 'pose.align' takes two joints (left, right) of 3D keypoints; got [1, 2] with coords 2."),
    ({"features": ["speed"]},
     "Unknown value 'speed' for 'pose.features[0]'. Valid choices: position, bone, velocity, group."),
    ({"features": ["position", "group"]},
     "Model config 'pose.features' has 'group', which needs 'pose.people' >= 2 and no 'pose.align' (people 1, align [])."),
])
def test_feature_options_are_checked(section, message):
    with pytest.raises(ConfigError) as err:
        parse_config(PoseConfig, section, "pose")
    assert str(err.value) == message


def test_group_positions_say_where_each_joint_is_relative_to_the_other_person():
    enc = _encoder(people=2, features=("position", "group"))
    kp = torch.nan_to_num(random_keypoints(1, people=2, generator=torch.Generator().manual_seed(1)))
    kp[..., 2] = 1.0
    with torch.no_grad():
        joints, centre, scale, count, _ = enc.normalize(kp)
        placement, group_scale = enc._placement(centre, scale, count, with_scale=True)
        group = joints[..., :2] * (scale / group_scale).unsqueeze(2) + placement.unsqueeze(2)
        xy = kp[..., :2]
        expected = (xy - (centre * 1.0).mean(1, keepdim=True).unsqueeze(2)) / group_scale.unsqueeze(2)
    torch.testing.assert_close(group, expected, atol=1e-5, rtol=1e-5)
