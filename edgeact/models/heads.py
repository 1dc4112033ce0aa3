"""Recurrent classification heads over per-frame features: M3's GRU/LSTM students and their
bidirectional teachers, and M1's two-stage LSTM.

Every head has the same two forms: ``forward(x [B,T,D])`` returns a dict with ``logits``
[B,T,K] and ``features`` [B,T,F] (the classifier's input, the hidden features distillation
matches step by step), and ``step(x [B,D], state) -> (logits [B,K], state)``.

Their streaming step is also declared as a *kernel plan* (``kernel_plan``): stacks of LSTM/GRU
cells with their state tensors and PyTorch parameter names, what each stack reads (declared
feature boundaries or an earlier stack's output) and the classifier. The exporter resolves the
parameter names to the graph's initializers, and a runtime with its own recurrent kernels
(the native backend) runs the plan as declared, without knowing these classes:

    {"stacks": [{"cell": "lstm", "inputs": ["features.frames", "features.keypoints"],
                 "layers": [{"state": ["head.lstm.h0", "head.lstm.c0"],
                             "weight_ih": {"param": "head.rnn.weight_ih_l0"}, ...}]}],
     "classifier": {"input": "stack:0", "weight": {"param": ...}, "bias": {"param": ...}}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from edgeact.models.recurrent import RNN_CELLS, StreamingLSTM
from edgeact.models.state import State, substate


@dataclass(frozen=True)
class RecurrentHeadConfig:
    hidden: int = field(default=256, metadata={"min": 1})  # per direction
    layers: int = field(default=1, metadata={"min": 1, "max": 3})
    bidirectional: bool = False  # a teacher: sees the whole sequence, offline only
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.9})  # between layers, before the classifier


class RecurrentHead(nn.Module):
    """LSTM or GRU over the sequence, a linear classifier at every step."""

    def __init__(self, cell: str, cfg: RecurrentHeadConfig, in_dim: int, num_classes: int):
        super().__init__()
        self.cell = cell  # also the state's name: head.lstm.h0 ...
        self.rnn = RNN_CELLS[cell](in_dim, cfg.hidden, cfg.layers, cfg.bidirectional, cfg.dropout)
        self.feature_dim = cfg.hidden * (2 if cfg.bidirectional else 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    @property
    def offline_reason(self) -> Optional[str]:
        if self.rnn.bidirectional:
            return f"its head is a bidirectional {self.cell.upper()}, which reads future steps"
        return None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.rnn(x)[0]  # [B,T,F]
        return {"logits": self.classifier(self.dropout(h)), "features": h}

    def step(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        h, rnn_state = self.rnn.step(x, substate(state, self.cell))  # [B,H]
        return self.classifier(h), {self.cell: rnn_state}

    def kernel_plan(self, prefix: str, inputs: list[str]) -> Optional[dict]:
        """The step as a kernel plan (module docstring); ``prefix`` is this head's parameter and
        state prefix (``head.``), ``inputs`` the feature boundaries it reads, concatenated."""
        if self.offline_reason:
            return None
        return {"stacks": [stack_plan(self.cell, self.rnn, f"{prefix}rnn.", f"{prefix}{self.cell}", inputs)],
                "classifier": linear_plan(f"{prefix}classifier", "stack:0")}


@dataclass(frozen=True)
class TwoStageConfig:
    hidden: int = field(default=256, metadata={"min": 1})  # both stages, per direction
    bidirectional: bool = False  # the M1 teacher pair: both stages bidirectional
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.9})  # before each classifier


class TwoStageHead(nn.Module):
    """M1: stage 1 is an LSTM over context (frame) features; stage 2 an LSTM over
    [stage-1 hidden, action (pose) features]. Both stages classify, so each gets its own loss;
    the streaming step computes only stage 2's logits.
    """

    def __init__(self, cfg: TwoStageConfig, context_dim: int, action_dim: int, num_classes: int):
        super().__init__()
        self.split = (context_dim, action_dim)
        self.feature_dim = cfg.hidden * (2 if cfg.bidirectional else 1)
        self.stage1 = StreamingLSTM(context_dim, cfg.hidden, bidirectional=cfg.bidirectional)
        self.stage2 = StreamingLSTM(self.feature_dim + action_dim, cfg.hidden, bidirectional=cfg.bidirectional)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier1 = nn.Linear(self.feature_dim, num_classes)
        self.classifier2 = nn.Linear(self.feature_dim, num_classes)

    @property
    def offline_reason(self) -> Optional[str]:
        if self.stage1.bidirectional:
            return "its two-stage head uses bidirectional LSTMs, which read future steps"
        return None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x [B,T,context+action]."""
        context, action = x.split(self.split, dim=-1)
        h1 = self.stage1(context)[0]  # [B,T,F]
        h2 = self.stage2(torch.cat((h1, action), dim=-1))[0]  # [B,T,F]
        return {"logits": self.classifier2(self.dropout(h2)), "features": h2,
                "stage1_logits": self.classifier1(self.dropout(h1)), "stage1_features": h1}

    def step(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        context, action = x.split(self.split, dim=-1)
        h1, state1 = self.stage1.step(context, substate(state, "stage1"))  # [B,H]
        h2, state2 = self.stage2.step(torch.cat((h1, action), dim=-1), substate(state, "stage2"))
        return self.classifier2(h2), {"stage1": state1, "stage2": state2}

    def kernel_plan(self, prefix: str, inputs: list[str]) -> Optional[dict]:
        """Stage 1 over the context (frame) features, stage 2 over [stage 1's h, action (pose)
        features], stage 2's classifier: the step as a kernel plan (module docstring)."""
        if self.offline_reason:
            return None
        context, action = inputs
        return {"stacks": [stack_plan("lstm", self.stage1, f"{prefix}stage1.", f"{prefix}stage1", [context]),
                           stack_plan("lstm", self.stage2, f"{prefix}stage2.", f"{prefix}stage2", ["stack:0", action])],
                "classifier": linear_plan(f"{prefix}classifier2", "stack:1")}


def stack_plan(cell: str, rnn: nn.RNNBase, params: str, state: str, inputs: list[str]) -> dict:
    """One stacked LSTM/GRU of a kernel plan: per layer its state tensors and parameters."""
    parts = ("h", "c") if cell == "lstm" else ("h",)
    weights = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ())
    layers = [{"state": [f"{state}.{p}{k}" for p in parts],
               **{w: {"param": f"{params}{w}_l{k}"} for w in weights}} for k in range(rnn.num_layers)]
    return {"cell": cell, "inputs": list(inputs), "layers": layers}


def linear_plan(name: str, reads: str) -> dict:
    return {"input": reads, "weight": {"param": f"{name}.weight"}, "bias": {"param": f"{name}.bias"}}
