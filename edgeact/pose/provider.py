"""The pose provider interface: a camera frame in, people's keypoints out.

A keypoint model needs keypoints with every frame; a :class:`PoseProvider` finds them, so
``Predictor(model, pose=provider).push(frame)`` works alone. A provider says which joints it
reports (:attr:`PoseProvider.layout`), how many people at most (``max_people``) and in how
many coordinates (``dims``); the Predictor checks those against the model's ``KeypointSpec``
when it is made and maps the provider's layout onto the model's (:mod:`edgeact.pose.layouts`).

Writing one (any runtime: TFLite, ONNX Runtime, TensorRT, a remote service): subclass, call
``super().__init__(layout, max_people=...)``, write ``_estimate(frame)`` and, when it holds
resources, ``_close()``. The public ``__call__`` validates the frame and the result, applies
``min_score`` and serialises calls (one estimator runtime is rarely safe to call from several
threads at once, and Predictor pushes on different streams do run concurrently).

Providers built by name (``"movenet:PATH"``, the demo's ``--pose``) come from one table,
:data:`PROVIDERS`.
"""

from __future__ import annotations

import abc
import importlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeact.config import did_you_mean
from edgeact.errors import BackendError, InputError
from edgeact.pose.layouts import KeypointLayout
from edgeact.preprocess import check_frame


class PoseProvider(abc.ABC):
    """Keypoints of the people in a BGR uint8 frame: ``provider(frame) -> [people, joints, dims + 1]``.

    The columns are x, y (pixels of the frame given: x to the right, y down) [, z] and a
    score in [0, 1]; joints scored below ``min_score`` come back with score 0, which edgeact
    reads as missing. ``people`` may be anything from 0 (nobody seen) to ``max_people``.
    """

    def __init__(self, layout: KeypointLayout, *, max_people: int, dims: int = 2, min_score: float = 0.0) -> None:
        if not isinstance(layout, KeypointLayout):
            raise InputError(f"a pose provider's layout must be a KeypointLayout, got {type(layout).__name__}.")
        if isinstance(max_people, bool) or not isinstance(max_people, int) or max_people < 1:
            raise InputError(f"max_people must be a positive int, got {max_people!r}.")
        if dims not in (2, 3):
            raise InputError(f"dims must be 2 (x, y) or 3 (x, y, z), got {dims!r}.")
        if not 0.0 <= min_score <= 1.0:
            raise InputError(f"min_score must be in [0, 1], got {min_score!r}.")
        self.layout, self.max_people, self.dims, self.min_score = layout, max_people, dims, float(min_score)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.layout.joints

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Keypoints float32 ``[people, len(layout), dims + 1]`` of ``frame`` (BGR uint8 HxWx3)."""
        check_frame(frame)
        with self._lock:
            if self._closed:
                raise InputError(f"pose provider {self.name} is closed.")
            keypoints = self._estimate(frame)
        keypoints = self._check_result(keypoints)
        keypoints[keypoints[:, :, -1] < self.min_score, -1] = 0.0
        return keypoints

    @abc.abstractmethod
    def _estimate(self, frame: np.ndarray) -> np.ndarray:
        """The estimator itself: ``frame`` is validated; return ``[people, joints, dims + 1]``."""

    def _check_result(self, keypoints: Any) -> np.ndarray:
        shape = f"(people <= {self.max_people}, {len(self.layout)}, {self.dims + 1})"
        if not isinstance(keypoints, np.ndarray) or keypoints.dtype.kind != "f":
            got = keypoints.dtype if isinstance(keypoints, np.ndarray) else type(keypoints).__name__
            raise BackendError(f"pose provider {self.name} returned {got}; it must return a float array of shape {shape}.")
        if keypoints.ndim != 3 or keypoints.shape[0] > self.max_people or keypoints.shape[1:] != (
                len(self.layout), self.dims + 1):
            raise BackendError(f"pose provider {self.name} returned keypoints of shape {keypoints.shape}; "
                               f"its layout {self.layout.name} and max_people make that {shape}.")
        if not np.isfinite(keypoints[:, :, -1]).all():
            raise BackendError(f"pose provider {self.name} returned a NaN or inf score; missing joints score 0.")
        return np.array(keypoints, np.float32)  # a copy: the caller may keep it, the provider may reuse its own

    def close(self) -> None:
        """Release the estimator; calling it again does nothing."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def _close(self) -> None:
        """Release what ``__init__`` acquired (a session, an interpreter); called once."""

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "layout": self.layout.name, "max_people": self.max_people, "dims": self.dims,
                "min_score": self.min_score}

    def __enter__(self) -> PoseProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{self.name}(layout={self.layout.name!r}, max_people={self.max_people})"


@dataclass(frozen=True)
class ProviderEntry:
    """A provider that can be built by name: ``NAME:PATH`` -> ``module.cls(PATH)``."""

    module: str
    cls: str


PROVIDERS = {
    "movenet": ProviderEntry("edgeact.pose.movenet", "MoveNetProvider"),  # MoveNet SinglePose .tflite, ai-edge-litert
}


def load_provider(text: str) -> PoseProvider:
    """A provider from ``"NAME:PATH"``, e.g. ``"movenet:movenet_single_pose_lightning_ptq.tflite"``."""
    name, sep, path = text.partition(":")
    if not sep or not path:
        raise InputError(f"a pose provider is given as NAME:PATH (e.g. movenet:model.tflite), got {text!r}; "
                         f"known names: {', '.join(PROVIDERS)}.")
    entry = PROVIDERS.get(name)
    if entry is None:
        raise InputError(f"unknown pose provider {name!r}; known: {', '.join(PROVIDERS)}.{did_you_mean(name, PROVIDERS)}")
    return getattr(importlib.import_module(entry.module), entry.cls)(path)
