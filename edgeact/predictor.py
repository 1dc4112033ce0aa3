"""Predictor: one ``push(frame)`` per frame, one prediction per push.

Placeholder until the Predictor/runtime issue lands: the name is importable (so user code and
the torch-free import test can rely on it) but constructing one says plainly that it is not
available yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeact.errors import BackendError


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    score: float


class Predictor:
    def __init__(self, model, backend: str = "auto", **options) -> None:
        raise BackendError(
            "Predictor is not implemented in this version of edgeact; "
            "it arrives with the runtime (Predictor/ONNX export) release."
        )
