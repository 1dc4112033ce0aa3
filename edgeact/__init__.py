"""edgeact: real-time action prediction on edge GPUs.

The runtime (``Predictor``, preprocessing, the onnxruntime/tensorrt/native backends) imports
without PyTorch; torch is needed only to train, export, or run the torch backend. Heavy
submodules are therefore imported lazily, on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edgeact._version import __version__
from edgeact.errors import (
    BackendError,
    ConfigError,
    DatasetError,
    EdgeActError,
    ExportError,
    InputError,
    InputTypeError,
    ModelFormatError,
    StreamError,
)

if TYPE_CHECKING:
    from edgeact.predictor import Prediction, Predictor

# public name -> module that defines it; imported on first use
_LAZY = {
    "Predictor": "edgeact.predictor",
    "Prediction": "edgeact.predictor",
}

__all__ = [
    "__version__",
    "BackendError",
    "ConfigError",
    "DatasetError",
    "EdgeActError",
    "ExportError",
    "InputError",
    "InputTypeError",
    "ModelFormatError",
    "Prediction",
    "Predictor",
    "StreamError",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeact' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
