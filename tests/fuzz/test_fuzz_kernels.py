"""Fuzzing edgeact.kernels (edgeact._C) over its argument space: shapes, dtypes, strides,
read-only and overlapping arrays, non-arrays, wrong state lists and values with NaN/inf.

Property (docs/kernels.md: every array is validated at the call and never copied): a call whose
arguments are all valid (ndarray, float32, C-contiguous, the expected shape, writeable where
written, outputs overlapping nothing) succeeds and gives what the same call on fresh canonical
copies gives; any other call raises InputError or InputTypeError and writes nothing. The oracle
of validity is computed here from the arrays themselves, independently of the kernels.

Example counts: ``pytest tests/fuzz --hypothesis-show-statistics`` (each test also records
whether a case was accepted or rejected as a hypothesis event).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from edgeact import kernels
from edgeact.errors import InputError, InputTypeError

DOCUMENTED = (InputError, InputTypeError)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None)
MUTATIONS = ["ok"] * 6 + ["dtype", "shape", "strided", "fortran", "readonly", "not_array"]
I, H, LAYERS = 5, 6, 2


@st.composite
def arrays_like(draw, shape: tuple[int, ...], mutate: bool = True):
    """A float32 C-contiguous array of ``shape`` with random values (NaN/inf sometimes), or (with
    ``mutate``) maybe a mutation of it: another dtype, shape, strides, memory order, read-only,
    or not an array."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(MUTATIONS)) if mutate else "ok"
    if kind == "shape":
        shape = draw(st.sampled_from(_shape_mutations(shape)))
    values = rng.normal(0, 2, shape).astype(np.float32)
    if draw(st.booleans()) and values.size:
        values.flat[rng.integers(0, values.size, 2)] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))
    if kind == "dtype":
        dtype = draw(st.sampled_from([np.float64, np.float16, np.int32, np.uint8, np.bool_, np.complex64]))
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf cast to ints: any value will do
            return values.astype(dtype)
    if kind == "strided" and values.ndim:
        axis = draw(st.integers(0, values.ndim - 1))
        base = np.repeat(values, 2, axis=axis)  # every other element along ``axis`` is ``values``
        return base[(slice(None),) * axis + (slice(None, None, 2),)]
    if kind == "fortran":
        return np.asfortranarray(values)
    if kind == "readonly":
        values.setflags(write=False)
    if kind == "not_array":
        which = draw(st.integers(0, 4))  # an index: hypothesis hashes sampled_from's elements
        return [values.tolist(), None, "x", 1.5, memoryview(values)][which]
    return values


def _shape_mutations(shape):
    out = [shape + (1,), shape[:-1]]
    for axis, n in enumerate(shape):
        out += [shape[:axis] + (m,) + shape[axis + 1:] for m in (0, n + 1) if m != n]
    return out


def _valid(value, shape, *, written: bool) -> bool:
    return (isinstance(value, np.ndarray) and value.dtype == np.float32 and value.shape == shape and value.size > 0
            and value.flags.c_contiguous and (value.flags.writeable or not written))


def _batch(value, ndim: int, default: int) -> int:
    """The batch the kernel reads off its data argument (dimension 0 of a ``ndim``-D array): a
    mutated data array with its state mutated alike is a valid call of another batch size."""
    return value.shape[0] if isinstance(value, np.ndarray) and value.ndim == ndim else default


def _disjoint(outputs, others) -> bool:
    """No output shares memory with another output or with any other argument."""
    arrays = [a for a in others if isinstance(a, np.ndarray)]
    outs = [a for a in outputs if isinstance(a, np.ndarray)]
    return all(not np.shares_memory(o, a) for i, o in enumerate(outs) for a in arrays + outs[:i] + outs[i + 1:])


def _canonical(value):
    return np.array(value, dtype=np.float32, order="C", copy=True)


def _snapshot(values):
    return [np.array(v, copy=True) if isinstance(v, np.ndarray) else None for v in values]


def _assert_unchanged(values, before):
    for v, b in zip(values, before):
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, b, err_msg="a rejected call wrote into an argument")


def _expect(valid: bool, call, arrays):
    """Run ``call``; a valid call must succeed, an invalid one raise a documented error and
    leave ``arrays`` as they were. Returns whether it ran."""
    before = _snapshot(arrays)
    try:
        result = call()
    except DOCUMENTED as exc:
        assert not valid, f"a valid call was rejected: {type(exc).__name__}: {exc}"
        assert str(exc).endswith("."), f"not a full sentence: {exc}"
        _assert_unchanged(arrays, before)
        event("rejected")
        return False, None
    assert valid, "an invalid call was accepted"
    event("accepted")
    return True, result


# --- temporal shift ------------------------------------------------------------------------------
@FUZZ
@given(data=st.data(), batch=st.integers(1, 3), channels=st.integers(1, 6), hw=st.integers(1, 4))
def test_temporal_shift_online(data, batch, channels, hw):
    fold = data.draw(st.one_of(st.integers(1, channels), st.sampled_from([0, -1, channels + 1, True, 1.0, None])))
    fold_ok = isinstance(fold, int) and not isinstance(fold, bool) and 1 <= fold <= channels
    x = data.draw(arrays_like((batch, channels, hw, hw)))
    cache = data.draw(arrays_like((batch, fold if fold_ok else 1, hw, hw)))
    if data.draw(st.booleans()) and isinstance(x, np.ndarray) and x.ndim == 4 and fold_ok:
        cache = x[:, :fold]  # the cache a view of the frames: overlapping
    shape = x.shape if isinstance(x, np.ndarray) and x.ndim == 4 else (batch, channels, hw, hw)
    fold_ok = fold_ok and fold <= shape[1]
    valid = (fold_ok and _valid(x, shape, written=True)
             and _valid(cache, (shape[0], fold, *shape[2:]), written=True) and _disjoint([x, cache], []))
    expected = None
    if valid:
        expected_x, expected_cache = _canonical(x), _canonical(x[:, :fold])
        expected_x[:, :fold] = cache
    ran, _ = _expect(valid, lambda: kernels.temporal_shift_online_(x, cache, fold), [x, cache])
    if ran:
        np.testing.assert_array_equal(x, expected_x)
        np.testing.assert_array_equal(cache, expected_cache)


# --- recurrent cells -----------------------------------------------------------------------------
def _cell(kind: str):
    rng = np.random.default_rng(0)
    gates = 4 if kind == "lstm" else 3
    w_ih = [rng.normal(0, 0.3, (gates * H, I if k == 0 else H)) for k in range(LAYERS)]
    w_hh = [rng.normal(0, 0.3, (gates * H, H)) for _ in range(LAYERS)]
    b = [rng.normal(0, 0.1, gates * H) for _ in range(LAYERS)]
    return (kernels.LSTM if kind == "lstm" else kernels.GRU)(w_ih, w_hh, b, b)


CELLS = {"lstm": _cell("lstm"), "gru": _cell("gru")}


@FUZZ
@given(data=st.data(), kind=st.sampled_from(sorted(CELLS)), batch=st.integers(1, 4),
       outputs=st.booleans(), alias=st.sampled_from([None, "h_is_c", "x_in_h", "out_is_in"]))
def test_recurrent_step(data, kind, batch, outputs, alias):
    cell = CELLS[kind]
    state_shape = (LAYERS, batch, H)
    names = ["h", "c"] if kind == "lstm" else ["h"]
    x = data.draw(arrays_like((batch, I)))
    state = [data.draw(arrays_like(state_shape)) for _ in names]
    outs = [data.draw(arrays_like(state_shape)) for _ in names] if outputs else []
    if alias == "h_is_c" and kind == "lstm":
        state[1] = state[0]
    elif alias == "x_in_h" and isinstance(state[0], np.ndarray) and state[0].size >= batch * I and state[0].flags.c_contiguous:
        x = state[0].reshape(-1)[: batch * I].reshape(batch, I)
    elif alias == "out_is_in" and outputs:
        outs[0] = state[0]
    batch = _batch(x, 2, batch)
    state_shape = (LAYERS, batch, H)
    valid = (_valid(x, (batch, I), written=False)
             and all(_valid(s, state_shape, written=not outputs) for s in state)
             and all(_valid(o, state_shape, written=True) for o in outs)
             and _disjoint(outs or state, [x] + (state if outputs else [])))
    expected = None
    if valid:
        expected = [_canonical(s) for s in state]
        cell.step(_canonical(x), *expected)
    args = [x, *state, *outs]
    ran, _ = _expect(valid, lambda: cell.step(*args), args)
    if ran:
        for got, want in zip(outs or state, expected):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(state if outputs else [], _snapshot(state)):
            np.testing.assert_array_equal(got, want)  # with outputs, the inputs are only read


# --- the fused pose step ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pose_step():
    torch = pytest.importorskip("torch")
    import dataclasses

    from edgeact.models import build_model

    torch.manual_seed(0)
    model = build_model({"inputs": ["keypoints"], "num_classes": 5,
                         "pose": {"joints": 18, "people": 2, "joint_channels": [8], "relation_channels": [8],
                                  "dim": 8, "features": ["position", "velocity"]},
                         "head": {"name": "lstm", "hidden": 8}}).eval()
    head = kernels.LSTM.from_state_dict(model.head.rnn.state_dict())
    return kernels.PoseStep(dataclasses.asdict(model.pose.cfg), model.pose.state_dict(), head,
                            model.head.classifier.weight, model.head.classifier.bias)


@FUZZ
@given(data=st.data(), batch=st.integers(1, 3), count=st.sampled_from([0] * 6 + [-1, 1]),
       container=st.sampled_from([list, list, tuple, "not_a_sequence"]), alias=st.sampled_from([False] * 5 + [True]),
       victim=st.integers(-8, 10))
def test_pose_step(pose_step, data, batch, count, container, alias, victim):
    """Nine arrays a call: each may be mutated only when it is the ``victim`` (none for < 0), so
    enough calls are valid to compare with the reference."""
    kp_shape = (batch, 2, 18, 3)
    shapes = [(batch, *s) for s in pose_step.state_shapes]
    keypoints = data.draw(arrays_like(kp_shape, victim == 0))
    state_in = [data.draw(arrays_like(s, victim == 1 + i)) for i, s in enumerate(shapes)]
    state_out = [data.draw(arrays_like(s, victim == 1 + len(shapes) + i)) for i, s in enumerate(shapes)]
    if count < 0:
        state_out = state_out[:count]
    elif count > 0:
        state_in = state_in + [np.zeros(shapes[0], np.float32)]
    if alias:
        state_out[-1] = state_in[-1]
    batch = _batch(keypoints, 4, batch)
    kp_shape, shapes = (batch, 2, 18, 3), [(batch, *s) for s in pose_step.state_shapes]
    valid = (count == 0 and container != "not_a_sequence" and _valid(keypoints, kp_shape, written=False)
             and all(_valid(s, shape, written=False) for s, shape in zip(state_in, shapes))
             and all(_valid(s, shape, written=True) for s, shape in zip(state_out, shapes))
             and _disjoint(state_out, [keypoints, *state_in]))
    expected = None
    if valid:
        expected_out = [np.empty_like(s) for s in state_out]
        expected = pose_step.step(_canonical(keypoints), [_canonical(s) for s in state_in], expected_out)
    pack = (lambda v: v[0] if v else None) if container == "not_a_sequence" else container
    arrays = [keypoints, *state_in, *state_out]
    ran, logits = _expect(valid, lambda: pose_step.step(keypoints, pack(state_in), pack(state_out)), arrays)
    if ran:
        np.testing.assert_array_equal(logits, expected)
        for got, want in zip(state_out, expected_out):
            np.testing.assert_array_equal(got, want)
