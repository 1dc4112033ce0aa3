"""One synthetic clip: timing, figures, placement, rendering and both keypoint views.

Every random choice comes from one of five streams derived from (dataset seed, clip index)
with numpy's SeedSequence, so a clip is the same whichever process renders it. Only the
``CLASS`` stream, the class's own keys and the early cue depend on the label; everything else,
including the scene, the timing and the prefix's random draws, is the same for the three classes
of a group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeact.data.actions import DEFAULT_EARLY_CUE, GROUP_OF, Cast
from edgeact.data.figure import Look, draw_person, fixed_point
from edgeact.data.motion import Motion, add_gait, add_sway
from edgeact.data.pose_noise import noisy_view
from edgeact.data.scene import Scene
from edgeact.data.skeleton import FLIP_PERMUTATION, NUM_JOINTS, NUM_PERSONS, Body, forward_kinematics

SCENE, PREFIX, CLASS, PIXELS, POSE_NOISE = range(5)
_STRIDE = 0.35  # body units per step of the walking gait


@dataclass(frozen=True)
class ClipData:
    frames: np.ndarray  # [T,S,S,3] uint8 BGR
    keypoints: np.ndarray  # [T,P,J,3] float32 (x, y, visibility) in frame pixels
    noisy_keypoints: np.ndarray  # same layout, estimator-like
    action_start: int  # first frame of the action
    action_end: int  # one past its last frame
    divergence: int  # first frame at which the class may differ from its group's other classes


def clip_rngs(seed: int, index: int) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index, k))) for k in range(5)]


def _phase(rng: np.random.Generator, num_frames: int) -> tuple[np.ndarray, int, int]:
    """Action phase u per frame (0 while idle before, 1 while idle after) and the action span."""
    before = int(round(num_frames * rng.uniform(0.0, 0.12)))
    after = int(round(num_frames * rng.uniform(0.0, 0.12)))
    length = num_frames - before - after
    warp = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))  # uneven speed within the action
    tau = np.clip((np.arange(num_frames) - before) / (length - 1), 0.0, 1.0)
    return tau**warp, before, before + length


@dataclass(frozen=True)
class _Placed:
    """Figures in frame pixels (before camera shake): joints [T,P,J,2], head centres [T,P,2]."""

    joints: np.ndarray
    heads: np.ndarray
    height: float  # person height in pixels
    ground: float  # y of the floor line
    mirrored: bool


def _place(cast: Cast, u: np.ndarray, size: int, front: bool, rng: np.random.Generator) -> _Placed:
    """Animate the cast over phases u and put it in the frame: scale, position, mirror."""
    motions = [m for m in (cast.a, cast.b) if m is not None]
    bodies = [b for b in (cast.body_a, cast.body_b) if b is not None]
    if len(motions) == 2:
        h = min(rng.uniform(0.38, 0.52) * size, 0.92 * size / (cast.gap0 + 0.5))
        centre = size * (0.5 + rng.uniform(-0.08, 0.08))
        roots, facing = [centre - cast.gap0 * h / 2, centre + cast.gap0 * h / 2], [1.0, -1.0]
    else:
        h = rng.uniform(0.5, 0.78) * size
        roots, facing = [size * rng.uniform(0.35, 0.65)], [1.0]
    ground = size * rng.uniform(0.86, 0.97)
    depth = rng.uniform(0.15, 0.35)
    joints = np.zeros((len(u), len(motions), NUM_JOINTS, 2))
    heads = np.zeros((len(u), len(motions), 2))
    for p, (m, body) in enumerate(zip(motions, bodies)):
        pose = m.sample(u)
        add_gait(pose, _STRIDE)
        add_sway(pose, rng)
        local, head = forward_kinematics(pose, body, front, depth)
        for arr, src in ((joints[:, p], local), (heads[:, p], head)):
            arr[..., 0] = roots[p] + facing[p] * src[..., 0] * h
            arr[..., 1] = ground - src[..., 1] * h
    mirrored = bool(rng.random() < 0.5)
    if mirrored:
        joints[..., 0] = size - 1 - joints[..., 0]
        heads[..., 0] = size - 1 - heads[..., 0]
    return _Placed(joints, heads, h, ground, mirrored)


def make_clip(
    seed: int, index: int, class_name: str, size: int, frame_range: tuple[int, int], early_cue: float = DEFAULT_EARLY_CUE
) -> ClipData:
    """Render clip ``index`` of the dataset with ``seed``, performing ``class_name``.

    ``early_cue`` (0..1) scales how much the shared prefix hints at the class (see
    :mod:`edgeact.data.actions`); at 0 the classes of a group are identical up to the divergence.
    """
    rng = clip_rngs(seed, index)
    scene_rng = rng[SCENE]
    group = GROUP_OF[class_name]
    num_frames = int(scene_rng.integers(frame_range[0], frame_range[1] + 1))
    u, start, end = _phase(scene_rng, num_frames)
    d = scene_rng.uniform(0.35, 0.45)
    persons = 2 if group.two_person else 1
    bodies = [Body.sample(scene_rng) for _ in range(persons)]
    looks = [Look.sample(scene_rng, group.front) for _ in range(persons)]
    cast = Cast(Motion(), Motion() if persons == 2 else None, bodies[0], bodies[1] if persons == 2 else None, d)
    group.prefix(cast, rng[PREFIX], early_cue * group.cue(class_name))
    for m in (cast.a, cast.b):
        if m is not None:
            m.pin(d)
    group.classes[class_name](cast, rng[CLASS])

    placed = _place(cast, u, size, group.front, scene_rng)
    horizon = placed.ground - scene_rng.uniform(0.2, 0.5) * placed.height
    scene = Scene.sample(scene_rng, size, num_frames, horizon)
    joints = placed.joints + scene.offsets[:, None, None, :]
    heads = placed.heads + scene.offsets[:, None, :]
    order = scene_rng.permutation(persons)

    frames = np.empty((num_frames, size, size, 3), np.uint8)
    bank = scene.noise_bank(rng[PIXELS])
    pick = rng[PIXELS].integers(0, len(bank), num_frames)
    joints_fp, heads_fp = fixed_point(joints).tolist(), fixed_point(heads).tolist()
    for i in range(num_frames):
        img = scene.canvas(i)
        for p in order:
            head_radius = bodies[p].head_radius
            draw_person(img, joints_fp[i][p], heads_fp[i][p], placed.height, looks[p], group.front, head_radius)
        scene.cover(img, i)
        frames[i] = scene.finish(img, i, bank[pick[i]])

    keypoints = np.zeros((num_frames, NUM_PERSONS, NUM_JOINTS, 3), np.float32)
    keypoints[:, :persons, :, :2] = joints
    flat = joints.reshape(num_frames, -1, 2)
    inside = ((flat >= 0) & (flat <= size - 1)).all(-1) & ~scene.hidden(flat)
    keypoints[:, :persons, :, 2] = inside.reshape(num_frames, persons, NUM_JOINTS)
    if placed.mirrored:  # the mirror image of a right arm is a left arm
        keypoints = keypoints[:, :, FLIP_PERMUTATION]
    noisy = noisy_view(keypoints, np.full(NUM_PERSONS, placed.height), rng[POSE_NOISE])
    divergence = int(np.argmax(u > d)) if (u > d).any() else num_frames
    return ClipData(frames, keypoints, noisy, start, end, divergence)
