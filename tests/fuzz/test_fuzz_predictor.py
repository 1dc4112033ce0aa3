"""Fuzzing the Predictor: frames, keypoints, timestamps, push_many items, stream ids and
constructor options, on the onnxruntime and native backends (torch for the keypoints).

Properties (README, The Predictor; edgeact/errors.py):
- a call raises only edgeact's typed errors (EdgeActError: InputError, InputTypeError,
  StreamError, BackendError), or TypeError for an unhashable stream id (as a dict would);
  never another exception, never a crash;
- a rejected call leaves every stream and the set of streams as they were: the stream that saw it
  and a twin stream that never did give the same prediction (logits bitwise, frames_seen,
  steps) on the next frame;
- an accepted call gives finite logits and what the twin gives for the same call;
- frames and keypoints are accepted exactly when the documented contract says so (BGR uint8
  (H, W, 3), any strides; keypoints (people, joints, 2 or 3) of a numeric dtype, finite
  visibility, finite coordinates where visible).

Example counts: ``pytest tests/fuzz --hypothesis-show-statistics``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from edgeact import Predictor
from edgeact.errors import EdgeActError
from edgeact.predictor import DecisionPolicy

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None)
JOINTS = 18
POSE = {"inputs": ["keypoints"], "num_classes": 4,
        "pose": {"joints": JOINTS, "people": 2, "center_joints": [8, 11], "joint_channels": [8],
                 "relation_channels": [8], "dim": 8},
        "head": {"name": "lstm", "hidden": 8}}
RGB = {"inputs": ["frames"], "num_classes": 4,
       "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": 32, "shift": "online"},
       "head": {"name": "gru", "hidden": 8}}
_keys = itertools.count()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (checkpoint, ONNX export) of two tiny untrained models."""
    torch = pytest.importorskip("torch")
    from edgeact.checkpoint import save_checkpoint
    from edgeact.export import export_onnx
    from edgeact.models import build_model

    root, out = tmp_path_factory.mktemp("fuzz_models"), {}
    for i, (name, cfg) in enumerate({"pose": POSE, "rgb": RGB}.items()):
        torch.manual_seed(i)
        model = build_model(cfg).eval()
        with torch.no_grad():  # spread the untrained logits, as tests/conftest.py does
            model.head.classifier.weight.mul_(25.0)
        pt = save_checkpoint(root / f"{name}.pt", model, ["a", "b", "c", "d"])
        out[name] = (pt, export_onnx(pt, root / f"{name}.onnx", verify_steps=1).path)
    return out


@pytest.fixture(scope="module")
def predictors(models):
    made = {("pose", "onnxruntime"): Predictor(models["pose"][1], "onnxruntime", threads=1),
            ("pose", "native"): Predictor(models["pose"][1], "native", threads=1),
            ("pose", "torch"): Predictor(models["pose"][0], "torch"),
            ("rgb", "onnxruntime"): Predictor(models["rgb"][1], "onnxruntime", threads=1),
            ("rgb", "native"): Predictor(models["rgb"][1], "native", threads=1)}
    yield made
    for p in made.values():
        p.close()


# --- inputs ----------------------------------------------------------------------------------------
def _good_keypoints(rng) -> np.ndarray:
    kp = rng.uniform(0, 100, (2, JOINTS, 3)).astype(np.float32)
    kp[:, :, 2] = rng.random((2, JOINTS)) > 0.2
    kp[:, :, :2][kp[:, :, 2] == 0] = np.nan
    return kp


def _good_frame(rng) -> np.ndarray:
    return rng.integers(0, 256, (int(rng.integers(20, 48)), int(rng.integers(20, 48)), 3), dtype=np.uint8)


def _good(kind: str, rng) -> dict:
    return {"keypoints": _good_keypoints(rng)} if kind == "pose" else {"frame": _good_frame(rng)}


@st.composite
def keypoints(draw):
    """Keypoint arrays of any shape, dtype, layout and NaN/inf/visibility pattern, or non-arrays."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    people = draw(st.integers(0, 4))
    joints = draw(st.sampled_from([JOINTS] * 4 + [JOINTS - 1, JOINTS + 1, 1]))
    columns = draw(st.sampled_from([3, 3, 2, 1, 4]))
    kp = rng.uniform(-50, 150, (people, joints, columns))
    if columns == 3:
        kp[:, :, 2] = rng.choice(draw(st.lists(st.sampled_from([0.0, 1.0, 0.5, -1.0, np.nan, np.inf, 2.0]),
                                               min_size=1, max_size=3)), (people, joints))
    for value in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=2)):
        if kp.size:
            kp.flat[rng.integers(0, kp.size)] = value
    layout = draw(st.sampled_from(["c"] * 6 + ["2d", "4d", "fortran", "strided", "list", "none", "str"]))
    if layout == "2d" and people:
        kp = kp[0]
    elif layout == "4d":
        kp = kp[None]
    elif layout == "fortran":
        kp = np.asfortranarray(kp)
    elif layout == "strided":
        kp = np.repeat(kp, 2, axis=1)[:, ::2]
    elif layout in ("list", "none", "str"):
        return {"list": kp.tolist(), "none": None, "str": "keypoints"}[layout]
    dtype = draw(st.sampled_from([np.float32] * 4 + [np.float64, np.float16, np.int32, np.uint8, np.bool_,
                                                     np.complex64, object]))
    with np.errstate(invalid="ignore", over="ignore"):
        return kp.astype(dtype)


def keypoints_accepted(kp) -> bool:
    """The documented contract (README; preprocess_keypoints), computed independently."""
    if not isinstance(kp, np.ndarray) or kp.dtype.kind not in "fiu":
        return False
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1] != JOINTS or kp.shape[2] not in (2, 3):
        return False
    kp = kp.astype(np.float64)
    visibility = kp[:, :, 2] if kp.shape[2] == 3 else np.ones(kp.shape[:2])
    return bool(np.isfinite(visibility).all() and np.isfinite(kp[:, :, :2][visibility > 0]).all())


@st.composite
def frames(draw):
    """Frames of any shape, dtype and strides (views, negative strides), or non-arrays."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(0, 40)), draw(st.integers(0, 40))
    channels = draw(st.sampled_from([3] * 6 + [1, 4]))
    frame = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    layout = draw(st.sampled_from(["c"] * 4 + ["gray", "4d", "flipped", "crop", "strided", "transposed", "fortran",
                                              "readonly", "list", "none"]))
    if layout == "gray":
        frame = frame[:, :, 0]
    elif layout == "4d":
        frame = frame[None]
    elif layout == "flipped":
        frame = frame[::-1, ::-1]
    elif layout == "crop":
        frame = frame[h // 4:, : max(w - 3, 0)]
    elif layout == "strided":
        frame = frame[::2, ::3]
    elif layout == "transposed":
        frame = frame.transpose(1, 0, 2)
    elif layout == "fortran":
        frame = np.asfortranarray(frame)
    elif layout == "readonly":
        frame.setflags(write=False)
    elif layout in ("list", "none"):
        return frame.tolist() if layout == "list" else None
    dtype = draw(st.sampled_from([np.uint8] * 8 + [np.float32, np.int16, np.bool_, np.int8]))
    return frame.astype(dtype)


def frame_accepted(frame) -> bool:
    return (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
            and frame.shape[0] > 0 and frame.shape[1] > 0)


timestamps = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**6),
                       st.sampled_from(["1.0", True, [1.0], np.float32(3.0), np.float64(3.0), np.int64(7)]))
hashable_ids = st.one_of(st.text(max_size=4), st.integers(), st.tuples(st.integers(), st.text(max_size=2)),
                         st.none(), st.floats(allow_nan=True), st.binary(max_size=3),
                         st.frozensets(st.integers(), max_size=2))
unhashable_ids = st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=1), st.integers()),
                           st.builds(bytearray, st.binary(max_size=2)), st.just(np.zeros(2)))


# --- the twin-stream check ------------------------------------------------------------------------------
def _twin(p: Predictor, kind: str, rng, call, *, prefix: int) -> bool:
    """Feed streams ``a`` and ``ref`` the same ``prefix`` frames, try ``call(a)``, mirror it on
    ``ref`` if it was accepted, then compare the next frame's predictions. Returns acceptance."""
    a, ref = ("fuzz", next(_keys)), ("fuzz", next(_keys))
    try:
        for t in range(prefix):
            good = _good(kind, rng)
            p.push(**good, timestamp=float(t), stream=a), p.push(**good, timestamp=float(t), stream=ref)
        before = set(p.streams)
        try:
            got = call(a)
        except EdgeActError as exc:
            assert str(exc).endswith((".", "?")), f"not a full sentence: {exc}"
            assert set(p.streams) == before, "a rejected call changed the set of streams"
            event("rejected")
            accepted = False
        else:
            assert all(np.isfinite(pred.logits).all() for pred in got.values()), "non-finite logits"
            mirrored = call(ref)  # the twin gets the same call: it must be accepted too
            np.testing.assert_allclose(got[a].logits, mirrored[ref].logits, rtol=1e-5, atol=1e-6)
            assert got[a].frames_seen == mirrored[ref].frames_seen
            event("accepted")
            accepted = True
        good = _good(kind, rng)
        after, twin = p.push(**good, stream=a), p.push(**good, stream=ref)
        assert (after.frames_seen, after.steps) == (twin.frames_seen, twin.steps)
        if accepted:
            np.testing.assert_allclose(after.logits, twin.logits, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(after.logits, twin.logits, err_msg="a rejected call changed the state")
        return accepted
    finally:
        for key in list(p.streams):
            if isinstance(key, tuple) and key[:1] == ("fuzz",):
                p.close_stream(key)


@FUZZ
@given(kp=keypoints(), backend=st.sampled_from(["onnxruntime", "native", "torch"]), prefix=st.integers(0, 2),
       many=st.booleans(), seed=st.integers(0, 99))
def test_keypoints(predictors, kp, backend, prefix, many, seed):
    p, rng = predictors["pose", backend], np.random.default_rng(seed)
    if many:  # with a good item beside it, on a stream that must not be admitted if the call fails
        beside = _good("pose", rng)
        call = lambda key: p.push_many({key: {"keypoints": kp}, ("fuzz", next(_keys)): beside})  # noqa: E731
    else:
        call = lambda key: {key: p.push(keypoints=kp, stream=key)}  # noqa: E731
    assert _twin(p, "pose", rng, call, prefix=prefix) == keypoints_accepted(kp)


@FUZZ
@given(frame=frames(), backend=st.sampled_from(["onnxruntime", "native"]), prefix=st.integers(0, 2),
       many=st.booleans(), seed=st.integers(0, 99))
def test_frames(predictors, frame, backend, prefix, many, seed):
    p, rng = predictors["rgb", backend], np.random.default_rng(seed)
    if many:
        beside = _good_frame(rng)
        call = lambda key: p.push_many({key: frame, ("fuzz", next(_keys)): beside})  # noqa: E731
    else:
        call = lambda key: {key: p.push(frame, stream=key)}  # noqa: E731
    assert _twin(p, "rgb", rng, call, prefix=prefix) == frame_accepted(frame)


@FUZZ
@given(frame=st.sampled_from([None, "frame"]).flatmap(lambda f: st.none() if f is None else frames()),
       ts=st.one_of(st.floats(0, 10), timestamps), backend=st.sampled_from(["onnxruntime", "native"]),
       prefix=st.integers(0, 3), item=st.sampled_from(["push"] * 3 + ["dict"] * 3 + ["extra_key", "not_mapping", "empty"]),
       seed=st.integers(0, 99))
def test_timestamps_and_items(predictors, frame, ts, backend, prefix, item, seed):
    """A keypoint model with a frame beside the keypoints (checked, though unused), timestamps of
    any type and value after ``prefix`` frames stamped 0, 1, ..., push_many items of any form."""
    p, rng = predictors["pose", backend], np.random.default_rng(seed)
    kp = _good_keypoints(rng)
    if item == "push":
        call = lambda key: {key: p.push(frame, keypoints=kp, timestamp=ts, stream=key)}  # noqa: E731
    elif item in ("dict", "extra_key"):
        extra = {"confidence": 1.0} if item == "extra_key" else {}
        call = lambda key: p.push_many({key: {"frame": frame, "keypoints": kp, "timestamp": ts, **extra}})  # noqa: E731
    else:
        call = lambda key: p.push_many([(key, kp)] if item == "not_mapping" else {})  # noqa: E731
    ts_ok = ts is None or (isinstance(ts, (int, float)) and math.isfinite(ts) and (prefix == 0 or ts > prefix - 1))
    expected = (frame is None or frame_accepted(frame)) and ts_ok and item in ("push", "dict")
    accepted = _twin(p, "pose", rng, call, prefix=prefix)
    if not isinstance(ts, np.generic):  # numpy scalars: either outcome (found here: np.float32 and
        assert accepted == expected     # np.int64 are refused, np.float64, a float subclass, is taken)


@FUZZ
@given(key=st.one_of(hashable_ids, unhashable_ids), backend=st.sampled_from(["onnxruntime", "native"]),
       seed=st.integers(0, 99))
def test_stream_ids(predictors, key, backend, seed):
    """Any hashable id opens, resets and closes a stream; an unhashable one is refused by every
    stream method with TypeError (as a dict refuses it) and changes nothing."""
    p, rng = predictors["pose", backend], np.random.default_rng(seed)
    before = set(p.streams)
    try:
        hash(key)
    except TypeError:
        for method in (lambda: p.push(**_good("pose", rng), stream=key), lambda: p.reset(key),
                       lambda: p.close_stream(key)):
            with pytest.raises(TypeError):
                method()
        assert set(p.streams) == before
        event("unhashable")
        return
    first, second = (p.push(**_good("pose", rng), stream=key) for _ in range(2))
    assert (first.frames_seen, second.frames_seen, second.stream) == (1, 2, key)
    p.reset(key)
    assert p.push(**_good("pose", rng), stream=key).frames_seen == 1
    p.close_stream(key)
    assert set(p.streams) == before
    event("hashable")


@settings(FUZZ, max_examples=80)
@given(backend=st.sampled_from(["onnxruntime", "native"] * 3 + ["onnx_runtime", "tensorrt", "", "Native", 3]),
       threads=st.sampled_from([None, 1, 2] * 3 + [0, -1, True, 1.5, "2"]),
       max_streams=st.sampled_from([None, 1, 2] * 3 + [0, -1, True, 2.0]),
       policy=st.one_of(st.none(), st.none(), st.builds(dict, threshold=st.floats(-0.5, 1.5) | st.just(math.nan),
                                             margin=st.floats(-0.5, 1.5), consecutive=st.integers(-1, 4),
                                             min_frames=st.integers(-1, 4), latch=st.booleans())),
       device=st.sampled_from(["auto", "cpu"] * 3 + ["tpu"]), extra=st.sampled_from([{}] * 5 + [{"fp16": True}, {"bogus": 1}]))
def test_options(models, backend, threads, max_streams, policy, device, extra):
    """Any combination of constructor options builds a working Predictor or raises an edgeact
    error; a built one admits up to ``max_streams`` streams and refuses one more with StreamError."""
    try:
        p = Predictor(models["pose"][1], backend, threads=threads, max_streams=max_streams, device=device,
                      policy=None if policy is None else DecisionPolicy(**policy), **extra)
    except EdgeActError:
        event("rejected")
        return
    event("built")
    rng = np.random.default_rng(0)
    with p:
        limit = p.max_streams or 3
        for key in range(limit):
            assert math.isfinite(p.push(keypoints=_good_keypoints(rng), stream=key).score)
        if p.max_streams is not None:
            with pytest.raises(EdgeActError):
                p.push(keypoints=_good_keypoints(rng), stream="one too many")
            assert set(p.streams) == set(range(limit))


# found by test_options: a non-str backend reached difflib, which raised a bare TypeError
@pytest.mark.parametrize("backend", [3, None, ["onnxruntime"]])
def test_a_backend_that_is_not_a_str_is_an_edgeact_error(models, backend):
    with pytest.raises(EdgeActError, match=r"backend must be a str, one of \['auto', "):
        Predictor(models["pose"][1], backend)
