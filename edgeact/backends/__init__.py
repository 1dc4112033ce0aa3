"""Runtime backends behind one interface; adding one is one module and one row here.

Each row names the module and its ``Loader`` (builds the runtime from an artifact) and
``Runner`` (steps it over the state pool); see base.py.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from edgeact.backends.base import Loader, Runner
from edgeact.errors import BackendError, InputTypeError, ModelFormatError


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str
    loader: str
    runner: str
    suffixes: tuple[str, ...]  # artifact files this backend runs
    requires: tuple[str, ...]  # importable modules it needs
    speed_rank: int  # lower is faster; "auto" picks the lowest that is present for the file


BACKENDS: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry("onnxruntime", "edgeact.backends.onnxruntime", "OnnxRuntimeLoader", "OnnxRuntimeRunner",
                     (".onnx",), ("onnxruntime",), 2),
        # opt-in: after onnxruntime
        BackendEntry("native", "edgeact.backends.native", "NativeLoader", "NativeRunner", (".onnx",),
                     ("onnx", "onnxruntime"), 4),
        BackendEntry("torch", "edgeact.backends.torch", "TorchLoader", "TorchRunner", (".pt", ".pth"), ("torch",), 3),
        BackendEntry("tensorrt", "edgeact.backends.tensorrt", "TensorRTLoader", "TensorRTRunner", (".engine", ".plan"),
                     ("tensorrt",), 0),
    )
}


def is_available(entry: BackendEntry) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in entry.requires)
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    return [name for name, entry in BACKENDS.items() if is_available(entry)]


def resolve_backend(model: str | Path, backend: str = "auto") -> BackendEntry:
    """Pick the backend for a model file: by name, or the fastest present for its suffix."""
    suffix = Path(model).suffix.lower()
    if not isinstance(backend, str):
        raise InputTypeError(f"backend must be a str, one of {['auto', *BACKENDS]}; got {type(backend).__name__} "
                             f"{backend!r}.")
    if backend != "auto":
        entry = BACKENDS.get(backend)
        if entry is None:
            hint = difflib.get_close_matches(backend, BACKENDS, n=1)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise BackendError(
                f"unknown backend {backend!r}; expected one of {['auto', *BACKENDS]}.{did_you_mean}"
            )
        if suffix not in entry.suffixes:
            raise BackendError(
                f"backend {backend!r} runs {', '.join(entry.suffixes)} files, got {Path(model).name!r}."
            )
        if not is_available(entry):
            raise BackendError(
                f"backend {backend!r} needs {', '.join(entry.requires)}, which is not installed here."
            )
        return entry
    candidates = sorted((e for e in BACKENDS.values() if suffix in e.suffixes), key=lambda e: e.speed_rank)
    if not candidates:
        known = sorted({s for e in BACKENDS.values() for s in e.suffixes})
        raise ModelFormatError(f"unknown model file type {suffix or '(none)'!r} for {model}; expected one of {known}.")
    for entry in candidates:
        if is_available(entry):
            return entry
    raise BackendError(
        f"no backend for {Path(model).name!r} is installed; install one of: "
        + ", ".join(f"{e.name} (needs {', '.join(e.requires)})" for e in candidates)
    )


def backend_classes(entry: BackendEntry) -> tuple[type[Loader], type[Runner]]:
    module = importlib.import_module(entry.module)
    return getattr(module, entry.loader), getattr(module, entry.runner)


def make_loader(model: str | Path, backend: str = "auto", **options) -> Loader:
    """The loader of ``model`` for ``backend`` (options checked now; nothing built yet)."""
    return backend_classes(resolve_backend(model, backend))[0](model, **options)


def load_backend(model: str | Path, backend: str = "auto", *, lazy: bool = False, **options) -> Runner:
    """A runner over ``model``: built now, or on first use with ``lazy``."""
    entry = resolve_backend(model, backend)
    loader_cls, runner_cls = backend_classes(entry)
    return runner_cls(loader_cls(model, **options), lazy=lazy)


__all__ = ["BACKENDS", "Loader", "Runner", "available_backends", "load_backend", "make_loader", "resolve_backend"]
