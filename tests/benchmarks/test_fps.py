"""benchmarks/fps.py runs end to end on a tiny model and writes its JSON (a smoke test of the
script against the Predictor's public API; its numbers are a benchmark's, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fps.py"


def test_fps_reports_each_ratio_and_the_baselines(tiny_artifacts, synth_dir, tmp_path):
    out = tmp_path / "fps.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tiny_artifacts["pose"]["onnx"]), "--backend", "native",
         "--data", str(synth_dir), "--clips", "2", "--streams", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "push_many   3 streams:" in result.stdout
    models = json.loads(out.read_text())["models"]
    (entry,) = models.values()
    assert list(entry["latency_ms"]) == list(entry["recompute_ms"]) == [f"{r / 10:.1f}" for r in range(1, 11)]
    assert set(entry["stages_ms"]) == {"preprocess", "inference", "postprocess"}
    assert list(entry["multistream"]) == ["3"]
