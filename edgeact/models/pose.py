"""Pose encoder (method M1's action-aware branch): keypoints of one frame -> a feature vector.

Per person: 1x1 convolutions over the coordinate channels learn per-joint features; a
transpose makes the joints the channels, so the next convolutions learn inter-joint
relations; flatten and project to ``dim`` (256 in M1). The encoder is per frame and stateless:
time is the head's business.

Normalisation happens inside the model, so every backend sees the same preprocessing:
keypoints arrive in PIXEL coordinates [..., P, J, coords + 1] (x, y[, z], visibility). Only
visible joints (visibility > ``min_confidence``) enter the statistics: the centre is the mean
of the visible ``center_joints`` (e.g. the hips), falling back to the mean of all visible joints;
the scale is the RMS distance of the visible joints from that centre (floored at 1 px), which
does not hinge on one particular bone being detected. Missing joints get zero coordinates and
a 0 in the visibility channel; a person with no visible joint encodes to a finite constant.

Several people: each is encoded alone, then the encodings are concatenated ordered left to
right by their centre's x (absent people last). We chose an ordered concat over a symmetric
max/mean pool because two-person interactions (M1's UT-Interaction) are asymmetric: who
pushes and who is pushed must stay apart. Since per-person normalisation discards where the
people stand, each person also gets its placement (centre offset from the group's mean
centre, in units of the mean body scale) next to its pose features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from edgeact.errors import ConfigError


@dataclass(frozen=True)
class PoseConfig:
    joints: int = field(default=18, metadata={"min": 1})  # J (OpenPose: 18)
    coords: int = field(default=2, metadata={"min": 2, "max": 3})  # 2D (x, y) or 3D (x, y, z)
    people: int = field(default=1, metadata={"min": 1})  # P, people per frame
    center_joints: tuple[int, ...] = ()  # e.g. (8, 11), OpenPose hips; () = mean of visible joints
    min_confidence: float = 0.0  # joints with visibility <= this count as missing
    joint_channels: tuple[int, ...] = field(default=(64, 32), metadata={"min": 1})
    relation_channels: tuple[int, ...] = field(default=(32, 64), metadata={"min": 1})
    dim: int = field(default=256, metadata={"min": 1})  # features per person

    def __post_init__(self):
        bad = [j for j in self.center_joints if not 0 <= j < self.joints]
        if bad:
            raise ConfigError(f"Model config 'pose.center_joints' has {bad}, outside 0..{self.joints - 1}.")
        for name in ("joint_channels", "relation_channels"):
            if not getattr(self, name):
                raise ConfigError(f"Model config 'pose.{name}' must list at least one width.")


class PoseEncoder(nn.Module):
    def __init__(self, cfg: PoseConfig):
        super().__init__()
        self.cfg = cfg
        self.out_dim = cfg.people * cfg.dim
        self.register_buffer("center_index", torch.tensor(cfg.center_joints, dtype=torch.long), persistent=False)
        self.joint_convs = _conv_stack(cfg.coords + 1, cfg.joint_channels, kernel=1)
        self.relation_convs = _conv_stack(cfg.joints, cfg.relation_channels, kernel=3)
        placement = cfg.coords if cfg.people > 1 else 0
        self.project = nn.Sequential(
            nn.Linear(cfg.relation_channels[-1] * cfg.joint_channels[-1] + placement, cfg.dim), nn.ReLU())

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Keypoints of one frame, without batch/time: [P, J, coords + 1]."""
        return (self.cfg.people, self.cfg.joints, self.cfg.coords + 1)

    def forward(self, keypoints: Tensor) -> Tensor:
        """keypoints [..., P, J, coords+1] in pixels -> features [..., P*dim]."""
        lead = keypoints.shape[:-3]
        P, J, C = self.cfg.people, self.cfg.joints, self.cfg.coords
        kp = keypoints.reshape(-1, P, J, C + 1)  # [N,P,J,C+1]
        joints, centre, scale, count = self.normalize(kp)
        h = self.joint_convs(joints.flatten(0, 1).transpose(1, 2))  # [N*P,c1,J]: per-joint features
        h = self.relation_convs(h.transpose(1, 2))  # [N*P,c2,c1]: joints are channels now
        h = h.flatten(1).unflatten(0, (-1, P))  # [N,P,c2*c1]
        if P > 1:
            h = torch.cat((h, self._placement(centre, scale, count)), dim=-1)
        h = self.project(h)  # [N,P,dim]
        if P > 1:
            h = self._left_to_right(h, centre, count)
        return h.flatten(1).reshape(*lead, self.out_dim)

    def normalize(self, kp: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """kp [N,P,J,C+1] pixels -> (joints [N,P,J,C+1] centred/scaled + visibility,
        centre [N,P,C] pixels, scale [N,P,1] pixels, visible count [N,P,1])."""
        C = self.cfg.coords
        visible = kp.narrow(-1, C, 1) > self.cfg.min_confidence  # [N,P,J,1]
        weight = visible.to(kp.dtype)
        # where(), not a product: a missing joint may carry NaN coordinates from the pose estimator
        xy = torch.where(visible, kp.narrow(-1, 0, C), 0.0)  # [N,P,J,C]
        count = weight.sum(2)  # [N,P,1]
        centre = xy.sum(2) / count.clamp_min(1)  # [N,P,C]
        if self.cfg.center_joints:
            anchor_count = weight.index_select(2, self.center_index).sum(2)  # [N,P,1]
            anchor = xy.index_select(2, self.center_index).sum(2) / anchor_count.clamp_min(1)
            centre = torch.where(anchor_count > 0, anchor, centre)
        rel = torch.where(visible, xy - centre.unsqueeze(2), 0.0)  # [N,P,J,C]
        # clamp before sqrt: finite gradients when one joint (or none) is visible
        scale = (rel.square().sum((2, 3)).unsqueeze(-1) / count.clamp_min(1)).clamp_min(1.0).sqrt()  # [N,P,1]
        joints = torch.cat((rel / scale.unsqueeze(2), weight), dim=-1)  # [N,P,J,C+1]
        return joints, centre, scale, count

    @staticmethod
    def _placement(centre: Tensor, scale: Tensor, count: Tensor) -> Tensor:
        """Each person's centre relative to the group, in mean body scales; 0 for absent people."""
        present = (count > 0).to(centre.dtype)  # [N,P,1]
        n = present.sum(1, keepdim=True).clamp_min(1)  # [N,1,1]
        group_centre = (centre * present).sum(1, keepdim=True) / n  # [N,1,C]
        group_scale = ((scale * present).sum(1, keepdim=True) / n).clamp_min(1.0)  # [N,1,1]
        return (centre - group_centre) / group_scale * present  # [N,P,C]

    @staticmethod
    def _left_to_right(h: Tensor, centre: Tensor, count: Tensor) -> Tensor:
        """Reorder people [N,P,D] by the x of their centre, absent people last."""
        key = torch.where(count.squeeze(-1) > 0, centre[..., 0], float("inf"))  # [N,P]
        order = key.topk(key.shape[1], dim=1, largest=False).indices  # [N,P]
        return h.gather(1, order.unsqueeze(-1).expand_as(h))


def _conv_stack(inp: int, widths: tuple[int, ...], kernel: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv1d(inp, width, kernel, padding=kernel // 2), nn.ReLU()]
        inp = width
    return nn.Sequential(*layers)
