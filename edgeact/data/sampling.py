"""Which frames of a clip a model sees: the :class:`Sampling` config (fixed strides or TSN
segments), the frame indices it picks, observation cut-offs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from edgeact.errors import InputError

KEYPOINT_VIEWS = ("noisy_keypoints", "keypoints")  # Clip attributes: as an estimator sees them, or exact


@dataclass(frozen=True)
class Sampling:
    """How a clip becomes a sequence of steps (the ``data.sampling`` section of a training config;
    the field metadata is what :func:`edgeact.config.parse_config` checks)."""

    mode: str = field(default="stride", metadata={"choices": ("stride", "segments")})
    stride: int = field(default=1, metadata={"min": 1})  # stride mode: every stride-th frame (M2)
    max_steps: Optional[int] = field(default=None, metadata={"min": 1})  # stride mode: at most this many
    segments: int = field(default=10, metadata={"min": 1})  # segments mode: N (M3)
    # training only: a random phase in [0, stride) (stride mode; a stream starts anywhere) or a
    # random frame inside each segment (segments mode); evaluation uses phase 0 / segment centres
    jitter: bool = True
    # training only, stride mode: each clip replayed at a random speed, log-uniform in [low, high]
    # (1.25: a quarter faster, frames skipped; 0.8: slower, frames repeated); the stride applies
    # on top. People do the same action at different paces; (1, 1) draws nothing.
    speed: tuple[float, float] = field(default=(1.0, 1.0), metadata={"min": 0.1, "max": 10.0})


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise InputError(f"{name} must be at least 1; got {value}.")


def segment_indices(
    num_frames: int, num_segments: int, *, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """One frame index from each of ``num_segments`` equal segments (TSN sampling).

    Training picks a random frame inside each segment (``rng`` required); evaluation takes
    each segment's centre. Clips shorter than ``num_segments`` repeat frames, in order.
    """
    _positive("num_frames", num_frames)
    _positive("num_segments", num_segments)
    edges = np.arange(num_segments + 1) * (num_frames / num_segments)
    if train:
        if rng is None:
            raise InputError("segment_indices(train=True) needs rng, a numpy Generator, to draw frames.")
        points = edges[:-1] + rng.random(num_segments) * (edges[1:] - edges[:-1])
    else:
        points = (edges[:-1] + edges[1:]) / 2
    return np.minimum(np.floor(points), num_frames - 1).astype(np.int64)


def stride_indices(num_frames: int, stride: int, max_frames: int | None = None) -> np.ndarray:
    """Every ``stride``-th frame from the first, at most ``max_frames`` of them."""
    _positive("num_frames", num_frames)
    _positive("stride", stride)
    indices = np.arange(0, num_frames, stride, dtype=np.int64)
    if max_frames is not None:
        _positive("max_frames", max_frames)
        indices = indices[:max_frames]
    return indices


def observation_cutoff(num_steps: int, ratio: float) -> int:
    """How many of ``num_steps`` steps an observation ratio covers: ceil(ratio * num_steps).

    The product is rounded to 1e-9 first, so float error cannot add a step (0.3 * 10 is
    3.0000000000000004, and must give 3). The result is clamped to [1, num_steps].
    """
    _positive("num_steps", num_steps)
    if not (0.0 < ratio <= 1.0):
        raise InputError(f"ratio must be in (0, 1]; got {ratio}.")
    return min(max(math.ceil(round(ratio * num_steps, 9)), 1), num_steps)


def sample_indices(num_frames: int, sampling: Sampling, *, train: bool = False,
                   rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Frame indices of the sequence a model sees. Training with ``jitter`` draws a random phase
    (stride) or a random frame per segment; evaluation is deterministic."""
    jitter = train and sampling.jitter
    if sampling.mode == "segments":
        return segment_indices(num_frames, sampling.segments, train=jitter, rng=rng)
    offset = int(rng.integers(0, min(sampling.stride, num_frames))) if jitter and sampling.stride > 1 else 0
    low, high = sampling.speed
    if low > high:
        raise InputError(f"sampling.speed must be [low, high] with low <= high; got [{low}, {high}].")
    if train and (low, high) != (1.0, 1.0):
        if rng is None:
            raise InputError("sample_indices(train=True) with a speed range needs rng, a numpy Generator.")
        step = sampling.stride * float(np.exp(rng.uniform(np.log(low), np.log(high))))
        indices = offset + np.floor(np.arange(0.0, num_frames - offset, step) + 1e-9).astype(np.int64)
        indices = indices[indices < num_frames]
        return indices[:sampling.max_steps] if sampling.max_steps is not None else indices
    return offset + stride_indices(num_frames - offset, sampling.stride, sampling.max_steps)


def sampling_stride(sampling: Sampling) -> int:
    """The ``stride`` a checkpoint declares: the Predictor steps on every stride-th frame.
    Segment sampling has no fixed rate; its students are saved with stride 1."""
    return sampling.stride if sampling.mode == "stride" else 1
