"""The one small interface every runtime implements: load, describe I/O, init state, step.

Backends write ``_load`` and ``_step``; the public methods here validate and time. State is
opaque to the Predictor: a list of backend-native tensors, one per ``spec.state`` entry, batch on
axis 0, so streams can be stacked into one batched step and split again.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgeact.errors import InputError, ModelFormatError
from edgeact.spec import ModelSpec

State = list  # one tensor per spec.state entry, batch first


class Backend(abc.ABC):
    """A loaded step graph. Subclasses set ``name`` and implement ``_load`` and ``_step``."""

    name: ClassVar[str]

    def __init__(self, path: str | Path, *, device: str = "auto", threads: int | None = None, **options: Any):
        path = Path(path)
        if not path.exists():
            raise ModelFormatError(f"model file not found: {path}")
        if not path.is_file():
            raise ModelFormatError(f"model path is not a file: {path}")
        self.path = path
        self.device = device
        self.threads = threads
        self.spec: ModelSpec = self._load(path, **options)

    @abc.abstractmethod
    def _load(self, path: Path, **options: Any) -> ModelSpec:
        """Load the artifact and return the spec it carries."""

    @abc.abstractmethod
    def _step(self, inputs: dict[str, np.ndarray], state: State) -> tuple[np.ndarray, State]:
        """One step on validated inputs: (logits [B,K] float32 numpy, next state)."""

    # -- state -----------------------------------------------------------------------------
    def init_state(self, batch: int = 1) -> State:
        """Zero state for ``batch`` streams, shaped from the spec."""
        return [np.zeros((batch, *s.shape), dtype=s.dtype) for s in self.spec.state]

    def stack_states(self, states: list[State]) -> State:
        """Several streams' states -> one batched state (batch order = list order)."""
        if len(states) == 1:
            return states[0]
        return [np.concatenate(parts, axis=0) for parts in zip(*states)]

    def split_state(self, state: State, sizes: list[int]) -> list[State]:
        """Inverse of ``stack_states``."""
        if len(sizes) == 1:
            return [state]
        bounds = np.cumsum(sizes)[:-1]
        per_tensor = [np.split(t, bounds, axis=0) for t in state]
        return [list(parts) for parts in zip(*per_tensor)]

    # -- step --------------------------------------------------------------------------------
    def step(self, inputs: dict[str, np.ndarray], state: State) -> tuple[np.ndarray, State]:
        """Validate names, shapes and dtypes against the spec, then run one step."""
        expected = [n for n in self.spec.input_names if not n.startswith("state_in.")]
        if sorted(inputs) != sorted(expected):
            raise InputError(f"step inputs must be {expected}, got {sorted(inputs)}.")
        batch = None
        for name in expected:
            array = inputs[name]
            want = self.spec.input_shape(name)
            if array.dtype != np.float32 or array.ndim != len(want) + 1 or array.shape[1:] != want:
                raise InputError(
                    f"step input {name!r} must be float32 of shape (batch, {', '.join(map(str, want))}), "
                    f"got {array.dtype} {array.shape}."
                )
            if batch is not None and array.shape[0] != batch:
                raise InputError(f"step inputs disagree on batch size: {batch} vs {array.shape[0]} for {name!r}.")
            batch = array.shape[0]
        if len(state) != len(self.spec.state):
            raise InputError(f"state must have {len(self.spec.state)} tensors, got {len(state)}.")
        return self._step(inputs, state)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "path": str(self.path), "device": self.device}

    def close(self) -> None:
        """Release the runtime's resources; idempotent."""
