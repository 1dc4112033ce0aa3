"""Observation-ratio cut-offs, the metrics schema, the streaming evaluator's bookkeeping, and that
streaming evaluation of an .onnx needs no torch."""

from __future__ import annotations

import numpy as np
import pytest

from edgeact.data.clip_store import ClipStore
from edgeact.data.sampling import Sampling, sample_indices
from edgeact.evaluation import RATIOS, Evaluation, cutoff_steps, evaluate_stream
from edgeact.spec import KeypointSpec, ModelSpec, TensorSpec


def test_ratios_are_the_ten_tenths():
    assert RATIOS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@pytest.mark.parametrize("steps, expected", [
    (10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),  # 0.3 * 10 is 3.0000000000000004: still 3
    (7, [1, 2, 3, 3, 4, 5, 5, 6, 7, 7]),  # ceil(0.7), ceil(1.4), ceil(2.1), ceil(2.8), ...
    (1, [1] * 10),
    (25, [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]),
])
def test_cutoff_steps(steps, expected):
    assert cutoff_steps(steps).tolist() == expected


class FakeClip:
    def __init__(self, label: int, num_frames: int):
        self.label, self.num_frames = label, num_frames
        self.noisy_keypoints = np.zeros((num_frames, 1, 18, 3), np.float32)


class StepCounter:
    """A backend whose logits say how many steps a stream has taken (one-hot at count - 1)."""

    name = "counter"

    def __init__(self, num_classes: int):
        self.spec = ModelSpec(classes=tuple(f"c{i}" for i in range(num_classes)), state=(TensorSpec("count", (1,)),),
                              keypoints=KeypointSpec(people=1, joints=18))
        self.batches = []

    def init_state(self, batch: int):
        return [np.zeros((batch, 1), np.float32)]

    def step(self, inputs, state):
        assert inputs["keypoints"].shape[1:] == (1, 18, 3) and inputs["keypoints"].flags.c_contiguous
        count = state[0] + 1
        logits = np.eye(self.spec.num_classes, dtype=np.float32)[count[:, 0].astype(int) - 1]
        return logits, [count]


def test_stream_reads_each_clip_at_its_cutoffs():
    lengths = [5, 30, 7, 12, 30, 1]  # frames; stride 2 -> 3, 15, 4, 6, 15, 1 steps
    clips = [FakeClip(label=i % 3, num_frames=n) for i, n in enumerate(lengths)]
    store = ClipStore(clips, keypoint_spec=KeypointSpec(people=1, joints=18))
    backend = StepCounter(num_classes=20)
    result = evaluate_stream(backend, store, list(backend.spec.classes), Sampling(stride=2), batch_size=4)
    for i, n in enumerate(lengths):
        steps = len(sample_indices(n, Sampling(stride=2)))
        assert result.predictions[i].tolist() == (cutoff_steps(steps) - 1).tolist()


def test_metrics_schema_and_per_class():
    # 3 clips, 2 classes; predictions per ratio chosen so accuracy is 1/3 for r < 0.5, then 1
    logits = np.zeros((3, 10, 2), np.float32)
    logits[:, :4, 1] = 1.0  # early: everybody says class 1
    logits[[0, 2], 4:, 0] = 1.0  # late: the right answer
    logits[1, 4:, 1] = 2.0
    result = Evaluation(logits, np.array([0, 1, 0]), ["a", "b"])
    metrics = result.metrics()
    assert set(metrics) == {"ratios", "accuracy", "auc", "num_clips", "per_class"}
    assert metrics["accuracy"] == pytest.approx([1 / 3] * 4 + [1.0] * 6)
    assert metrics["auc"] == pytest.approx((4 / 3 + 6) / 10)
    assert metrics["num_clips"] == 3
    assert metrics["per_class"]["a"] == {"accuracy": [0.0] * 4 + [1.0] * 6, "auc": 0.6, "num_clips": 2}
    assert metrics["per_class"]["b"]["accuracy"] == [1.0] * 10


def test_sampling_modes():
    assert sample_indices(9, Sampling(stride=3)).tolist() == [0, 3, 6]
    assert sample_indices(9, Sampling(stride=2, max_steps=3)).tolist() == [0, 2, 4]
    rng = np.random.default_rng(0)
    phases = {int(sample_indices(20, Sampling(stride=4), train=True, rng=rng)[0]) for _ in range(50)}
    assert phases == {0, 1, 2, 3}  # a stream may start anywhere in the stride
    assert sample_indices(20, Sampling(stride=4, jitter=False), train=True, rng=rng).tolist() == [0, 4, 8, 12, 16]
    segments = Sampling(mode="segments", segments=4)
    assert sample_indices(40, segments).tolist() == [5, 15, 25, 35]  # segment centres
    drawn = sample_indices(40, segments, train=True, rng=rng)
    assert all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(drawn))


def test_streaming_evaluation_runs_without_torch(tiny_artifacts, synth_dir, tmp_path):
    """edgeact eval of an .onnx (the function and the command), the accuracy gate's stream and
    INT8 calibration's recording run on a machine without PyTorch (a Jetson), and give what they
    give with torch importable."""
    import json

    from edgeact.evaluation import evaluate_model
    from tests.torchless import run_without_torch

    onnx = str(tiny_artifacts["fusion"]["onnx"])
    out = tmp_path / "metrics.json"
    result = run_without_torch(
        f"""
        import json
        from edgeact.evaluation import evaluate_model
        import build_engines.calibration, build_engines.gate
        from edgeact.backends import load_backend
        from edgeact.cli import main
        from edgeact.data import open_dataset
        from edgeact.data.clip_store import ClipStore

        metrics = evaluate_model({onnx!r}, {str(synth_dir)!r}, split="test", batch_size=4)
        assert metrics["backend"] == "onnxruntime" and metrics["num_clips"] > 0
        assert main(["eval", "--model", {onnx!r}, "--data", {str(synth_dir)!r}, "--batch-size", "4", "--quiet",
                     "--out", {str(out)!r}]) == 0
        assert json.load(open({str(out)!r}))["accuracy"] == metrics["accuracy"]
        runner = load_backend({onnx!r}, "onnxruntime")
        clips = open_dataset({str(synth_dir)!r}).split("test")
        store = ClipStore(clips, keypoint_spec=runner.spec.keypoints)
        gated = build_engines.gate.stream(runner, store, runner.spec.classes, "fp32", batch_size=4)
        runner.close()
        assert gated.accuracy.tolist() == metrics["accuracy"]
        calibration = build_engines.calibration.record({onnx!r}, {str(synth_dir)!r}, clips=2)
        assert calibration.clips == 2 and calibration.steps > 0
        print(json.dumps(metrics["accuracy"]))
        """
    )
    assert result.returncode == 0, result.stderr
    with_torch = evaluate_model(onnx, synth_dir, split="test", batch_size=4)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == with_torch["accuracy"]
