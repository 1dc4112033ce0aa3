"""benchmarks/streams.py: a tiny run reports every number (finite; positive where it is a time,
a rate or a transient size) for each backend, stream count and allocation measurement."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "streams.py"
STREAMS = ["1", "3"]


def _numbers(obj, path=()):
    """(path, value) of every number in a JSON document (bools are not numbers here)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _numbers(value, (*path, str(key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _numbers(value, (*path, str(i)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


@pytest.fixture(scope="module")
def tiny_pose_checkpoint(tmp_path_factory):
    """A pose + LSTM model smaller than configs/synth_pose.yaml's student, untrained."""
    torch = pytest.importorskip("torch")
    from edgeact.checkpoint import save_checkpoint
    from edgeact.data.synth import CLASS_NAMES
    from edgeact.models import build_model

    torch.manual_seed(0)
    model = build_model({
        "inputs": ["keypoints"], "num_classes": 12,
        "pose": {"joints": 18, "people": 2, "center_joints": [8, 11], "joint_channels": [8, 8],
                 "relation_channels": [8, 8], "dim": 16},
        "head": {"name": "lstm", "hidden": 16},
    }).eval()
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny_pose.pt", model, CLASS_NAMES)


def test_tiny_run_reports_every_number(tiny_pose_checkpoint, tmp_path):
    out = tmp_path / "streams.json"
    run = subprocess.run(
        [sys.executable, "-W", "ignore", str(SCRIPT), "--model", str(tiny_pose_checkpoint),
         "--backends", "onnxruntime", "native", "--streams", *STREAMS, "--frame-size", "32", "--clips", "1",
         "--warmup", "2", "--repeats", "2", "--pushes", "5", "--many-frames", "6", "--alloc-calls", "4",
         "--alloc-streams", "3", "--verify-steps", "1", "--label", "test", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("machine: ")
    result = json.loads(out.read_text())
    assert result["label"] == "test" and result["errors"] == 0
    assert result["inputs"]["pool_frames"] > 0 and result["inputs"]["keypoints_shape"] == [2, 18, 3]

    model = result["models"]["tiny_pose"]
    assert model["onnx_bytes"] > 0 and model["export_s"] > 0
    assert set(model["backends"]) == {"onnxruntime", "native"}
    for backend, res in model["backends"].items():
        assert res["inputs"] == "keypoints", backend
        assert res["push"]["pushes"] == 10
        assert res["push"]["p99_us"] >= res["push"]["p50_us"] > 0
        assert set(res["push_many"]) == set(STREAMS)
        for n, many in res["push_many"].items():
            assert many["streams"] == int(n) and len(many["frames_per_s_per_repeat"]) == 2
        assert set(res["alloc"]) == {"push", "push_many_3"}
        assert res["alloc"]["push_many_3"]["streams"] == 3 and res["alloc"]["push"]["calls"] == 4
        numbers = list(_numbers(res))
        assert len(numbers) > 30
        for path, value in numbers:
            assert math.isfinite(value), (backend, path, value)
            if not any(p.startswith("retained") for p in path):  # retained growth may be 0 (or below)
                assert value > 0, (backend, path, value)

    for path, value in _numbers(result):
        assert math.isfinite(value), (path, value)
