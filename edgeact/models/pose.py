"""Pose encoder (method M1's action-aware branch): keypoints of one frame -> a feature vector.

Per person: 1x1 convolutions over each joint's channels learn per-joint features; a transpose
makes the joints the channels, so the next convolutions learn inter-joint relations; flatten
and project to ``dim`` (256 in M1).

Normalisation happens inside the model, so every backend sees the same preprocessing:
keypoints arrive in the source's units (pixels, metres, ...) [..., P, J, coords + 1]
(x, y[, z], visibility). Only visible joints (visibility > ``min_confidence``) enter the
statistics: the centre is the mean of the visible ``center_joints`` (e.g. the hips), falling
back to the mean of all visible joints; the scale is the RMS distance of the visible joints from
that centre, which does not hinge on one particular bone being detected. Nothing depends on
the unit: the same skeleton in metres or millimetres encodes identically (the scale's floor
only guards an all-coincident person). With 3D keypoints, ``align`` turns each frame about the
``vertical_axis`` so the line from the ``align`` joints' left to right member lies along the
first horizontal axis: the camera's azimuth no longer matters (cross-view; with several people
their left-to-right order still follows the camera). Missing joints get
zero coordinates and a 0 in the visibility channel; a person with no visible joint encodes to a
finite constant.

Per joint the encoder reads the ``features`` asked for: ``position`` (normalised), ``bone``
(the joint minus its ``parents`` entry), ``velocity`` (the position minus the previous
frame's, zero at a stream's first frame, and per person the centre's motion in body scales)
and, with several people, ``group`` (the joint relative to the group's mean centre in mean
body scales: where each hand is relative to the other person, which interactions hinge on).
Velocity makes the encoder stateful: the streaming ``step`` carries the previous frame's
positions (``pose.prev``), centre and a ``seen`` flag; the offline form differences along time.

Several people: each is encoded alone, then the encodings are concatenated ordered left to
right by their centre's x (absent people last). We chose an ordered concat over a symmetric
max/mean pool because two-person interactions (M1's UT-Interaction) are asymmetric: who
pushes and who is pushed must stay apart. Since per-person normalisation discards where the
people stand, each person also gets its placement (centre offset from the group's mean
centre, in units of the mean body scale) next to its pose features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from edgeact.errors import ConfigError
from edgeact.models.state import State

FEATURES = ("position", "bone", "velocity", "group")
_EPS = 1e-12  # the scale's floor, squared: far below any real body in any unit


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
    features: tuple[str, ...] = field(default=("position",), metadata={"choices": FEATURES})  # per joint
    parents: tuple[int, ...] = ()  # for "bone": each joint's parent joint (the root names itself)
    align: tuple[int, ...] = ()  # 3D: (left, right) joints turned onto the first horizontal axis
    vertical_axis: int = field(default=1, metadata={"min": 0, "max": 2})  # 3D: the up axis (Kinect: y)

    def __post_init__(self):
        bad = [j for j in self.center_joints if not 0 <= j < self.joints]
        if bad:
            raise ConfigError(f"Model config 'pose.center_joints' has {bad}, outside 0..{self.joints - 1}.")
        for name in ("joint_channels", "relation_channels", "features"):
            if not getattr(self, name):
                raise ConfigError(f"Model config 'pose.{name}' must list at least one entry.")
        if len(set(self.features)) != len(self.features):
            raise ConfigError(f"Model config 'pose.features' lists a feature twice: {list(self.features)}.")
        if "bone" in self.features and len(self.parents) != self.joints:
            raise ConfigError(f"Model config 'pose.features' has 'bone', which needs 'pose.parents' with one parent per "
                              f"joint ({self.joints}), got {len(self.parents)}.")
        for name in ("parents", "align"):
            bad = [j for j in getattr(self, name) if not 0 <= j < self.joints]
            if bad:
                raise ConfigError(f"Model config 'pose.{name}' has {bad}, outside 0..{self.joints - 1}.")
        if "group" in self.features and (self.people < 2 or self.align):
            raise ConfigError("Model config 'pose.features' has 'group', which needs 'pose.people' >= 2 and no "
                              f"'pose.align' (people {self.people}, align {list(self.align)}).")
        if self.align and (len(self.align) != 2 or self.coords != 3):
            raise ConfigError(f"Model config 'pose.align' takes two joints (left, right) of 3D keypoints; got "
                              f"{list(self.align)} with coords {self.coords}.")


class PoseEncoder(nn.Module):
    def __init__(self, cfg: PoseConfig):
        super().__init__()
        self.cfg = cfg
        self.out_dim = cfg.people * cfg.dim
        self.velocity = "velocity" in cfg.features
        self.register_buffer("center_index", torch.tensor(cfg.center_joints, dtype=torch.long), persistent=False)
        self.register_buffer("parent_index", torch.tensor(cfg.parents, dtype=torch.long), persistent=False)
        self.joint_convs = _conv_stack(cfg.coords * len(cfg.features) + 1, cfg.joint_channels, kernel=1)
        self.relation_convs = _conv_stack(cfg.joints, cfg.relation_channels, kernel=3)
        extra = (cfg.coords if cfg.people > 1 else 0) + (cfg.coords if self.velocity else 0)  # placement, motion
        self.project = nn.Sequential(nn.Linear(cfg.relation_channels[-1] * cfg.joint_channels[-1] + extra, cfg.dim),
                                     nn.ReLU())

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Keypoints of one frame, without batch/time: [P, J, coords + 1]."""
        return (self.cfg.people, self.cfg.joints, self.cfg.coords + 1)

    def forward(self, keypoints: Tensor) -> Tensor:
        """Offline: keypoints [..., T, P, J, coords+1] -> features [..., T, P*dim]. With velocity
        the axis before P is time; without, any leading axes."""
        P, J, C = self.cfg.people, self.cfg.joints, self.cfg.coords
        lead = keypoints.shape[:-3]
        joints, centre, scale, count, facing = self.normalize(keypoints.reshape(-1, P, J, C + 1))  # [N,P,J,C+1] ...
        motion = None
        if self.velocity:
            shape = (-1, lead[-1] if lead else 1)
            previous = _shift_back(joints.unflatten(0, shape)).flatten(0, 1)  # [N,P,J,C+1], zeros at t=0
            previous_centre = _shift_back(centre.unflatten(0, shape)).flatten(0, 1)
            seen = _shift_back(torch.ones_like(centre[:, :1, :1]).unflatten(0, shape)).flatten(0, 1)  # [N,1,1]
            motion = (previous, previous_centre, seen)
        return self._encode(joints, centre, scale, count, facing, motion).reshape(*lead, self.out_dim)

    def step(self, keypoints: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        """Streaming: keypoints [B, P, J, coords+1], state from the previous step (None: start)
        -> (features [B, P*dim], next state; empty without velocity)."""
        joints, centre, scale, count, facing = self.normalize(keypoints)
        if not self.velocity:
            return self._encode(joints, centre, scale, count, facing, None), {}
        if state is None:
            previous, previous_centre = torch.zeros_like(joints), torch.zeros_like(centre)
            seen = keypoints.new_zeros(keypoints.shape[0], 1, 1)
        else:
            previous, previous_centre, seen = state["prev"], state["prev_centre"], state["seen"]
        features = self._encode(joints, centre, scale, count, facing, (previous, previous_centre, seen))
        # seen.clamp_min(1) is 1, computed from the input so exporters do not fold it into a constant
        return features, {"prev": joints, "prev_centre": centre, "seen": seen.clamp_min(1.0)}

    def normalize(self, kp: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Optional[tuple[Tensor, Tensor]]]:
        """kp [N,P,J,C+1] -> (joints [N,P,J,C+1] centred, scaled, aligned + visibility,
        centre [N,P,C] in the input's units, scale [N,P,1] in them, visible count [N,P,1],
        the facing each person was turned by, or None without ``align``)."""
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
        scale = (rel.square().sum((2, 3)).unsqueeze(-1) / count.clamp_min(1)).clamp_min(_EPS).sqrt()  # [N,P,1]
        rel = rel / scale.unsqueeze(2)
        facing = None
        if self.cfg.align:
            facing = self.facing(rel, weight)
            rel = self.turn(rel, facing)
        return torch.cat((rel, weight), dim=-1), centre, scale, count, facing

    def facing(self, rel: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
        """(cos, sin) [N,P,1] of the turn about the vertical axis that lays each person's align
        pair (left -> right) along the first horizontal axis; no turn when either is missing."""
        left, right = self.cfg.align
        a, b = [axis for axis in range(3) if axis != self.cfg.vertical_axis]
        line = rel[:, :, right] - rel[:, :, left]  # [N,P,3]
        both = weight[:, :, left] * weight[:, :, right]  # [N,P,1]
        u, v = line.narrow(-1, a, 1) * both, line.narrow(-1, b, 1) * both  # [N,P,1]
        norm = (u.square() + v.square()).clamp_min(_EPS).sqrt()
        return torch.where(both > 0, u / norm, 1.0), torch.where(both > 0, v / norm, 0.0)

    def turn(self, x: Tensor, facing: tuple[Tensor, Tensor]) -> Tensor:
        """Vectors x [N,P,...,3] turned by ``facing`` (from :meth:`facing`) about the vertical."""
        a, b = [axis for axis in range(3) if axis != self.cfg.vertical_axis]
        cos, sin = (f.reshape(*f.shape[:2], *([1] * (x.dim() - 3)), 1) for f in facing)
        pa, pb = x.narrow(-1, a, 1), x.narrow(-1, b, 1)
        turned = {a: cos * pa + sin * pb, b: cos * pb - sin * pa}
        return torch.cat([turned.get(axis, x.narrow(-1, axis, 1)) for axis in range(3)], dim=-1)

    def _encode(self, joints: Tensor, centre: Tensor, scale: Tensor, count: Tensor,
                facing: Optional[tuple[Tensor, Tensor]], motion: Optional[tuple[Tensor, ...]]) -> Tensor:
        """Normalised joints [N,P,J,C+1] -> [N,P*dim]; ``motion`` = (the previous frame's joints,
        its centre, seen [N,1,1]: 0 at a stream's first frame) when the features include velocity."""
        P, C = self.cfg.people, self.cfg.coords
        position, weight = joints.narrow(-1, 0, C), joints.narrow(-1, C, 1)
        channels, extra = [], []
        if motion is not None:
            previous, previous_centre, seen = motion
        for feature in self.cfg.features:
            if feature == "position":
                channels.append(position)
            elif feature == "bone":
                parent_weight = weight.index_select(2, self.parent_index)
                channels.append((position - position.index_select(2, self.parent_index)) * parent_weight * weight)
            elif feature == "group":  # (xy - group centre) / group scale, from the per-person terms
                placement, group_scale = self._placement(centre, scale, count, with_scale=True)
                channels.append((position * (scale / group_scale).unsqueeze(2) + placement.unsqueeze(2)) * weight)
            else:  # velocity: both frames' joints visible, zero at a stream's first frame
                both = weight * previous.narrow(-1, C, 1) * seen.unsqueeze(-1)
                channels.append((position - previous.narrow(-1, 0, C)) * both)
        if motion is not None:  # the person's own motion, in body scales
            extra.append((centre - previous_centre) / scale * seen * (count > 0).to(centre.dtype))  # [N,P,C]
        x = torch.cat(channels + [weight], dim=-1)  # [N,P,J,F]
        h = self.joint_convs(x.flatten(0, 1).transpose(1, 2))  # [N*P,c1,J]: per-joint features
        h = self.relation_convs(h.transpose(1, 2))  # [N*P,c2,c1]: joints are channels now
        h = h.flatten(1).unflatten(0, (-1, P))  # [N,P,c2*c1]
        if P > 1:
            extra.insert(0, self._placement(centre, scale, count))
        if facing is not None:  # placement and motion in each person's own turned frame, like its joints
            extra = [self.turn(e, facing) for e in extra]
        if extra:
            h = torch.cat([h, *extra], dim=-1)
        h = self.project(h)  # [N,P,dim]
        if P > 1:
            h = self._left_to_right(h, centre, count)
        return h.flatten(1)

    @staticmethod
    def _placement(centre: Tensor, scale: Tensor, count: Tensor, *, with_scale: bool = False):
        """Each person's centre relative to the group, in mean body scales; 0 for absent people
        [N,P,C] (and the group's mean scale [N,1,1] with ``with_scale``)."""
        present = (count > 0).to(centre.dtype)  # [N,P,1]
        n = present.sum(1, keepdim=True).clamp_min(1)  # [N,1,1]
        group_centre = (centre * present).sum(1, keepdim=True) / n  # [N,1,C]
        group_scale = ((scale * present).sum(1, keepdim=True) / n).clamp_min(math.sqrt(_EPS))  # [N,1,1]
        placement = (centre - group_centre) / group_scale * present  # [N,P,C]
        return (placement, group_scale) if with_scale else placement

    @staticmethod
    def _left_to_right(h: Tensor, centre: Tensor, count: Tensor) -> Tensor:
        """Reorder people [N,P,D] by the x of their centre, absent people last."""
        key = torch.where(count.squeeze(-1) > 0, centre[..., 0], float("inf"))  # [N,P]
        order = key.topk(key.shape[1], dim=1, largest=False).indices  # [N,P]
        return h.gather(1, order.unsqueeze(-1).expand_as(h))


def _shift_back(x: Tensor) -> Tensor:
    """x [B,T,...] -> the previous step's value at every step, zeros at t = 0."""
    return torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), dim=1)


def _conv_stack(inp: int, widths: tuple[int, ...], kernel: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv1d(inp, width, kernel, padding=kernel // 2), nn.ReLU()]
        inp = width
    return nn.Sequential(*layers)
