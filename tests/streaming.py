"""Streaming helpers shared by the Predictor and backend tests: dataset clips pushed frame by
frame, and two Predictors compared step by step over whole clips."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edgeact import Predictor
from edgeact.data import open_dataset
from edgeact.predictor import DecisionPolicy

LOOSE = DecisionPolicy(threshold=0.15, consecutive=2)  # untrained test models are unsure


def clips(synth_dir, n=4):
    ds = open_dataset(synth_dir)
    return [clip for split in ("test", "val", "train") for clip in ds.split(split)][:n]


def push_clip(p: Predictor, clip, stream="default"):
    return [p.push(f, keypoints=k, stream=stream) for f, k in zip(clip.frames(), clip.noisy_keypoints)]


def paired_clips(a: Predictor, b: Predictor, clip_list) -> Iterator[tuple[list, list]]:
    """Each clip's predictions from ``a`` and from ``b``; both are reset after every clip."""
    for clip in clip_list:
        yield push_clip(a, clip), push_clip(b, clip)
        a.reset(), b.reset()


def max_logit_difference(a: Predictor, b: Predictor, clip_list) -> float:
    return max(float(np.abs(pa.logits - pb.logits).max())
               for preds_a, preds_b in paired_clips(a, b, clip_list) for pa, pb in zip(preds_a, preds_b))


def assert_same_predictions(a: Predictor, b: Predictor, clip_list, atol: float) -> None:
    """Logits within ``atol`` at every step, the same top-1 and the same decisions; at least one
    clip must reach a decision, or the decision comparison tested nothing."""
    worst, decisions = 0.0, 0
    for preds_a, preds_b in paired_clips(a, b, clip_list):
        for pa, pb in zip(preds_a, preds_b):
            worst = max(worst, float(np.abs(pa.logits - pb.logits).max()))
            assert pa.index == pb.index
            assert (pa.decided, pa.decision_index, pa.decision_frame) == (
                pb.decided, pb.decision_index, pb.decision_frame)
        decisions += preds_a[-1].decided
    assert worst <= atol
    assert decisions > 0, "no clip reached a decision: the decision comparison tested nothing"
