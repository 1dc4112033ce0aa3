"""Keyframed pose trajectories, plus the gait and idle sway layered on top of them.

A :class:`Motion` keys each pose parameter independently over the action phase u in [0, 1]
and eases between keys with smoothstep, so the pose at u depends only on the two keys around
u. That locality is what makes the shared beginning of a class group exact: once every
parameter is pinned at the divergence point, nothing keyed later can change an earlier frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeact.data.skeleton import REST_POSE


def smoothstep(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


@dataclass(frozen=True)
class _Wave:
    param: str
    amplitude: float
    cycles: float
    start: float
    end: float
    phase: float
    pulse: bool  # one-sided (0..amplitude) instead of +-amplitude, e.g. hands opening in a clap


class Motion:
    """Pose trajectory of one person: per-parameter keys plus oscillations."""

    def __init__(self, **start: float) -> None:
        pose = dict(REST_POSE, **start)
        self._keys: dict[str, list[tuple[float, float]]] = {k: [(0.0, v)] for k, v in pose.items()}
        self._waves: list[_Wave] = []

    def at(self, param: str, u: float) -> float:
        """Keyed value of ``param`` at phase ``u`` (oscillations excluded)."""
        return float(self._interp(param, np.array([u]))[0])

    def key(self, u: float, **values: float) -> Motion:
        for name, value in values.items():
            keys = self._keys[name]  # KeyError names a mistyped parameter
            keys.append((u, float(value)))
            keys.sort(key=lambda k: k[0])
        return self

    def pin(self, u: float) -> Motion:
        """Key every parameter at its current value: later keys cannot reach back past ``u``."""
        return self.key(u, **{name: self.at(name, u) for name in self._keys})

    def wave(
        self, param: str, amplitude: float, cycles: float, start: float, end: float,
        phase: float = 0.0, pulse: bool = False,
    ) -> Motion:  # fmt: skip
        if param not in self._keys:
            raise KeyError(param)
        self._waves.append(_Wave(param, amplitude, cycles, start, end, phase, pulse))
        return self

    def sample(self, u: np.ndarray) -> dict[str, np.ndarray]:
        pose = {name: self._interp(name, u) for name in self._keys}
        for w in self._waves:
            span = w.end - w.start
            s = (u - w.start) / span
            ramp = min(0.15, 0.5 / max(w.cycles, 1.0))  # ease in and out over part of a cycle
            window = smoothstep(s / ramp) * smoothstep((1.0 - s) / ramp)
            angle = 2.0 * np.pi * w.cycles * s + w.phase
            shape = 0.5 - 0.5 * np.cos(angle) if w.pulse else np.sin(angle)
            pose[w.param] = pose[w.param] + w.amplitude * window * shape
        return pose

    def _interp(self, param: str, u: np.ndarray) -> np.ndarray:
        keys = self._keys[param]
        ku = np.array([k[0] for k in keys])
        kv = np.array([k[1] for k in keys])
        i = np.clip(np.searchsorted(ku, u, side="right") - 1, 0, len(ku) - 1)
        j = np.minimum(i + 1, len(ku) - 1)
        span = np.where(j > i, ku[j] - ku[i], 1.0)
        w = np.where(j > i, smoothstep((u - ku[i]) / span), 0.0)
        return kv[i] + (kv[j] - kv[i]) * w


def add_gait(pose: dict[str, np.ndarray], stride: float) -> None:
    """Swing legs and arms in proportion to how fast the figure moves along x (in place).

    Uses backward differences and a causal filter so a frame's gait never depends on where
    the figure goes next.
    """
    x = pose["x"]
    dx = np.abs(np.diff(x, prepend=x[:1]))
    phase = np.pi * np.cumsum(dx) / stride  # one leg swing per stride
    amp = np.clip(dx / (0.25 * stride), 0.0, 1.0)
    for t in range(1, len(amp)):
        amp[t] = 0.6 * amp[t - 1] + 0.4 * amp[t]
    swing = amp * np.sin(phase)
    lift = amp * np.cos(phase)
    pose["rhip"] = pose["rhip"] + 24.0 * swing
    pose["lhip"] = pose["lhip"] - 24.0 * swing
    pose["rkn"] = pose["rkn"] - 40.0 * np.maximum(lift, 0.0)
    pose["lkn"] = pose["lkn"] - 40.0 * np.maximum(-lift, 0.0)
    pose["rsh"] = pose["rsh"] - 16.0 * swing
    pose["lsh"] = pose["lsh"] + 16.0 * swing


_SWAY_DEGREES = {"lean": 1.5, "head": 4.0, "rsh": 3.0, "lsh": 3.0, "rel": 5.0, "lel": 5.0, "x": 0.006}


def add_sway(pose: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Slow, small, smooth wobble of a living figure (in place); amplitudes in pose units."""
    t = np.arange(len(pose["x"]), dtype=np.float64)
    for name, amp in _SWAY_DEGREES.items():
        period = rng.uniform(25.0, 90.0, size=2)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=2)
        wobble = np.sin(2.0 * np.pi * t[:, None] / period + phase).sum(axis=1) / 2.0
        pose[name] = pose[name] + amp * rng.uniform(0.5, 1.0) * wobble
