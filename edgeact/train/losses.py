"""Training losses over whole sequences, all per step and masked.

Shapes: logits [B,T,K], features [B,T,F], labels [B] (long), ``mask`` [B,T] bool (True on the
real steps of each clip; batches are padded to their longest clip) and ``labeled`` [B] bool
(False for the clips semi-supervised training treats as unlabeled).

* :func:`classification_loss`: L_cls, softmax cross-entropy (M3) or M1's per-class binary
  cross-entropy on the softmax probabilities p, -log p_y - sum_{k != y} log(1 - p_k) (a term on
  the true class and one on each wrong class) averaged over classes; either averaged over the
  steps of labeled clips.
* :func:`feature_kd_loss`: M1's L_TS, MSE between student and teacher hidden features.
* :func:`logit_kd_loss`: M3's L_ts, KL(teacher || student) with teacher probabilities as soft
  targets (temperature T: both softened, scaled by T^2 as in Hinton et al.).
* :func:`self_kd_loss`: M3's L_self, KL(student at n+tau || student at n), the later
  prediction detached so it acts as a fixed target.

The distillation terms need no label and use every clip. ``reduction`` says how they combine
steps: ``mean`` over all real steps, or ``sum`` over a clip's steps then mean over clips (M3
writes sum_n).

:class:`Objective` combines them as a stage's config asks (see :class:`edgeact.train.config.Losses`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeact.train.config import Losses

REDUCTIONS = ("mean", "sum")


def reduce_steps(values: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
    """values [B,T] over the True steps of mask [B,T] -> scalar (0 when no step is True)."""
    weight = mask.to(values.dtype)
    total = (values * weight).sum()
    if reduction == "mean":
        return total / weight.sum().clamp_min(1.0)
    if reduction == "sum":  # per clip over its steps, then the mean over clips that have any
        clips = (weight.sum(1) > 0).to(values.dtype).sum()
        return total / clips.clamp_min(1.0)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def classification_loss(logits: Tensor, labels: Tensor, mask: Tensor, kind: str = "ce") -> Tensor:
    """Mean over the True steps of mask of CE (``ce``) or of the class-averaged BCE (``bce``)."""
    B, T, K = logits.shape
    log_p = F.log_softmax(logits, dim=-1)  # [B,T,K]
    true = log_p.gather(-1, labels.view(B, 1, 1).expand(B, T, 1)).squeeze(-1)  # [B,T]
    if kind == "ce":
        per_step = -true
    elif kind == "bce":
        # log(1 - p_k) = logsumexp_{j != k} z_j - logsumexp_j z_j, exact even where p_k -> 1
        others = logits.unsqueeze(-2).expand(B, T, K, K).masked_fill(
            torch.eye(K, dtype=torch.bool, device=logits.device), float("-inf"))  # [B,T,K,K]
        log_not = others.logsumexp(-1) - logits.logsumexp(-1, keepdim=True)  # [B,T,K]
        wrong = log_not.masked_fill(F.one_hot(labels, K).bool().unsqueeze(1), 0.0).sum(-1)  # [B,T]
        per_step = -(true + wrong) / K
    else:
        raise ValueError(f"kind must be 'ce' or 'bce', got {kind!r}")
    return reduce_steps(per_step, mask)


def feature_kd_loss(student: Tensor, teacher: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
    """MSE over feature dims per step, student [B,T,F] vs (detached) teacher [B,T,F]."""
    per_step = (student - teacher.detach()).square().mean(-1)  # [B,T]
    return reduce_steps(per_step, mask, reduction)


def kl_per_step(target_logits: Tensor, logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(softmax(target/T) || softmax(logits/T)) * T^2 per step: [B,T,K] x2 -> [B,T]."""
    target_log = F.log_softmax(target_logits / temperature, dim=-1)
    log = F.log_softmax(logits / temperature, dim=-1)
    return (target_log.exp() * (target_log - log)).sum(-1) * temperature**2


def logit_kd_loss(student: Tensor, teacher: Tensor, mask: Tensor, temperature: float = 1.0,
                  reduction: str = "mean") -> Tensor:
    """KL(teacher || student) per step, teacher logits detached."""
    return reduce_steps(kl_per_step(teacher.detach(), student, temperature), mask, reduction)


def self_kd_loss(logits: Tensor, mask: Tensor, tau: int = 1, temperature: float = 1.0,
                 reduction: str = "mean") -> Tensor:
    """KL(student at n+tau, detached || student at n) for every n with n+tau a real step."""
    T = logits.shape[1]
    if tau >= T:
        return logits.sum() * 0.0  # no pair in this batch; keeps the graph connected
    later = logits[:, tau:].detach()  # [B,T-tau,K], the fixed target
    earlier = logits[:, : T - tau]
    pair_mask = mask[:, tau:] & mask[:, : T - tau]
    return reduce_steps(kl_per_step(later, earlier, temperature), pair_mask, reduction)


class FeatureProjection(nn.Module):
    """Learned linear maps student features -> teacher feature size, one per matched output
    (``features`` and, for two-stage heads, ``stage1_features``); identity where the sizes
    agree. Used by feature KD only; discarded after training (the student checkpoint does not
    carry it)."""

    KEYS = ("features", "stage1_features")

    def __init__(self, student_dims: dict[str, int], teacher_dims: dict[str, int]):
        super().__init__()
        self.maps = nn.ModuleDict({
            key: nn.Identity() if student_dims[key] == teacher_dims[key] else nn.Linear(student_dims[key], teacher_dims[key])
            for key in self.KEYS if key in student_dims and key in teacher_dims
        })

    def forward(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {key: proj(outputs[key]) for key, proj in self.maps.items()}


class Objective:
    """A stage's total loss from its config; returns every term, so they can be logged."""

    def __init__(self, cfg: Losses):
        self.cfg = cfg

    def __call__(self, student: dict[str, Tensor], labels: Tensor, mask: Tensor, labeled: Tensor,
                 teacher: Optional[dict[str, Tensor]] = None,
                 projected: Optional[dict[str, Tensor]] = None) -> dict[str, Tensor]:
        cfg, reduction = self.cfg, self.cfg.kd_reduction
        label_mask = mask & labeled.unsqueeze(1)
        zero = student["logits"].sum() * 0.0
        terms: dict[str, Tensor] = {}
        if cfg.classification.weight > 0:
            terms["cls"] = cfg.classification.weight * classification_loss(
                student["logits"], labels, label_mask, cfg.classification.kind)
            if "stage1_logits" in student and cfg.stage1_weight > 0:
                terms["cls_stage1"] = cfg.classification.weight * cfg.stage1_weight * classification_loss(
                    student["stage1_logits"], labels, label_mask, cfg.classification.kind)
        if cfg.feature_kd.weight > 0:
            if teacher is None or not projected:
                raise ValueError("feature KD needs the teacher's outputs and the projected student features")
            for key, value in projected.items():
                weight = cfg.feature_kd.weight * (cfg.stage1_weight if key == "stage1_features" else 1.0)
                name = "feature_kd" if key == "features" else "feature_kd_stage1"
                terms[name] = weight * feature_kd_loss(value, teacher[key], mask, reduction)
        if cfg.logit_kd.weight > 0:
            if teacher is None:
                raise ValueError("logit KD needs the teacher's outputs")
            terms["logit_kd"] = cfg.logit_kd.weight * logit_kd_loss(
                student["logits"], teacher["logits"], mask, cfg.logit_kd.temperature, reduction)
        if cfg.self_kd.weight > 0:
            terms["self_kd"] = cfg.self_kd.weight * self_kd_loss(
                student["logits"], mask, cfg.self_kd.tau, cfg.self_kd.temperature, reduction)
        terms["total"] = sum(terms.values(), zero)
        return terms
