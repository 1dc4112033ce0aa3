"""Losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from edgeact.train.config import Losses, TrainConfig
from edgeact.train.losses import (FeatureProjection, Objective, classification_loss, feature_kd_loss, logit_kd_loss,
                                  reduce_steps, self_kd_loss)

LN2, LN3 = math.log(2), math.log(3)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_cross_entropy_per_step_and_mask():
    logits = t([[[0.0, 0.0], [LN3, 0.0]]])  # step 0: p = (1/2, 1/2); step 1: p = (3/4, 1/4)
    labels = torch.tensor([0])
    both = torch.tensor([[True, True]])
    assert classification_loss(logits, labels, both, "ce").item() == pytest.approx((LN2 - math.log(0.75)) / 2)
    first = torch.tensor([[True, False]])
    assert classification_loss(logits, labels, first, "ce").item() == pytest.approx(LN2)


def test_binary_cross_entropy_has_a_term_on_every_wrong_class():
    logits = t([[[0.0, LN3, 0.0]]])  # softmax: 1/5, 3/5, 1/5
    loss = classification_loss(logits, torch.tensor([0]), torch.tensor([[True]]), "bce")
    # true class: -ln(1/5); wrong classes: -ln(1 - 3/5) - ln(1 - 1/5); averaged over the 3 classes
    assert loss.item() == pytest.approx((math.log(5) - math.log(2 / 5) - math.log(4 / 5)) / 3)
    # a confident wrong class stays finite and keeps its gradient
    logits = t([[[0.0, 60.0, 0.0]]]).requires_grad_()
    loss = classification_loss(logits, torch.tensor([0]), torch.tensor([[True]]), "bce")
    loss.backward()
    # -ln p_0 = 60, -ln(1 - p_1) = 60 - ln 2, -ln(1 - p_2) = 0 (to float precision)
    assert loss.item() == pytest.approx((120 - LN2) / 3, rel=1e-9)
    assert logits.grad[0, 0, 1] > 0.6


def test_feature_mse_mean_and_sum_over_steps():
    student = t([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    teacher = t([[[1.0, 0.0], [0.0, 4.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])  # the third step is padding
    assert feature_kd_loss(student, teacher, mask).item() == pytest.approx((2.0 + 4.5) / 2)
    assert feature_kd_loss(student, teacher, mask, "sum").item() == pytest.approx(2.0 + 4.5)


def test_kl_teacher_student_with_temperature():
    teacher, student = t([[[0.0, 0.0]]]), t([[[LN3, 0.0]]])
    mask = torch.tensor([[True]])
    # KL((1/2, 1/2) || (3/4, 1/4)) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3)
    assert logit_kd_loss(student, teacher, mask).item() == pytest.approx(0.5 * math.log(4 / 3))
    q = math.sqrt(3) / (math.sqrt(3) + 1)  # softmax((ln3 / 2, 0))[0]
    expected = 4 * (0.5 * math.log(0.5 / q) + 0.5 * math.log(0.5 / (1 - q)))  # * T^2
    assert logit_kd_loss(student, teacher, mask, temperature=2.0).item() == pytest.approx(expected)


def test_kl_gets_no_gradient_into_the_teacher():
    teacher = t([[[0.0, 1.0]]]).requires_grad_()
    student = t([[[1.0, 0.0]]]).requires_grad_()
    logit_kd_loss(student, teacher, torch.tensor([[True]])).backward()
    assert teacher.grad is None
    p = torch.softmax(teacher.detach(), -1)
    q = torch.softmax(student.detach(), -1)
    torch.testing.assert_close(student.grad, q - p)  # d KL(p || softmax(z)) / dz = q - p


def test_self_distillation_value_and_detached_target():
    # steps: p0 = (1/2, 1/2), p1 = (3/4, 1/4), p2 = (1/4, 3/4)
    logits = t([[[0.0, 0.0], [LN3, 0.0], [0.0, LN3]]]).requires_grad_()
    mask = torch.tensor([[True, True, True]])
    loss = self_kd_loss(logits, mask, tau=1)
    kl_10 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(p1 || p0)
    kl_21 = 0.25 * math.log(0.25 / 0.75) + 0.75 * math.log(0.75 / 0.25)  # KL(p2 || p1)
    assert loss.item() == pytest.approx((kl_10 + kl_21) / 2)
    loss.backward()
    # each step is pulled only as the *earlier* prediction: grad = (q_n - p_{n+1}) / pairs
    expected = t([[[-0.125, 0.125], [0.25, -0.25], [0.0, 0.0]]])
    torch.testing.assert_close(logits.grad, expected)


def test_self_distillation_skips_pairs_that_reach_padding():
    logits = t([[[0.0, 0.0], [LN3, 0.0], [5.0, -5.0]]])
    mask = torch.tensor([[True, True, False]])  # the last step is padding: only the pair (1 -> 0) counts
    kl_10 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert self_kd_loss(logits, mask, tau=1).item() == pytest.approx(kl_10)
    assert self_kd_loss(logits, mask, tau=2).item() == 0.0  # no pair of real steps 2 apart


def test_reduce_steps_sum_averages_over_clips_with_steps():
    values = t([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[True, True], [True, False]])
    assert reduce_steps(values, mask, "mean").item() == pytest.approx(6.0 / 3)
    assert reduce_steps(values, mask, "sum").item() == pytest.approx(6.0 / 2)
    assert reduce_steps(values, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0


def _losses(**section) -> Losses:
    cfg = TrainConfig.from_dict({
        "student": {"model": {"inputs": ["keypoints"], "head": {"name": "gru"}}, "losses": section},
        "teacher": {"model": {"inputs": ["keypoints"], "head": {"name": "gru", "bidirectional": True}}}})
    return cfg.student.losses


def test_unlabeled_clips_only_feed_the_distillation_terms():
    objective = Objective(_losses(classification={"kind": "ce"}, logit_kd={"weight": 0.5}, self_kd={"weight": 1.0}))
    labels = torch.tensor([0, 1])
    mask = torch.ones(2, 2, dtype=torch.bool)
    labeled = torch.tensor([True, False])
    student = {"logits": t([[[0.0, 0.0], [LN3, 0.0]], [[9.0, -9.0], [9.0, -9.0]]]).requires_grad_()}
    teacher = {"logits": t([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])}
    terms = objective(student, labels, mask, labeled, teacher)
    # classification: clip 0 only (clip 1 is confidently wrong and would dominate otherwise)
    assert terms["cls"].item() == pytest.approx((LN2 - math.log(0.75)) / 2)
    expected_kd = logit_kd_loss(student["logits"], teacher["logits"], mask)  # both clips
    assert terms["logit_kd"].item() == pytest.approx(0.5 * expected_kd.item())
    assert terms["total"].item() == pytest.approx(terms["cls"].item() + terms["logit_kd"].item()
                                                  + terms["self_kd"].item())
    (grad,) = torch.autograd.grad(terms["cls"], student["logits"])
    assert torch.all(grad[1] == 0)  # no label, no classification gradient


def test_objective_includes_stage1_terms_of_two_stage_heads():
    objective = Objective(_losses(classification={"kind": "bce"}, stage1_weight=0.5))
    out = {"logits": t([[[0.0, LN3]]]), "stage1_logits": t([[[0.0, LN3]]])}
    terms = objective(out, torch.tensor([0]), torch.tensor([[True]]), torch.tensor([True]))
    assert terms["cls_stage1"].item() == pytest.approx(0.5 * terms["cls"].item())


def test_feature_projection_is_identity_only_when_sizes_agree():
    same = FeatureProjection({"features": 8}, {"features": 8})
    assert isinstance(same.maps["features"], torch.nn.Identity)
    other = FeatureProjection({"features": 8, "stage1_features": 8}, {"features": 16, "stage1_features": 16})
    assert other.maps["features"].in_features == 8 and other.maps["features"].out_features == 16
    assert set(other(dict(features=torch.zeros(1, 2, 8), stage1_features=torch.zeros(1, 2, 8)))) == {
        "features", "stage1_features"}
