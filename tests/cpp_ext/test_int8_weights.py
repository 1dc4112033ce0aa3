"""int8 recurrent weights (weights_dtype="int8"): the kernels against an exact numpy model of
the scheme (kernels.h, recurrent.cpp), on every ISA, and how they fail."""

from __future__ import annotations

import numpy as np
import pytest

from edgeact import kernels
from edgeact.errors import InputError

torch = pytest.importorskip("torch")

ISAS = kernels.build_info()["kernel_isas"]
F32 = np.float32


def _quantize_matrix(w: np.ndarray):
    """recurrent.cpp's quantize_matrix: column multipliers, per-row scales, rounded weights."""
    w = w.astype(F32)
    col_max = np.abs(w).max(0).astype(np.float64)
    used = col_max[col_max > 0]
    mean = np.cumsum(used)[-1] / len(used) if len(used) else 0.0  # a sequential sum, as the C++ loop
    mult = np.ones(w.shape[1], F32)
    mult[col_max > 0] = np.sqrt(col_max[col_max > 0] / mean).astype(F32)
    rows = w / mult
    scale = (np.abs(rows).max(1) / F32(127)).astype(F32)
    safe = np.where(scale > 0, scale, F32(1))
    q = np.where(scale[:, None] > 0, np.clip(np.rint(rows / safe[:, None]), -127, 127), 0).astype(np.int64)
    return q, scale, mult


def _quantize_activations(v: np.ndarray, mult: np.ndarray, n_packed: int):
    """kernels_impl.h's quantize, per row of v: int16 values and the row's scale."""
    qmax = 32767  # the kernels sum runs of at most 512 inputs in int32: no overflow
    t = (v.astype(F32) * mult).astype(F32)
    amax = np.abs(t).max(1)
    scale = (amax / F32(qmax)).astype(F32)
    safe = np.where(scale > 0, scale, F32(1))
    q = np.where(scale[:, None] > 0, np.rint(t / safe[:, None]), 0).astype(np.int64)
    return q, scale


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


class _Int8Reference:
    """The int8 step in numpy: exact integer sums, the float epilogue in float64."""

    def __init__(self, cell: str, state_dict: dict):
        self.cell = cell
        self.layers = []
        k = 0
        while f"weight_ih_l{k}" in state_dict:
            w_ih, w_hh = (state_dict[f"{n}_l{k}"].astype(F32) for n in ("weight_ih", "weight_hh"))
            b_ih, b_hh = (state_dict[f"{n}_l{k}"].astype(np.float64) for n in ("bias_ih", "bias_hh"))
            self.layers.append((_quantize_matrix(w_ih), _quantize_matrix(w_hh), b_ih, b_hh))
            k += 1

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray | None):
        new_h, new_c = np.empty_like(h, dtype=np.float64), None if c is None else np.empty_like(c, dtype=np.float64)
        inp = x
        for layer, ((qi, si, mi), (qh, sh, mh), b_ih, b_hh) in enumerate(self.layers):
            ax, scale_x = _quantize_activations(inp, mi, (inp.shape[1] + 1) // 2 * 2)
            ah, scale_h = _quantize_activations(h[layer], mh, (h.shape[2] + 1) // 2 * 2)
            gx = (ax @ qi.T).astype(np.float64) * si.astype(np.float64) * scale_x[:, None].astype(np.float64)
            gh = (ah @ qh.T).astype(np.float64) * sh.astype(np.float64) * scale_h[:, None].astype(np.float64)
            hid = h.shape[2]
            if self.cell == "LSTM":
                g = gx + gh + b_ih + b_hh
                i, f, cc, o = (g[:, j * hid:(j + 1) * hid] for j in range(4))
                new_c[layer] = _sigmoid(f) * c[layer] + _sigmoid(i) * np.tanh(cc)
                new_h[layer] = _sigmoid(o) * np.tanh(new_c[layer])
            else:
                r = _sigmoid(gx[:, :hid] + gh[:, :hid] + b_ih[:hid] + b_hh[:hid])
                z = _sigmoid(gx[:, hid:2 * hid] + gh[:, hid:2 * hid] + b_ih[hid:2 * hid] + b_hh[hid:2 * hid])
                n = np.tanh(gx[:, 2 * hid:] + b_ih[2 * hid:] + r * (gh[:, 2 * hid:] + b_hh[2 * hid:]))
                new_h[layer] = (1 - z) * n + z * h[layer]
            inp = new_h[layer].astype(F32)
        return new_h.astype(F32), None if c is None else new_c.astype(F32)


def _model(cell: str, input_size: int, hidden: int, layers: int, seed: int):
    torch.manual_seed(seed)
    module = getattr(torch.nn, cell)(input_size, hidden, layers)
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _state(cell, layers, batch, hidden, rng):
    h = (rng.standard_normal((layers, batch, hidden)) * 0.5).astype(F32)
    return (h, rng.standard_normal((layers, batch, hidden)).astype(F32)) if cell == "LSTM" else (h,)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("input_size, hidden, layers, batch", [(13, 37, 2, 1), (13, 37, 2, 9), (301, 64, 1, 3),
                                                                (40, 200, 3, 5), (1100, 520, 2, 2)])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_int8_steps_equal_the_exact_scheme(cell, input_size, hidden, layers, batch, isa):
    state_dict = _model(cell, input_size, hidden, layers, seed=hidden + layers)
    ours = getattr(kernels, cell).from_state_dict(state_dict, weights_dtype="int8", isa=isa)
    reference = _Int8Reference(cell, state_dict)
    rng = np.random.default_rng(hidden)
    state = list(_state(cell, layers, batch, hidden, rng))
    want = [s.copy() for s in state]
    for _ in range(6):
        x = rng.standard_normal((batch, input_size)).astype(F32) * 2
        ours.step(x, *state)
        h, c = reference.step(x, want[0], want[1] if cell == "LSTM" else None)
        want = [h] + ([c] if cell == "LSTM" else [])
        for got, expected in zip(state, want):
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
        want = [s.copy() for s in state]  # each step from the kernel's state: errors do not compound


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_int8_isas_and_thread_counts_agree(cell):
    # Integer sums are exact: ISAs differ only in the float epilogue's rounding; thread counts
    # split whole panels, so they agree bitwise.
    state_dict = _model(cell, 50, 120, 2, seed=3)
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((5, 6, 50)).astype(F32)
    start = _state(cell, 2, 6, 120, rng)
    results = {}
    for isa in ISAS:
        for threads in (1, 2, 3):
            ours = getattr(kernels, cell).from_state_dict(state_dict, weights_dtype="int8", isa=isa, threads=threads)
            state = [s.copy() for s in start]
            for x in xs:
                ours.step(x, *state)
            results[isa, threads] = state
    for isa in ISAS:
        for threads in (2, 3):
            for got, want in zip(results[isa, threads], results[isa, 1]):
                np.testing.assert_array_equal(got, want)
        for got, want in zip(results[isa, 1], results[ISAS[0], 1]):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_int8_stays_near_float32_and_is_a_quarter_of_the_bytes(cell):
    state_dict = _model(cell, 256, 256, 1, seed=5)
    full = getattr(kernels, cell).from_state_dict(state_dict)
    half = getattr(kernels, cell).from_state_dict(state_dict, weights_dtype="bfloat16")
    quarter = getattr(kernels, cell).from_state_dict(state_dict, weights_dtype="int8")
    assert quarter.weights_dtype == "int8" and "weights_dtype='int8'" in repr(quarter)
    assert quarter.packed_nbytes < 0.3 * full.packed_nbytes and quarter.packed_nbytes < 0.6 * half.packed_nbytes
    rng = np.random.default_rng(6)
    a = list(full.zero_state(4)) if cell == "LSTM" else [full.zero_state(4)]
    b = [s.copy() for s in a]
    worst = 0.0
    for _ in range(20):
        x = rng.standard_normal((4, 256)).astype(F32)
        full.step(x, *a)
        quarter.step(x, *b)
        worst = max(worst, float(np.abs(a[0] - b[0]).max()))
    # Weight rounding is at most half a step of max|row| / 127 per weight: a relative error of
    # order 1e-3 on each gate's sum, so h (in [-1, 1]) moves by about 1e-2 at most.
    assert 0 < worst < 2e-2


def test_int8_wide_inputs_keep_full_activation_precision():
    # 1100 extreme inputs against all-extreme weights: int32 sums run over at most 512 inputs,
    # so nothing overflows and activations keep the full int16 range (a single int32 sum over
    # 1100 products of 127 * 32767 would wrap).
    w_ih = np.full((4 * 8, 1100), 0.5, F32)
    w_hh = np.zeros((4 * 8, 8), F32)
    ours = kernels.LSTM([w_ih], [w_hh], [np.zeros(32, F32)], [np.zeros(32, F32)], weights_dtype="int8")
    full = kernels.LSTM([w_ih], [w_hh], [np.zeros(32, F32)], [np.zeros(32, F32)])
    x = np.full((1, 1100), 1e-3, F32)  # every gate's sum is 0.55: far from saturation
    a, b = ours.zero_state(1), full.zero_state(1)
    ours.step(x, *a)
    full.step(x, *b)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5)


def test_int8_nan_reaches_only_its_row_and_zeros_are_exact():
    state_dict = _model("LSTM", 13, 16, 1, seed=7)
    ours = kernels.LSTM.from_state_dict(state_dict, weights_dtype="int8")
    reference = _Int8Reference("LSTM", state_dict)
    h, c = ours.zero_state(3)
    x = np.zeros((3, 13), F32)  # all-zero x and h: scale 0, the step is the biases' alone
    want_h, want_c = reference.step(x, h.copy(), c.copy())
    ours.step(x, h, c)
    np.testing.assert_allclose(h, want_h, atol=2e-6)
    x[1] = 1.0
    x[0, 5] = np.nan
    x[2, 0] = np.inf
    ours.step(x, h, c)
    assert np.isnan(h[0, 0]).all() and np.isnan(h[0, 2]).all() and np.isfinite(h[0, 1]).all()


def test_int8_rejects_non_finite_weights_and_unknown_dtypes():
    state_dict = _model("GRU", 13, 8, 1, seed=8)
    state_dict["weight_hh_l0"][3, 2] = np.inf
    with pytest.raises(InputError, match=r"weight_hh\[0\] has a non-finite value at row 3, column 2"):
        kernels.GRU.from_state_dict(state_dict, weights_dtype="int8")
    kernels.GRU.from_state_dict(state_dict, weights_dtype="float32")  # float weights keep any value
    with pytest.raises(InputError, match="weights_dtype must be 'float32', 'bfloat16' or 'int8', got 'int4'"):
        kernels.GRU.from_state_dict(_model("GRU", 13, 8, 1, seed=8), weights_dtype="int4")
