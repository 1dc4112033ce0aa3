"""benchmarks/int8_gate.py: native reduced-precision weights judged against float32 weights with
the engines' gate (the verdict and the exit status follow the target; the schema is checked)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def int8_gate():
    """The script as a module, loaded from its file (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("int8_gate", BENCHMARKS / "int8_gate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["pose", "fusion"])
def test_the_gate_judges_each_dtype_against_float32(kind, int8_gate, tiny_artifacts, synth_dir, tmp_path, capsys):
    from edgeact.data import open_dataset

    clips = len(open_dataset(synth_dir).split("train"))
    out = tmp_path / "gate.json"
    status = int8_gate.main(["--model", str(tiny_artifacts[kind]["onnx"]), "--data", str(synth_dir), "--split",
                             "train", "--json", str(out)])
    report = json.loads(out.read_text())
    (model,) = report["reports"]
    assert model["clips"] == clips and [r["precision"] for r in model["results"]] == ["bfloat16", "int8"]
    for result in model["results"]:
        gate = result["gate"]
        assert len(gate["agreement"]) == 10 and all(0 <= a <= 1 for a in gate["agreement"])
        assert gate["reference"] == "native float32 weights" and gate["targets"] == int8_gate.TARGET
        assert gate["passed"] == (min(gate["agreement"]) >= 0.995)
        assert gate["max_abs_logit_difference"] > 0  # the reduced weights did run
    assert report["passed"] == all(r["gate"]["passed"] for r in model["results"])
    assert status == (0 if report["passed"] else 1)
    printed = capsys.readouterr().out
    assert "int8 weights meets the target" in printed or "int8 weights misses the target" in printed


def test_a_missed_target_fails_the_run(int8_gate, tiny_artifacts, synth_dir, monkeypatch, capsys):
    monkeypatch.setattr(int8_gate, "TARGET", {"agreement": 1.01, "auc_drop": None})  # unreachable
    status = int8_gate.main(["--model", str(tiny_artifacts["pose"]["onnx"]), "--data", str(synth_dir), "--split",
                             "train", "--dtypes", "int8"])
    assert status == 1
    assert "int8 weights misses the target" in capsys.readouterr().out


def test_models_and_datasets_pair_up(int8_gate, tiny_artifacts, capsys):
    with pytest.raises(SystemExit):
        int8_gate.main(["--model", str(tiny_artifacts["pose"]["onnx"])])
    assert "give one --data per --model (1 models, 0 datasets)" in capsys.readouterr().err
