"""python -m build_engines on a small trained student: fp16 and int8 graphs pass their accuracy
gate against PyTorch on ONNX Runtime (this is CI's proof that reduced precision still agrees),
the reports, the refusals, and the command line without TensorRT."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from build_engines import BuildOptions, build
from build_engines.precision import read_precision
from edgeact import BackendError, InputError, Predictor


def _options(trained_pose, tmp_path, **extra):
    base = dict(precisions=("fp32", "fp16", "int8"), calib_data=trained_pose["data"], eval_data=trained_pose["data"],
                split="test", out=tmp_path, latency_pushes=40, keypoints="keypoints", calib_method="percentile")
    return BuildOptions(**{**base, **extra})


def test_fp16_and_int8_pass_the_gate_against_pytorch(trained_pose, tmp_path):
    lines = []
    result = build(trained_pose["onnx"], _options(trained_pose, tmp_path), log=lines.append)
    assert result.passed, lines
    report = json.loads((tmp_path / "build_report.json").read_text())
    assert report["reference"] == "PyTorch student.pt"  # the checkpoint beside the graph, same weights
    assert report["eval"]["clips"] == 72
    by_precision = {r["precision"]: r for r in report["results"]}
    for precision, target in (("fp32", 0.995), ("fp16", 0.995), ("int8", 0.98)):
        gate = by_precision[precision]["gate"]
        assert gate["passed"] and len(gate["agreement"]) == 10 and min(gate["agreement"]) >= target
        assert abs(gate["auc"] - gate["reference_auc"]) <= 0.01
        path = tmp_path / f"student.{precision}.onnx"
        assert result.outputs[precision] == path
        assert read_precision(path)[0] == precision
        assert by_precision[precision]["cpu_push_ms_p50"] > 0
    assert by_precision["fp32"]["cpu_push_vs_fp32"] == 1.0
    assert by_precision["fp16"]["gate"]["max_abs_logit_difference"] < by_precision["int8"]["gate"]["max_abs_logit_difference"]
    assert "TensorRT is not installed here" in "\n".join(lines)
    text = (tmp_path / "build_report.txt").read_text()
    assert text.splitlines()[0].startswith("precision  what")
    assert "reference  accuracy" in text


def test_precision_graphs_run_like_any_step_graph(trained_pose, tmp_path):
    result = build(trained_pose["onnx"], _options(trained_pose, tmp_path, precisions=("fp16", "int8"),
                                                  latency_pushes=0))
    clip = __import__("edgeact.data", fromlist=["open_dataset"]).open_dataset(trained_pose["data"]).split("test")[0]
    reference = Predictor(trained_pose["pt"])
    same = ("classes", "state", "frames", "keypoints", "stride", "features", "weights_sha256")
    for precision in ("fp16", "int8"):
        p = Predictor(result.outputs[precision])
        # the same edgeact metadata, so the runtime needs nothing else
        assert [getattr(p.spec, f) for f in same] == [getattr(reference.spec, f) for f in same]
        with pytest.raises(BackendError, match=re.escape(
                f"backend 'native' runs float32 step graphs; student.{precision}.onnx is a {precision} precision "
                "graph. Run it with backend 'onnxruntime', or build a TensorRT engine from it.")):
            Predictor(result.outputs[precision], "native")
        ours = [p.push(keypoints=k).index for k in clip.keypoints]
        theirs = [reference.push(keypoints=k, stream=precision).index for k in clip.keypoints]
        assert np.mean(np.equal(ours, theirs)) >= 0.9


def test_a_precision_that_misses_its_target_is_refused_and_reported(trained_pose, tmp_path, monkeypatch):
    import build_engines.gate

    monkeypatch.setitem(build_engines.gate.TARGETS, "int8", {"agreement": 1.01, "auc_drop": 0.01})  # unreachable
    lines = []
    result = build(trained_pose["onnx"], _options(trained_pose, tmp_path, precisions=("int8",), latency_pushes=0),
                   log=lines.append)
    assert not result.passed and "int8" not in result.outputs
    assert not (tmp_path / "student.int8.onnx").exists()
    assert any(re.fullmatch(r"build_engines: int8 refused: agreement 100\.0% at r=0\.1 is below 101\.0%; .* nothing "
                            r"written to .*student\.int8\.onnx \(--no-accuracy-gate keeps the last tier anyway\)", line)
               for line in lines), lines
    report = json.loads((tmp_path / "build_report.json").read_text())
    (entry,) = report["results"]
    assert entry["path"] is None and not entry["gate"]["passed"] and len(entry["tiers_tried"]) >= 2
    kept = build(trained_pose["onnx"], _options(trained_pose, tmp_path, precisions=("int8",), latency_pushes=0,
                                                accuracy_gate=False), log=lambda line: None)
    assert kept.outputs["int8"].exists()


def test_bad_requests_are_refused(trained_pose, tmp_path):
    with pytest.raises(InputError, match=re.escape("int8 needs --calib-data")):
        build(trained_pose["onnx"], _options(trained_pose, tmp_path, calib_data=None))
    with pytest.raises(InputError, match=re.escape("--eval-data is needed")):
        build(trained_pose["onnx"], _options(trained_pose, tmp_path, eval_data=None))
    fp16 = build(trained_pose["onnx"], _options(trained_pose, tmp_path, precisions=("fp16",), latency_pushes=0),
                 log=lambda line: None).outputs["fp16"]
    with pytest.raises(InputError, match=re.escape(f"{fp16} is already a fp16 graph; build from the fp32 export")):
        build(fp16, _options(trained_pose, tmp_path / "again"))


def test_the_command_line_runs_without_tensorrt(trained_pose, tmp_path):
    from edgeact.cli import main

    args = [str(trained_pose["onnx"]), "--precision", "fp16", "--eval-data", str(trained_pose["data"]),
            "--out", str(tmp_path), "--latency-pushes", "0", "--keypoints", "keypoints"]
    run = subprocess.run([sys.executable, "-m", "build_engines", *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "build_report.json").read_text())["results"][0]["gate"]["passed"]
    assert "build_engines: TensorRT is not installed here" in run.stdout
    assert main(["build", *args]) == 0
    missing = subprocess.run([sys.executable, "-m", "build_engines", *args, "--precision", "int8"], capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr == "build_engines: error: int8 needs --calib-data (clips to record the step's inputs and " \
                             "states on).\n"
    help_text = subprocess.run([sys.executable, "-m", "edgeact.cli", "build", "--help"], capture_output=True,
                               text=True).stdout
    assert help_text.startswith("usage: edgeact build")


def test_build_engines_runs_without_torch(tiny_artifacts, synth_dir, tmp_path):
    """On a Jetson there may be no torch: the reference is then the fp32 graph."""
    from tests.torchless import run_without_torch

    result = run_without_torch(
        f"""
        from build_engines.__main__ import main
        rc = main([{str(tiny_artifacts["pose"]["onnx"])!r}, "--precision", "fp16", "int8", "--calib-data",
                   {str(synth_dir)!r}, "--calib-clips", "4", "--eval-data", {str(synth_dir)!r}, "--out",
                   {str(tmp_path)!r}, "--latency-pushes", "5", "--no-accuracy-gate"])
        assert rc == 0, rc
        assert "torch" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
    assert "build_engines: reference fp32 graph pose.onnx" in result.stdout
    assert (tmp_path / "pose.fp16.onnx").is_file() and (tmp_path / "pose.int8.onnx").is_file()


def test_with_tensorrt_each_kept_graph_becomes_a_gated_engine(trained_pose, tmp_path, monkeypatch):
    """Through the strict TensorRT/cuda doubles (tests/doubles): the engine is built from the
    precision graph, streamed through the TensorRT backend, gated, and its report lands in the
    sidecar."""
    from tests.doubles import install

    install(monkeypatch, "10.8.0")
    lines = []
    result = build(trained_pose["onnx"], _options(trained_pose, tmp_path, precisions=("fp16",), latency_pushes=0,
                                                  max_streams=4), log=lines.append)
    engine = tmp_path / "student.fp16.engine"
    assert result.outputs["fp16_engine"] == engine and engine.is_file()
    sidecar = json.loads((tmp_path / "student.fp16.engine.json").read_text())
    assert sidecar["precision"] == "fp16" and sidecar["max_batch"] == 4
    assert sidecar["accuracy"]["passed"] and min(sidecar["accuracy"]["agreement"]) >= 0.995
    (entry,) = json.loads((tmp_path / "build_report.json").read_text())["results"]
    assert entry["engine"]["gate"] == sidecar["accuracy"]
    assert any(line.startswith("build_engines: student.fp16.engine: agreement min") for line in lines)
    assert not any("TensorRT is not installed" in line for line in lines)
    p = Predictor(engine)
    assert p.backend == "tensorrt" and p.runner.max_batch == 4


def test_a_disk_that_fills_while_writing_a_graph_leaves_no_file_under_its_name(trained_pose, tmp_path, monkeypatch):
    import errno

    import onnx

    import build_engines.precision

    real_save = onnx.save

    def save(proto, path, *args, **kwargs):  # the fp16 graph's write runs out of space half-way
        if build_engines.precision.PRECISION_KEY in {e.key for e in proto.metadata_props} and any(
                e.value == "fp16" for e in proto.metadata_props if e.key == build_engines.precision.PRECISION_KEY):
            with open(path, "wb") as f:
                f.write(proto.SerializeToString()[:500])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(proto, path, *args, **kwargs)

    monkeypatch.setattr(onnx, "save", save)
    with pytest.raises(OSError) as caught:
        build(trained_pose["onnx"], _options(trained_pose, tmp_path, precisions=("fp32", "fp16"), latency_pushes=0),
              log=lambda line: None)
    assert caught.value.errno == errno.ENOSPC
    assert not (tmp_path / "student.fp16.onnx").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith("tmp") or p.suffix == ".tmp"]  # no leftovers
    monkeypatch.undo()
    done = build(trained_pose["onnx"], _options(trained_pose, tmp_path, precisions=("fp16",), latency_pushes=0),
                 log=lambda line: None)
    assert done.outputs["fp16"].exists()
