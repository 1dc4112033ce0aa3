"""Every argument check of edgeact._C: exact message, typed error, and nothing written on failure."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeact import _C, kernels
from edgeact.errors import EdgeActError, InputError, InputTypeError

I, H = 5, 6  # input and hidden size of the recurrent cells below


def _raises(error, message):
    """pytest.raises on the whole message, taken literally."""
    return pytest.raises(error, match="^" + re.escape(message) + "$")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _misaligned(shape) -> np.ndarray:
    raw = np.zeros(int(np.prod(shape)) * 4 + 1, np.uint8)
    return raw[1:].view(np.float32).reshape(shape)


def test_errors_are_edgeact_and_builtin_types():
    assert issubclass(InputError, ValueError) and issubclass(InputTypeError, TypeError)
    with pytest.raises(EdgeActError):
        _C.temporal_shift_online_([1.0], np.zeros((1, 1, 1, 1), np.float32), 1)


# --- temporal shift ---------------------------------------------------------------------------

X = (2, 8, 4, 4)
CACHE = (2, 3, 4, 4)


def _shift_cases():
    x, cache = np.zeros(X, np.float32), np.zeros(CACHE, np.float32)
    flat = np.zeros(int(np.prod(X)), np.float32)
    overlapping = flat[: int(np.prod(CACHE))].reshape(CACHE)
    return [
        ((x.tolist(), cache, 3), InputTypeError, "x must be a numpy.ndarray, got list."),
        ((x.astype(np.float64), cache, 3), InputTypeError, "x must have dtype float32, got float64."),
        ((x.astype(">f4"), cache, 3), InputTypeError, "x must have dtype float32, got >f4."),
        (
            (np.zeros((2, 16, 4, 4), np.float32)[:, ::2], cache, 3),
            InputError,
            "x must be C-contiguous because it is written in place; got strides (1024, 128, 16, 4) for shape (2, 8, 4, 4).",
        ),
        ((_readonly(x), cache, 3), InputError, "x must be writeable because it is written in place."),
        ((_misaligned(X), cache, 3), InputError, "x must be aligned to 4 bytes; got a misaligned view."),
        ((np.zeros((0, 8, 4, 4), np.float32), cache, 3), InputError, "x must not be empty, got shape (0, 8, 4, 4)."),
        ((x[0], cache, 3), InputError, "x must be 4-D (batch, channels, height, width), got shape (8, 4, 4)."),
        ((x, cache, 0), InputError, "fold must be in [1, 8] (the channel count of x (2, 8, 4, 4)), got 0."),
        ((x, cache, 9), InputError, "fold must be in [1, 8] (the channel count of x (2, 8, 4, 4)), got 9."),
        ((x, cache, 3.0), InputTypeError, "fold must be an int, got float."),
        ((x, cache, True), InputTypeError, "fold must be an int, got bool."),
        (
            (x, np.zeros((2, 2, 4, 4), np.float32), 3),
            InputError,
            "cache must have shape (2, 3, 4, 4) (batch, fold, height, width of x), got (2, 2, 4, 4).",
        ),
        ((x, cache.astype(np.float16), 3), InputTypeError, "cache must have dtype float32, got float16."),
        ((x, _readonly(cache), 3), InputError, "cache must be writeable because it is written in place."),
        ((flat.reshape(X), overlapping, 3), InputError, "x and cache must not overlap in memory."),
    ]


@pytest.mark.parametrize("args, error, message", _shift_cases())
def test_online_shift_rejects(args, error, message):
    snapshot = [a.copy() for a in args if isinstance(a, np.ndarray)]
    with _raises(error, message):
        kernels.temporal_shift_online_(*args)
    for before, after in zip(snapshot, [a for a in args if isinstance(a, np.ndarray)]):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((np.zeros(X, np.float32), 2), InputError, "x must be 5-D (batch, time, channels, height, width), got shape (2, 8, 4, 4)."),
        (
            (np.zeros((2, 3, 8, 4, 4), np.float32)[:, :, ::2], 2),
            InputError,
            "x must be C-contiguous; got strides (1536, 512, 128, 16, 4) for shape (2, 3, 4, 4, 4). "
            "Pass numpy.ascontiguousarray(x).",
        ),
        ((np.zeros((2, 3, 8, 4, 4), np.float32), 0), InputError, "fold must be in [1, 8] (the channel count of x (2, 3, 8, 4, 4)), got 0."),
        ((np.zeros((2, 3, 8, 4, 4), np.int32), 2), InputTypeError, "x must have dtype float32, got int32."),
    ],
)
def test_offline_shift_rejects(args, error, message):
    with _raises(error, message):
        kernels.temporal_shift_offline(*args)


def test_offline_accepts_a_read_only_clip():
    clip = _readonly(np.ones((1, 2, 4, 1, 1), np.float32))
    assert kernels.temporal_shift_offline(clip, 1)[0, 1, 0, 0, 0] == 1.0


def test_zero_shift_cache_rejects():
    with _raises(InputError, "x must be a 4-D (batch, channels, height, width) numpy.ndarray, got (8, 4, 4)."):
        kernels.zero_shift_cache(np.zeros((8, 4, 4), np.float32), 1)
    with _raises(InputError, "fold must be in [1, 8] (the channel count of x (2, 8, 4, 4)), got 9."):
        kernels.zero_shift_cache(np.zeros(X, np.float32), 9)


# --- recurrent construction -------------------------------------------------------------------


def _weights(gates=4, layers=2, input_size=I):
    w_ih = [np.zeros((gates * H, input_size if l == 0 else H), np.float32) for l in range(layers)]
    w_hh = [np.zeros((gates * H, H), np.float32) for _ in range(layers)]
    bias = [np.zeros(gates * H, np.float32) for _ in range(layers)]
    return w_ih, w_hh, bias


def _construction_cases():
    w_ih, w_hh, b = _weights()
    return [
        ((w_ih[0], w_hh), {}, InputTypeError, "weight_ih must be a list or tuple of numpy.ndarray (one per layer), got numpy.ndarray."),
        (([], []), {}, InputError, "weight_ih must hold at least one layer, got an empty list."),
        ((w_ih, w_hh[:1]), {}, InputError, "weight_hh must hold one array per layer, like weight_ih (2), got 1."),
        ((w_ih, w_hh, b[:1], b), {}, InputError, "bias_ih must hold one array per layer, like weight_ih (2), got 1."),
        ((w_ih, w_hh, b, b[:1]), {}, InputError, "bias_hh must hold one array per layer, like weight_ih (2), got 1."),
        ((w_ih, [w.astype(np.float64) for w in w_hh]), {}, InputTypeError, "weight_hh[0] must have dtype float32, got float64."),
        ((w_ih, [w[:20] for w in w_hh]), {}, InputError, "weight_hh[0] must have shape (24, 6) (4*hidden_size, hidden_size), got (20, 6)."),
        ((w_ih, [w[:, 0].copy() for w in w_hh]), {}, InputError, "weight_hh[0] must be 2-D (4*hidden_size, hidden_size), got shape (24,)."),
        ((w_ih[:1] * 2, w_hh), {}, InputError,
         "weight_ih[1] must have shape (24, 6) (4*hidden_size, hidden_size), got (24, 5). "
         "Layers above the first take the hidden state of the layer below as input."),
        (([w_ih[0][:20]], w_hh[:1]), {}, InputError, "weight_ih[0] must have shape (24, 5) (4*hidden_size, input_size), got (20, 5)."),
        ((w_ih, w_hh, [x[:20] for x in b], b), {}, InputError, "bias_ih[0] must have shape (24,) (4*hidden_size,), got (20,)."),
        (([np.zeros((24, 2**20 + 1), np.float32)], w_hh[:1]), {}, InputError,
         "weight_ih[0] has 1048577 columns; input_size and hidden_size must be at most 1048576."),
        ((w_ih, w_hh), {"threads": 0}, InputError, "threads must be in [1, 256], got 0."),
        ((w_ih, w_hh), {"threads": 257}, InputError, "threads must be in [1, 256], got 257."),
        ((w_ih, w_hh), {"threads": "2"}, InputTypeError, "threads must be an int, got str."),
        ((w_ih, w_hh), {"weights_dtype": "float16"}, InputError, "weights_dtype must be 'float32', 'bfloat16' or 'int8', got 'float16'."),
        ((w_ih, w_hh), {"weights_dtype": np.float32}, InputTypeError, "weights_dtype must be a str, got type."),
        ((w_ih, w_hh), {"isa": "nope"}, InputError,
         "isa must be one of " + ", ".join(repr(n) for n in ["auto", *_C.build_info()["kernel_isas"]])
         + " (those this CPU runs), got 'nope'."),
    ]


@pytest.mark.parametrize("args, options, error, message", _construction_cases())
def test_lstm_construction_rejects(args, options, error, message):
    with _raises(error, message):
        _C.LSTM(*args, **options)


def test_gru_construction_names_its_gate_count():
    w_ih, w_hh, _ = _weights(gates=4)
    with _raises(InputError, "weight_hh[0] must have shape (18, 6) (3*hidden_size, hidden_size), got (24, 6)."):
        _C.GRU(w_ih, w_hh)


# --- recurrent steps --------------------------------------------------------------------------


def _lstm():
    w_ih, w_hh, b = _weights()
    return _C.LSTM(w_ih, w_hh, b, b)


def _state(batch=3):
    return np.zeros((batch, I), np.float32), np.zeros((2, batch, H), np.float32), np.zeros((2, batch, H), np.float32)


def _lstm_step_cases():
    x, h, c = _state()
    shared = np.zeros(200, np.float32)
    return [
        ((x[:, :4], h, c), InputError, "x must be C-contiguous; got strides (20, 4) for shape (3, 4). Pass numpy.ascontiguousarray(x)."),
        ((np.zeros((3, 4), np.float32), h, c), InputError, "x must have shape (3, 5) (batch, input_size), got (3, 4)."),
        ((x[0], h, c), InputError, "x must be 2-D (batch, input_size), got shape (5,)."),
        ((x.astype(np.float64), h, c), InputTypeError, "x must have dtype float32, got float64."),
        ((x, h[:1], c), InputError, "h must have shape (2, 3, 6) (num_layers, batch, hidden_size), got (1, 3, 6)."),
        ((x, h, c[:, :2]), InputError, "c must be C-contiguous because it is written in place; got strides (72, 24, 4) for shape (2, 2, 6)."),
        ((x, h, _readonly(c)), InputError, "c must be writeable because it is written in place."),
        ((x, h, c.tolist()), InputTypeError, "c must be a numpy.ndarray, got list."),
        ((x, h, c, h.copy()), InputError, "h_out and c_out must be given together, or neither to update h and c in place."),
        ((x, h, c, None, c.copy()), InputError, "h_out and c_out must be given together, or neither to update h and c in place."),
        ((x, h, h), InputError, "h and c must not overlap in memory."),
        ((shared[:15].reshape(3, 5), shared[10:46].reshape(2, 3, 6), c), InputError, "x and h must not overlap in memory."),
        ((shared[:15].reshape(3, 5), h, shared[10:46].reshape(2, 3, 6)), InputError, "x and c must not overlap in memory."),
        ((x, h, c, h, c.copy()), InputError, "h_out and h must not overlap in memory."),
        ((x, h, c, c.copy(), c), InputError, "c_out and c must not overlap in memory."),
        ((shared[:15].reshape(3, 5), h, c, shared[:36].reshape(2, 3, 6), c.copy()), InputError, "h_out and x must not overlap in memory."),
        ((x, h, c, shared[:36].reshape(2, 3, 6), shared[30:66].reshape(2, 3, 6)), InputError, "c_out and h_out must not overlap in memory."),
        ((x, h, c, h.copy(), np.zeros((2, 3, 5), np.float32)), InputError, "c_out must have shape (2, 3, 6) (num_layers, batch, hidden_size), got (2, 3, 5)."),
        ((x, h, c, _readonly(h), c.copy()), InputError, "h_out must be writeable because it is written in place."),
    ]


@pytest.mark.parametrize("args, error, message", _lstm_step_cases())
def test_lstm_step_rejects_and_writes_nothing(args, error, message):
    lstm = _lstm()
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    for a in arrays:
        if a.flags.writeable:
            a[...] = np.arange(a.size, dtype=a.dtype).reshape(a.shape) % 7  # nonzero, so a step would change them
    snapshot = [a.copy() for a in arrays]
    with _raises(error, message):
        lstm.step(*args)
    for before, after in zip(snapshot, arrays):
        np.testing.assert_array_equal(after, before)


def test_a_rejected_step_leaves_the_cell_usable():
    lstm = _lstm()
    x, h, c = _state()
    with pytest.raises(InputError):
        lstm.step(x, h, h)
    lstm.step(x, h, c)
    assert np.isfinite(h).all()


def test_gru_step_rejects():
    w_ih, w_hh, b = _weights(gates=3)
    gru = _C.GRU(w_ih, w_hh, b, b)
    x, h, _ = _state()
    with _raises(InputError, "x and h must not overlap in memory."):
        shared = np.zeros(60, np.float32)
        gru.step(shared[:15].reshape(3, 5), shared[:36].reshape(2, 3, 6))
    with _raises(InputError, "h_out and h must not overlap in memory."):
        gru.step(x, h, h)
    with _raises(InputError, "h must be writeable because it is written in place."):
        gru.step(x, _readonly(h))
    gru.step(x, _readonly(h), h.copy())  # with h_out, h is only read


# --- facade -------------------------------------------------------------------------------------


def test_facade_rejects_bad_weights_and_state_dicts():
    w_ih, w_hh, _ = _weights()
    with _raises(InputTypeError, "weight_ih must be a list or tuple of arrays (one per layer), got ndarray."):
        kernels.LSTM(w_ih[0], w_hh)
    with _raises(InputTypeError, "weight_hh[1] must be a floating-point array, got dtype int64."):
        kernels.LSTM(w_ih, [w_hh[0], np.zeros((24, 6), np.int64)])
    with _raises(InputError, "state_dict has no weight_ih_l0 or weight_ih key; got ['w']."):
        kernels.LSTM.from_state_dict({"w": w_ih[0]})
    with _raises(InputError, "state_dict has keys a LSTM cannot load: ['weight_hr_l0'] (bidirectional and proj_size are not supported)."):
        kernels.LSTM.from_state_dict({"weight_ih_l0": w_ih[0], "weight_hh_l0": w_hh[0], "weight_hr_l0": w_hh[0]})
    with _raises(InputError, "state_dict lacks ['bias_hh_l0'] (prefix 'rnn.')."):
        kernels.LSTM.from_state_dict({"rnn.weight_ih_l0": w_ih[0], "rnn.weight_hh_l0": w_hh[0], "rnn.bias_ih_l0": w_hh[0][:, 0]}, prefix="rnn.")
    with _raises(InputError, "batch must be at least 1, got 0."):
        kernels.LSTM(w_ih, w_hh).zero_state(0)
    with _raises(InputTypeError, "batch must be an int, got float."):
        kernels.GRU(*_weights(gates=3)[:2]).zero_state(1.0)


def test_facade_converts_float64_weights_and_loads_prefixed_keys():
    w_ih, w_hh, b = _weights()
    sd = {f"rnn.{name}_l{l}": value[l].astype(np.float64) for name, value in
          [("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b), ("bias_hh", b)] for l in range(2)}
    lstm = kernels.LSTM.from_state_dict(sd, prefix="rnn.", threads=2)
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.threads) == (I, H, 2, 2)
