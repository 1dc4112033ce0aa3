"""LSTM / GRU that run whole sequences (cuDNN) and single streaming steps on the same weights.

They ARE ``nn.LSTM`` / ``nn.GRU`` (batch_first): the state dict keys and gate layouts are
PyTorch's (LSTM gates i, f, g, o; GRU gates r, z, n with ``b_hn`` inside the reset product), so
a C++ or TensorRT kernel loads ``weight_ih_l{k}``... unchanged. ``step`` writes the cell math
out with linear/sigmoid/tanh, which every exporter and runtime handles, and keeps one state
tensor per layer (``h0``, ``c0``, ``h1``...). Dropout between layers is a training-time
regulariser of the offline form; ``step`` is inference and applies none.
"""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from edgeact.errors import ConfigError
from edgeact.models.state import State


class StreamingLSTM(nn.LSTM):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                         dropout=dropout if num_layers > 1 else 0.0)

    def step(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        """x [B,D] -> top-layer h [B,H]; state {h<k>, c<k>: [B,H]} per layer (None: zeros)."""
        _check_unidirectional(self)
        new: State = {}
        for k in range(self.num_layers):
            if state is None:
                h = c = x.new_zeros(x.shape[0], self.hidden_size)
            else:
                h, c = state[f"h{k}"], state[f"c{k}"]
            gates = (F.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}"))
                     + F.linear(h, getattr(self, f"weight_hh_l{k}"), getattr(self, f"bias_hh_l{k}")))  # [B,4H]
            i, f, g, o = gates.chunk(4, dim=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()  # [B,H]
            h = o.sigmoid() * c.tanh()
            new[f"h{k}"], new[f"c{k}"] = h, c
            x = h
        return x, new


class StreamingGRU(nn.GRU):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                         dropout=dropout if num_layers > 1 else 0.0)

    def step(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        """x [B,D] -> top-layer h [B,H]; state {h<k>: [B,H]} per layer (None: zeros)."""
        _check_unidirectional(self)
        new: State = {}
        for k in range(self.num_layers):
            h = x.new_zeros(x.shape[0], self.hidden_size) if state is None else state[f"h{k}"]
            xr, xz, xn = F.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}")).chunk(3, 1)
            hr, hz, hn = F.linear(h, getattr(self, f"weight_hh_l{k}"), getattr(self, f"bias_hh_l{k}")).chunk(3, 1)
            r = (xr + hr).sigmoid()  # [B,H]
            z = (xz + hz).sigmoid()
            n = (xn + r * hn).tanh()
            h = n + z * (h - n)  # = (1 - z) * n + z * h
            new[f"h{k}"] = h
            x = h
        return x, new


RNN_CELLS = {"lstm": StreamingLSTM, "gru": StreamingGRU}


def _check_unidirectional(rnn: nn.RNNBase) -> None:
    if rnn.bidirectional:
        raise ConfigError(f"A bidirectional {rnn.mode} reads future steps and cannot run a streaming step.")
