"""The fused pose step (kernels.PoseStep) against PyTorch's StreamingModel.step, feature by
feature, on every ISA this CPU runs; thread-count stability; refusals that change no state."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from edgeact import kernels
from edgeact.errors import InputError, InputTypeError
from edgeact.parity import ParityCheck, float64_twin

torch = pytest.importorskip("torch")

ISAS = kernels.build_info()["kernel_isas"]
PARENTS = [1, 1, 1, 2, 3, 1, 5, 6, 1, 8, 9, 1, 11, 12, 0, 0, 14, 15]
SMALL = {"joints": 18, "joint_channels": [16, 8], "relation_channels": [8, 12], "dim": 24}
# Each feature and option of PoseConfig at least once; 3D with align and velocity.
CONFIGS = {
    "one_person": {"pose": {**SMALL}, "head": {"name": "lstm", "hidden": 20}},
    "two_people_bone_velocity": {
        "pose": {**SMALL, "people": 2, "center_joints": [8, 11], "min_confidence": 0.3,
                 "features": ["position", "bone", "velocity"], "parents": PARENTS},
        "head": {"name": "lstm", "hidden": 40, "layers": 2}},
    "group_gru": {"pose": {**SMALL, "people": 3, "features": ["group", "position"]},
                  "head": {"name": "gru", "hidden": 24, "layers": 2}},
    "three_d_align": {"pose": {**SMALL, "coords": 3, "people": 2, "align": [5, 2], "vertical_axis": 1,
                               "features": ["velocity", "position"], "joint_channels": [8, 8, 6]},
                      "head": {"name": "lstm", "hidden": 17}},
}
STEPS, BATCH = 6, 3


def _model(kind: str):
    from edgeact.models import build_model

    torch.manual_seed(sorted(CONFIGS).index(kind))
    model = build_model({"inputs": ["keypoints"], "num_classes": 7, **CONFIGS[kind]}).eval()
    with torch.no_grad():  # spread the logits, as the runtime tests do
        model.head.classifier.weight.mul_(5.0)
    return model


def _ours(model, **options) -> kernels.PoseStep:
    cell = kernels.LSTM if model.config.head.name == "lstm" else kernels.GRU
    head = cell.from_state_dict(model.head.rnn.state_dict(), threads=options.pop("threads", 1),
                                isa=options.get("isa", "auto"))
    pose = dataclasses.asdict(model.pose.cfg)
    return kernels.PoseStep(pose, model.pose.state_dict(), head, model.head.classifier.weight,
                            model.head.classifier.bias, **options)


def _keypoints(kind: str, seed: int = 7) -> np.ndarray:
    """[T, B, P, J, coords+1] in pixels: missing joints (NaN coordinates, visibility 0), low
    confidences, an absent person, people in any left-right order."""
    cfg = CONFIGS[kind]["pose"]
    people, coords = cfg.get("people", 1), cfg.get("coords", 2)
    rng = np.random.default_rng(seed)
    base = rng.uniform(50, 400, (BATCH, people, 18, coords))
    drift = np.cumsum(rng.normal(0, 4, (STEPS, BATCH, people, 18, coords)), axis=0)
    xy = (base + drift).astype(np.float32)
    visibility = rng.uniform(0, 1, (STEPS, BATCH, people, 18, 1)).astype(np.float32)
    visibility[visibility < 0.15] = 0.0
    if people > 1:
        visibility[2:4, 1, -1] = 0.0  # the last person absent for two steps
    visibility[1, 0, 0, :17] = 0.0  # one joint left
    xy = np.where(visibility > 0, xy, np.float32(np.nan))
    return np.concatenate([xy, visibility], axis=-1)


def _torch_steps(model, kp: np.ndarray) -> list[np.ndarray]:
    state, out = model.init_state(BATCH), []
    for t in range(STEPS):
        x = torch.from_numpy(np.where(np.isnan(kp[t]), 0.0, kp[t])).to(next(model.parameters()).dtype)
        with torch.no_grad():
            logits, state = model.step({"keypoints": x}, state)
        out.append(logits.numpy())
    return out


def _our_steps(ours: kernels.PoseStep, kp: np.ndarray) -> list[np.ndarray]:
    state, out = ours.zero_state(BATCH), []
    for t in range(STEPS):
        following = [np.empty_like(s) for s in state]
        out.append(ours.step(np.ascontiguousarray(kp[t]), state, following))
        state = following
    return out


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_matches_torch_step_by_step(kind, isa):
    model = _model(kind)
    kp = _keypoints(kind)
    exact, reference = _torch_steps(float64_twin(model), kp), _torch_steps(model, kp)
    ours = _our_steps(_ours(model, isa=isa), kp)
    check = ParityCheck()
    for t in range(STEPS):
        check.update(t, "logits", exact[t], reference[t], ours[t])
    assert check.ok, check.summary()
    assert check.max_difference <= 1e-5, check.summary()


def test_a_wrong_weight_breaks_parity():
    """The comparison above can fail: the relation convolutions' taps reversed."""
    model = _model("two_people_bone_velocity")
    kp = _keypoints("two_people_bone_velocity")
    exact, reference = _torch_steps(float64_twin(model), kp), _torch_steps(model, kp)
    with torch.no_grad():
        model.pose.relation_convs[0].weight.copy_(model.pose.relation_convs[0].weight.flip(-1))
    ours = _our_steps(_ours(model), kp)
    check = ParityCheck()
    for t in range(STEPS):
        check.update(t, "logits", exact[t], reference[t], ours[t])
    assert not check.ok


def test_threads_change_no_bit():
    model = _model("two_people_bone_velocity")
    kp = _keypoints("two_people_bone_velocity")
    one, three = (np.stack(_our_steps(_ours(model, threads=n), kp)) for n in (1, 3))
    np.testing.assert_array_equal(one, three)


def test_state_names_and_shapes_follow_the_model():
    ours = _ours(_model("two_people_bone_velocity"))
    assert ours.state_names == ["prev", "prev_centre", "seen", "h0", "c0", "h1", "c1"]
    assert ours.state_shapes == [(2, 18, 3), (2, 2), (1, 1), (40,), (40,), (40,), (40,)]
    assert ours.classes == 7
    assert _ours(_model("group_gru")).state_names == ["h0", "h1"]


def test_defaults_are_pose_configs():
    from edgeact.models.pose import PoseConfig

    defaults = {f.name: f.default for f in dataclasses.fields(PoseConfig) if f.name in kernels.POSE_DEFAULTS}
    assert defaults == kernels.POSE_DEFAULTS


def test_bad_input_is_refused_and_changes_no_state():
    ours = _ours(_model("two_people_bone_velocity"))
    kp = np.ascontiguousarray(_keypoints("two_people_bone_velocity")[0])
    state = ours.zero_state(BATCH)
    following = [np.full_like(s, 7.0) for s in state]
    cases = [
        (InputError, "keypoints must have shape (3, 2, 18, 3) (batch, people, joints, coords + 1), got (3, 2, 18, 2).",
         (kp[..., :2].copy(), state, following)),
        (InputTypeError, "keypoints must have dtype float32, got float64.", (kp.astype(np.float64), state, following)),
        (InputError, "state_in must hold 7 arrays (prev, prev_centre, seen, h0, c0, h1, c1), got 6.",
         (kp, state[:-1], following)),
        (InputError, "state_out[6] (c1) must have shape (3, 40) (batch, *state_shapes[i]), got (2, 40).",
         (kp, state, [*following[:-1], following[-1][:2].copy()])),
        (InputError, "state_out[3] (h0) and state_in[3] (h0) must not overlap in memory.",
         (kp, state, [*following[:3], state[3], *following[4:]])),
    ]
    for error, sentence, args in cases:
        with pytest.raises(error, match=re.escape(sentence)):
            ours.step(*args)
        assert all((s == 7.0).all() for s in following)
        assert all(not s.any() for s in state)


def test_a_head_of_the_wrong_width_is_refused():
    model = _model("one_person")
    head = kernels.LSTM([np.zeros((80, 23), np.float32)], [np.zeros((80, 20), np.float32)])
    with pytest.raises(InputError, match=re.escape(
            "head must take people x dim = 24 features per step, got input_size 23.")):
        kernels.PoseStep(dataclasses.asdict(model.pose.cfg), model.pose.state_dict(), head,
                         model.head.classifier.weight, model.head.classifier.bias)
