"""The contract: T streaming steps == the offline forward, for every student config."""

import pytest
import torch

from edgeact.errors import ConfigError, InputError, InputTypeError
from edgeact.models import build_model

from .support import STUDENT_CONFIGS, TEACHER_CONFIGS, at_step, calibrate_batchnorm, random_inputs

B, T = 2, 6


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    model = build_model(cfg)
    inputs = random_inputs(model, 2, 3, seed=seed + 100)
    return calibrate_batchnorm(model, lambda: model.forward_offline(inputs), seed)


@pytest.fixture(scope="module", params=list(STUDENT_CONFIGS))
def student(request):
    return request.param, _model(STUDENT_CONFIGS[request.param])


def test_streaming_steps_equal_offline_forward(student):
    _, model = student
    inputs = random_inputs(model, B, T, seed=1)
    with torch.no_grad():
        offline = model.forward_offline(inputs)
        state = model.init_state(B)
        for t in range(T):
            logits, state = model.step(at_step(inputs, t), state)
            assert logits.shape == (B, model.num_classes)
            assert (logits - offline["logits"][:, t]).abs().max() <= 1e-5, f"step {t}"
    assert offline["logits"].shape == (B, T, model.num_classes)
    assert offline["features"].shape == (B, T, model.feature_dim)
    assert torch.isfinite(offline["logits"]).all()
    assert offline["logits"].abs().max() > 1e-3  # not a degenerate all-zero model


def test_students_are_causal(student):
    _, model = student
    inputs = random_inputs(model, B, T, seed=2)
    future = random_inputs(model, B, T, seed=3)
    k = 3
    changed = {name: torch.cat((x[:, :k], future[name][:, k:]), dim=1) for name, x in inputs.items()}
    with torch.no_grad():
        a, b = model.forward_offline(inputs)["logits"], model.forward_offline(changed)["logits"]
    assert (a[:, :k] - b[:, :k]).abs().max() <= 1e-6
    assert not torch.allclose(a[:, k:], b[:, k:])


def test_state_spec_matches_the_state_tensors(student):
    _, model = student
    spec = model.state_spec
    assert spec is model.state_spec  # derived once, fixed order
    state = model.init_state(B)
    assert list(state) == [s.name for s in spec]
    assert all(torch.equal(x, torch.zeros_like(x)) for x in state.values())
    with torch.no_grad():
        _, new_state = model.step(at_step(random_inputs(model, B, 1), 0), state)
    assert list(new_state) == [s.name for s in spec]
    for s in spec:
        assert new_state[s.name].shape == (B, *s.shape) and new_state[s.name].dtype == torch.float32
        assert s.dtype == "float32"


def test_step_flat_is_step_in_spec_order(student):
    _, model = student
    inputs = at_step(random_inputs(model, B, 1, seed=4), 0)
    state = model.init_state(B)
    with torch.no_grad():
        _, state = model.step(inputs, state)  # a non-zero state
        logits, new_state = model.step(inputs, state)
        flat = model.step_flat(*(inputs[s.name] for s in model.input_spec), *state.values())
    features = model.features_spec
    assert len(flat) == 1 + len(features) + len(model.state_spec)
    assert torch.equal(flat[0], logits)
    assert [f.name for f in features] == ["features." + s.name for s in model.input_spec]
    for f, x in zip(features, flat[1:]):
        assert x.shape == (B, *f.shape)
    assert all(torch.equal(x, new_state[s.name]) for x, s in zip(flat[1 + len(features):], model.state_spec))


@pytest.mark.parametrize("name, expected", [
    ("pose_lstm", ["head.lstm.h0", "head.lstm.c0", "head.lstm.h1", "head.lstm.c1"]),
    ("pose_gru", ["head.gru.h0", "head.gru.h1", "head.gru.h2"]),
    ("two_stage_m1", [f"rgb.shift{i}" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)]
     + ["head.stage1.h0", "head.stage1.c0", "head.stage2.h0", "head.stage2.c0"]),
    ("attention_m5", [f"head.lstm.{s}{k}" for k in range(3) for s in "hc"]
     + ["head.attention.max", "head.attention.num", "head.attention.den"]),
])
def test_state_names(name, expected):
    assert [s.name for s in build_model(STUDENT_CONFIGS[name]).state_spec] == expected


def test_state_shapes_are_derived_from_the_input_size():
    model = build_model(STUDENT_CONFIGS["mobilenet_rgbdiff_lstm"])  # 64x96 frames, width 0.35
    spec = {s.name: s.shape for s in model.state_spec}
    assert spec["rgb.shift2"] == (1, 16, 24)  # 8 channels // 8 at 1/4 resolution
    assert spec["rgb.shift15"] == (7, 2, 3)  # 56 channels // 8 at 1/32 resolution
    assert spec["rgb_diff.prev"] == (3, 64, 96)
    assert spec["rgb_diff.seen"] == (1, 1, 1)
    assert spec["rgb_diff.encoder.shift2"] == (1, 16, 24)
    assert spec["head.lstm.h0"] == (16,)


def test_state_spec_probe_leaves_training_state_alone():
    model = build_model(STUDENT_CONFIGS["resnet18_gru"]).train()
    model.rgb.layer1.eval()  # e.g. a trainer freezing part of the backbone
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.state_spec
    assert model.training and model.head.training and not model.rgb.layer1[0].bn1.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", list(TEACHER_CONFIGS))
def test_teachers_run_offline_and_refuse_to_step(name):
    model = _model(TEACHER_CONFIGS[name])
    assert not model.is_streamable
    inputs = random_inputs(model, B, 4)
    with torch.no_grad():
        out = model.forward_offline(inputs)
    assert out["logits"].shape == (B, 4, 5) and out["features"].shape[:2] == (B, 4)
    with pytest.raises(ConfigError, match=r"^This model is offline-only \(.+\), so it has no step\. Stream a student"):
        model.step(at_step(inputs, 0), {})
    with pytest.raises(ConfigError, match="so it has no state_spec"):
        model.init_state(1)
    assert model.describe()["streamable"] is False and model.describe()["states"] == []


def test_teacher_error_sentence():
    model = build_model(TEACHER_CONFIGS["bilstm"])
    with pytest.raises(ConfigError) as err:
        model.step({}, {})
    assert str(err.value) == ("This model is offline-only (its head is a bidirectional LSTM, which reads future "
                              "steps), so it has no step. Stream a student: unidirectional head and the online "
                              "temporal shift.")


def test_bidirectional_teacher_sees_the_future():
    model = _model(TEACHER_CONFIGS["bilstm"])
    inputs = random_inputs(model, 1, 5, seed=1)
    changed = {"keypoints": inputs["keypoints"].clone()}
    changed["keypoints"][:, -1] = random_inputs(model, 1, 5, seed=2)["keypoints"][:, -1]
    with torch.no_grad():
        a, b = model.forward_offline(inputs), model.forward_offline(changed)
    assert not torch.allclose(a["logits"][:, 0], b["logits"][:, 0])
    assert a["features"].shape == (1, 5, 16)  # both directions


def test_two_stage_exposes_both_stages():
    model = _model(STUDENT_CONFIGS["two_stage_m1"])
    with torch.no_grad():
        out = model.forward_offline(random_inputs(model, B, 3))
    assert out["stage1_logits"].shape == (B, 3, 5) and out["stage1_features"].shape == (B, 3, 16)


def test_step_validates_inputs_and_state():
    model = build_model(STUDENT_CONFIGS["pose_lstm"])
    state = model.init_state(2)
    good = torch.zeros(2, 2, 18, 3)
    cases = [
        ({"keypoint": good}, state, InputError,
         "Unknown input 'keypoint'. Did you mean 'keypoints'? This model takes: keypoints."),
        ({}, state, InputError, "Missing input 'keypoints' ([B, 2, 18, 3], float32)."),
        ({"keypoints": torch.zeros(2, 2, 17, 3)}, state, InputError,
         "Input 'keypoints' has shape [2, 2, 17, 3]; expected [B, 2, 18, 3]."),
        ({"keypoints": good.double()}, state, InputTypeError,
         "Input 'keypoints' has dtype float64; expected float32."),
        ({"keypoints": good}, {k: v for k, v in state.items() if k != "head.lstm.c1"}, InputError,
         "Missing state 'head.lstm.c1'; start a stream with model.init_state(batch) and pass back the state "
         "step() returns."),
        ({"keypoints": good}, model.init_state(3), InputError,
         "State 'head.lstm.h0' has shape [3, 16]; expected [2, 16] for a batch of 2."),
        ({"keypoints": good}, {**state, "head.lstm.h2": state["head.lstm.h0"]}, InputError,
         "Unknown state 'head.lstm.h2'. Did you mean 'head.lstm.h1'? This model's states: head.lstm.h0, "
         "head.lstm.c0, head.lstm.h1, head.lstm.c1."),
        ([good], state, InputTypeError,
         "step() takes a dict of tensors keyed by input name (keypoints), got list."),
    ]
    for inputs, st, error, message in cases:
        with pytest.raises(error) as err:
            model.step(inputs, st)
        assert str(err.value) == message
    with pytest.raises(InputError) as err:
        model.init_state(0)
    assert str(err.value) == "init_state() needs a batch size >= 1, got 0."


def test_half_precision_spec_follows_the_weights():
    model = build_model(STUDENT_CONFIGS["pose_gru"])
    assert model.state_spec[0].dtype == "float32"
    model.half()
    assert [s.dtype for s in model.input_spec + model.state_spec + model.features_spec] == ["float16"] * 5
    assert model.init_state(2)["head.gru.h0"].dtype == torch.float16


def test_offline_inputs_must_agree_on_batch_and_steps():
    model = build_model(STUDENT_CONFIGS["two_stage_m1"])
    with pytest.raises(InputError) as err:
        model.forward_offline({"frames": torch.zeros(1, 4, 3, 64, 64), "keypoints": torch.zeros(1, 5, 2, 18, 3)})
    assert str(err.value) == ("Inputs disagree on their leading ('B', 'T') sizes: 'frames' has [1, 4], "
                              "'keypoints' has [1, 5].")
    with pytest.raises(InputError) as err:
        model.forward_offline({"frames": torch.zeros(1, 4, 3, 32, 32), "keypoints": torch.zeros(1, 4, 2, 18, 3)})
    assert str(err.value) == "Input 'frames' has shape [1, 4, 3, 32, 32]; expected [B, T, 3, 64, 64]."


def test_describe():
    model = build_model(STUDENT_CONFIGS["two_stage_m1"])
    d = model.describe()
    assert d["architecture"] == "tsm_mobilenet_v2+pose+two_stage"
    assert d["inputs"] == [{"name": "frames", "shape": [3, 64, 64], "dtype": "float32"},
                           {"name": "keypoints", "shape": [2, 18, 3], "dtype": "float32"}]
    assert [s["name"] for s in d["states"]] == [s.name for s in model.state_spec]
    assert d["outputs"] == [{"name": "logits", "shape": [5], "dtype": "float32"}]
    assert d["streamable"] is True and d["num_classes"] == 5 and d["feature_dim"] == 16
    assert d["parameters"] == sum(p.numel() for p in model.parameters())
    # the spec's vocabulary (FrameSpec, KeypointSpec), the one the runtime reads
    assert d["preprocessing"]["frames"] == {"size": (64, 64), "mean": (0.485, 0.456, 0.406),
                                            "std": (0.229, 0.224, 0.225), "color_order": "RGB", "resize": "stretch",
                                            "interpolation": "area_fast", "raw_size": None}
    assert d["preprocessing"]["keypoints"] == {"people": 2, "joints": 18, "dims": 2, "units": "pixel"}
    assert build_model(d["config"]).describe() == d  # the config round-trips
