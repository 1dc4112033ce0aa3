"""The Predictor's pose front end, on a strict fake estimator: push(frame) alone feeds a keypoint
model; checks at construction; timings; rejected frames; streams and push_many; ownership."""

from __future__ import annotations

import re
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from edgeact import BackendError, InputError, InputTypeError, Predictor
from edgeact.backends.base import Runner
from edgeact.pose import COCO17, COCO18, KeypointLayout, LayoutMapping
from edgeact.preprocess import preprocess_keypoints
from edgeact.spec import KeypointSpec, ModelSpec, TensorSpec

from tests.pose.fakes import BrokenProvider, FakePoseProvider, keypoints_of, register_fake
from tests.streaming import clips as _clips

TO_COCO18 = LayoutMapping.between(COCO17, COCO18)


def _frames(synth_dir, n=8):
    return list(_clips(synth_dir, 1)[0].frames()[:n])


def _model_keypoints(frame, people=1):
    """What the model should get for ``frame`` from the fake: its COCO-17 keypoints, low scores
    dropped, mapped to COCO-18."""
    kp = keypoints_of(frame, people=people)
    kp[kp[:, :, 2] < FakePoseProvider.MIN_SCORE, 2] = 0.0
    return TO_COCO18(kp)


def test_push_frame_alone_equals_pushing_the_mapped_keypoints(tiny_artifacts, synth_dir):
    frames = _frames(synth_dir)
    fake = FakePoseProvider()
    with Predictor(tiny_artifacts["pose"]["onnx"], pose=fake) as p, Predictor(tiny_artifacts["pose"]["onnx"]) as ref:
        got = [p.push(f) for f in frames]
        expected = [ref.push(keypoints=_model_keypoints(f)) for f in frames]
        assert p.pose is fake and ref.pose is None
        assert p.describe()["pose"] == {"provider": "FakePoseProvider", "layout": "coco17", "max_people": 1, "dims": 2,
                                        "min_score": 0.1, "owned": False,
                                        "mapping": "coco17 -> coco18 (neck = mean of l_shoulder, r_shoulder)"}
    assert len(fake.frames) == len(frames) and all(a is b for a, b in zip(fake.frames, frames))
    np.testing.assert_array_equal(np.stack([g.logits for g in got]), np.stack([e.logits for e in expected]))
    # the keypoints the model saw: COCO-18, two people (the second absent), the low-scored joint missing
    seen = got[0].keypoints
    assert seen.shape == (2, 18, 3)
    np.testing.assert_array_equal(seen, preprocess_keypoints(_model_keypoints(frames[0]), p.spec.keypoints))
    assert not seen[1].any()
    assert seen[0, COCO18.joints.index("l_ear")].tolist() == [0.0, 0.0, 0.0]  # COCO-17's joint 3, scored 0.05


def test_the_pose_stage_has_its_own_timing(tiny_artifacts, synth_dir):
    frame = _frames(synth_dir, 1)[0]
    with Predictor(tiny_artifacts["pose"]["onnx"], pose=FakePoseProvider()) as p:
        timings = p.push(frame).timings_ms
        assert list(timings) == ["pose", "preprocess", "inference", "postprocess"]
        assert timings["pose"] > 0 and all(v >= 0 for v in timings.values())
        assert set(p.push(frame, keypoints=_model_keypoints(frame)).timings_ms) >= {"pose"}
    with Predictor(tiny_artifacts["pose"]["onnx"]) as plain:
        assert "pose" not in plain.push(keypoints=_model_keypoints(frame)).timings_ms


def test_explicit_keypoints_win_and_skip_the_provider(tiny_artifacts, synth_dir):
    frames = _frames(synth_dir, 3)
    fake = FakePoseProvider()
    mine = np.zeros((1, 18, 3), np.float32)
    with Predictor(tiny_artifacts["pose"]["onnx"], pose=fake) as p, Predictor(tiny_artifacts["pose"]["onnx"]) as ref:
        got = p.push(frames[0], keypoints=mine)
        assert fake.frames == [] and got.timings_ms["pose"] == 0.0
        np.testing.assert_array_equal(got.logits, ref.push(keypoints=mine).logits)
        with pytest.raises(InputError, match=re.escape("keypoints must have shape (people, 18, 2 or 3), got (1, 17, 3).")):
            p.push(frames[1], keypoints=keypoints_of(frames[1]))  # explicit keypoints are in the model's layout


def test_a_rejected_frame_leaves_the_stream_as_it_was(tiny_artifacts, synth_dir):
    frames = _frames(synth_dir)
    model = tiny_artifacts["pose"]["onnx"]
    with Predictor(model, pose=FakePoseProvider()) as clean:
        expected = [clean.push(f) for f in frames]
    fail = {"on": False}
    fake = FakePoseProvider(fail_when=lambda frame: fail["on"])
    with Predictor(model, pose=fake) as p:
        got = []
        for t, frame in enumerate(frames):
            if t in (0, 5):  # before the stream exists, and in the middle of it
                fail["on"] = True
                with pytest.raises(RuntimeError, match="the fake estimator failed on this frame"):
                    p.push(frame)
                fail["on"] = False
                with pytest.raises(InputTypeError, match="frame must have dtype uint8"):
                    p.push(frame.astype(np.float32))
                with pytest.raises(InputTypeError, match=r"^frame must be a numpy\.ndarray"):
                    p.push(None)
                assert p.streams == (() if t == 0 else ("default",))
            got.append(p.push(frame))
    assert [g.frames_seen for g in got] == list(range(1, len(frames) + 1))
    np.testing.assert_array_equal(np.stack([g.logits for g in got]), np.stack([e.logits for e in expected]))


def test_push_many_runs_the_provider_per_frame_and_rejects_whole_calls(tiny_artifacts, synth_dir):
    frames = _frames(synth_dir, 4)
    model = tiny_artifacts["pose"]["onnx"]
    fake = FakePoseProvider()
    with Predictor(model, pose=fake) as p, Predictor(model, pose=FakePoseProvider()) as single:
        for t in range(2):
            batch = {"a": frames[t], "b": frames[t + 2]}
            got = p.push_many(batch)
            for key, frame in batch.items():
                np.testing.assert_array_equal(got[key].logits, single.push(frame, stream=key).logits)
            assert got["a"].timings_ms["pose"] > 0
        assert len(fake.frames) == 4
        fake.fail_when = lambda frame: frame is frames[3]
        with pytest.raises(RuntimeError):
            p.push_many({"a": frames[2], "c": frames[3]})
        assert p.streams == ("a", "b")
        assert p.push(frames[2], stream="a").frames_seen == 3


def test_concurrent_pushes_reach_the_provider_one_at_a_time(tiny_artifacts, synth_dir):
    frames = _frames(synth_dir)
    fake = FakePoseProvider()  # raises if two threads are inside it at once
    errors = []
    with Predictor(tiny_artifacts["pose"]["onnx"], pose=fake) as p:
        def run(i):
            try:
                for frame in frames:
                    p.push(frame, stream=i)
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(fake.frames) == 4 * len(frames)


def test_a_fusion_model_gets_the_frame_and_the_providers_keypoints(tiny_artifacts, synth_dir):
    frames = _frames(synth_dir, 3)
    model = tiny_artifacts["fusion"]["onnx"]
    with Predictor(model, pose=FakePoseProvider()) as p, Predictor(model) as ref:
        for frame in frames:
            np.testing.assert_array_equal(p.push(frame).logits, ref.push(frame, keypoints=_model_keypoints(frame)).logits)


# --- checks at construction: what the model wants against what the provider gives -----------
def test_a_layout_the_provider_cannot_feed_is_refused_with_both_named(tiny_artifacts):
    hands = KeypointLayout("hands", ("l_wrist", "r_wrist", "l_thumb", "r_thumb") + tuple(f"k{i}" for i in range(14)))
    with pytest.raises(InputError) as caught:
        Predictor(tiny_artifacts["pose"]["onnx"], pose=FakePoseProvider(), keypoint_layout=hands)
    assert str(caught.value) == (
        f"this model takes keypoints in the layout {hands.describe()}; pose provider FakePoseProvider gives "
        f"{COCO17.describe()}, which lacks l_thumb, r_thumb, k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, "
        "k13. Use a provider that reports them, or pass keypoint_layout= if the model's joints are named otherwise.")
    legs = KeypointLayout("legs", ("l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"))
    with pytest.raises(InputError, match=re.escape(
            f"this model takes keypoints in the layout {COCO18.describe()}; pose provider FakePoseProvider gives "
            f"{legs.describe()}, which lacks nose, neck, r_shoulder, ")):
        Predictor(tiny_artifacts["pose"]["onnx"], pose=FakePoseProvider(legs))


@pytest.mark.parametrize("kind, kwargs, error, message", [
    ("rgb", {"pose": FakePoseProvider()}, InputError, "this model takes no keypoints (frames only), so pose provider "
     "FakePoseProvider has nothing to feed; leave pose= out."),
    ("pose", {"pose": FakePoseProvider(dims=3)}, InputError, "this model takes 2D (x, y) keypoints; pose provider "
     "FakePoseProvider gives 3D (x, y, z)."),
    ("pose", {"keypoint_layout": "coco18"}, InputError, "keypoint_layout= names the model's joints for a pose "
     "provider; it needs pose=."),
    ("pose", {"pose": object()}, InputTypeError, "pose must be a PoseProvider or 'NAME:PATH' (e.g. "
     "'movenet:model.tflite'), got object."),
    ("pose", {"pose": "movenet"}, InputError, "a pose provider is given as NAME:PATH (e.g. movenet:model.tflite), "
     "got 'movenet'; known names: movenet."),
    ("pose", {"pose": "moovenet:x.tflite"}, InputError, "unknown pose provider 'moovenet'; known: movenet. "
     "Did you mean 'movenet'?"),
])
def test_bad_pose_arguments(tiny_artifacts, kind, kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        Predictor(tiny_artifacts[kind]["onnx"], **kwargs)


@pytest.fixture
def fake_by_name(monkeypatch):
    return register_fake(monkeypatch)


def test_a_provider_built_by_name_is_closed_with_the_predictor_a_given_one_is_not(tiny_artifacts, synth_dir,
                                                                                   fake_by_name):
    frame = _frames(synth_dir, 1)[0]
    with Predictor(tiny_artifacts["pose"]["onnx"], pose="fake:some/where") as p:
        p.push(frame)
    (built,) = fake_by_name
    assert built.path == "some/where" and built.closes == 1
    given = FakePoseProvider()
    Predictor(tiny_artifacts["pose"]["onnx"], pose=given).close()
    assert given.closes == 0
    with pytest.raises(InputError, match="this model takes no keypoints"):
        Predictor(tiny_artifacts["rgb"]["onnx"], pose="fake:x")
    assert fake_by_name[1].closes == 1  # built for a model it could not feed: closed at once


# --- the provider's side of the contract ------------------------------------------------------
@pytest.mark.parametrize("result, message", [
    ([[0.0, 0.0, 1.0]], "pose provider BrokenProvider returned list; it must return a float array of shape "
     "(people <= 1, 17, 3)."),
    (np.zeros((1, 17, 3), np.int32), "pose provider BrokenProvider returned int32; it must return a float array of "
     "shape (people <= 1, 17, 3)."),
    (np.zeros((1, 18, 3), np.float32), "pose provider BrokenProvider returned keypoints of shape (1, 18, 3); its "
     "layout coco17 and max_people make that (people <= 1, 17, 3)."),
    (np.zeros((2, 17, 3), np.float32), "pose provider BrokenProvider returned keypoints of shape (2, 17, 3); its "
     "layout coco17 and max_people make that (people <= 1, 17, 3)."),
    (np.full((1, 17, 3), np.nan, np.float32), "pose provider BrokenProvider returned a NaN or inf score; missing "
     "joints score 0."),
])
def test_a_provider_breaking_its_contract_is_named(tiny_artifacts, synth_dir, result, message):
    frame = _frames(synth_dir, 1)[0]
    with Predictor(tiny_artifacts["pose"]["onnx"], pose=BrokenProvider(result)) as p:
        with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
            p.push(frame)
        assert p.streams == ()


def test_nobody_in_the_frame_and_a_closed_provider(tiny_artifacts, synth_dir):
    frame = _frames(synth_dir, 1)[0]
    nobody = BrokenProvider(np.zeros((0, 17, 3), np.float32))
    with Predictor(tiny_artifacts["pose"]["onnx"], pose=nobody) as p:
        assert not p.push(frame).keypoints.any()  # every person absent
        nobody.close()
        nobody.close()  # idempotent
        with pytest.raises(InputError, match=r"^pose provider BrokenProvider is closed\.$"):
            p.push(frame)
    assert nobody.closes == 1


class RecordingRunner(Runner):
    """A strict runner double for a model of normalised COCO-17 keypoints: records its inputs."""

    name = "recording"

    def __init__(self):
        self.inputs = []
        spec = ModelSpec(classes=("a", "b"), state=(TensorSpec("h", (1,)),),
                         keypoints=KeypointSpec(people=1, joints=17, units="normalized"))
        super().__init__(SimpleNamespace(spec=spec))

    def _open(self, runtime):
        pass

    def _run(self, inputs, state_in, state_out, key=None):
        self.inputs.append(inputs["keypoints"].copy())
        state_out[0][...] = state_in[0]
        return np.zeros((len(state_in[0]), 2), np.float32)


def test_same_layout_and_normalised_units():
    frame = np.full((40, 80, 3), 128, np.uint8)
    runner = RecordingRunner()
    with Predictor(runner, pose=FakePoseProvider()) as p:
        p.push(frame)
        assert p.describe()["pose"]["mapping"] == "coco17 -> coco17"
    expected = keypoints_of(frame)
    expected[0, 3] = 0.0  # scored under min_score: missing
    expected[0, :, :2] /= [80, 40]
    np.testing.assert_allclose(runner.inputs[0][0], expected, rtol=1e-6)


def test_the_pose_front_end_runs_without_torch(tiny_artifacts):
    from tests.torchless import run_without_torch

    run = run_without_torch(f"""
        import numpy as np
        from edgeact import Predictor
        from edgeact.pose import COCO17, PoseProvider

        class Still(PoseProvider):
            def __init__(self):
                super().__init__(COCO17, max_people=1)

            def _estimate(self, frame):
                return np.full((1, 17, 3), 0.5, np.float32) * [frame.shape[1], frame.shape[0], 1]

        with Predictor({str(tiny_artifacts["pose"]["onnx"])!r}, pose=Still()) as p:
            pred = p.push(np.zeros((48, 64, 3), np.uint8))
        assert pred.keypoints.shape == (2, 18, 3) and pred.timings_ms["pose"] > 0
        import sys
    """)
    assert run.returncode == 0, run.stderr
