"""The parity rule: candidates are judged against the float64 result, allowed a multiple of
PyTorch float32's own error (running max per tensor) plus a few ulp; NaN always fails."""

from __future__ import annotations

import numpy as np
import pytest

from edgeact.parity import EPS32, FLOOR_ULPS, ParityCheck

EXACT = np.array([0.5, -2.0, 3.0])


def test_within_the_allowance_passes_and_beyond_it_fails():
    check = ParityCheck(factor=8)
    check.update(0, "logits", EXACT, EXACT + 1e-4, EXACT + 7e-4)
    assert check.ok
    assert check.worst.allowed == pytest.approx(8e-4 + FLOOR_ULPS * EPS32 * 3.0)
    check.update(1, "logits", EXACT, EXACT, EXACT + 9e-4)  # reference exact now: the running max still allows 8e-4
    assert not check.ok
    assert (check.worst.tensor, check.worst.step) == ("logits", 1)
    assert check.summary().endswith("a factor of 8.99 would have passed")


def test_tensors_keep_their_own_reference_error():
    check = ParityCheck()
    check.update(0, "big", EXACT, EXACT + 1e-3, EXACT + 1e-3)
    check.update(0, "small", EXACT, EXACT, EXACT + 1e-5)  # PyTorch exact here: only the ulp floor
    assert not check.ok
    assert check.worst.tensor == "small"
    assert check.summary().endswith("no factor would pass (PyTorch float32 was exact there, or the error is NaN)")


def test_exact_tensors_get_a_few_ulp_and_nan_always_fails():
    check = ParityCheck()
    check.update(0, "flag", np.ones(4), np.ones(4), np.ones(4) + 2 * EPS32)
    assert check.ok
    check.update(1, "flag", np.ones(4), np.ones(4) + 1e-3, np.array([1.0, np.nan, 1.0, 1.0]))
    check.update(2, "flag", np.ones(4), np.ones(4), np.ones(4))  # a later clean step must not hide the NaN
    assert not check.ok
    assert check.worst.step == 1


def test_summary_reports_the_worst_tensor_exactly():
    check = ParityCheck(factor=2)
    check.update(3, "state_out.h0", np.zeros(2), np.array([1e-3, 0.0]), np.array([1e-3, 1e-3]))
    assert check.summary() == (
        "max |error| against float64 0.001 at state_out.h0 step 3, allowed 0.002 (2 x PyTorch float32's own "
        "error 0.001 + 4 ulp); max |difference| from PyTorch float32 0.001 over 1 tensors")


def test_nothing_compared_is_not_a_pass():
    check = ParityCheck()
    assert not check.ok
    assert check.summary() == "nothing was compared"
    with pytest.raises(ValueError, match="factor must be >= 0"):
        ParityCheck(factor=-1)
    with pytest.raises(ValueError, match=r"logits at step 0: shape \(2,\), expected \(3,\)"):
        check.update(0, "logits", EXACT, EXACT, EXACT[:2])
