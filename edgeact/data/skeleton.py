"""The OpenPose/COCO-18 joint layout and 2D forward kinematics of the synthetic figures.

A figure is posed by a handful of angles (degrees) and offsets; :func:`forward_kinematics`
turns them into joint positions in *body units* (standing height ~1) in a local frame whose
x axis points where the person faces (profile view) or to the viewer's right (front view)
and whose y axis points up, with the ground at y = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JOINT_NAMES = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip
NUM_JOINTS = len(JOINT_NAMES)
NUM_PERSONS = 2
J = {name: i for i, name in enumerate(JOINT_NAMES)}

# Index permutation that relabels a mirrored figure: r_* <-> l_*.
FLIP_PERMUTATION = np.array(
    [J[n.replace("r_", "l_", 1) if n.startswith("r_") else n.replace("l_", "r_", 1)] for n in JOINT_NAMES]
)

# OpenPose's 17 drawing pairs for COCO-18.
LIMBS = (
    (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

# Pose parameters and their values for a relaxed standing figure. Angles are absolute (from
# straight down, positive = forward in profile / outward in front view) except the elbow,
# knee and head, which are relative to their parent segment. *_ua/*_fa scale the upper arm
# and forearm to fake foreshortening when an arm points at the camera.
REST_POSE = {
    "x": 0.0, "jump": 0.0, "lean": 0.0, "head": 0.0,
    "rsh": 6.0, "rel": 10.0, "lsh": 6.0, "lel": 10.0,
    "rhip": 0.0, "rkn": 0.0, "lhip": 0.0, "lkn": 0.0,
    "rua": 1.0, "rfa": 1.0, "lua": 1.0, "lfa": 1.0,
}  # fmt: skip


@dataclass(frozen=True)
class Body:
    """Segment lengths in body units; drawn per person so figures differ in build."""

    torso: float = 0.30
    neck: float = 0.10
    head_radius: float = 0.065
    shoulder: float = 0.11  # half shoulder width
    hip: float = 0.07  # half hip width
    upper_arm: float = 0.17
    forearm: float = 0.15
    thigh: float = 0.24
    shin: float = 0.23

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Body:
        build = rng.uniform(0.9, 1.1)  # broad vs slim, independent of limb length
        limbs = rng.uniform(0.92, 1.08)
        base = cls()
        return cls(
            torso=base.torso * rng.uniform(0.92, 1.08),
            neck=base.neck * rng.uniform(0.9, 1.1),
            head_radius=base.head_radius * rng.uniform(0.9, 1.12),
            shoulder=base.shoulder * build,
            hip=base.hip * build * rng.uniform(0.9, 1.15),
            upper_arm=base.upper_arm * limbs * rng.uniform(0.96, 1.04),
            forearm=base.forearm * limbs * rng.uniform(0.96, 1.04),
            thigh=base.thigh * limbs * rng.uniform(0.96, 1.04),
            shin=base.shin * limbs * rng.uniform(0.96, 1.04),
        )

    def arm_reach(self, shoulder_deg: float, elbow_deg: float) -> float:
        """Forward distance from shoulder to wrist for an arm held at these angles."""
        a, e = np.radians(shoulder_deg), np.radians(shoulder_deg + elbow_deg)
        return float(self.upper_arm * np.sin(a) + self.forearm * np.sin(e))


def _dir(angle_deg: np.ndarray, side: float) -> np.ndarray:
    """Unit vector [T,2] of a segment hanging at angle_deg from straight down."""
    a = np.radians(angle_deg)
    return np.stack([side * np.sin(a), -np.cos(a)], axis=-1)


def _up(angle_deg: np.ndarray) -> np.ndarray:
    """Unit vector [T,2] of a segment standing at angle_deg from straight up (forward > 0)."""
    a = np.radians(angle_deg)
    return np.stack([np.sin(a), np.cos(a)], axis=-1)


def forward_kinematics(
    pose: dict[str, np.ndarray], body: Body, front: bool, depth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Joints [T,18,2] and head centres [T,2] in body units (local frame, y up, ground y=0).

    ``front`` selects the view: in front view the right limbs open towards -x; in profile
    every limb swings towards +x (the facing direction) and ``depth`` (0..1) is how much of
    the shoulder/hip width survives the projection.
    """
    t = len(pose["x"])
    out = np.zeros((t, NUM_JOINTS, 2))
    r_side, l_side = (-1.0, 1.0) if front else (1.0, 1.0)
    width = 1.0 if front else depth

    def leg(hip_deg, knee_deg, side):
        return body.thigh * _dir(hip_deg, side), body.shin * _dir(hip_deg + knee_deg, side)

    r_thigh, r_shin = leg(pose["rhip"], pose["rkn"], r_side)
    l_thigh, l_shin = leg(pose["lhip"], pose["lkn"], l_side)
    # Feet stay on the ground: the hips sit as high as the longer (lower-reaching) leg allows.
    reach = -np.minimum(r_thigh[:, 1] + r_shin[:, 1], l_thigh[:, 1] + l_shin[:, 1])
    hip_c = np.stack([pose["x"], reach + pose["jump"]], axis=-1)
    hip_off = np.array([body.hip * width, 0.0])
    out[:, J["r_hip"]] = hip_c - hip_off
    out[:, J["l_hip"]] = hip_c + hip_off
    out[:, J["r_knee"]] = out[:, J["r_hip"]] + r_thigh
    out[:, J["r_ankle"]] = out[:, J["r_knee"]] + r_shin
    out[:, J["l_knee"]] = out[:, J["l_hip"]] + l_thigh
    out[:, J["l_ankle"]] = out[:, J["l_knee"]] + l_shin

    up = _up(pose["lean"])  # leaning forward (profile) or to the right (front) when positive
    right = np.stack([up[:, 1], -up[:, 0]], axis=-1)
    neck = hip_c + body.torso * up
    out[:, J["neck"]] = neck
    out[:, J["r_shoulder"]] = neck - body.shoulder * width * right
    out[:, J["l_shoulder"]] = neck + body.shoulder * width * right
    for s, side in (("r", r_side), ("l", l_side)):
        sh, el = pose[f"{s}sh"], pose[f"{s}el"]
        elbow = out[:, J[f"{s}_shoulder"]] + body.upper_arm * pose[f"{s}ua"][:, None] * _dir(sh, side)
        out[:, J[f"{s}_elbow"]] = elbow
        out[:, J[f"{s}_wrist"]] = elbow + body.forearm * pose[f"{s}fa"][:, None] * _dir(sh + el, side)

    head_up = _up(pose["lean"] + pose["head"])
    head_fwd = np.stack([head_up[:, 1], -head_up[:, 0]], axis=-1)
    r = body.head_radius
    centre = neck + (body.neck + r * 0.4) * head_up
    if front:
        out[:, J["nose"]] = centre - 0.15 * r * head_up
        out[:, J["r_eye"]] = centre - 0.4 * r * head_fwd + 0.2 * r * head_up
        out[:, J["l_eye"]] = centre + 0.4 * r * head_fwd + 0.2 * r * head_up
        out[:, J["r_ear"]] = centre - 0.95 * r * head_fwd
        out[:, J["l_ear"]] = centre + 0.95 * r * head_fwd
    else:
        out[:, J["nose"]] = centre + 1.05 * r * head_fwd - 0.1 * r * head_up
        out[:, J["r_eye"]] = centre + 0.6 * r * head_fwd + 0.25 * r * head_up
        out[:, J["l_eye"]] = centre + 0.7 * r * head_fwd + 0.25 * r * head_up
        out[:, J["r_ear"]] = centre - 0.15 * r * head_fwd
        out[:, J["l_ear"]] = centre - 0.05 * r * head_fwd
    return out, centre
