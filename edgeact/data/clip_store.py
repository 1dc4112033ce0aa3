"""The clips of one split as model inputs, through :mod:`edgeact.preprocess` with a model's
:class:`~edgeact.spec.ModelSpec` (the same functions and spec every backend uses). Torch-free:
streaming evaluation and INT8 calibration use it on machines without PyTorch; training wraps it
in torch Datasets (:mod:`edgeact.train.data`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from edgeact.data.dataset import Clip
from edgeact.preprocess import preprocess_frames, preprocess_keypoints
from edgeact.spec import KeypointSpec, ModelSpec


class ClipStore:
    """The clips of one split with their labels; decoded frames cached in memory when asked,
    keypoints preprocessed once per clip with ``keypoint_spec``."""

    def __init__(self, clips: Sequence[Clip], *, keypoint_view: str = "noisy_keypoints",
                 keypoint_spec: Optional[KeypointSpec] = None, cache_frames: bool = False):
        self.clips = list(clips)  # clip objects keep their own loaded keypoint arrays
        self.labels = np.array([c.label for c in self.clips], np.int64)
        self.num_frames = np.array([c.num_frames for c in self.clips], np.int64)
        self.keypoint_view = keypoint_view
        self.keypoint_spec = keypoint_spec
        self.cache_frames = cache_frames
        self._frames: dict[int, np.ndarray] = {}
        self._keypoints: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def frames(self, i: int) -> np.ndarray:
        """uint8 [T,H,W,3] BGR, as decoded."""
        if i in self._frames:
            return self._frames[i]
        frames = self.clips[i].frames()
        if self.cache_frames:
            self._frames[i] = frames
        return frames

    def keypoints(self, i: int) -> np.ndarray:
        """float32 [T,P,J,C+1], every frame through preprocess_keypoints."""
        if i not in self._keypoints:
            raw = getattr(self.clips[i], self.keypoint_view)
            self._keypoints[i] = np.stack([preprocess_keypoints(kp, self.keypoint_spec) for kp in raw])
        return self._keypoints[i]

    def inputs(self, i: int, spec: ModelSpec, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The model inputs [T,...] of clip i at ``indices``, without augmentation."""
        out = {}
        if spec.frames is not None:
            out["frames"] = preprocess_frames(self.frames(i)[indices], spec.frames)
        if spec.keypoints is not None:
            out["keypoints"] = self.keypoints(i)[indices]
        return out
