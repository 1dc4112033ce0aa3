"""The one small interface every runtime implements: a loader that builds, a runner that steps.

Polygraphy's split: loading/building is separate from stepping.

* A **Loader** is a lazy callable: ``OnnxRuntimeLoader("m.onnx", device="cpu")()`` builds the
  runtime object (an ONNX Runtime session, a torch model, an engine). It checks its options
  when made and reads the artifact's spec without building anything (``loader.spec``).
* A **Runner** steps that object. Hand it the object itself (a session you configured) or a
  Loader; with ``lazy=True`` the loader runs on first use, so an engine can be built lazily.

A runner implements one method, ``_run(inputs, state_in, state_out, key) -> logits``: read the
data inputs and the state (one array per ``spec.state`` entry, batch first), write the next
state into ``state_out`` (preallocated by the caller), return the logits. It never allocates
state. ``allocate`` says where state memory lives (numpy by default; torch tensors for torch,
device memory for GPU runners). ``key`` names the exact buffers of the call (the state pool
gives one when it hands the same buffers again), so a runner may cache bindings to them.

The public ``step(inputs, state)`` is the stateless form (evaluation, benchmarks, tests): it
validates inputs and state against the spec (``ModelSpec.check_step``: one check and one
sentence for every runner) and allocates the next state. The Predictor steps through a
``StatePool`` instead, which hands ``_run`` views of its persistent buffers.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgeact.errors import BackendError, ModelFormatError
from edgeact.spec import ModelSpec, TensorSpec, read_spec


def check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFormatError(f"model path is not a file: {path}")
    return path


class Loader(abc.ABC):
    """Builds a backend's runtime object from an artifact, on call."""

    backend: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()  # keyword options taken besides device and threads

    def __init__(self, path: str | Path, *, device: str = "auto", threads: int | None = None, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = ", ".join(("device", "threads", *self.options))
            raise BackendError(f"backend {self.backend!r} does not take option(s) {unknown}; it takes {takes}.")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise BackendError(f"threads must be a positive int or None, got {threads!r}.")
        self.path = check_path(path)
        self.device, self.threads, self.kwargs = device, threads, options
        self._spec: ModelSpec | None = None

    @property
    def spec(self) -> ModelSpec:
        """The artifact's spec, read without building the runtime."""
        if self._spec is None:
            self._spec = read_spec(self.path)
        return self._spec

    @abc.abstractmethod
    def __call__(self) -> Any:
        """Build and return the runtime object the runner steps."""


class Runner(abc.ABC):
    """Steps a loaded runtime. Subclasses set ``name`` and write ``_open`` and ``_run``."""

    name: ClassVar[str]
    max_batch: int | None = None  # the most streams one step takes (an engine profile); None: any

    def __init__(self, source: Any, *, lazy: bool = False):
        self._loader = source if isinstance(source, Loader) else None
        self._runtime = None if self._loader else source
        self._open_lock = threading.Lock()
        self._opened = False
        self.spec: ModelSpec = self._loader.spec if self._loader else self._spec_of(source)
        if not lazy:
            self.runtime  # noqa: B018 (builds now, so a bad artifact fails here, not at the first frame)

    @property
    def runtime(self) -> Any:
        """The loaded object, built by the loader on first use and opened once."""
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    if self._runtime is None:
                        if self._loader is None:
                            raise BackendError(f"this {self.name} runner is closed.")
                        self._runtime = self._loader()
                    self._open(self._runtime)
                    self._opened = True
        return self._runtime

    def _spec_of(self, runtime: Any) -> ModelSpec:
        """The spec of a runtime object handed over directly (without a loader)."""
        spec = getattr(runtime, "spec", None)
        if not isinstance(spec, ModelSpec):
            raise BackendError(f"a {self.name} runner needs a loader or a loaded object that carries its spec, "
                               f"got {type(runtime).__name__}.")
        return spec

    @abc.abstractmethod
    def _open(self, runtime: Any) -> None:
        """Check the runtime against ``self.spec`` and prepare to step it (once)."""

    @abc.abstractmethod
    def _run(self, inputs: dict[str, np.ndarray], state_in: Sequence[Any], state_out: Sequence[Any],
             key: Hashable | None = None) -> np.ndarray:
        """One step on validated inputs: write the next state into ``state_out``, return the
        logits [B,K] as a new float32 numpy array."""

    def allocate(self, spec: TensorSpec, rows: int) -> Any:
        """Zeroed memory for ``rows`` streams of one state tensor, where this runner reads it."""
        return np.zeros((rows, *spec.shape), dtype=spec.dtype)

    # -- the stateless form -------------------------------------------------------------------
    def init_state(self, batch: int = 1) -> list[np.ndarray]:
        """Zero state for ``batch`` streams (numpy), for :meth:`step`."""
        return self.spec.zero_state(batch)

    def step(self, inputs: dict[str, np.ndarray], state: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Validate against the spec, then one step: (logits [B,K], next state as new arrays)."""
        self.spec.check_step(inputs, state)
        self.runtime  # noqa: B018
        inputs = {name: np.ascontiguousarray(array) for name, array in inputs.items()}
        state = [np.ascontiguousarray(array) for array in state]
        next_state = [np.empty_like(array) for array in state]
        logits = self._run(inputs, state, next_state)
        return logits, next_state

    def describe(self) -> dict[str, Any]:
        where = str(self._loader.path) if self._loader else "(a loaded object)"
        return {"backend": self.name, "path": where, "max_batch": self.max_batch}

    def close(self) -> None:
        """Release the runtime; idempotent."""
        with self._open_lock:
            self._runtime, self._loader, self._opened = None, None, False
