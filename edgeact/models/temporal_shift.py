"""Temporal shift (TSM, method M4): zero-FLOP temporal mixing inside a per-frame CNN.

Online (causal) variant, the one edgeact deploys: at each shift point the first
``C // fold_div`` channels of frame t are replaced by the same channels of frame t-1 (zeros at
t=0). Offline it is a shift along T; streaming, the previous frame's channels are a cache that
is the model's state and the current frame's channels become the next cache.

Bidirectional variant (offline teachers only): one fold comes from t+1 and one from t-1, as in
the original TSM, so Kinetics-trained TSM checkpoints keep their meaning.

Everything is written with slicing reads and cat, never slice assignment: traced slice
assignment is the known TSM export bug (the shifted slice becomes a constant and ONNX/TensorRT
outputs are wrong).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from edgeact.errors import ConfigError

SHIFT_MODES = ("online", "bidirectional", "none")

# What a CNN trunk calls at each shift point: (state key, fold, x) -> shifted x.
ShiftFn = Callable[[str, int, Tensor], Tensor]


def shift_fold(channels: int, fold_div: int, bidirectional: bool = False) -> int:
    """Channels moved per direction at a shift point of ``channels`` channels (checked once, at
    construction: the step path must not branch on traced sizes)."""
    fold = channels // fold_div
    if fold < 1 or (bidirectional and 2 * fold > channels):
        raise ConfigError(
            f"Temporal shift with fold_div={fold_div} does not fit a {channels}-channel layer; "
            f"use a {'larger' if fold >= 1 else 'smaller'} fold_div or a wider encoder."
        )
    return fold


# Reads use slicing (x[:, :fold]); slicing is exported faithfully, only slice *assignment* is not.
def shift_offline(x: Tensor, fold: int) -> Tensor:
    """Causal shift over whole clips: x [B,T,C,...] -> [B,T,C,...]."""
    past = x[:, :, :fold]  # [B,T,fold,...]
    past = torch.cat((torch.zeros_like(past[:, :1]), past[:, :-1]), dim=1)
    return torch.cat((past, x[:, :, fold:]), dim=2)


def shift_step(x: Tensor, cache: Optional[Tensor], fold: int) -> tuple[Tensor, Tensor]:
    """Causal shift of one frame: x [B,C,...], cache [B,fold,...] (None: start of stream).

    Returns (shifted frame [B,C,...], next cache [B,fold,...]).
    """
    current = x[:, :fold]  # [B,fold,...]
    if cache is None:
        cache = torch.zeros_like(current)
    return torch.cat((cache, x[:, fold:]), dim=1), current


def shift_bidirectional(x: Tensor, fold: int) -> Tensor:
    """Original TSM shift over whole clips, x [B,T,C,...]: fold 0 from t+1, fold 1 from t-1."""
    future, past = x[:, :, :fold], x[:, :, fold:2 * fold]  # [B,T,fold,...]
    zeros = torch.zeros_like(future[:, :1])
    future = torch.cat((future[:, 1:], zeros), dim=1)
    past = torch.cat((zeros, past[:, :-1]), dim=1)
    return torch.cat((future, past, x[:, :, 2 * fold:]), dim=2)


class OfflineShift:
    """The shift points of a CNN trunk that runs whole clips flattened to [B*T, C, H, W]."""

    def __init__(self, frames: int, bidirectional: bool = False):
        self.frames = frames
        self.shift = shift_bidirectional if bidirectional else shift_offline

    def __call__(self, key: str, fold: int, x: Tensor) -> Tensor:
        clips = x.unflatten(0, (-1, self.frames))  # [B,T,C,H,W]
        return self.shift(clips, fold).flatten(0, 1)


class StreamShift:
    """The shift points of a CNN trunk that runs one frame [B, C, H, W] per step.

    Reads each point's cache from ``state`` (None: start of stream) and collects the next
    caches in ``new_state`` under the same keys, in trunk order.
    """

    def __init__(self, state: Optional[dict[str, Tensor]]):
        self.state = state
        self.new_state: dict[str, Tensor] = {}

    def __call__(self, key: str, fold: int, x: Tensor) -> Tensor:
        cache = None if self.state is None else self.state[key]
        shifted, self.new_state[key] = shift_step(x, cache, fold)
        return shifted
