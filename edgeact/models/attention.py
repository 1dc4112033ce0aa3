"""Causal attention pooling and method M5's head: stacked LSTMs -> attention -> dense 128 -> dense 64.

At step t every feature dimension d has its own softmax over the past steps tau <= t:
    w[t,tau,d] = exp(s[tau,d]) / sum_{tau' <= t} exp(s[tau',d]),   s = Linear(h),
    out[t,d]   = sum_{tau <= t} w[t,tau,d] * h[tau,d].
Offline this is a masked softmax over a [T, T] causal mask (O(T^2 D) memory per clip, fine
for the 10-100 steps of action clips). Streaming it is an online softmax: the state holds the
running max m, the rescaled sum of exp(s - m) * h and of exp(s - m); both sums are rescaled
whenever the max grows, so nothing overflows (also in FP16 engines).

Random weight sharing (M5's regulariser, training only): each dimension's attention weights
are replaced, with probability ``share_prob``, by the mean weights over dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from edgeact.models.recurrent import StreamingLSTM
from edgeact.models.state import State, substate


class CausalAttentionPool(nn.Module):
    def __init__(self, dim: int, share_prob: float = 0.0):
        super().__init__()
        self.score = nn.Linear(dim, dim)  # one score per step and dimension
        self.share_prob = share_prob

    def forward(self, h: Tensor) -> Tensor:
        """h [B,T,D] -> pooled [B,T,D]; step t attends over steps 0..t."""
        B, T, D = h.shape
        s = self.score(h)  # [B,T,D]
        future = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1)  # [t,tau]: tau > t
        w = s.unsqueeze(1).masked_fill(future[None, :, :, None], float("-inf")).softmax(dim=2)  # [B,t,tau,D]
        if self.training and self.share_prob > 0:
            shared = torch.rand(B, 1, 1, D, device=h.device) < self.share_prob
            w = torch.where(shared, w.mean(dim=-1, keepdim=True), w)
        return (w * h.unsqueeze(1)).sum(dim=2)  # [B,T,D]

    def step(self, h: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        """h [B,D]; state {max, num, den: [B,D]} (all zeros at the start of a stream)."""
        s = self.score(h)  # [B,D]
        if state is None:
            old_max = num = den = torch.zeros_like(s)
        else:
            old_max, num, den = state["max"], state["num"], state["den"]
        # den is >= 1 once a step was seen; before that the zero "max" is no max at all
        started = den > 0
        new_max = torch.where(started, torch.maximum(old_max, s), s)
        decay = torch.exp((old_max - new_max).clamp_max(0))  # <= 1; multiplies zeros before the start
        e = torch.exp(s - new_max)  # <= 1
        num = num * decay + e * h
        den = den * decay + e
        return num / den, {"max": new_max, "num": num, "den": den}


@dataclass(frozen=True)
class AttentionHeadConfig:
    hidden: int = field(default=128, metadata={"min": 1})
    layers: int = field(default=3, metadata={"min": 1, "max": 3})
    mlp: tuple[int, ...] = field(default=(128, 64), metadata={"min": 1})  # dense layers after attention
    share_prob: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})  # random weight sharing p
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.9})  # between LSTM layers


class AttentionHead(nn.Module):
    """M5: LSTM stack -> causal attention pooling -> dense layers (ReLU) -> classifier."""

    def __init__(self, cfg: AttentionHeadConfig, in_dim: int, num_classes: int):
        super().__init__()
        self.lstm = StreamingLSTM(in_dim, cfg.hidden, cfg.layers, dropout=cfg.dropout)
        self.attention = CausalAttentionPool(cfg.hidden, cfg.share_prob)
        layers: list[nn.Module] = []
        width = cfg.hidden
        for out in cfg.mlp:
            layers += [nn.Linear(width, out), nn.ReLU()]
            width = out
        self.mlp = nn.Sequential(*layers)
        self.feature_dim = width
        self.classifier = nn.Linear(width, num_classes)

    offline_reason: Optional[str] = None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.lstm(x)[0]  # [B,T,H]
        features = self.mlp(self.attention(h))  # [B,T,F]
        return {"logits": self.classifier(features), "features": features}

    def step(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        h, lstm_state = self.lstm.step(x, substate(state, "lstm"))  # [B,H]
        pooled, attention_state = self.attention.step(h, substate(state, "attention"))
        return self.classifier(self.mlp(pooled)), {"lstm": lstm_state, "attention": attention_state}
