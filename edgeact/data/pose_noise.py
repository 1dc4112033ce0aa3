"""The "noisy keypoints" view: what a 2D pose estimator would report for a synthetic clip.

Pose models train on this view, not on the ground truth, so it reproduces an estimator's
typical failures: jitter proportional to the person's size with occasional outliers, joints
hidden by occluders or the frame border reported missing, joints dropped at random and in
bursts (more often at the extremities), and left/right confusions. Missing joints are
(0, 0, 0) as OpenPose writes them; present joints carry a confidence in (0, 1].
"""

from __future__ import annotations

import numpy as np

from edgeact.data.skeleton import FLIP_PERMUTATION, J, NUM_JOINTS

_EXTREMITIES = [J[n] for n in ("r_wrist", "l_wrist", "r_ankle", "l_ankle", "r_ear", "l_ear")]
_ARMS_SWAPPED = np.arange(NUM_JOINTS)
_ARMS_SWAPPED[[2, 3, 4, 5, 6, 7]] = [5, 6, 7, 2, 3, 4]
_LEGS_SWAPPED = np.arange(NUM_JOINTS)
_LEGS_SWAPPED[[8, 9, 10, 11, 12, 13]] = [11, 12, 13, 8, 9, 10]
_SWAPS = (_ARMS_SWAPPED, _LEGS_SWAPPED, FLIP_PERMUTATION)


def noisy_view(keypoints: np.ndarray, heights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Estimator-like copy of ground-truth keypoints [T,P,J,3]; heights [P] are in pixels."""
    t, p, j, _ = keypoints.shape
    scale = heights[None, :, None, None] * rng.uniform(0.6, 1.4)  # per-clip estimator quality
    jitter = rng.normal(0, 0.012, (t, p, j, 2)) * scale
    outlier = rng.random((t, p, j, 1)) < 0.01
    jitter += outlier * rng.normal(0, 0.08, (t, p, j, 2)) * scale
    out = keypoints.copy()
    out[..., :2] += jitter
    err = np.linalg.norm(jitter, axis=-1) / scale[..., 0]
    out[..., 2] = np.clip(rng.uniform(0.55, 1.0, (t, p, j)) - 2.0 * err, 0.05, 1.0)
    out[keypoints[..., 2] <= 0] = 0.0

    kind = rng.integers(0, len(_SWAPS), (t, p))
    swap = rng.random((t, p)) < 0.02
    for k, perm in enumerate(_SWAPS):
        mask = swap & (kind == k)
        out[mask] = out[mask][:, perm]

    rate = np.full(j, 0.03)
    rate[_EXTREMITIES] = 0.08
    dropped = rng.random((t, p, j)) < rate
    # Bursts: an estimator loses a joint for several frames in a row, not independently.
    burst_start = rng.integers(0, t, (p, j))
    burst_len = rng.integers(3, 11, (p, j))
    has_burst = rng.random((p, j)) < 0.08
    steps = np.arange(t)[:, None, None]
    dropped |= has_burst & (steps >= burst_start) & (steps < burst_start + burst_len)
    out[dropped] = 0.0
    return out.astype(np.float32)
