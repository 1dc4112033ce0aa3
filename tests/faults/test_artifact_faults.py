"""Damaged and hostile model files: each is refused with a typed error that says what is wrong."""

from __future__ import annotations

import os

import pytest
import torch

from edgeact import Predictor
from edgeact.checkpoint import load_checkpoint
from edgeact.errors import ModelFormatError


class _Boom:
    """Unpickling this runs os.system: a hostile checkpoint."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_malicious_pickle_in_a_checkpoint_is_refused_unrun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "edgeact.checkpoint/1", "payload": _Boom()}, path)
    with pytest.raises(ModelFormatError, match="is not a readable edgeact checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ModelFormatError):
        Predictor(path, backend="torch")
    assert not (tmp_path / "PWNED").exists()
    # the file really is hostile: a plain unpickler would have run it
    assert b"system" in path.read_bytes()


def test_edited_weights_fail_the_recorded_hash(tiny_artifacts, tmp_path):
    payload = torch.load(tiny_artifacts["pose"]["pt"], weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    payload["state_dict"][name] = payload["state_dict"][name].clone()
    payload["state_dict"][name].view(-1)[0] += 0.5
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    with pytest.raises(ModelFormatError, match="the weights do not match the hash recorded when it was saved"):
        load_checkpoint(edited)
    with pytest.raises(ModelFormatError, match="the weights do not match the hash"):
        Predictor(edited, backend="torch")
    # the untouched file loads
    load_checkpoint(tiny_artifacts["pose"]["pt"])


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_a_truncated_checkpoint_is_refused(tiny_artifacts, tmp_path, keep):
    data = tiny_artifacts["pose"]["pt"].read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(ModelFormatError, match="is not a readable edgeact checkpoint"):
        load_checkpoint(cut)


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_a_corrupted_onnx_is_refused(tiny_artifacts, tmp_path, backend):
    data = bytearray(tiny_artifacts["pose"]["onnx"].read_bytes())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ModelFormatError):
        Predictor(bad, backend=backend)


def _rewrite_metadata(src, dst, edit):
    import json

    import onnx

    from edgeact.spec import METADATA_KEY

    proto = onnx.load(str(src))
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            data = json.loads(entry.value)
            edit(data)
            entry.value = json.dumps(data)
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_an_artifact_from_a_newer_edgeact_says_upgrade(tiny_artifacts, tmp_path, backend):
    def newer(data):
        data["format"], data["edgeact_version"] = "edgeact.step/2", "9.1.0"

    path = _rewrite_metadata(tiny_artifacts["pose"]["onnx"], tmp_path / "newer.onnx", newer)
    with pytest.raises(ModelFormatError, match=r"unsupported edgeact spec format 'edgeact.step/2'; expected "
                                               r"'edgeact.step/1'\. It was written by edgeact 9\.1\.0, newer than "
                                               r"this .*: upgrade edgeact"):
        Predictor(path, backend=backend)
    # an unknown format that is not a newer version gets no upgrade advice
    path = _rewrite_metadata(tiny_artifacts["pose"]["onnx"], tmp_path / "other.onnx",
                             lambda data: data.update(format="somebody.else/3"))
    with pytest.raises(ModelFormatError, match=r"'somebody.else/3'; expected 'edgeact.step/1'\.$"):
        Predictor(path, backend=backend)


def test_a_checkpoint_from_a_newer_edgeact_says_upgrade(tiny_artifacts, tmp_path):
    payload = torch.load(tiny_artifacts["pose"]["pt"], weights_only=True)
    payload["format"] = "edgeact.checkpoint/3"
    payload["spec"]["edgeact_version"] = "2.0.0"
    path = tmp_path / "newer.pt"
    torch.save(payload, path)
    with pytest.raises(ModelFormatError, match=r"expected format 'edgeact.checkpoint/1', got 'edgeact.checkpoint/3'\. "
                                               r"It was written by edgeact 2\.0\.0"):
        load_checkpoint(path)


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_metadata_that_disagrees_with_the_graph_is_refused(tiny_artifacts, tmp_path, backend):
    def wrong_state(data):
        data["state"][0]["shape"] = [int(d) + 3 for d in data["state"][0]["shape"]]

    path = _rewrite_metadata(tiny_artifacts["pose"]["onnx"], tmp_path / "liar.onnx", wrong_state)
    with pytest.raises(ModelFormatError):
        Predictor(path, backend=backend)


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_edited_onnx_weights_fail_the_recorded_hash(tiny_artifacts, tmp_path, backend):
    import onnx
    from onnx import numpy_helper

    from edgeact.spec import INITIALIZERS_KEY

    proto = onnx.load(str(tiny_artifacts["pose"]["onnx"]))
    assert INITIALIZERS_KEY in {e.key for e in proto.metadata_props}  # every export records it
    tensor = next(t for t in proto.graph.initializer if numpy_helper.to_array(t).size > 1
                  and numpy_helper.to_array(t).dtype.kind == "f")
    array = numpy_helper.to_array(tensor).copy()
    array.flat[0] += 0.5
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    edited = tmp_path / "edited.onnx"
    onnx.save(proto, str(edited))
    with pytest.raises(ModelFormatError, match="the weights do not match the hash recorded when the graph was written"):
        Predictor(edited, backend=backend)
    Predictor(tiny_artifacts["pose"]["onnx"], backend=backend).close()  # the untouched graph loads
