"""Nested <-> flat streaming state inside the models.

Inside the models a state is a nested dict (each module owns its own keys, e.g. the LSTM of
the head owns ``{"h0": ..., "c0": ...}``); at the StreamingModel boundary it is flattened to
dotted names (``head.lstm.h0``) in a fixed order, which are the names of the spec's state
tensors (``edgeact.spec.TensorSpec``) and of the ``state_in.<name>`` / ``state_out.<name>``
graph inputs and outputs.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

State = dict[str, Union[Tensor, "State"]]


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float32 -> 'float32' (the spelling of numpy, ONNX Runtime and the spec)."""
    return str(dtype).removeprefix("torch.")


def substate(state: Optional[State], key: str) -> Optional[State]:
    """The part of ``state`` owned by child ``key``; None (start of stream) stays None.

    A child without state has no entry once the state went through flatten/unflatten.
    """
    return None if state is None else state.get(key, {})


def flatten_state(state: State, prefix: str = "") -> dict[str, Tensor]:
    """Nested state -> ``{"head.lstm.h0": tensor, ...}`` in insertion order."""
    flat: dict[str, Tensor] = {}
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_state(value, name + "."))
        else:
            flat[name] = value
    return flat


def unflatten_state(flat: dict[str, Tensor]) -> State:
    """Inverse of :func:`flatten_state` (keys of nested dicts never contain dots)."""
    state: State = {}
    for name, tensor in flat.items():
        *parents, leaf = name.split(".")
        node = state
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = tensor
    return state
