"""LSTM/GRU steps against torch.nn.LSTM/GRU over sequences, on every ISA this CPU runs."""

from __future__ import annotations

import copy
import sys
import threading

import numpy as np
import pytest

from edgeact import kernels
from edgeact.parity import ParityCheck

torch = pytest.importorskip("torch")

ISAS = kernels.build_info()["kernel_isas"]
STEPS = 8
INPUT_SIZE = 13


def _torch_and_ours(cell: str, layers: int, hidden: int, *, bias: bool = True, **options):
    torch.manual_seed(layers * 1000 + hidden)
    module = getattr(torch.nn, cell)(INPUT_SIZE, hidden, layers, bias=bias).eval()
    ours = getattr(kernels, cell).from_state_dict(module.state_dict(), **options)
    return module, ours


def _run_torch(module, xs, state):
    with torch.inference_mode():
        torch_state = tuple(torch.from_numpy(s) for s in state) if isinstance(state, tuple) else torch.from_numpy(state)
        outputs, final = module(torch.from_numpy(xs), torch_state)
    final = tuple(s.numpy() for s in final) if isinstance(final, tuple) else final.numpy()
    return outputs.numpy(), final


def _compare_with_torch(module, ours, xs, state) -> ParityCheck:
    """Step our kernel over ``xs`` from ``state`` against torch's sequence forward in float32 (the
    reference) and float64 (the exact result): each step's top-layer output and the final state,
    by edgeact.parity's rule."""
    want_outputs, want_final = _run_torch(module, xs, state)
    as64 = (lambda a: a.astype(np.float64))
    exact_outputs, exact_final = _run_torch(copy.deepcopy(module).double(), as64(xs),
                                            tuple(map(as64, state)) if isinstance(state, tuple) else as64(state))
    if not isinstance(state, tuple):  # GRU: one state tensor
        state, want_final, exact_final = (state,), (want_final,), (exact_final,)
    state = tuple(s.copy() for s in state)
    check = ParityCheck()
    for t in range(len(xs)):
        ours.step(xs[t], *state)
        check.update(t, "output", exact_outputs[t], want_outputs[t], state[0][-1])
    for name, got, want, exact in zip(("h", "c"), state, want_final, exact_final):
        check.update(len(xs) - 1, name, exact, want, got)
    return check


def _random_state(cell, layers, batch, hidden, rng):
    h = rng.standard_normal((layers, batch, hidden), dtype=np.float32) * 0.5
    if cell == "LSTM":
        return h, rng.standard_normal((layers, batch, hidden), dtype=np.float32)
    return h


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("hidden", [37, 64])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_steps_match_torch_over_a_sequence(cell, layers, batch, hidden, isa):
    module, ours = _torch_and_ours(cell, layers, hidden, isa=isa)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((STEPS, batch, INPUT_SIZE), dtype=np.float32)
    state = _random_state(cell, layers, batch, hidden, rng)
    check = _compare_with_torch(module, ours, xs, state)
    assert check.ok, check.summary()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_long_rows_match_torch(cell, batch, isa):
    # Rows longer than the kernels' L1 chunk (96 to 1024 inputs by ISA), an odd input size.
    torch.manual_seed(7)
    module = getattr(torch.nn, cell)(301, 200).eval()
    ours = getattr(kernels, cell).from_state_dict(module.state_dict(), isa=isa)
    rng = np.random.default_rng(8)
    xs = rng.standard_normal((3, batch, 301), dtype=np.float32)
    state = _random_state(cell, 1, batch, 200, rng)
    check = _compare_with_torch(module, ours, xs, state)
    assert check.ok, check.summary()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_cell_weights_load_unchanged(cell):
    torch.manual_seed(0)
    module = getattr(torch.nn, f"{cell}Cell")(INPUT_SIZE, 29)
    ours = getattr(kernels, cell).from_state_dict(module.state_dict())
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, INPUT_SIZE), dtype=np.float32)
    state = _random_state(cell, 1, 3, 29, rng)
    state = state if cell == "LSTM" else (state,)

    def torch_cell(m, dtype):
        with torch.inference_mode():
            args = [torch.from_numpy(s[0]).to(dtype) for s in state]
            out = m(torch.from_numpy(x).to(dtype), tuple(args) if cell == "LSTM" else args[0])
        return [o.numpy() for o in (out if cell == "LSTM" else (out,))]

    want, exact = torch_cell(module, torch.float32), torch_cell(copy.deepcopy(module).double(), torch.float64)
    ours.step(x, *state)
    check = ParityCheck()
    for name, got, w, e in zip(("h", "c"), state, want, exact):
        check.update(0, name, e, w, got[0])
    assert check.ok, check.summary()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_without_bias_matches_torch(cell):
    module, ours = _torch_and_ours(cell, 2, 21, bias=False)
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((STEPS, 2, INPUT_SIZE), dtype=np.float32)
    state = _random_state(cell, 2, 2, 21, rng)
    check = _compare_with_torch(module, ours, xs, state)
    assert check.ok, check.summary()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_output_buffers_equal_in_place_and_leave_inputs_alone(cell):
    _, ours = _torch_and_ours(cell, 2, 40)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, INPUT_SIZE), dtype=np.float32)
    state = _random_state(cell, 2, 5, 40, rng)
    state = state if cell == "LSTM" else (state,)
    inputs = [s.copy() for s in state]
    outputs = [np.full_like(s, np.nan) for s in state]

    ours.step(x, *state, *outputs)
    for s, before in zip(state, inputs):
        np.testing.assert_array_equal(s, before)
    ours.step(x, *state)
    for out, updated in zip(outputs, state):
        np.testing.assert_array_equal(out, updated)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_thread_count_does_not_change_results(cell, threads):
    # Parts compute whole panels, so results are bitwise equal, not merely close.
    _, single = _torch_and_ours(cell, 2, 200)
    _, multi = _torch_and_ours(cell, 2, 200, threads=threads)
    assert (single.threads, multi.threads) == (1, threads)
    rng = np.random.default_rng(4)
    for batch in (1, 8):
        xs = rng.standard_normal((STEPS, batch, INPUT_SIZE), dtype=np.float32)
        state = _random_state(cell, 2, batch, 200, rng)
        state = state if cell == "LSTM" else (state,)
        a, b = [s.copy() for s in state], [s.copy() for s in state]
        for t in range(STEPS):
            single.step(xs[t], *a)
            multi.step(xs[t], *b)
        for got, want in zip(b, a):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_alternating_panel_order_does_not_change_results(cell):
    # Steps walk the weight panels first-to-last and last-to-first in turn (an L2 reuse trick).
    _, fresh = _torch_and_ours(cell, 2, 200, threads=2)
    _, stepped = _torch_and_ours(cell, 2, 200, threads=2)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, INPUT_SIZE), dtype=np.float32)
    state = _random_state(cell, 2, 3, 200, rng)
    state = state if cell == "LSTM" else (state,)
    stepped.step(x, *[s.copy() for s in state])  # now an odd step: the other order
    a, b = [s.copy() for s in state], [s.copy() for s in state]
    fresh.step(x, *a)
    stepped.step(x, *b)
    for got, want in zip(b, a):
        np.testing.assert_array_equal(got, want)


def _round_to_bfloat16(a: np.ndarray) -> np.ndarray:
    bits = a.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("hidden, batch", [(45, 3), (301, 8)])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_bfloat16_weights_equal_float32_kernel_on_rounded_weights(cell, hidden, batch, isa):
    torch.manual_seed(5)
    module = getattr(torch.nn, cell)(INPUT_SIZE, hidden, 2)
    state_dict = {k: v.numpy() for k, v in module.state_dict().items()}
    rounded = {k: (_round_to_bfloat16(v) if k.startswith("weight") else v) for k, v in state_dict.items()}
    half = getattr(kernels, cell).from_state_dict(state_dict, weights_dtype="bfloat16", isa=isa)
    full = getattr(kernels, cell).from_state_dict(rounded, isa=isa)
    assert half.weights_dtype == "bfloat16" and half.packed_nbytes < full.packed_nbytes
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((STEPS, batch, INPUT_SIZE), dtype=np.float32)
    state = _random_state(cell, 2, batch, hidden, rng)
    state = state if cell == "LSTM" else (state,)
    a, b = [s.copy() for s in state], [s.copy() for s in state]
    for t in range(STEPS):
        half.step(xs[t], *a)
        full.step(xs[t], *b)
    for got, want in zip(a, b):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_saturated_gates_stay_finite_and_nan_propagates():
    _, ours = _torch_and_ours("LSTM", 1, 16)
    h, c = ours.zero_state(2)
    x = np.array([[1e4] * INPUT_SIZE, [-1e4] * INPUT_SIZE], dtype=np.float32)
    ours.step(x, h, c)
    assert np.isfinite(h).all() and np.isfinite(c).all() and np.abs(h).max() <= 1.0
    x[0, 0] = np.nan
    ours.step(x, h, c)
    assert np.isnan(h[0, 0]).all() and np.isfinite(h[0, 1]).all()


def test_zero_state_shapes():
    _, lstm = _torch_and_ours("LSTM", 3, 10)
    _, gru = _torch_and_ours("GRU", 2, 10)
    h, c = lstm.zero_state(4)
    assert h.shape == c.shape == (3, 4, 10) and h.dtype == np.float32 and not h.any()
    assert gru.zero_state().shape == (2, 1, 10)


def test_step_releases_the_gil():
    # No timing: with a huge switch interval the interpreter never preempts a thread, so the main
    # thread can run while the worker is inside step() only if step() itself releases the GIL.
    torch.manual_seed(0)
    module = torch.nn.LSTM(1024, 1024, 2)
    ours = kernels.LSTM.from_state_dict(module.state_dict())
    x = np.ones((256, 1024), np.float32)
    h, c = ours.zero_state(256)
    entering, main_ran = threading.Event(), threading.Event()
    seen = []

    def work():
        entering.set()
        ours.step(x, h, c)
        seen.append(main_ran.is_set())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        entering.wait()
        main_ran.set()
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen == [True]
