"""The backend table, 'auto' selection, and model files that cannot be loaded."""

from __future__ import annotations

import re

import onnx
import pytest

from edgeact import BackendError, ModelFormatError, Predictor
from edgeact.backends import BACKENDS, resolve_backend


def test_auto_picks_by_suffix():
    assert resolve_backend("m.onnx").name == "onnxruntime"
    assert resolve_backend("m.pt").name == "torch"


def test_unknown_backend_did_you_mean():
    with pytest.raises(BackendError, match=re.escape(
            f"unknown backend 'onnxrt'; expected one of {['auto', *BACKENDS]}. Did you mean 'onnxruntime'?")):
        resolve_backend("m.onnx", "onnxrt")


def test_backend_must_fit_file():
    with pytest.raises(BackendError, match=re.escape("backend 'torch' runs .pt, .pth files, got 'm.onnx'.")):
        resolve_backend("m.onnx", "torch")


def test_unknown_suffix():
    with pytest.raises(ModelFormatError, match=re.escape("unknown model file type '.tflite' for m.tflite")):
        resolve_backend("m.tflite")


def test_missing_model(tmp_path):
    with pytest.raises(ModelFormatError, match=re.escape(f"model file not found: {tmp_path / 'm.onnx'}")):
        Predictor(tmp_path / "m.onnx")


def test_not_onnx(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelFormatError, match=re.escape(f"{path} is not a loadable ONNX model (")):
        Predictor(path)


def test_truncated_onnx(tiny_artifacts, tmp_path):
    data = tiny_artifacts["pose"]["onnx"].read_bytes()
    path = tmp_path / "m.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match=re.escape(f"{path} is not a loadable ONNX model (")):
        Predictor(path)


def test_onnx_without_edgeact_metadata(tiny_artifacts, tmp_path):
    model = onnx.load(str(tiny_artifacts["pose"]["onnx"]))
    del model.metadata_props[:]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelFormatError, match=re.escape(
            f"{path} is an ONNX model without edgeact metadata (no 'edgeact' entry in metadata_props); "
            "export it with `edgeact export`.")):
        Predictor(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFormatError, match=re.escape(f"{path} is not a readable edgeact checkpoint (")):
        Predictor(path)


def test_model_argument_type():
    from edgeact import InputTypeError

    with pytest.raises(InputTypeError, match=re.escape(
            "model must be a path to a model file (.engine, .onnx, .plan, .pt, .pth), a Runner or a Loader, got int.")):
        Predictor(3)
