"""A strict test double of a pose estimator, shared by the pose, Predictor and demo tests."""

from __future__ import annotations

import threading

import numpy as np

from edgeact.pose import COCO17, KeypointLayout, PoseProvider


def keypoints_of(frame: np.ndarray, layout: KeypointLayout = COCO17, people: int = 1, dims: int = 2) -> np.ndarray:
    """What :class:`FakePoseProvider` reports for ``frame``: a figure placed by the frame's
    content (so every frame gives its own keypoints), its joints spread over the frame, joint 3
    of each person scored below the fake's ``min_score``."""
    height, width = frame.shape[:2]
    level = float(frame.mean()) / 255.0
    j = np.arange(len(layout), dtype=np.float32)
    out = np.zeros((people, len(layout), dims + 1), np.float32)
    for p in range(people):
        out[p, :, 0] = width * (0.2 + 0.3 * p + 0.02 * j + 0.1 * level)
        out[p, :, 1] = height * (0.1 + 0.045 * j + 0.05 * level)
        if dims == 3:
            out[p, :, 2] = j
        out[p, :, -1] = 0.9 - 0.02 * j
        out[p, 3, -1] = 0.05
    return out


class FakePoseProvider(PoseProvider):
    """Strict: records every frame it is given, refuses to be entered by two threads at once
    (the base class must serialise calls), counts its closes, and fails on request."""

    MIN_SCORE = 0.1

    def __init__(self, layout: KeypointLayout = COCO17, *, people: int = 1, dims: int = 2,
                 fail_when=None) -> None:
        super().__init__(layout, max_people=people, dims=dims, min_score=self.MIN_SCORE)
        self.people = people
        self.fail_when = fail_when  # frame -> bool: raise as a broken estimator would
        self.frames: list[np.ndarray] = []
        self.closes = 0
        self._inside = threading.Lock()

    def _estimate(self, frame: np.ndarray) -> np.ndarray:
        if not self._inside.acquire(blocking=False):
            raise AssertionError("FakePoseProvider entered by two threads at once")
        try:
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, "base class let a bad frame in"
            self.frames.append(frame)
            if self.fail_when is not None and self.fail_when(frame):
                raise RuntimeError("the fake estimator failed on this frame")
            return keypoints_of(frame, self.layout, self.people, self.dims)
        finally:
            self._inside.release()

    def _close(self) -> None:
        self.closes += 1


class BrokenProvider(FakePoseProvider):
    """Returns whatever it was told to: for the checks of a provider's result."""

    def __init__(self, result, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result = result

    def _estimate(self, frame: np.ndarray):
        return self.result


class NamedFake(FakePoseProvider):
    """What ``"fake:PATH"`` builds once :func:`register_fake` has added it to the table."""

    made: list[NamedFake] = []

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        NamedFake.made.append(self)


def register_fake(monkeypatch) -> list[NamedFake]:
    """Make ``pose="fake:ANYTHING"`` (and ``--pose fake:ANYTHING``) build a NamedFake; returns
    the list of those built."""
    from edgeact.pose import PROVIDERS, ProviderEntry

    monkeypatch.setattr(NamedFake, "made", [])
    monkeypatch.setitem(PROVIDERS, "fake", ProviderEntry(__name__, "NamedFake"))
    return NamedFake.made
