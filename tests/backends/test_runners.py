"""What every runner shares: the backend table's rows import, options and state are checked the
same way with the same sentences on every backend, and the loader/runner split (a runner over
a session you made, a runner built lazily)."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

from edgeact import BackendError, InputError, InputTypeError, Predictor
from edgeact.backends import BACKENDS, Loader, Runner, backend_classes, load_backend, make_loader

KINDS = {"onnxruntime": "onnx", "native": "onnx", "torch": "pt"}  # backend -> the tiny artifact it runs


def test_every_row_of_the_table_has_its_module_loader_and_runner():
    for entry in BACKENDS.values():
        module = importlib.import_module(entry.module)
        loader, runner = getattr(module, entry.loader), getattr(module, entry.runner)
        assert issubclass(loader, Loader) and issubclass(runner, Runner)
        assert loader.backend == runner.name == entry.name


@pytest.mark.parametrize("backend", list(KINDS))
def test_unknown_options_are_refused_the_same_way_everywhere(backend, tiny_artifacts):
    model = tiny_artifacts["pose"][KINDS[backend]]
    takes = ", ".join(("device", "threads", *backend_classes(BACKENDS[backend])[0].options))
    with pytest.raises(BackendError, match=re.escape(
            f"backend {backend!r} does not take option(s) ['bogus', 'providers']; it takes {takes}.")):
        Predictor(model, backend, providers=["CPUExecutionProvider"], bogus=1)
    with pytest.raises(BackendError, match=re.escape("threads must be a positive int or None, got 0.")):
        Predictor(model, backend, threads=0)


def _inputs(runner, batch):
    from edgeact.preprocess import preprocess_keypoints

    kp = np.zeros((1, runner.spec.keypoints.joints, 3), np.float32)
    kp[..., :2], kp[..., 2] = 30.0, 1.0
    return {"keypoints": np.stack([preprocess_keypoints(kp, runner.spec.keypoints)] * batch)}


@pytest.mark.parametrize("backend", list(KINDS))
def test_state_is_checked_on_every_step_with_one_sentence(backend, tiny_artifacts):
    runner = load_backend(tiny_artifacts["pose"][KINDS[backend]], backend)
    spec = runner.spec
    h0 = spec.state[0]
    good = runner.init_state(1)
    logits, _ = runner.step(_inputs(runner, 1), good)
    assert logits.shape == (1, spec.num_classes)

    with pytest.raises(InputError) as err:  # state of 2 streams for inputs of 1: was (2, K) logits
        runner.step(_inputs(runner, 1), runner.init_state(2))
    assert str(err.value) == f"state {h0.name!r} has batch 2, but the tensors before it have batch 1."
    wrong = [np.zeros((1, h0.shape[0] + 1), np.float32)] + good[1:]
    with pytest.raises(InputError) as err:  # a wrong hidden size: was three different errors
        runner.step(_inputs(runner, 1), wrong)
    assert str(err.value) == (f"state {h0.name!r} must be float32 of shape (batch, {h0.shape[0]}), "
                              f"got float32 of shape (1, {h0.shape[0] + 1}).")
    with pytest.raises(InputError) as err:
        runner.step(_inputs(runner, 1), [good[0].astype(np.float64)] + good[1:])
    assert str(err.value) == (f"state {h0.name!r} must be float32 of shape (batch, {h0.shape[0]}), "
                              f"got float64 of shape (1, {h0.shape[0]}).")
    with pytest.raises(InputError) as err:
        runner.step(_inputs(runner, 1), good[:1])
    assert str(err.value).startswith(f"state must have {len(spec.state)} tensors (")
    with pytest.raises(InputTypeError) as err:
        runner.step(_inputs(runner, 1), [list(good[0][0])] + good[1:])
    assert str(err.value) == f"state {h0.name!r} must be a numpy.ndarray, float32 of shape (batch, 128); got list."
    with pytest.raises(InputError) as err:
        runner.step({"frames": np.zeros((1, 3, 8, 8), np.float32)}, good)
    assert str(err.value) == "step inputs must be ['keypoints'], got ['frames']."


def test_a_runner_takes_a_session_you_made(tiny_artifacts):
    import onnxruntime as ort

    from edgeact.backends.onnxruntime import OnnxRuntimeRunner

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(tiny_artifacts["pose"]["onnx"]), options, providers=["CPUExecutionProvider"])
    runner = OnnxRuntimeRunner(session)
    reference = load_backend(tiny_artifacts["pose"]["onnx"])
    assert runner.spec == reference.spec
    kp = _inputs(runner, 1)
    np.testing.assert_array_equal(runner.step(kp, runner.init_state(1))[0],
                                  reference.step(kp, reference.init_state(1))[0])
    assert Predictor(runner).push(keypoints=kp["keypoints"][0]).frames_seen == 1


@pytest.mark.parametrize("backend", list(KINDS))
def test_a_lazy_runner_builds_on_first_use(backend, tiny_artifacts):
    loader = make_loader(tiny_artifacts["pose"][KINDS[backend]], backend)
    calls = []

    class Counting(type(loader)):
        def __call__(self):
            calls.append(1)
            return super().__call__()

    counting = Counting(loader.path)
    runner = backend_classes(BACKENDS[backend])[1](counting, lazy=True)
    p = Predictor(runner)
    assert calls == [] and p.spec.num_classes == 12  # the spec comes from the artifact, unbuilt
    kp = _inputs(runner, 1)["keypoints"][0]
    p.push(keypoints=kp)
    p.push(keypoints=kp)
    assert calls == [1]
    p.close()
    with pytest.raises(BackendError, match=re.escape(f"this {backend} runner is closed.")):
        runner.step(_inputs(runner, 1), runner.init_state(1))
