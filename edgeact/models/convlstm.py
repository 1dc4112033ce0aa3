"""Method M2's head: a ConvLSTM over backbone feature maps, spatial attention, LSTMs, two FC layers.

The ConvLSTM keeps the spatial layout (e.g. 7x7 of a ResNet-50 at 224 px) while modelling
time; its streaming state is the h and c maps. Three attention variants turn its output map
into a vector: ``average`` (spatial mean), ``channel`` (mean over channels -> 3x3 conv ->
softmax over space -> weighted sum) and ``linear`` (1x1 conv over channels -> spatial map ->
multiply -> spatial mean). Each variant feeds its own LSTM stack (M2: 3 layers, half the
ConvLSTM width) and two FC layers; the variants' logits are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from edgeact.errors import ConfigError
from edgeact.models.recurrent import StreamingLSTM
from edgeact.models.state import State, substate

ATTENTION_KINDS = ("average", "channel", "linear")


@dataclass(frozen=True)
class ConvLSTMHeadConfig:
    channels: int = field(default=512, metadata={"min": 1})  # ConvLSTM kernels (M2: 512)
    kernel: int = field(default=3, metadata={"min": 1})
    attention: tuple[str, ...] = field(default=ATTENTION_KINDS, metadata={"choices": ATTENTION_KINDS})
    lstm_hidden: Optional[int] = field(default=None, metadata={"min": 1})  # None: channels // 2
    lstm_layers: int = field(default=3, metadata={"min": 1, "max": 3})
    fc: int = field(default=128, metadata={"min": 1})  # width of the first FC layer

    def __post_init__(self):
        if not self.attention or len(set(self.attention)) != len(self.attention):
            raise ConfigError(f"Model config 'head.attention' must list distinct variants among "
                              f"{', '.join(ATTENTION_KINDS)}, got {list(self.attention)}.")
        if self.kernel % 2 == 0:
            raise ConfigError(f"Model config 'head.kernel' must be odd to keep the map size, got {self.kernel}.")


class ConvLSTM(nn.Module):
    """One ConvLSTM layer; gates in nn.LSTM's order i, f, g, o.

    The input and hidden convolutions are separate so the offline form runs the input
    convolution on all frames at once and only the hidden one step by step.
    """

    def __init__(self, in_channels: int, channels: int, kernel: int):
        super().__init__()
        self.channels = channels
        self.input_conv = nn.Conv2d(in_channels, 4 * channels, kernel, padding=kernel // 2)
        self.hidden_conv = nn.Conv2d(channels, 4 * channels, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """x [B,T,C,h,w] -> hidden maps [B,T,channels,h,w]."""
        B, T = x.shape[:2]
        x_gates = self.input_conv(x.flatten(0, 1)).unflatten(0, (B, T))  # [B,T,4ch,h,w]
        state, outputs = None, []
        for t in range(T):
            h, state = self._cell(x_gates[:, t], state)
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    def step(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        """x [B,C,h,w]; state {h, c: [B,channels,h,w]} -> (h, state)."""
        return self._cell(self.input_conv(x), state)

    def _cell(self, x_gates: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        if state is None:
            h = c = x_gates.new_zeros(x_gates.shape[0], self.channels, *x_gates.shape[2:])
        else:
            h, c = state["h"], state["c"]
        i, f, g, o = (x_gates + self.hidden_conv(h)).chunk(4, dim=1)  # [B,ch,h,w] each
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return h, {"h": h, "c": c}


class SpatialAttention(nn.Module):
    """[N,C,h,w] -> [N,C] by one of M2's attention variants."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        self.kind = kind
        if kind == "channel":
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
        elif kind == "linear":
            self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, h: Tensor) -> Tensor:
        if self.kind == "average":
            return h.mean(dim=(2, 3))
        if self.kind == "channel":
            w = self.conv(h.mean(dim=1, keepdim=True)).flatten(1).softmax(dim=-1)  # [N,h*w]
            return (h.flatten(2) * w.unsqueeze(1)).sum(dim=-1)  # [N,C]
        return (h * self.conv(h)).mean(dim=(2, 3))  # linear: [N,1,h,w] map multiplied in


class AttentionBranch(nn.Module):
    def __init__(self, kind: str, channels: int, cfg: ConvLSTMHeadConfig, num_classes: int):
        super().__init__()
        hidden = cfg.lstm_hidden or channels // 2
        self.attention = SpatialAttention(kind, channels)
        self.lstm = StreamingLSTM(channels, hidden, cfg.lstm_layers)
        self.fc = nn.Sequential(nn.Linear(hidden, cfg.fc), nn.ReLU())
        self.classifier = nn.Linear(cfg.fc, num_classes)


class ConvLSTMHead(nn.Module):
    offline_reason: Optional[str] = None

    def __init__(self, cfg: ConvLSTMHeadConfig, in_channels: int, num_classes: int):
        super().__init__()
        self.convlstm = ConvLSTM(in_channels, cfg.channels, cfg.kernel)
        self.branches = nn.ModuleDict({k: AttentionBranch(k, cfg.channels, cfg, num_classes) for k in cfg.attention})
        self.feature_dim = cfg.fc * len(cfg.attention)

    def forward(self, maps: Tensor) -> dict[str, Tensor]:
        """maps [B,T,C,h,w] -> logits [B,T,K] (mean over variants), features [B,T,fc*variants]."""
        B, T = maps.shape[:2]
        h = self.convlstm(maps).flatten(0, 1)  # [B*T,ch,h,w]
        logits, features = [], []
        for branch in self.branches.values():
            pooled = branch.attention(h).unflatten(0, (B, T))  # [B,T,ch]
            f = branch.fc(branch.lstm(pooled)[0])  # [B,T,fc]
            logits.append(branch.classifier(f))
            features.append(f)
        return {"logits": torch.stack(logits).mean(dim=0), "features": torch.cat(features, dim=-1)}

    def step(self, maps: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        h, convlstm_state = self.convlstm.step(maps, substate(state, "convlstm"))  # [B,ch,h,w]
        new: State = {"convlstm": convlstm_state}
        logits = []
        for kind, branch in self.branches.items():
            r, new[kind] = branch.lstm.step(branch.attention(h), substate(state, kind))  # [B,hidden]
            logits.append(branch.classifier(branch.fc(r)))
        return torch.stack(logits).mean(dim=0), new
