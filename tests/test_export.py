"""ONNX export of the step graph: names, metadata, batch axis, opsets, verification."""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeact import ExportError, InputError, ModelFormatError
from edgeact.export import export_onnx
from edgeact.spec import METADATA_KEY, ModelSpec


def _spec(path) -> ModelSpec:
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return ModelSpec.from_json(meta[METADATA_KEY])


@pytest.mark.parametrize("kind", ["pose", "rgb", "fusion"])
def test_graph_io_follows_the_spec(kind, tiny_artifacts):
    path = tiny_artifacts[kind]["onnx"]
    spec = _spec(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(spec.input_names)
    assert [o.name for o in session.get_outputs()] == list(spec.output_names)
    assert all(i.shape[0] == "batch" for i in session.get_inputs())
    assert spec.state and all(s.name for s in spec.state)
    assert len(spec.weights_sha256) == 64
    assert spec.classes[0] == "handshake"


def test_metadata_describes_preprocessing(tiny_artifacts):
    spec = _spec(tiny_artifacts["fusion"]["onnx"])
    assert spec.frames.size == (64, 64) and spec.frames.color_order == "RGB"
    assert spec.keypoints.joints == 18 and spec.keypoints.dims == 2
    assert spec.arch["architecture"] == "tsm_mobilenet_v2+pose+two_stage"


def test_dynamic_batch_runs_many_streams(tiny_artifacts):
    path = tiny_artifacts["pose"]["onnx"]
    spec = _spec(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        feed = {"keypoints": np.random.default_rng(0).random((batch, *spec.input_shape("keypoints")), np.float32) * 50}
        feed.update({f"state_in.{s.name}": np.zeros((batch, *s.shape), np.float32) for s in spec.state})
        logits, probs, *rest = session.run(None, feed)
        assert logits.shape == probs.shape == (batch, spec.num_classes)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        features, states = rest[:len(spec.features)], rest[len(spec.features):]
        assert [f.shape for f in features] == [(batch, *f.shape) for f in spec.features]
        assert [s.shape for s in states] == [(batch, *s.shape) for s in spec.state]


@pytest.mark.parametrize("opset", [18])
def test_dynamo_exporter_and_fixed_batch(opset, tiny_artifacts, tmp_path):
    report = export_onnx(tiny_artifacts["pose"]["pt"], tmp_path / "p.onnx", opset=opset, batch=3, verify_steps=4)
    assert (report.exporter, report.opset, report.batch) == ("dynamo", opset, 3)
    assert report.max_abs_error <= 1e-4
    model = onnx.load(str(report.path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == opset
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == 3


def test_simplified_export_still_verifies(tiny_artifacts, tmp_path):
    report = export_onnx(tiny_artifacts["rgb"]["pt"], tmp_path / "s.onnx", simplify=True, verify_steps=3)
    assert report.simplified
    assert re.fullmatch(r"max \|error\| against float64 \S+ at \S+ step \d, allowed \S+ \(8 x PyTorch float32's own "
                        r"error \S+ \+ 4 ulp\); max \|difference\| from PyTorch float32 \S+ over \d+ tensors",
                        report.verification)


def test_disagreement_fails_the_export_and_writes_nothing(tiny_artifacts, tmp_path, monkeypatch):
    import edgeact.export

    from edgeact.parity import ParityCheck

    failed = ParityCheck()
    failed.update(1, "logits", np.zeros(3), np.full(3, 0.01), np.full(3, 0.5))
    monkeypatch.setattr(edgeact.export, "verify_onnx", lambda *a, **k: failed)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match=re.escape(
            "the exported graph disagrees with PyTorch over 2 steps: max |error| against float64 0.5 at logits step 1, "
            "allowed 0.08 (8 x PyTorch float32's own error 0.01 + 4 ulp); max |difference| from PyTorch float32 0.49 "
            f"over 1 tensors; a factor of 50 would have passed; nothing was written to {out}.")):
        export_onnx(tiny_artifacts["pose"]["pt"], out, verify_steps=2)
    assert list(tmp_path.iterdir()) == []


def test_verification_is_not_vacuous(tiny_artifacts, tmp_path, monkeypatch):
    """A graph whose recurrent LSTM weights were rounded to float16 (5e-4 relative) is refused."""
    import edgeact.export
    from onnx import numpy_helper

    finish = edgeact.export._finish_model

    def finish_then_round(path, *args):
        spec = finish(path, *args)
        proto = onnx.load(str(path))
        weight = next(i for i in proto.graph.initializer if "weight_hh_l0" in i.name)
        rounded = numpy_helper.to_array(weight).astype(np.float16).astype(np.float32)
        weight.CopyFrom(numpy_helper.from_array(rounded, weight.name))
        onnx.save(proto, str(path))
        return spec

    monkeypatch.setattr(edgeact.export, "_finish_model", finish_then_round)
    out = tmp_path / "z.onnx"
    with pytest.raises(ExportError, match=re.escape(f"would have passed; nothing was written to {out}.")):
        export_onnx(tiny_artifacts["rgb"]["pt"], out, verify_steps=2)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match=re.escape("tolerance_factor must be >= 0, got -1.")):
        export_onnx(tiny_artifacts["rgb"]["pt"], tmp_path / "z.onnx", tolerance_factor=-1)


def test_bad_arguments(tiny_artifacts, tmp_path):
    with pytest.raises(InputError, match=re.escape("opset must be one of [17, 18, 19, 20, 21], got 16.")):
        export_onnx(tiny_artifacts["pose"]["pt"], tmp_path / "x.onnx", opset=16)
    with pytest.raises(InputError, match=re.escape("batch must be 'dynamic' or a positive int, got 0.")):
        export_onnx(tiny_artifacts["pose"]["pt"], tmp_path / "x.onnx", batch=0)
    with pytest.raises(ModelFormatError, match=re.escape(f"model file not found: {tmp_path / 'nope.pt'}")):
        export_onnx(tmp_path / "nope.pt", tmp_path / "x.onnx")


def test_teacher_cannot_be_exported(tmp_path):
    from edgeact.checkpoint import save_checkpoint
    from edgeact.models import build_model

    teacher = build_model({"inputs": ["keypoints"], "num_classes": 3,
                           "head": {"name": "lstm", "hidden": 8, "bidirectional": True}})
    save_checkpoint(tmp_path / "t.pt", teacher, ["a", "b", "c"])
    with pytest.raises(ModelFormatError, match="holds an offline-only model"):
        export_onnx(tmp_path / "t.pt", tmp_path / "t.onnx")


def test_cli_export(tiny_artifacts, tmp_path):
    from edgeact.cli import main

    assert main(["export", "--model", str(tiny_artifacts["pose"]["pt"]), "--out", str(tmp_path / "c.onnx"),
                 "--verify-steps", "2"]) == 0
    assert (tmp_path / "c.onnx").is_file()
