"""Streaming helpers shared by the Predictor and backend tests: dataset clips pushed frame by
frame, and Predictors compared step by step with PyTorch over whole clips, by edgeact.parity's
rule (float32 PyTorch for the allowance, the float64 twin of the model for the exact result)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeact import Predictor
from edgeact.data import open_dataset
from edgeact.parity import ParityCheck, float64_twin
from edgeact.predictor import DecisionPolicy
from edgeact.preprocess import preprocess_frame, preprocess_keypoints

LOOSE = DecisionPolicy(threshold=0.15, consecutive=2)  # untrained test models are unsure


def clips(synth_dir, n=4):
    ds = open_dataset(synth_dir)
    return [clip for split in ("test", "val", "train") for clip in ds.split(split)][:n]


def push_clip(p: Predictor, clip, stream="default"):
    return [p.push(f, keypoints=k, stream=stream) for f, k in zip(clip.frames(), clip.noisy_keypoints)]


def exact_logits(checkpoint, spec, frames, keypoints) -> list[np.ndarray | None]:
    """Per frame, the float64 model's logits where the Predictor steps (every ``spec.stride``-th
    frame from the first), None between; inputs go through the Predictor's own preprocessing."""
    import torch

    from edgeact.checkpoint import load_checkpoint

    model = float64_twin(load_checkpoint(checkpoint)[0])
    state, out = model.init_state(1), []
    for t, (frame, kp) in enumerate(zip(frames, keypoints)):
        if t % spec.stride:
            out.append(None)
            continue
        inputs = {}
        if spec.frames:
            inputs["frames"] = torch.from_numpy(preprocess_frame(frame, spec.frames))[None].double()
        if spec.keypoints:
            inputs["keypoints"] = torch.from_numpy(preprocess_keypoints(kp, spec.keypoints))[None].double()
        with torch.no_grad():
            logits, state = model.step(inputs, state)
        out.append(logits[0].numpy())
    return out


@dataclass
class TorchComparison:
    check: ParityCheck = field(default_factory=ParityCheck)
    disagreements: list[str] = field(default_factory=list)  # top-1, decision or stepping differences
    decisions: int = 0  # clips the reference decided


def compare_with_torch(candidate: Predictor, checkpoint, clip_list) -> TorchComparison:
    """Each clip through ``candidate`` and the torch Predictor of ``checkpoint``, each step's
    logits judged against the float64 model; both Predictors are reset after every clip."""
    reference = Predictor(checkpoint, "torch", policy=candidate.policy)
    result = TorchComparison()
    for clip in clip_list:
        exact = exact_logits(checkpoint, candidate.spec, clip.frames(), clip.noisy_keypoints)
        for t, (ours, ref) in enumerate(zip(push_clip(candidate, clip), push_clip(reference, clip))):
            if exact[t] is not None:
                result.check.update(t, "logits", exact[t], ref.logits, ours.logits)
            ours_says = (ours.stepped, ours.index, ours.decided, ours.decision_index, ours.decision_frame)
            ref_says = (ref.stepped, ref.index, ref.decided, ref.decision_index, ref.decision_frame)
            if ours_says != ref_says:
                result.disagreements.append(f"clip {clip.clip_id} frame {t}: {ours_says} vs torch {ref_says}")
        result.decisions += ref.decided
        candidate.reset(), reference.reset()
    return result


def assert_matches_torch(candidate: Predictor, checkpoint, clip_list) -> None:
    """Logits within the parity allowance at every step, and the same stepping, top-1 and
    decisions; at least one clip must reach a decision, or that comparison tested nothing."""
    result = compare_with_torch(candidate, checkpoint, clip_list)
    assert result.check.ok, result.check.summary()
    assert not result.disagreements, result.disagreements[:3]
    assert result.decisions > 0, "no clip reached a decision: the decision comparison tested nothing"
