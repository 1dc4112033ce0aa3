"""The frame-encoder contract shared by TSM-MobileNetV2 and TSM-ResNet, and the RGB-difference stream.

A frame encoder is a per-frame CNN trunk with temporal-shift points. One trunk definition
serves both forms: offline, clips [B,T,3,H,W] are flattened to [B*T,3,H,W] (so BatchNorm sees
every frame in training) and each shift point shifts along T; streaming, one frame [B,3,H,W]
passes through and each shift point swaps in its cache. In eval mode BatchNorm is per frame,
so the two forms compute the same function.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from edgeact.errors import ConfigError
from edgeact.models.state import State, substate
from edgeact.models.temporal_shift import OfflineShift, ShiftFn, StreamShift, shift_fold


class FrameEncoder(nn.Module):
    """Base class: subclasses build layers and implement :meth:`trunk`.

    ``spatial=False`` returns a globally average-pooled vector per frame, ``spatial=True`` the
    last feature map (for ConvLSTM heads).
    """

    name: str  # registry name, e.g. "tsm_mobilenet_v2"
    out_channels: int  # channels of the last feature map (= vector size when pooled)

    def __init__(self, size: tuple[int, int], shift: str, fold_div: int, spatial: bool):
        super().__init__()
        self.size, self.shift_mode, self.fold_div, self.spatial = size, shift, fold_div, spatial

    def shift_point(self, index: int, channels: int) -> Optional[tuple[str, int]]:
        """(state key, fold) of the shift point before block ``index``, or None without shift."""
        if self.shift_mode == "none":
            return None
        return f"shift{index}", shift_fold(channels, self.fold_div, self.shift_mode == "bidirectional")

    def trunk(self, x: Tensor, shift: ShiftFn) -> Tensor:
        """[N,3,H,W] -> [N,C,h,w]; calls ``shift(key, fold, h)`` at every shift point."""
        raise NotImplementedError

    @property
    def offline_reason(self) -> Optional[str]:
        """Why this encoder cannot stream, or None."""
        if self.shift_mode == "bidirectional":
            return f"its {self.name} encoder uses the bidirectional temporal shift, which reads the next frame"
        return None

    def forward(self, frames: Tensor) -> Tensor:
        """frames [B,T,3,H,W] -> features [B,T,C] (or maps [B,T,C,h,w] when spatial)."""
        B, T = frames.shape[:2]
        shift = OfflineShift(T, bidirectional=self.shift_mode == "bidirectional")
        maps = self.trunk(frames.flatten(0, 1), shift)  # [B*T,C,h,w]
        return self._output(maps).unflatten(0, (B, T))

    def step(self, frame: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        """frame [B,3,H,W], shift caches (None: start of stream) -> features [B,C], next caches."""
        if self.offline_reason:
            raise ConfigError(f"This encoder is offline-only: {self.offline_reason}.")
        shift = StreamShift(state)
        maps = self.trunk(frame, shift)  # [B,C,h,w]
        return self._output(maps), shift.new_state

    def _output(self, maps: Tensor) -> Tensor:
        return maps if self.spatial else maps.mean(dim=(2, 3))


def init_like_torchvision(model: nn.Module) -> None:
    """torchvision's CNN init, so training from scratch behaves like the reference models."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class RGBDifference(nn.Module):
    """M4's cheap motion stream: an encoder of its own reading frame_t - frame_{t-1}, zeros at t=0.

    Streaming state: the previous frame and a ``seen`` flag that is 0 before the first frame,
    so a zero-initialised state yields a zero first difference exactly like the offline form.
    """

    def __init__(self, encoder: FrameEncoder):
        super().__init__()
        self.encoder = encoder

    @property
    def offline_reason(self) -> Optional[str]:
        return self.encoder.offline_reason

    def forward(self, frames: Tensor) -> Tensor:
        """frames [B,T,3,H,W] -> features of the differences [B,T,C]."""
        diff = frames[:, 1:] - frames[:, :-1]  # [B,T-1,3,H,W]
        diff = torch.cat((torch.zeros_like(frames[:, :1]), diff), dim=1)  # [B,T,3,H,W]
        return self.encoder(diff)

    def step(self, frame: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        if state is None:
            prev, seen = torch.zeros_like(frame), frame.new_zeros(frame.shape[0], 1, 1, 1)
        else:
            prev, seen = state["prev"], state["seen"]
        diff = (frame - prev) * seen  # [B,3,H,W]
        features, encoder_state = self.encoder.step(diff, substate(state, "encoder"))
        # seen.clamp_min(1) is 1, computed from the input so that exporters do not fold it into a
        # constant of the export batch size (ones_like becomes an initializer under torch.export)
        return features, {"prev": frame, "seen": seen.clamp_min(1.0), "encoder": encoder_state}
