"""The accuracy gate: a precision graph (or engine) streamed over an evaluation split next to the
reference, as deployment runs it.

Both are stepped clip by clip through the same runner interface the Predictor uses (every
``spec.stride``-th frame, states carried), and read at each observation ratio 0.1 ... 1.0:

* top-1 **agreement** with the reference per ratio (the fraction of clips where both predict
  the same class),
* **accuracy** per ratio against the labels, and its mean, the **AUC**,
* the largest |logit| difference at those reads,
* as a diagnostic, how many disagreements fell on reads where the reference itself was unsure
  (its top two probabilities within ``NEAR_TIE``): reduced precision flips near-ties first.

Targets: FP16 agreement >= 99.5% at every ratio; INT8 agreement >= 98% at every ratio and an
AUC no more than 1.0 point below the reference's; fp32 is held to the FP16 target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

NEAR_TIE = 0.05  # a diagnostic only: disagreements where the reference itself was this unsure
TARGETS = {
    "fp32": {"agreement": 0.995, "auc_drop": None},
    "fp16": {"agreement": 0.995, "auc_drop": None},
    "int8": {"agreement": 0.98, "auc_drop": 0.01},
}


@dataclass
class Evaluated:
    """One model streamed over the split: logits [clips, ratios, classes] at each ratio's read."""

    name: str
    logits: np.ndarray
    labels: np.ndarray

    @property
    def top1(self) -> np.ndarray:
        return self.logits.argmax(-1)

    @property
    def accuracy(self) -> np.ndarray:
        return (self.top1 == self.labels[:, None]).mean(0)


@dataclass
class GateResult:
    precision: str
    artifact: str
    reference: str
    clips: int
    agreement: list[float]
    accuracy: list[float]
    auc: float
    reference_accuracy: list[float]
    reference_auc: float
    max_abs_logit_difference: float
    targets: dict
    passed: bool
    failures: list[str] = field(default_factory=list)
    disagreements: int = 0  # reads (clip, ratio) where the top-1 differs
    near_ties: int = 0  # of those, reads where the reference's top two probabilities were within NEAR_TIE

    def to_dict(self) -> dict:
        return asdict(self)


def stream(runner, store, classes, name: str, *, batch_size: int = 32) -> Evaluated:
    """Step every clip of ``store`` through ``runner`` (its stateless ``step``), reading the logits
    at each observation ratio."""
    from edgeact.data.sampling import Sampling
    from edgeact.evaluation import evaluate_stream

    result = evaluate_stream(runner, store, list(classes), Sampling(stride=runner.spec.stride), batch_size=batch_size)
    return Evaluated(name, result.logits, np.asarray(result.labels))


def judge(candidate: Evaluated, reference: Evaluated, precision: str, target: dict | None = None) -> GateResult:
    """Agreement, accuracy, AUC and logit difference of ``candidate`` against ``reference``,
    and whether ``precision``'s targets (or ``target``, for a precision not in TARGETS) are met."""
    target = TARGETS[precision] if target is None else target
    agreement = (candidate.top1 == reference.top1).mean(0)
    auc, reference_auc = float(candidate.accuracy.mean()), float(reference.accuracy.mean())
    failures = []
    for r, a in zip(np.arange(1, 11) / 10, agreement):
        if a < target["agreement"]:
            failures.append(f"agreement {a:.1%} at r={r:.1f} is below {target['agreement']:.1%}")
    if target["auc_drop"] is not None and reference_auc - auc > target["auc_drop"]:
        failures.append(f"AUC {auc:.4f} is {100 * (reference_auc - auc):.2f} points below the reference's "
                        f"{reference_auc:.4f} (at most {100 * target['auc_drop']:.1f})")
    difference = float(np.abs(candidate.logits - reference.logits).max(initial=0.0))
    disagree = candidate.top1 != reference.top1
    z = reference.logits - reference.logits.max(-1, keepdims=True)
    probs = np.sort(np.exp(z) / np.exp(z).sum(-1, keepdims=True), axis=-1)
    near_tie = probs[..., -1] - probs[..., -2] < NEAR_TIE
    return GateResult(precision, candidate.name, reference.name, len(reference.labels), agreement.tolist(),
                      candidate.accuracy.tolist(), auc, reference.accuracy.tolist(), reference_auc, difference,
                      target, not failures, failures, int(disagree.sum()), int((disagree & near_tie).sum()))


def table(results: list[dict]) -> str:
    """Agreement and accuracy per ratio, AUC, logit difference and verdict per precision."""
    ratios = [f"{r / 10:.1f}" for r in range(1, 11)]
    lines = ["precision  what                 " + " ".join(f"{r:>6}" for r in ratios) + "     AUC  max|dlogit|  gate"]
    for res in results:
        gate = res["gate"]
        verdict = "pass" if gate["passed"] else "FAIL"
        name = f"{res['precision']}{' (' + res['backend'] + ')' if res.get('backend') else ''}"
        lines.append(f"{name:<10} agreement            " + " ".join(f"{a:6.3f}" for a in gate["agreement"])
                     + f"  {'':>6}  {gate['max_abs_logit_difference']:11.3g}  {verdict}")
        lines.append(f"{'':<10} accuracy             " + " ".join(f"{a:6.3f}" for a in gate["accuracy"])
                     + f"  {gate['auc']:6.4f}")
    if results:
        ref = results[0]["gate"]
        lines.append(f"{'reference':<10} accuracy             " + " ".join(f"{a:6.3f}" for a in ref["reference_accuracy"])
                     + f"  {ref['reference_auc']:6.4f}   ({ref['reference']}, {ref['clips']} clips)")
    return "\n".join(lines)


def reference_checkpoint(onnx_path: Path, weights_sha256: str) -> Path | None:
    """The checkpoint the graph was exported from, when it lies beside it (same stem, same
    weights hash)."""
    for suffix in (".pt", ".pth"):
        candidate = onnx_path.with_suffix(suffix)
        if candidate.is_file():
            from edgeact.errors import EdgeActError
            from edgeact.spec import read_spec

            try:
                if read_spec(candidate).weights_sha256 == weights_sha256:
                    return candidate
            except (EdgeActError, ImportError):  # unreadable here (or no torch): the report says what was used
                continue
    return None
