"""When two float32 runs of one step graph agree: the tolerance, derived rather than guessed.

Two correct float32 implementations of a step graph (PyTorch, ONNX Runtime, the native
kernels) differ because each rounds differently: summation order, fused multiply-adds,
vectorised exp/tanh. How far rounding moves an output depends on the computation, not on the
output's own size. Measured on a TSM-MobileNetV2 with the RGB-difference stream: the deep CNN
leaves its 2560 features about 1e-5 (relative) from the exact values in *both* PyTorch and ONNX
Runtime; the LSTM's input projection sums 2560 of them into gate pre-activations of magnitude
30 (sum of |w||x| ~ 340), so the cell state, itself of magnitude 1, inherits errors of 1e-4 from
either runtime. A pose model's logits move by 1e-6. One fixed absolute tolerance is too tight
for the first and blind for the second.

So every parity check measures what float32 rounding costs *this* computation on *these*
inputs: the same model in float64, from the same inputs, is the exact result (to float32
precision), and PyTorch float32's distance from it is the cost. A candidate passes when its
own distance from the float64 result stays within

    allowed = FACTOR * (largest reference error of this tensor so far in the stream)
              + FLOOR_ULPS * eps(float32) * max(1, max |exact|)

* The running maximum over steps: errors enter through the state and are carried by it; the
  maximum over a few dozen elements is a noisy statistic, and pooling steps steadies it.
* FACTOR = 8: the largest element error of one correct runtime is a noisy sample of the same
  distribution as the reference's. Over the five test step graphs, 8 steps each, ONNX Runtime's
  worst error was 4.0x PyTorch's (that LSTM cell state), typically 1-3x. A real defect (a shift
  traced as a constant, a weight stored in float16, a folded BatchNorm off by one ulp of bf16)
  sits orders of magnitude above rounding and fails.
* The floor keeps exactly computed tensors (copied frames, flags) from demanding bit equality
  of a differently fused graph.

NaN anywhere in a candidate fails. Numpy only; the float64 twin of a model is made by the
caller (``float64_twin``), so this module imports no torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

FACTOR = 8.0
FLOOR_ULPS = 4.0
EPS32 = float(np.finfo(np.float32).eps)


def float64_twin(model):
    """A float64 copy of a torch module in eval mode: the exact reference for parity checks."""
    return copy.deepcopy(model).double().eval()


@dataclass(frozen=True)
class Worst:
    """The comparison closest to (or furthest past) its allowance."""

    tensor: str
    step: int
    error: float  # max |candidate - exact|
    allowed: float
    reference_error: float  # max |reference - exact|, running max over the steps so far
    floor: float  # the FLOOR_ULPS part of ``allowed``

    @property
    def ratio(self) -> float:
        """error / allowed; NaN errors rank above everything."""
        if np.isnan(self.error):
            return float("inf")
        return self.error / self.allowed if self.allowed > 0 else float("inf")


class ParityCheck:
    """Accumulates step-by-step comparisons of candidates with the float32 reference and the
    exact (float64) result; ``ok`` once every candidate tensor was within its allowance."""

    def __init__(self, factor: float = FACTOR):
        if not factor >= 0:
            raise ValueError(f"factor must be >= 0, got {factor}.")
        self.factor = factor
        self._reference_error: dict[str, float] = {}
        self.worst: Worst | None = None
        self.max_error = 0.0  # max |candidate - exact| over everything compared
        self.max_difference = 0.0  # max |candidate - reference|: what a user comparing runtimes sees
        self.compared = 0

    def update(self, step: int, tensor: str, exact, reference, *candidates) -> None:
        """Compare each candidate array with ``exact`` (float64) at one step of one tensor."""
        exact = np.asarray(exact, np.float64)
        reference = np.asarray(reference, np.float64)
        scale = max(1.0, float(np.abs(exact).max(initial=0.0)))
        seen = max(self._reference_error.get(tensor, 0.0), _max_abs(reference - exact))
        self._reference_error[tensor] = seen
        floor = FLOOR_ULPS * EPS32 * scale
        allowed = self.factor * seen + floor
        for candidate in candidates:
            candidate = np.asarray(candidate, np.float64)
            if candidate.shape != exact.shape:
                raise ValueError(f"{tensor} at step {step}: shape {candidate.shape}, expected {exact.shape}.")
            error = _max_abs(candidate - exact)
            self.max_error = max(self.max_error, error)
            self.max_difference = max(self.max_difference, _max_abs(candidate - reference))
            self.compared += 1
            here = Worst(tensor, step, error, allowed, seen, floor)
            if self.worst is None or here.ratio > self.worst.ratio:
                self.worst = here

    @property
    def ok(self) -> bool:
        return self.compared > 0 and self.worst is not None and self.worst.ratio <= 1.0

    def summary(self) -> str:
        """One sentence: the worst tensor, its error, what was allowed and why, and the factor
        that would have passed (as Polygraphy prints the tolerance that would have passed)."""
        if self.worst is None:
            return "nothing was compared"
        w = self.worst
        text = (f"max |error| against float64 {w.error:.3g} at {w.tensor} step {w.step}, allowed {w.allowed:.3g} "
                f"({self.factor:g} x PyTorch float32's own error {w.reference_error:.3g} + {FLOOR_ULPS:g} ulp); "
                f"max |difference| from PyTorch float32 {self.max_difference:.3g} over {self.compared} tensors")
        if self.ok:
            return text
        if w.reference_error > 0 and not np.isnan(w.error):
            return text + f"; a factor of {(w.error - w.floor) / w.reference_error:.3g} would have passed"
        return text + "; no factor would pass (PyTorch float32 was exact there, or the error is NaN)"


def _max_abs(x: np.ndarray) -> float:
    if x.size == 0:
        return 0.0
    value = np.abs(x).max()
    return float("nan") if np.isnan(value) else float(value)
