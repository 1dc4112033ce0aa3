"""benchmarks/fps.py --smoke runs end to end on tiny models and writes a JSON with an entry per
ratio, backend and baseline, a PNG, and pushes split by stride into stepped and carried ones
(the schema and the counts are checked, not the timings)."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "fps.py"
RATIOS = [f"{r / 10:.1f}" for r in range(1, 11)]
BASELINES = ["window_8", "window_16", "prefix"]
STRIDE = 3
CLIPS = 2


@pytest.fixture(scope="module")
def fps_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("fps")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def strided(tiny_artifacts, tmp_path_factory, synth_dir):
    """The tiny pose and RGB models saved at stride 3 (a push steps on every third frame); the
    pose model always predicts the first test clip's class, so its accuracy is not 0."""
    import torch

    from edgeact.checkpoint import load_checkpoint, save_checkpoint
    from edgeact.data import open_dataset
    from edgeact.export import export_onnx

    root = tmp_path_factory.mktemp("strided")
    first, second = list(open_dataset(synth_dir).split("test"))[:CLIPS]
    assert first.label != second.label
    out = {}
    for kind in ("pose", "rgb"):
        model, payload = load_checkpoint(tiny_artifacts[kind]["pt"])
        if kind == "pose":
            with torch.no_grad():
                model.head.classifier.bias[first.label] += 1e3
        pt = save_checkpoint(root / f"{kind}.pt", model, payload["classes"], stride=STRIDE)
        out[kind] = {"pt": pt, "onnx": export_onnx(pt, root / f"{kind}.onnx", verify_steps=2).path}
    return out


@pytest.fixture(scope="module")
def smoke(strided, synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fps")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--model", str(strided["pose"]["onnx"]),
         "--model", str(strided["pose"]["pt"]), "--model", str(strided["rgb"]["onnx"]), "--backend", "all",
         "--data", str(synth_dir), "--input-size", "320x240", "--clock", "cpu", "--json", str(out / "fps.json"),
         "--plot", str(out / "fps.png")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads((out / "fps.json").read_text()), out / "fps.png"


def _is_stats(entry) -> bool:
    return (set(entry) == {"p50", "p99", "n"} and isinstance(entry["n"], int) and entry["n"] > 0
            and all(isinstance(entry[k], float) and math.isfinite(entry[k]) and entry[k] >= 0 for k in ("p50", "p99")))


def test_smoke_json_has_an_entry_per_ratio_backend_and_baseline(smoke):
    stdout, doc, png = smoke
    assert doc["clock"] == "cpu" and "timing: cpu clock" in stdout
    assert doc["smoke"] is True and doc["ratios"] == [float(r) for r in RATIOS] and doc["baselines"] == BASELINES
    assert isinstance(doc["machine"], str) and doc["machine"]
    assert list(doc["runs"]) == ["pose.onnx [onnxruntime]", "pose.onnx [native]", "pose.pt [torch]",
                                 "rgb.onnx [onnxruntime]", "rgb.onnx [native]"]
    for name, run in doc["runs"].items():
        assert f"== {name}: stride {STRIDE}" in stdout
        assert run["stride"] == STRIDE and run["clips"] == CLIPS
        assert list(run["latency_ms"]) == list(run["accuracy"]) == RATIOS
        for r in RATIOS:
            assert set(run["latency_ms"][r]) == {"stepped", "carried"}
            assert all(v is None or _is_stats(v) for v in run["latency_ms"][r].values())
            assert 0.0 <= run["accuracy"][r] <= 1.0
            assert set(run["decision"]["by_ratio"][r]) == {"decided", "decided_right"}
        assert list(run["baselines_ms"]) == list(run["speedup"]) == BASELINES
        assert list(run["paired_push_ms"]) == RATIOS and all(map(_is_stats, run["paired_push_ms"].values()))
        for b in BASELINES:
            assert list(run["baselines_ms"][b]) == list(run["speedup"][b]) == RATIOS
            for r in RATIOS:
                entry = run["baselines_ms"][b][r]
                assert _is_stats({k: entry[k] for k in ("p50", "p99", "n")}) and isinstance(entry["steps"], int)
                assert run["speedup"][b][r] == pytest.approx(entry["p50"] / run["paired_push_ms"][r]["p50"])
        assert set(run["stages_ms"]) == {"stepped", "carried"}
        assert set(run["stages_ms"]["stepped"]) == {"preprocess", "inference", "postprocess"}
        assert run["stages_ms"]["carried"]["inference"] < run["stages_ms"]["stepped"]["inference"]
        assert set(run["decision"]) == {"by_ratio", "median_ratio", "median_frames", "median_camera_s",
                                        "median_compute_ms"}
        frames_model = "frames" in run["inputs"]
        assert run["input_size"] == ("320x240" if frames_model else None)
        assert set(run["sdk_overhead"]) == {"model_size", "1920x1080"}
        assert (run["sdk_overhead"]["1920x1080"] is not None) == frames_model
        for entry in filter(None, run["sdk_overhead"].values()):
            assert entry["push_ms"] > 0 and entry["runner_step_ms"] > 0 and entry["inference_stage_ms"] > 0
            assert entry["ratio"] == pytest.approx(entry["push_ms"] / entry["runner_step_ms"])
            assert entry["runner_step_ms"] == run["sdk_overhead"]["model_size"]["runner_step_ms"]  # size-free
        assert list(run["multistream"]) == ["1"] and run["multistream"]["1"]["calls"] % STRIDE == 0
        assert run["multistream"]["1"]["frames_per_s"] > 0
        assert run["peak_rss_mb"] > 10
    assert {name: run["baseline_method"].split(" over ")[0] for name, run in doc["runs"].items()} == {
        "pose.onnx [onnxruntime]": "a zero state stepped", "pose.onnx [native]": "a zero state stepped",
        "pose.pt [torch]": "torch forward_offline", "rgb.onnx [onnxruntime]": "a zero state stepped",
        "rgb.onnx [native]": "a zero state stepped"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pushes_split_by_stride_and_baseline_windows(smoke, synth_dir):
    from edgeact.data import open_dataset
    from edgeact.data.sampling import observation_cutoff

    clips = list(open_dataset(synth_dir).split("test"))[:CLIPS]
    for run in smoke[1]["runs"].values():
        expected = {r: {"stepped": 0, "carried": 0} for r in RATIOS}
        for clip in clips:
            start = 0
            for r in RATIOS:
                cut = observation_cutoff(clip.num_frames, float(r))
                for t in range(start, cut):
                    expected[r]["stepped" if t % STRIDE == 0 else "carried"] += 1
                start = cut
        counted = {r: {k: (v["n"] if v else 0) for k, v in run["latency_ms"][r].items()} for r in RATIOS}
        assert counted == expected

        longest = max(clip.num_frames for clip in clips)
        for r in RATIOS:
            seen = -(-observation_cutoff(longest, float(r)) // STRIDE)
            steps = {b: run["baselines_ms"][b][r]["steps"] for b in BASELINES}
            assert steps == {"window_8": min(8, seen), "window_16": min(16, seen), "prefix": seen}


def test_without_a_model_it_names_the_demo_command(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert ("no --model given and the demo's model demo/run/student.onnx is not here; run `edgeact demo` in this "
            "directory first") in result.stderr


@pytest.mark.parametrize("resize", ["stretch", "crop"])
def test_camera_frames_preprocess_to_what_the_model_was_trained_on(fps_module, synth_dir, resize):
    from edgeact.data import open_dataset
    from edgeact.preprocess import preprocess_frame
    from edgeact.spec import FrameSpec

    spec = FrameSpec(size=(64, 64), resize=resize)
    frame = next(iter(open_dataset(synth_dir).split("test"))).frames()[5]
    camera = fps_module.camera_frame(frame, (640, 360), resize)
    assert camera.shape == (360, 640, 3)
    other = fps_module.camera_frame(frame, (640, 360), "crop" if resize == "stretch" else "stretch")
    error = np.abs(preprocess_frame(camera, spec) - preprocess_frame(frame, spec)).mean()
    wrong = np.abs(preprocess_frame(other, spec) - preprocess_frame(frame, spec)).mean()
    assert error < 0.1 < wrong


def test_accuracy_and_decisions_per_ratio_match_a_predictor_pushed_here(smoke, strided, synth_dir):
    from edgeact import Predictor
    from edgeact.data import open_dataset
    from edgeact.data.sampling import observation_cutoff

    clips = list(open_dataset(synth_dir).split("test"))[:CLIPS]
    right = dict.fromkeys(RATIOS, 0)
    decided = dict.fromkeys(RATIOS, 0)
    with Predictor(strided["pose"]["onnx"], "onnxruntime") as p:  # the script's default threshold, 0.8
        for n, clip in enumerate(clips):
            preds = [p.push(keypoints=kp, stream=n) for kp in clip.noisy_keypoints]
            for r in RATIOS:
                cut = observation_cutoff(clip.num_frames, float(r))
                right[r] += preds[cut - 1].index == clip.label
                decided[r] += preds[cut - 1].decided
    run = smoke[1]["runs"]["pose.onnx [onnxruntime]"]
    assert set(right.values()) == {1} and 0 < sum(decided.values()) < CLIPS * len(RATIOS)  # the test can fail
    assert run["accuracy"] == {r: right[r] / CLIPS for r in RATIOS}
    assert {r: v["decided"] for r, v in run["decision"]["by_ratio"].items()} == {r: decided[r] / CLIPS for r in RATIOS}
