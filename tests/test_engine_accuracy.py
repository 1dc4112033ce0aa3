"""An fp32 engine streams the fp32 reference's predictions: top-1 agreement at every observation
ratio with the ONNX Runtime Predictor on the same export, and logits within edgeact.parity's
allowance of the float64 model, with PyTorch's decisions (tests/streaming.py).

Two runtimes run the same assertions: real TensorRT on a GPU (marked ``tensorrt`` and ``gpu``;
skipped with a reason where either is absent), and the TensorRT double of tests/doubles (10.x and
11.x), which runs the engine's graph on ONNX Runtime, in CI; there the logits must also equal the
reference's bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from build_engines.engine import build_engine
from edgeact import Predictor
from edgeact.data.sampling import observation_cutoff
from edgeact.evaluation import RATIOS
from tests.doubles import VERSIONS, install
from tests.streaming import LOOSE, assert_matches_torch, clips, push_clip

RUNTIMES = [pytest.param("real", marks=[pytest.mark.tensorrt, pytest.mark.gpu], id="real-tensorrt"),
            *(pytest.param(version, id=f"double-{version}") for version in VERSIONS)]


@pytest.fixture(params=RUNTIMES)
def runtime(request, monkeypatch):
    """None for the real TensorRT, else the installed doubles."""
    return None if request.param == "real" else install(monkeypatch, request.param)


def agreement_per_ratio(candidate: Predictor, reference: Predictor, clip_list) -> tuple[list[float], bool]:
    """Per observation ratio, the share of clips whose top-1 after ceil(ratio * steps) steps is
    the reference's; and whether every step's logits were identical."""
    agree = np.zeros(len(RATIOS))
    identical = True
    for clip in clip_list:
        ours, ref = [], []
        for a, b in zip(push_clip(candidate, clip), push_clip(reference, clip)):
            if a.stepped:
                ours.append(a.index)
                ref.append(b.index)
                identical &= bool(np.array_equal(a.logits, b.logits))
        cuts = [observation_cutoff(len(ours), r) - 1 for r in RATIOS]
        agree += [ours[c] == ref[c] for c in cuts]
        candidate.reset(), reference.reset()
    return (agree / len(clip_list)).tolist(), identical


@pytest.mark.parametrize("kind", ["pose", "rgb"])
def test_an_fp32_engine_agrees_with_the_reference_at_every_observation_ratio(runtime, kind, tiny_artifacts,
                                                                             synth_dir, tmp_path):
    onnx_path, checkpoint = tiny_artifacts[kind]["onnx"], tiny_artifacts[kind]["pt"]
    engine = tmp_path / f"{kind}.fp32.engine"
    sidecar = build_engine(onnx_path, engine, max_batch=4)
    assert sidecar["precision"] == "fp32"
    candidate = Predictor(engine, "tensorrt", policy=LOOSE)
    reference = Predictor(onnx_path, "onnxruntime", policy=LOOSE)
    clip_list = clips(synth_dir, 3)
    agreement, identical = agreement_per_ratio(candidate, reference, clip_list)
    assert agreement == [1.0] * len(RATIOS), dict(zip(RATIOS, agreement))
    if runtime is not None:  # the double runs the reference's graph on the reference's runtime
        assert identical
    assert_matches_torch(candidate, checkpoint, clip_list)
