"""The state pool: slots of persistent ping-pong buffers, stepped in place when the slots are
consecutive, gathered otherwise; zero, release, growth, bounds and batch splitting; and no
state allocated per step with the real runners."""

from __future__ import annotations

import re
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from edgeact import Predictor, StreamError
from edgeact.backends import load_backend
from edgeact.backends.base import Runner
from edgeact.backends.pool import StatePool
from edgeact.spec import KeypointSpec, ModelSpec, TensorSpec


class AddingRunner(Runner):
    """A strict double: next state = state + the input's first value; logits = the new state.
    Records what every step was handed."""

    name = "adding"

    def __init__(self, max_batch=None):
        self.max_batch = max_batch
        self.calls = []  # (state_in, state_out, key) of every step
        spec = ModelSpec(classes=("a", "b"), state=(TensorSpec("s", (2,)), TensorSpec("t", (3,), "float64")),
                         keypoints=KeypointSpec(people=1, joints=1))
        super().__init__(SimpleNamespace(spec=spec))

    def _open(self, runtime):
        pass

    def _run(self, inputs, state_in, state_out, key=None):
        self.calls.append((state_in, state_out, key))
        x = inputs["keypoints"][:, 0, 0, :1]  # [B,1]
        state_out[0][...] = state_in[0] + x
        state_out[1][...] = state_in[1] + x
        return state_out[0].astype(np.float32)  # a new array


def _step(pool, slots, values):
    inputs = pool.input_buffers(len(slots))
    inputs["keypoints"][...] = 0
    inputs["keypoints"][:, 0, 0, 0] = values
    return pool.step(slots, inputs)


def test_consecutive_slots_step_in_place_and_swap_halves():
    runner = AddingRunner()
    pool = StatePool(runner, capacity=4)
    slots = [pool.acquire() for _ in range(3)]
    assert slots == [0, 1, 2]
    _step(pool, slots, [1.0, 2.0, 3.0])
    state_in, state_out, key = runner.calls[-1]
    halves = pool._halves
    assert all(np.shares_memory(a, b) for a, b in zip(state_in, halves[0]))  # views, not copies
    assert all(np.shares_memory(a, b) for a, b in zip(state_out, halves[1]))
    assert key[0] == "slots"
    logits = _step(pool, slots, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(logits, [[2, 2], [3, 3], [4, 4]])
    state_in, state_out, _ = runner.calls[-1]
    assert np.shares_memory(state_in[0], halves[1][0]) and np.shares_memory(state_out[0], halves[0][0])
    np.testing.assert_array_equal(pool.state(1)[1], [3.0, 3.0, 3.0])
    assert pool.state(1)[1].dtype == np.float64  # state dtypes come from the spec


def test_other_slot_sets_are_gathered_and_scattered():
    runner = AddingRunner()
    pool = StatePool(runner, capacity=4)
    slots = [pool.acquire() for _ in range(4)]
    _step(pool, [slots[0]], [10.0])  # slot 0 now has the other parity than 1..3
    logits = _step(pool, [slots[2], slots[0]], [1.0, 1.0])  # not consecutive, mixed parity
    np.testing.assert_array_equal(logits, [[1, 1], [11, 11]])
    state_in, _, key = runner.calls[-1]
    assert key[0] == "staging" and not any(np.shares_memory(state_in[0], h[0]) for h in pool._halves)
    np.testing.assert_array_equal([pool.state(s)[0] for s in slots], [[11, 11], [0, 0], [1, 1], [0, 0]])


def test_zero_release_and_growth_keep_every_other_stream():
    runner = AddingRunner()
    pool = StatePool(runner, capacity=2)
    a, b = pool.acquire(), pool.acquire()
    _step(pool, [a, b], [1.0, 2.0])
    pool.zero(a)
    np.testing.assert_array_equal(pool.state(a)[0], [0, 0])
    np.testing.assert_array_equal(pool.state(b)[0], [2, 2])
    c = pool.acquire()  # full: doubles, states and parities carried over
    assert (pool.capacity, c) == (4, 2)
    np.testing.assert_array_equal(pool.state(b)[0], [2, 2])
    _step(pool, [b, c], [1.0, 5.0])
    np.testing.assert_array_equal([pool.state(b)[0], pool.state(c)[0]], [[3, 3], [5, 5]])
    pool.release(b)
    assert pool.acquire() == b  # reused, and zeroed
    np.testing.assert_array_equal(pool.state(b)[0], [0, 0])


def test_max_streams_bounds_the_pool():
    pool = StatePool(AddingRunner(), capacity=8, max_streams=2)
    assert pool.capacity == 0  # nothing allocated before the first stream
    pool.acquire(), pool.acquire()
    assert pool.capacity == 2
    with pytest.raises(StreamError, match=re.escape(
            "this Predictor holds at most 2 streams (max_streams); close a stream before opening another.")):
        pool.acquire()
    with pytest.raises(StreamError, match=re.escape("max_streams must be a positive int or None, got 0.")):
        StatePool(AddingRunner(), max_streams=0)


def test_an_engine_profile_splits_the_batch():
    runner = AddingRunner(max_batch=2)
    pool = StatePool(runner, capacity=8)
    slots = [pool.acquire() for _ in range(5)]
    logits = _step(pool, slots, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert [len(call[0][0]) for call in runner.calls] == [2, 2, 1]
    np.testing.assert_array_equal(logits[:, 0], [1, 2, 3, 4, 5])


@pytest.fixture(scope="module")
def wide_state(tmp_path_factory):
    """A pose student with a 2-layer LSTM of 1024: four 4 KiB state tensors per stream."""
    import torch

    from edgeact.checkpoint import save_checkpoint
    from edgeact.export import export_onnx
    from edgeact.models import build_model

    torch.manual_seed(0)
    model = build_model({"inputs": ["keypoints"], "num_classes": 4, "pose": {"joints": 18, "dim": 32},
                         "head": {"name": "lstm", "hidden": 1024, "layers": 2}}).eval()
    root = tmp_path_factory.mktemp("wide")
    pt = save_checkpoint(root / "wide.pt", model, ["a", "b", "c", "d"])
    return {"torch": pt, "onnx": export_onnx(pt, root / "wide.onnx", verify_steps=1).path}


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_a_pool_step_allocates_no_state(backend, wide_state):
    """What Python-side allocations (numpy's included) hold at their peak during a step, above
    what was live before, stays under one state tensor: the next state is written into the
    pool, not allocated (the runtimes' own C++ buffers are invisible to tracemalloc, and so is
    torch's allocator: the torch runner is checked by its buffers below)."""
    runner = load_backend(wide_state["onnx"], backend)
    pool = StatePool(runner, capacity=4)
    slot = pool.acquire()
    inputs = pool.input_buffers(1)
    inputs["keypoints"][...] = np.random.default_rng(0).random(inputs["keypoints"].shape) * 50
    for _ in range(3):  # warm: bindings made, buffers grown
        pool.step([slot], inputs)
    smallest = min(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in runner.spec.state)
    assert smallest == 4096
    tracemalloc.start()
    try:
        peaks = []
        for _ in range(5):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            pool.step([slot], inputs)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert max(peaks) < smallest, peaks
    # the stateless form, for contrast, allocates the next state: the measurement sees it
    state = runner.init_state(1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        runner.step({"keypoints": inputs["keypoints"]}, state)
        assert tracemalloc.get_traced_memory()[1] - before > 4 * smallest
    finally:
        tracemalloc.stop()


def test_the_torch_runner_keeps_state_in_its_pool_tensors(wide_state):
    import torch

    runner = load_backend(wide_state["torch"], "torch")
    pool = StatePool(runner, capacity=2)
    slot = pool.acquire()
    assert all(isinstance(b, torch.Tensor) for half in pool._halves for b in half)
    pointers = [b.data_ptr() for half in pool._halves for b in half]
    inputs = pool.input_buffers(1)
    inputs["keypoints"][...] = 30.0
    logits = pool.step([slot], inputs)
    _, expected = runner.step({"keypoints": inputs["keypoints"]}, runner.init_state(1))
    assert [b.data_ptr() for half in pool._halves for b in half] == pointers  # written in place
    for got, want in zip(pool.state(slot), expected):
        np.testing.assert_array_equal(got.numpy(), want[0])
    assert logits.shape == (1, 4)


def test_predictor_streams_hold_slots(tiny_artifacts, synth_dir):
    from tests.streaming import clips

    clip = clips(synth_dir, 1)[0]
    p = Predictor(tiny_artifacts["pose"]["onnx"], max_streams=3)
    for k in ("a", "b", "c"):
        p.push(keypoints=clip.noisy_keypoints[0], stream=k)
    assert p._pool.in_use == 3 and p.max_streams == 3
    p.close_stream("b")
    assert p._pool.in_use == 2
    p.push(keypoints=clip.noisy_keypoints[0], stream="d")
    assert p._pool.in_use == 3 and set(p.streams) == {"a", "c", "d"}
