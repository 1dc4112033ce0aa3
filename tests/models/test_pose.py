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
    joints, centre, scale, _ = _encoder().normalize(kp)
    assert torch.isfinite(joints).all()
    assert torch.equal(centre[0, 0], torch.tensor([320.0, 200.0]))
    assert scale.item() == 1.0  # floored at one pixel


def test_centre_falls_back_to_visible_joints_when_anchor_joints_are_missing():
    enc = _encoder(center_joints=(8, 11))
    kp = torch.nan_to_num(random_keypoints(1, generator=torch.Generator().manual_seed(3)))
    kp[..., 2] = 1.0
    kp[..., [8, 11], :] = torch.tensor([0.0, 0.0, 0.0])
    _, centre, _, _ = enc.normalize(kp)
    visible = kp[0, 0, kp[0, 0, :, 2] > 0, :2]
    torch.testing.assert_close(centre[0, 0], visible.mean(0))
    kp[..., 8, :] = torch.tensor([50.0, 60.0, 1.0])
    _, centre, _, _ = enc.normalize(kp)
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
