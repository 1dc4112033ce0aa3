"""Keypoint layouts (which joint is which) and the mapping between two of them, as data.

A :class:`KeypointLayout` names its joints in order. A layout may also say how to *derive*
a joint another layout lacks from joints that layout has: COCO-18 (OpenPose, the synthetic
data's layout) has a ``neck`` that COCO-17 estimators (MoveNet, RTMPose, YOLO-pose) do not
report, and declares it the midpoint of the shoulders. :meth:`LayoutMapping.between` builds
the mapping from those names alone: every target joint is a tuple of source joints, its
position their mean and its score their minimum (a derived joint is only as sure as its least
sure part). No layout pair has code of its own; adding a layout is adding a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from edgeact.config import did_you_mean
from edgeact.data.skeleton import JOINT_NAMES as _OPENPOSE_18
from edgeact.errors import InputError, InputTypeError
from edgeact.spec import KeypointSpec


@dataclass(frozen=True)
class KeypointLayout:
    """The joints of one skeleton convention, in the order arrays hold them.

    ``derived`` maps a joint of this layout to the joints it can be made of when a source
    layout lacks it (position: their mean; score: their minimum)."""

    name: str
    joints: tuple[str, ...]
    derived: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joints", tuple(self.joints))
        object.__setattr__(self, "derived", MappingProxyType({k: tuple(v) for k, v in dict(self.derived).items()}))
        if not self.joints:
            raise InputError(f"keypoint layout {self.name!r} must name at least one joint.")
        repeated = sorted({j for j in self.joints if self.joints.count(j) > 1})
        if repeated:
            raise InputError(f"keypoint layout {self.name!r} names the joints {', '.join(repeated)} more than once.")
        unknown = sorted(set(self.derived) - set(self.joints))
        if unknown:
            raise InputError(f"keypoint layout {self.name!r} derives {', '.join(unknown)}, which are not its joints.")

    def __len__(self) -> int:
        return len(self.joints)

    def describe(self) -> str:
        """'coco17 (17 joints: nose, l_eye, ...)' for messages."""
        return f"{self.name} ({len(self)} joints: {', '.join(self.joints)})"


COCO17 = KeypointLayout("coco17", (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
))  # fmt: skip  # MS-COCO's person keypoints: MoveNet, RTMPose, YOLO-pose, ViTPose ...
COCO18 = KeypointLayout("coco18", _OPENPOSE_18, derived={"neck": ("l_shoulder", "r_shoulder")})  # OpenPose-18

# The layouts a model's joint count is matched against when its layout is not given.
LAYOUTS: Mapping[str, KeypointLayout] = MappingProxyType({layout.name: layout for layout in (COCO17, COCO18)})


@dataclass(frozen=True)
class LayoutMapping:
    """Keypoints ``[people, len(source), channels]`` -> ``[people, len(target), channels]``.

    ``parts[j]`` are the source joints target joint ``j`` is made of: one for a joint both
    layouts have, several for a derived one. The last channel is the score."""

    source: KeypointLayout
    target: KeypointLayout
    parts: tuple[tuple[int, ...], ...]
    _gather: np.ndarray = field(init=False, repr=False, compare=False)  # [target joints, most parts]

    def __post_init__(self) -> None:
        width = max(len(p) for p in self.parts)
        # padded by repeating a joint's last part: the mean and the minimum stay the same
        gather = np.array([p + (p[-1],) * (width - len(p)) for p in self.parts], np.intp)
        object.__setattr__(self, "_gather", gather)

    @classmethod
    def between(cls, source: KeypointLayout, target: KeypointLayout) -> LayoutMapping:
        """The mapping by joint names (and ``target.derived``); InputError naming the target
        joints that ``source`` neither has nor can derive."""
        missing = missing_joints(source, target)
        if missing:
            raise InputError(f"keypoint layout {source.name} cannot be mapped to {target.name}: it has no "
                             f"{', '.join(missing)}{_derivation_hint(target, missing)}.")
        index = {name: i for i, name in enumerate(source.joints)}
        parts = tuple((index[j],) if j in index else tuple(index[p] for p in target.derived[j]) for j in target.joints)
        return cls(source, target, parts)

    @property
    def is_identity(self) -> bool:
        return self.parts == tuple((i,) for i in range(len(self.source)))

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        if self.is_identity:
            return keypoints
        gathered = keypoints[:, self._gather]  # [P, target joints, parts, C]
        out = gathered.mean(axis=2)
        out[..., -1] = gathered[..., -1].min(axis=2)
        return out

    def describe(self) -> str:
        """'coco17 -> coco18 (neck = mean of l_shoulder, r_shoulder)'."""
        derived = [f"{self.target.joints[j]} = mean of {', '.join(self.source.joints[i] for i in p)}"
                   for j, p in enumerate(self.parts) if len(p) > 1]
        return f"{self.source.name} -> {self.target.name}" + (f" ({'; '.join(derived)})" if derived else "")


def missing_joints(source: KeypointLayout, target: KeypointLayout) -> tuple[str, ...]:
    """The joints of ``target`` that ``source`` neither has nor can derive."""
    have = set(source.joints)
    return tuple(j for j in target.joints
                 if j not in have and not (j in target.derived and set(target.derived[j]) <= have))


def _derivation_hint(target: KeypointLayout, missing: tuple[str, ...]) -> str:
    rules = [f"{j} from {', '.join(target.derived[j])}" for j in missing if j in target.derived]
    return f" (nor what {target.name} derives them from: {'; '.join(rules)})" if rules else ""


def resolve_layout(layout: KeypointLayout | str | None, spec: KeypointSpec) -> KeypointLayout:
    """The layout of a model's keypoint input: ``layout`` as given (a name from ``LAYOUTS`` or a
    ``KeypointLayout``), else the one known layout with the model's joint count."""
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise InputError(f"unknown keypoint layout {layout!r}; known: {', '.join(LAYOUTS)}."
                             f"{did_you_mean(layout, LAYOUTS)}")
        layout = LAYOUTS[layout]
    if isinstance(layout, KeypointLayout):
        if len(layout) != spec.joints:
            raise InputError(f"keypoint_layout {layout.name} has {len(layout)} joints, but this model takes "
                             f"{spec.joints} per person.")
        return layout
    if layout is not None:
        raise InputTypeError(f"keypoint_layout must be a layout name ({', '.join(LAYOUTS)}), a KeypointLayout or "
                             f"None, got {type(layout).__name__}.")
    matches = [known for known in LAYOUTS.values() if len(known) == spec.joints]
    if len(matches) != 1:
        known = ", ".join(f"{known.name} ({len(known)})" for known in LAYOUTS.values())
        raise InputError(f"this model takes {spec.joints} joints per person, and edgeact knows "
                         f"{'no keypoint layout' if not matches else 'several keypoint layouts'} of {spec.joints} "
                         f"joints (known: {known}); pass keypoint_layout=KeypointLayout(name, joint_names) naming "
                         "the joints it was trained on.")
    return matches[0]
