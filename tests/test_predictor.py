"""Predictor: parity between backends, streaming == offline, streams, stride, decisions, bad input."""

from __future__ import annotations

import re
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from edgeact import InputError, InputTypeError, Predictor, StreamError
from edgeact.backends.base import Runner
from edgeact.parity import ParityCheck, float64_twin
from edgeact.predictor import DecisionPolicy
from edgeact.spec import KeypointSpec, ModelSpec, TensorSpec

from tests.streaming import LOOSE, assert_matches_torch, exact_logits
from tests.streaming import clips as _clips
from tests.streaming import push_clip as _push_clip


@pytest.mark.parametrize("kind", ["pose", "rgb", "fusion", "gru"])
def test_onnxruntime_matches_torch_over_whole_clips(kind, tiny_artifacts, synth_dir):
    ort = Predictor(tiny_artifacts[kind]["onnx"], policy=LOOSE)
    assert ort.backend == "onnxruntime"
    assert_matches_torch(ort, tiny_artifacts[kind]["pt"], _clips(synth_dir))


@pytest.mark.parametrize("kind", ["pose", "rgb"])
def test_streaming_predictor_equals_offline_forward(kind, tiny_artifacts, synth_dir):
    import torch

    from edgeact.checkpoint import checkpoint_spec, load_checkpoint
    from edgeact.preprocess import preprocess_frames, preprocess_keypoints

    model, payload = load_checkpoint(tiny_artifacts[kind]["pt"])
    spec = checkpoint_spec(model, payload, "tiny")
    clip = _clips(synth_dir, 1)[0]
    inputs = {}
    if spec.frames:
        inputs["frames"] = torch.from_numpy(preprocess_frames(clip.frames(), spec.frames))[None]
    if spec.keypoints:
        kps = np.stack([preprocess_keypoints(k, spec.keypoints) for k in clip.noisy_keypoints])
        inputs["keypoints"] = torch.from_numpy(kps)[None]
    with torch.no_grad():
        offline = model.forward_offline(inputs)["logits"][0].numpy()
        exact = float64_twin(model).forward_offline({k: x.double() for k, x in inputs.items()})["logits"][0].numpy()
    streamed = np.stack([p.logits for p in _push_clip(Predictor(tiny_artifacts[kind]["onnx"]), clip)])
    assert streamed.shape == offline.shape
    check = ParityCheck()
    for t in range(len(exact)):
        check.update(t, "logits", exact[t], offline[t], streamed[t])
    assert check.ok, check.summary()


def test_push_many_is_one_batch_and_equals_single_pushes(tiny_artifacts, synth_dir):
    """A batch of 3 may round differently from 3 single steps (other GEMM shapes), so both are
    judged by the parity rule against the float64 model, PyTorch single pushes as the reference."""
    artifact = tiny_artifacts["rgb"]
    clips = _clips(synth_dir, 3)
    single, reference = Predictor(artifact["onnx"]), Predictor(artifact["pt"])
    expected = {i: _push_clip(single, c, stream=i) for i, c in enumerate(clips)}
    torch_single = {i: _push_clip(reference, c, stream=i) for i, c in enumerate(clips)}
    batched = Predictor(artifact["onnx"])
    length = min(c.num_frames for c in clips)
    frames = [c.frames() for c in clips]
    exact = [exact_logits(artifact["pt"], batched.spec, f, c.noisy_keypoints) for f, c in zip(frames, clips)]
    check = ParityCheck()
    for t in range(length):
        out = batched.push_many({i: frames[i][t] for i in range(len(clips))})
        for i, pred in out.items():
            assert pred.stream == i
            assert pred.frames_seen == t + 1
            check.update(t, "logits", exact[i][t], torch_single[i][t].logits, pred.logits, expected[i][t].logits)
    assert check.ok, check.summary()
    assert set(batched.streams) == {0, 1, 2}


def test_streams_are_independent_and_reset_restarts(tiny_artifacts, synth_dir):
    clip = _clips(synth_dir, 1)[0]
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    first = _push_clip(p, clip, stream="a")
    _push_clip(p, _clips(synth_dir, 2)[1], stream="b")
    p.reset("a")
    again = _push_clip(p, clip, stream="a")
    assert [x.frames_seen for x in again] == list(range(1, clip.num_frames + 1))
    np.testing.assert_array_equal(np.stack([x.logits for x in first]), np.stack([x.logits for x in again]))
    p.close_stream("b")
    assert p.streams == ("a",)


def test_closing_an_unknown_stream_is_an_error(tiny_artifacts):
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    with pytest.raises(StreamError, match=re.escape("unknown stream 'cam9'; known streams: [].")):
        p.close_stream("cam9")


def test_reset_before_the_first_push_leaves_the_stream_empty(tiny_artifacts, synth_dir):
    """Robot code resets at the start of every action, before pushing anything."""
    clip = _clips(synth_dir, 1)[0]
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    p.reset()
    p.reset("cam9")
    assert p.streams == ()
    first = _push_clip(p, clip)
    assert p.streams == ("default",)
    p.reset()
    p.reset()  # twice in a row: still fresh
    again = _push_clip(p, clip)
    assert [x.frames_seen for x in again] == list(range(1, clip.num_frames + 1))
    np.testing.assert_array_equal(np.stack([x.logits for x in first]), np.stack([x.logits for x in again]))
    p.close()
    with pytest.raises(InputError, match=re.escape("this Predictor is closed.")):
        p.reset()


def test_rejected_frame_leaves_stream_untouched(tiny_artifacts, synth_dir):
    clip = _clips(synth_dir, 1)[0]
    frames = clip.frames()
    clean = Predictor(tiny_artifacts["rgb"]["onnx"])
    expected = [clean.push(f) for f in frames]
    p = Predictor(tiny_artifacts["rgb"]["onnx"])
    got = []
    for t, f in enumerate(frames):
        if t == 5:
            with pytest.raises(InputTypeError):
                p.push(f.astype(np.float32))
            with pytest.raises(InputError):
                p.push(f[:, :, 0])
        got.append(p.push(f))
    assert [g.frames_seen for g in got] == [e.frames_seen for e in expected]
    np.testing.assert_array_equal(np.stack([g.logits for g in got]), np.stack([e.logits for e in expected]))


def test_rejected_push_many_changes_no_stream(tiny_artifacts, synth_dir):
    frame = _clips(synth_dir, 1)[0].frames()[0]
    p = Predictor(tiny_artifacts["rgb"]["onnx"])
    p.push(frame, stream="a")
    with pytest.raises(InputError):
        p.push_many({"a": frame, "b": np.zeros((0, 0, 3), np.uint8)})
    assert p.streams == ("a",)
    assert p.push(frame, stream="a").frames_seen == 2


def test_a_timestamp_going_back_rejects_the_call_and_creates_no_stream(tiny_artifacts, synth_dir):
    """push_many used to create 'new' before checking a's timestamp, and leave it behind."""
    clip = _clips(synth_dir, 1)[0]
    kp = clip.noisy_keypoints
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    first = p.push(keypoints=kp[0], timestamp=10.0, stream="a")
    with pytest.raises(InputError, match=re.escape("timestamp must increase within stream 'a': got 5.0 after 10.0.")):
        p.push_many({"new": {"keypoints": kp[0]}, "a": {"keypoints": kp[1], "timestamp": 5.0}})
    assert p.streams == ("a",)
    again = p.push(keypoints=kp[1], timestamp=11.0, stream="a")  # a is as it was: its second frame
    fresh = Predictor(tiny_artifacts["pose"]["onnx"])
    expected = [fresh.push(keypoints=kp[t]) for t in (0, 1)]
    assert again.frames_seen == 2
    np.testing.assert_array_equal(first.logits, expected[0].logits)
    np.testing.assert_array_equal(again.logits, expected[1].logits)


def test_max_streams_rejects_whole_calls_and_frees_on_close(tiny_artifacts, synth_dir):
    kp = _clips(synth_dir, 1)[0].noisy_keypoints[0]
    p = Predictor(tiny_artifacts["pose"]["onnx"], max_streams=3)
    p.push_many({"a": {"keypoints": kp}, "b": {"keypoints": kp}})
    message = ("this Predictor holds at most 3 streams (max_streams) and 2 are open; 2 new ones do not fit. "
               "Close a stream first.")
    with pytest.raises(StreamError, match=re.escape(message)):
        p.push_many({"a": {"keypoints": kp}, "c": {"keypoints": kp}, "d": {"keypoints": kp}})
    assert p.streams == ("a", "b")
    assert p.push(keypoints=kp, stream="a").frames_seen == 2  # the rejected call did not step a
    p.push(keypoints=kp, stream="c")
    p.close_stream("b")
    assert p.push(keypoints=kp, stream="d").frames_seen == 1
    assert set(p.streams) == {"a", "c", "d"}


def test_push_many_splits_to_the_runners_max_batch():
    runner = ScriptedRunner([CONFIDENT_A, CONFIDENT_B, UNSURE], max_batch=2)
    p = Predictor(runner)
    p.push(keypoints=KP1, stream=0)
    out = p.push_many({i: {"keypoints": KP1} for i in range(5)})
    assert runner.batches == [1, 2, 2, 1]
    assert [out[i].label for i in range(5)] == ["c1", "c0", "c0", "c0", "c0"]  # stream 0 is at its 2nd step
    assert [out[i].frames_seen for i in range(5)] == [2, 1, 1, 1, 1]


def test_non_contiguous_frames_are_accepted_and_equal(tiny_artifacts, synth_dir):
    frame = _clips(synth_dir, 1)[0].frames()[0]
    padded = np.zeros((frame.shape[0] + 20, frame.shape[1] * 2, 3), np.uint8)
    padded[10:-10, ::2] = frame
    view = padded[10:-10, ::2]
    assert not view.flags.c_contiguous
    a = Predictor(tiny_artifacts["rgb"]["onnx"]).push(view)
    b = Predictor(tiny_artifacts["rgb"]["onnx"]).push(np.ascontiguousarray(view))
    np.testing.assert_array_equal(a.logits, b.logits)


FRAME_ERRORS = [
    (None, InputTypeError, "frame must be a numpy.ndarray of shape (H, W, 3) and dtype uint8 (BGR, as OpenCV gives it), got NoneType."),
    (np.zeros((0, 64, 3), np.uint8), InputError, "frame is empty: shape (0, 64, 3)."),
    (np.zeros((64, 64, 3), np.float32), InputTypeError, "frame must have dtype uint8 (BGR, as OpenCV gives it), got float32."),
    (np.zeros((64, 64, 4), np.uint8), InputError, "frame must have shape (H, W, 3) with 3 channels (BGR), got (64, 64, 4)."),
    (np.zeros((64, 64), np.uint8), InputError, "frame must have shape (H, W, 3), got (64, 64): a grayscale image? Convert it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)."),
]


@pytest.mark.parametrize("frame,error,message", FRAME_ERRORS)
def test_bad_frames(tiny_artifacts, frame, error, message):
    p = Predictor(tiny_artifacts["rgb"]["onnx"])
    with pytest.raises(error, match=re.escape(message)):
        p.push(frame)
    assert p.streams == ()


def _kp():
    kp = np.full((2, 18, 3), 10.0, np.float32)
    kp[..., 2] = 1.0  # every joint visible
    return kp


KEYPOINT_ERRORS = [
    (None, InputError, "this model takes keypoints of shape (people, 18, 2 or 3); pass keypoints=... with each frame."),
    ([[1, 2]], InputTypeError, "keypoints must be a numpy.ndarray of shape (people, 18, 2 or 3), got list."),
    (np.zeros((2, 17, 3), np.float32), InputError, "keypoints must have shape (people, 18, 2 or 3), got (2, 17, 3)."),
    (np.zeros((2, 18, 4), np.float32), InputError, "keypoints must have shape (people, 18, 2 or 3), got (2, 18, 4)."),
    (np.zeros((2, 18, 3), "U1"), InputTypeError, "keypoints must have a numeric dtype, got <U1."),
]


@pytest.mark.parametrize("keypoints,error,message", KEYPOINT_ERRORS)
def test_bad_keypoints(tiny_artifacts, keypoints, error, message):
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    with pytest.raises(error, match=re.escape(message)):
        p.push(keypoints=keypoints)


def test_nan_keypoints(tiny_artifacts):
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    bad = _kp()
    bad[1, 4, 0] = np.nan
    with pytest.raises(InputError, match=re.escape(
            "keypoints contain NaN or inf at person 1, joint 4 with visibility 1; give missing joints visibility 0.")):
        p.push(keypoints=bad)
    bad[1, 4, 2] = np.inf
    with pytest.raises(InputError, match=re.escape("keypoints visibility is NaN or inf at person 1, joint 4.")):
        p.push(keypoints=bad)
    missing = _kp()
    missing[1, 4] = (np.nan, np.inf, 0.0)  # a missing joint may carry junk coordinates
    zeroed = _kp()
    zeroed[1, 4] = 0.0
    a = p.push(keypoints=missing, stream="x")
    b = p.push(keypoints=zeroed, stream="y")
    np.testing.assert_array_equal(a.logits, b.logits)


def test_keypoints_without_visibility_and_extra_people(tiny_artifacts):
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    kp = _kp()
    a = p.push(keypoints=kp[..., :2], stream="a")  # no visibility column: all visible
    three = np.concatenate([kp, np.zeros((1, 18, 3), np.float32)])  # an empty third person is dropped
    b = p.push(keypoints=three, stream="b")
    c = p.push(keypoints=kp, stream="c")
    np.testing.assert_array_equal(a.logits, c.logits)
    np.testing.assert_array_equal(b.logits, c.logits)


def test_timestamps_must_increase(tiny_artifacts):
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    p.push(keypoints=_kp(), timestamp=1.0)
    with pytest.raises(InputError, match=re.escape("timestamp must increase within stream 'default': got 1.0 after 1.0.")):
        p.push(keypoints=_kp(), timestamp=1.0)
    assert p.push(keypoints=_kp(), timestamp=1.5).frames_seen == 2


def test_numpy_scalar_timestamps_are_numbers(tiny_artifacts):
    """Timestamps read from an array are numpy scalars (found by the fuzz tests: np.float32 and
    np.int64 were refused while np.float64 passed)."""
    p = Predictor(tiny_artifacts["pose"]["onnx"])
    stamps = np.array([1, 2], np.int64)
    assert p.push(keypoints=_kp(), timestamp=stamps[0]).timestamp == 1
    p.push(keypoints=_kp(), timestamp=np.float32(2.5))
    with pytest.raises(InputError, match=re.escape("timestamp must increase within stream 'default': got 2 after 2.5.")):
        p.push(keypoints=_kp(), timestamp=stamps[1])
    with pytest.raises(InputError, match=re.escape("timestamp must be a finite number, got nan.")):
        p.push(keypoints=_kp(), timestamp=np.float16("nan"))
    assert p.push(keypoints=_kp(), timestamp=np.float64(3.0)).frames_seen == 3


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_a_preallocated_pool_never_reallocates_as_streams_join_and_leave(backend, tiny_artifacts):
    p = Predictor(tiny_artifacts["pose"]["onnx"], backend, max_streams=8, preallocate=True)
    p.push(keypoints=_kp(), stream=0)
    pool = p._pool
    assert pool.capacity == 8
    buffers = [id(b) for half in pool._halves for b in half]
    rng = np.random.default_rng(0)
    open_streams = {0}
    for step in range(300):  # streams join, step together, reset and leave in a seeded order
        joining = [s for s in range(8) if s not in open_streams and rng.random() < 0.3]
        p.push_many({s: {"keypoints": _kp()} for s in sorted(open_streams | set(joining))})
        open_streams |= set(joining)
        for s in sorted(open_streams):
            if rng.random() < 0.1:
                p.close_stream(s)
                open_streams.discard(s)
            elif rng.random() < 0.05:
                p.reset(s)
        if not open_streams:
            p.push(keypoints=_kp(), stream=0)
            open_streams.add(0)
    assert pool.capacity == 8 and [id(b) for half in pool._halves for b in half] == buffers
    with pytest.raises(InputError, match="preallocate=True sizes the state pool for max_streams streams"):
        Predictor(tiny_artifacts["pose"]["onnx"], backend, preallocate=True)
    grown = Predictor(tiny_artifacts["pose"]["onnx"], backend, max_streams=8)  # without it: grows by doubling
    grown.push(keypoints=_kp(), stream=0)
    assert grown._pool.capacity < 8


@pytest.mark.parametrize("call", ["push_many", "push"])  # push() has its own single-stream path
@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_push_many_racing_reset_and_close_from_other_threads(backend, call, tiny_artifacts):
    """A stream's calls are serialised: a reset or close that races a push_many lands wholly
    before or after that push's step. So every stream's frame count, seen from the pushes, goes
    up by one or restarts at one (after a reset or a close, the next push starts it afresh),
    the calls raise nothing but the documented StreamError for a stream closed meanwhile, and at
    the end the pool holds exactly one slot per open stream."""
    p = Predictor(tiny_artifacts["pose"]["onnx"], backend, max_streams=16)
    keys = list(range(8))
    seen = {k: [] for k in keys}
    errors, stop = [], threading.Event()

    def pusher():
        try:
            for _ in range(150):
                if call == "push":
                    for key in keys:
                        seen[key].append(p.push(keypoints=_kp(), stream=key).frames_seen)
                    continue
                for key, pred in p.push_many({k: {"keypoints": _kp()} for k in keys}).items():
                    seen[key].append(pred.frames_seen)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            stop.set()

    def disturber(seed):
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                key = int(rng.integers(8))
                if rng.random() < 0.5:
                    p.reset(key)
                else:
                    try:
                        p.close_stream(key)
                    except StreamError:  # closed by the other disturber, not pushed again yet
                        pass
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pusher)] + [threading.Thread(target=disturber, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    restarts = 0
    for key in keys:
        assert seen[key][0] == 1 and len(seen[key]) == 150
        for before, after in zip(seen[key], seen[key][1:]):
            assert after in (before + 1, 1), (key, before, after)
            restarts += after == 1
    assert restarts > 0  # the disturbers did land between pushes
    slots = [s.slot for s in p._streams.values() if s.slot is not None]
    assert len(slots) == len(set(slots)) == p._pool.in_use == len(p.streams)


def test_close_is_idempotent_and_context_manager(tiny_artifacts):
    with Predictor(tiny_artifacts["pose"]["onnx"]) as p:
        p.push(keypoints=_kp())
    p.close()
    with pytest.raises(InputError, match=re.escape("this Predictor is closed.")):
        p.push(keypoints=_kp())


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_concurrent_pushes_on_different_streams(backend, tiny_artifacts, synth_dir):
    """Threads change nothing: the same single-stream steps run, so the logits are bit for bit
    those of a serial run (not a parity question: one runtime, one batch size)."""
    onnx = tiny_artifacts["pose"]["onnx"]
    clips = _clips(synth_dir, 4)
    expected = {i: [x.logits for x in _push_clip(Predictor(onnx, backend), c)] for i, c in enumerate(clips)}
    shared = Predictor(onnx, backend)
    results, errors = {}, []

    def run(i):
        try:
            results[i] = [x.logits for x in _push_clip(shared, clips[i], stream=i)]
        except Exception as exc:  # surfaced below: a failing thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in expected:
        np.testing.assert_array_equal(np.stack(results[i]), np.stack(expected[i]))


# --- the decision policy and the stride, on a scripted test double of a backend -------------
class ScriptedRunner(Runner):
    """A strict test double of a runner: scripted logits per step; the state counts each stream's
    steps, read from ``state_in`` and written to ``state_out`` as the Runner contract says."""

    name = "scripted"

    def __init__(self, logits: list[list[float]], stride: int = 1, max_batch: int | None = None):
        self._script = np.asarray(logits, np.float32)
        self.max_batch = max_batch
        self.batches: list[int] = []  # the batch of every step
        spec = ModelSpec(classes=tuple(f"c{i}" for i in range(self._script.shape[1])),
                         state=(TensorSpec("steps", (1,)),), keypoints=KeypointSpec(people=1, joints=2),
                         stride=stride)
        super().__init__(SimpleNamespace(spec=spec))

    def _open(self, runtime):
        pass

    def _run(self, inputs, state_in, state_out, key=None):
        steps = state_in[0]
        assert inputs["keypoints"].shape == (len(steps), 1, 2, 3)
        self.batches.append(len(steps))
        state_out[0][...] = steps + 1
        return self._script[np.minimum(steps[:, 0].astype(int), len(self._script) - 1)].copy()


KP1 = np.zeros((1, 2, 3), np.float32)
CONFIDENT_A, CONFIDENT_B, UNSURE = [5.0, 0.0], [0.0, 5.0], [0.1, 0.0]


def _run(policy, script, n=None, stride=1):
    p = Predictor(ScriptedRunner(script, stride=stride), policy=policy)
    return [p.push(keypoints=KP1) for _ in range(n or len(script))]


def test_decision_needs_consecutive_confident_steps():
    preds = _run(DecisionPolicy(threshold=0.9, consecutive=3), [UNSURE, CONFIDENT_A, CONFIDENT_A, UNSURE, CONFIDENT_A, CONFIDENT_A, CONFIDENT_A])
    assert [p.decided for p in preds] == [False] * 6 + [True]
    assert (preds[-1].decision_label, preds[-1].decision_frame) == ("c0", 7)


def test_decision_latches_until_reset_unless_configured():
    script = [CONFIDENT_A, CONFIDENT_B, CONFIDENT_B, UNSURE]
    latched = _run(DecisionPolicy(threshold=0.9, consecutive=1), script)
    assert [p.decision_label for p in latched] == ["c0", "c0", "c0", "c0"]
    assert [p.label for p in latched] == ["c0", "c1", "c1", "c0"]
    free = _run(DecisionPolicy(threshold=0.9, consecutive=2, latch=False), script)
    assert [p.decision_label for p in free] == [None, None, "c1", None]
    assert free[2].decision_frame == 3


def test_margin_and_min_frames():
    close = [3.0, 2.9]
    assert not _run(DecisionPolicy(threshold=0.0, margin=0.2, consecutive=1), [close])[0].decided
    preds = _run(DecisionPolicy(threshold=0.9, consecutive=1, min_frames=3), [CONFIDENT_A] * 3)
    assert [p.decided for p in preds] == [False, False, True]


def test_bad_policy():
    with pytest.raises(InputError, match=re.escape("DecisionPolicy.threshold must be in [0, 1], got 1.5.")):
        DecisionPolicy(threshold=1.5)


def test_stride_skips_frames_and_says_so():
    preds = _run(DecisionPolicy(), [CONFIDENT_A, CONFIDENT_B, UNSURE], n=7, stride=3)
    assert [p.stepped for p in preds] == [True, False, False, True, False, False, True]
    assert [p.steps for p in preds] == [1, 1, 1, 2, 2, 2, 3]
    assert [p.label for p in preds] == ["c0", "c0", "c0", "c1", "c1", "c1", "c0"]
    assert [p.frames_seen for p in preds] == list(range(1, 8))


def test_prediction_carries_timings(tiny_artifacts):
    pred = Predictor(tiny_artifacts["pose"]["onnx"]).push(keypoints=_kp())
    assert set(pred.timings_ms) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in pred.timings_ms.values())
    assert pred.probs.shape == (len(pred.probs),) and abs(float(pred.probs.sum()) - 1) < 1e-5


def _reference_keypoints(keypoints, spec: KeypointSpec) -> np.ndarray:
    """preprocess_keypoints' rule, joint by joint (its docstring, written out independently)."""
    kp = np.asarray(keypoints, np.float32)
    kp = kp[None] if kp.ndim == 2 else kp
    if kp.shape[2] == spec.dims:
        kp = np.concatenate([kp, np.ones((*kp.shape[:2], 1), np.float32)], axis=2)
    people = [[joint if joint[spec.dims] > 0 else np.zeros(spec.dims + 1, np.float32) for joint in person]
              for person in kp]
    visible = [sum(joint[spec.dims] > 0 for joint in person) for person in kp]
    keep = sorted(sorted(range(len(kp)), key=lambda i: -visible[i])[: spec.people])  # sorted() is stable
    out = np.zeros((spec.people, spec.joints, spec.dims + 1), np.float32)
    for row, i in enumerate(keep):
        out[row] = np.array(people[i], np.float32).reshape(spec.joints, spec.dims + 1)
    return out


@pytest.mark.parametrize("dims", [2, 3])
def test_keypoint_fast_path_equals_the_general_path_bit_for_bit(dims):
    """The common input (float32 at exactly the model's shape, all finite) takes a short path;
    every other input the general one. Both must give the reference's bytes (+0.0 where a joint
    is missing), leave the input as it was and share no memory with it."""
    from edgeact.preprocess import preprocess_keypoints

    spec = KeypointSpec(people=2, joints=5, dims=dims)
    rng = np.random.default_rng(13)
    fast_inputs = 0
    for trial in range(400):
        people = int(rng.choice([1, 2, 2, 2, 3, 4]))
        kp = rng.normal(0, 100, (people, spec.joints, dims + 1)).astype(np.float32)
        kp[rng.random(kp.shape) < 0.1] = -0.0
        visibility = rng.choice(np.array([0.0, -0.0, -1.0, 0.3, 1.0, 1e-45], np.float32), (people, spec.joints))
        kp[:, :, dims] = visibility
        if trial % 3 == 0:  # junk at missing joints, as pose estimators emit: the general path
            missing = np.argwhere(visibility <= 0)
            for person, joint in missing[: rng.integers(0, len(missing) + 1)]:
                kp[person, joint, rng.integers(0, dims)] = rng.choice([np.nan, np.inf, -np.inf])
        variants = [kp, kp.astype(np.float64), kp.astype(">f4"),
                    np.swapaxes(np.swapaxes(kp, 0, 2).copy(), 0, 2),  # a strided view
                    np.round(np.nan_to_num(kp, posinf=0, neginf=0)).astype(np.int32)]
        if people == 1:
            variants.append(kp[0])
        if np.isfinite(kp).all():  # without a visibility column every joint counts as visible
            variants.append(kp[..., :dims])
        for variant in variants:
            before = variant.copy()
            out = preprocess_keypoints(variant, spec)
            expected = _reference_keypoints(variant, spec)
            assert out.dtype == np.float32 and out.shape == expected.shape
            assert out.tobytes() == expected.tobytes(), (trial, variant.dtype, variant.shape)
            assert not np.shares_memory(out, variant)
            np.testing.assert_array_equal(variant, before)
            fast_inputs += variant.dtype == np.float32 and variant.shape == (2, spec.joints, dims + 1) and bool(
                np.isfinite(variant).all())
    assert fast_inputs > 200  # the short path was exercised, not only the general one


def test_keypoint_fast_path_rejects_with_the_general_paths_sentences():
    from edgeact.preprocess import preprocess_keypoints

    spec = KeypointSpec(people=2, joints=18)
    for where, value, message in [
        ((1, 4, 0), np.nan, "keypoints contain NaN or inf at person 1, joint 4 with visibility 1; give missing "
                            "joints visibility 0."),
        ((0, 7, 1), -np.inf, "keypoints contain NaN or inf at person 0, joint 7 with visibility 1; give missing "
                             "joints visibility 0."),
        ((1, 2, 2), np.nan, "keypoints visibility is NaN or inf at person 1, joint 2."),
    ]:
        bad = _kp()
        bad[where] = value
        for variant in (bad, bad.astype(np.float64)):
            with pytest.raises(InputError, match=re.escape(message)):
                preprocess_keypoints(variant, spec)


def test_predictions_carry_every_field_and_stay_frozen(tiny_artifacts):
    import dataclasses

    from edgeact.predictor import Prediction

    pred = Predictor(tiny_artifacts["pose"]["onnx"]).push(keypoints=_kp())
    assert list(vars(pred)) == [f.name for f in dataclasses.fields(Prediction)]
    assert pred == Prediction(**{f.name: getattr(pred, f.name) for f in dataclasses.fields(Prediction)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        pred.label = "other"


def test_softmax_equals_the_textbook_formula_bit_for_bit():
    from edgeact.predictor import _softmax

    rng = np.random.default_rng(5)
    for k in (1, 2, 7, 60, 400):
        for dtype in (np.float32, np.float64):
            logits = (rng.normal(0, 10, k) + rng.choice([0, 80, -80])).astype(dtype)
            z = logits - logits.max(axis=-1, keepdims=True)
            expected = (np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)).astype(np.float32)
            got = _softmax(logits)
            assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()
            assert not np.shares_memory(got, logits)


def test_streams_opened_while_others_step_keep_their_state():
    """The pool grows (4 -> 64 slots) while other threads step: growth waits for steps in flight
    and steps wait for growth, so every stream's k-th push reads the state of k - 1 steps."""
    import time

    class SlowRunner(ScriptedRunner):  # a step long enough for growth to land inside it, were it let in
        def _run(self, inputs, state_in, state_out, key=None):
            steps = state_in[0].copy()
            time.sleep(0.001)
            state_out[0][...] = steps + 1
            return self._script[np.minimum(steps[:, 0].astype(int), len(self._script) - 1)].copy()

    steps = 5
    script = [[10.0 if c == k else 0.0 for c in range(steps)] for k in range(steps)]  # step k -> class k
    p = Predictor(SlowRunner(script), policy=DecisionPolicy(threshold=1.0))
    labels, errors = {}, []

    def run(thread):
        try:
            for j in range(8):
                stream = (thread, j)
                labels[stream] = [p.push(keypoints=KP1, stream=stream).index for _ in range(steps)]
                if j % 2:
                    p.close_stream(stream)
        except Exception as exc:  # surfaced below: a failing thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(labels) == 64 and all(got == list(range(steps)) for got in labels.values())
    assert p._pool.capacity >= 32  # it did grow while streams stepped
