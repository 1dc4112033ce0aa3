"""NetVLAD pooling (method M4) and an offline teacher head built on it.

NetVLAD aggregates a clip's per-frame features into K cluster residuals: soft assignment
a[t,k] = softmax_k(w_k . x_t + b_k), V[k] = sum_t a[t,k] (x_t - c_k) with trainable centres
c_k, then intra-normalisation (each V[k] to unit norm) and a global L2 normalisation. It pools
the whole clip, so the teacher's logits at every step are the clip's logits (it has seen the
future by design) and the head never streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NetVLAD(nn.Module):
    def __init__(self, dim: int, clusters: int):
        super().__init__()
        self.assign = nn.Linear(dim, clusters)
        self.centres = nn.Parameter(torch.randn(clusters, dim) / dim**0.5)

    def forward(self, x: Tensor) -> Tensor:
        """x [B,T,D] -> descriptor [B,K*D] (unit L2 norm)."""
        a = self.assign(x).softmax(dim=-1)  # [B,T,K]
        # sum_t a (x - c) without materialising the [B,T,K,D] residuals
        vlad = a.transpose(1, 2) @ x - a.sum(dim=1).unsqueeze(-1) * self.centres  # [B,K,D]
        vlad = F.normalize(vlad, dim=-1)  # intra-normalisation
        return F.normalize(vlad.flatten(1), dim=-1)


@dataclass(frozen=True)
class NetVLADHeadConfig:
    clusters: int = field(default=16, metadata={"min": 1})
    dropout: float = field(default=0.5, metadata={"min": 0.0, "max": 0.9})  # M4: 0.5 before the classifier


class NetVLADHead(nn.Module):
    def __init__(self, cfg: NetVLADHeadConfig, in_dim: int, num_classes: int):
        super().__init__()
        self.vlad = NetVLAD(in_dim, cfg.clusters)
        self.feature_dim = cfg.clusters * in_dim
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    offline_reason = "its NetVLAD head pools the whole clip, future frames included"

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        T = x.shape[1]
        descriptor = self.vlad(x)  # [B,K*D]
        logits = self.classifier(self.dropout(descriptor))  # [B,num_classes]
        # the same clip-level answer at every step, so losses per step apply unchanged
        return {"logits": logits.unsqueeze(1).expand(-1, T, -1),
                "features": descriptor.unsqueeze(1).expand(-1, T, -1)}
