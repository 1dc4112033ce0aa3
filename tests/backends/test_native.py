"""The native backend: parity with PyTorch over whole clips, the declared kernel plan and
feature boundaries as the only source of what runs, the fused pose step, state handling,
refusals with exact sentences."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeact import BackendError, ModelFormatError, Predictor
from edgeact.backends import load_backend, resolve_backend
from edgeact.data import open_dataset
from edgeact.parity import ParityCheck
from edgeact.spec import stamp_initializers
from tests.streaming import LOOSE, assert_matches_torch, compare_with_torch, exact_logits
from tests.streaming import clips as _clips
from tests.streaming import push_clip as _push_clip
from tests.torchless import run_without_torch

# Pose models beyond conftest's tiny ones: GRU and 3 layers, two people (placement and
# left-to-right order), centre joints, a visibility threshold.
TWO_PEOPLE = {"joints": 18, "people": 2, "joint_channels": [16, 8], "relation_channels": [8, 16], "dim": 32}
EXTRA_MODELS = {
    "pose_gru2": {"inputs": ["keypoints"], "pose": {**TWO_PEOPLE, "center_joints": [8, 11], "min_confidence": 0.3},
                  "head": {"name": "gru", "hidden": 24, "layers": 2}},
    "pose_lstm3": {"inputs": ["keypoints"], "pose": TWO_PEOPLE, "head": {"name": "lstm", "hidden": 20, "layers": 3}},
    # velocity makes the pose encoder stateful: its state runs on ORT's encoder part
    "pose_velocity": {"inputs": ["keypoints"], "pose": {**TWO_PEOPLE, "features": ["position", "bone", "velocity"],
                                                        "parents": [1, 1, 1, 2, 3, 1, 5, 6, 1, 8, 9, 1, 11, 12,
                                                                    0, 0, 14, 15]},
                      "head": {"name": "lstm", "hidden": 16}},
}


@pytest.fixture(scope="module")
def artifacts(tiny_artifacts, synth_dir, tmp_path_factory):
    """kind -> {"pt", "onnx"}: conftest's tiny models plus EXTRA_MODELS."""
    import torch

    from edgeact.checkpoint import save_checkpoint
    from edgeact.export import export_onnx
    from edgeact.models import build_model

    classes = open_dataset(synth_dir).classes
    root = tmp_path_factory.mktemp("native_models")
    out = dict(tiny_artifacts)
    for i, (kind, cfg) in enumerate(EXTRA_MODELS.items()):
        torch.manual_seed(100 + i)
        model = build_model({**cfg, "num_classes": len(classes)}).eval()
        with torch.no_grad():  # confident logits, as conftest does, so decisions happen
            model.head.classifier.weight.mul_(25.0)
        pt = save_checkpoint(root / f"{kind}.pt", model, classes)
        out[kind] = {"pt": pt, "onnx": export_onnx(pt, root / f"{kind}.onnx", verify_steps=2).path}
    return out


def _compare(onnx_path, pt_path, clips):
    return compare_with_torch(Predictor(onnx_path, "native", policy=LOOSE), pt_path, clips).check


def _rewrite(path, tmp_path, *, edit_spec=None, edit_initializer=None):
    """A copy of an exported model with its spec and/or one initializer changed."""
    model = onnx.load(str(path))
    if edit_spec:
        entry = next(e for e in model.metadata_props if e.key == "edgeact")
        spec = json.loads(entry.value)
        edit_spec(spec)
        entry.value = json.dumps(spec)
    if edit_initializer:
        name, change = edit_initializer
        init = next(i for i in model.graph.initializer if i.name == name)
        array = numpy_helper.to_array(init).copy()
        change(array)
        init.CopyFrom(numpy_helper.from_array(array, name))
    out = tmp_path / path.name
    stamp_initializers(model)  # as an exporter that wrote these weights would: the parity check must catch them
    onnx.save(model, str(out))
    return out


# -- parity ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pose", "rgb", "fusion", "pose_gru2", "pose_lstm3", "pose_velocity"])
def test_native_matches_torch_over_whole_clips(kind, artifacts, synth_dir):
    native = Predictor(artifacts[kind]["onnx"], "native", policy=LOOSE)
    assert native.backend == "native"
    assert_matches_torch(native, artifacts[kind]["pt"], _clips(synth_dir))


def test_people_in_any_order_match_torch(artifacts, synth_dir):
    """Two people listed right-to-left: the encoder must sort them left to right as PyTorch does."""
    clip = next(c for c in open_dataset(synth_dir).split("train") if c.noisy_keypoints[:, 1, :, 2].any())
    native, ref = Predictor(artifacts["pose_gru2"]["onnx"], "native"), Predictor(artifacts["pose_gru2"]["pt"])
    swapped_kp = clip.noisy_keypoints[:, ::-1]
    listed = [native.push(keypoints=kp, stream="listed").logits for kp in clip.noisy_keypoints]
    swapped = [(native.push(keypoints=kp, stream="swapped").logits, ref.push(keypoints=kp).logits) for kp in swapped_kp]
    exact = exact_logits(artifacts["pose_gru2"]["pt"], native.spec, [None] * len(swapped_kp), swapped_kp)
    check = ParityCheck()
    for t, ((ours, theirs), truth) in enumerate(zip(swapped, exact)):
        check.update(t, "logits", truth, theirs, ours, listed[t])  # the order changes nothing but rounding
    assert check.ok, check.summary()


@pytest.mark.parametrize("kind", ["pose_gru2", "fusion"])
def test_push_many_batch_matches_torch_single_pushes(kind, artifacts, synth_dir):
    clips = _clips(synth_dir, 3)
    ref = Predictor(artifacts[kind]["pt"])
    expected = {i: _push_clip(ref, c, stream=i) for i, c in enumerate(clips)}
    batched = Predictor(artifacts[kind]["onnx"], "native")
    frames = [c.frames() for c in clips]
    exact = [exact_logits(artifacts[kind]["pt"], batched.spec, f, c.noisy_keypoints) for f, c in zip(frames, clips)]
    check = ParityCheck()
    for t in range(min(c.num_frames for c in clips)):
        out = batched.push_many({i: {"frame": frames[i][t], "keypoints": c.noisy_keypoints[t]}
                                 for i, c in enumerate(clips)})
        for i, pred in out.items():
            if exact[i][t] is not None:
                check.update(t, "logits", exact[i][t], expected[i][t].logits, pred.logits)
        if t == 5:  # one stream alone in between: its state comes back from a batch split
            alone = batched.push(frames[0][t], keypoints=clips[0].noisy_keypoints[t], stream="extra")
            assert alone.frames_seen == 1
    assert check.ok, check.summary()


# -- the weights come from the artifact, by the names its kernel plan declares -------------------
@pytest.mark.parametrize("kind,where", [
    ("pose", ("stacks", 0, "layers", 0, "weight_hh")),
    ("pose", ("classifier", "bias")),
    ("pose", ("classifier", "weight")),  # stored transposed in the graph
    ("pose_gru2", ("stacks", 0, "layers", 1, "bias_hh")),
    ("pose_lstm3", ("stacks", 0, "layers", 2, "weight_ih")),
    ("fusion", ("stacks", 1, "layers", 0, "weight_ih")),
])
def test_a_corrupted_weight_in_the_artifact_breaks_parity(kind, where, artifacts, synth_dir, tmp_path):
    clips = _clips(synth_dir, 1)
    assert _compare(artifacts[kind]["onnx"], artifacts[kind]["pt"], clips).ok
    entry = json.loads(onnx.load(str(artifacts[kind]["onnx"])).metadata_props[0].value)["arch"]["kernel_plan"]
    for key in where:
        entry = entry[key]

    def change(array):
        array *= 1.1  # every element: one element alone may feed a unit that ReLU keeps at 0

    corrupted = _rewrite(artifacts[kind]["onnx"], tmp_path, edit_initializer=(entry["initializer"], change))
    check = _compare(corrupted, artifacts[kind]["pt"], clips)
    assert not check.ok and check.max_difference > 1e-3


# -- pose-only models: one compiled call per step --------------------------------------------------
@pytest.mark.parametrize("kind", ["pose", "pose_gru2", "pose_lstm3", "pose_velocity"])
def test_pose_only_models_run_as_one_fused_step(kind, artifacts):
    runner = load_backend(artifacts[kind]["onnx"], "native")
    assert runner.describe()["encoders"] == "native"
    loaded = runner.runtime
    assert loaded.encoder is None and loaded.stacks == ()
    assert sorted(loaded.pose.state) == list(range(len(runner.spec.state)))


@pytest.mark.parametrize("initializer", ["model.pose.relation_convs.0.weight", "model.pose.joint_convs.0.bias",
                                         "projection"])
def test_a_corrupted_pose_weight_breaks_parity(initializer, artifacts, synth_dir, tmp_path):
    clips = _clips(synth_dir, 1)
    model = onnx.load(str(artifacts["pose_velocity"]["onnx"]))
    if initializer == "projection":  # renamed and transposed by the exporter: the MatMul before the bias
        (add,) = [n for n in model.graph.node if "model.pose.project.0.bias" in n.input]
        (matmul,) = [n for n in model.graph.node if n.output[0] in add.input]
        initializer = matmul.input[1]

    def change(array):
        array *= 1.1

    corrupted = _rewrite(artifacts["pose_velocity"]["onnx"], tmp_path, edit_initializer=(initializer, change))
    assert Predictor(corrupted, "native").describe()["encoders"] == "native"
    check = _compare(corrupted, artifacts["pose_velocity"]["pt"], clips)
    assert not check.ok and check.max_difference > 1e-3


def test_a_pose_model_whose_projection_is_hidden_runs_its_encoder_on_onnxruntime(artifacts, synth_dir, tmp_path):
    """Without the node that adds the projection's bias to a MatMul, the weight cannot be
    located: the encoder runs on ONNX Runtime as for RGB models, and still matches PyTorch."""
    model = onnx.load(str(artifacts["pose_gru2"]["onnx"]))
    for init in model.graph.initializer:
        if init.name == "model.pose.project.0.bias":
            init.name = "project_bias_renamed"
    for node in model.graph.node:
        node.input[:] = ["project_bias_renamed" if i == "model.pose.project.0.bias" else i for i in node.input]
    path = tmp_path / "hidden.onnx"
    stamp_initializers(model)
    onnx.save(model, str(path))
    native = Predictor(path, "native", policy=LOOSE)
    assert native.describe()["encoders"] == "onnxruntime"
    assert_matches_torch(native, artifacts["pose_gru2"]["pt"], _clips(synth_dir, 2))


def test_a_rejected_push_changes_no_stream_state(artifacts, synth_dir):
    clip = _clips(synth_dir, 1)[0]
    native = Predictor(artifacts["pose_velocity"]["onnx"], "native")
    kp = clip.noisy_keypoints
    clean = [native.push(keypoints=k, stream="clean").logits for k in kp[:6]]
    bad = kp[0].copy()
    bad[0, 3, 0] = np.nan  # a visible joint at NaN
    with_errors = []
    for t, k in enumerate(kp[:6]):
        for wrong in (bad, kp[0][:, :5], kp[0].astype(np.float64)[None]):
            with pytest.raises((ValueError, TypeError)):
                native.push(keypoints=wrong, stream="errors")
        with_errors.append(native.push(keypoints=k, stream="errors").logits)
    np.testing.assert_array_equal(np.stack(clean), np.stack(with_errors))


# -- the encoders on ONNX Runtime, cut at the declared feature boundaries ------------------------
@pytest.mark.parametrize("kind", ["rgb", "fusion"])
def test_the_encoders_run_up_to_the_declared_features(kind, artifacts):
    runner = load_backend(artifacts[kind]["onnx"], "native")
    spec = runner.spec
    graph = onnx.load(str(artifacts[kind]["onnx"])).graph
    declared = ["features." + s.name for s in spec.data_inputs]
    assert [f.name for f in spec.features] == declared == runner.describe()["features"]
    assert declared == [o.name for o in graph.output][2:2 + len(declared)]  # after logits, probs
    if spec.frames:  # the TSM encoder's global average pool is the frame boundary
        (producer,) = [n for n in graph.node if "features.frames" in n.output]
        assert producer.op_type == "ReduceMean"
    session = runner.runtime.encoder
    encoder_states = [s.name for s in spec.state if not s.name.startswith("head.")]
    assert [i.name for i in session.get_inputs()] == [s.name for s in spec.data_inputs] + [
        "state_in." + name for name in encoder_states]
    assert [o.name for o in session.get_outputs()] == declared + ["state_out." + name for name in encoder_states]


# -- state -------------------------------------------------------------------------------------
def test_step_never_writes_its_input_state(artifacts, synth_dir):
    from edgeact.preprocess import preprocess_keypoints

    runner = load_backend(artifacts["pose_lstm3"]["onnx"], "native")
    kp = preprocess_keypoints(_clips(synth_dir, 1)[0].noisy_keypoints[3], runner.spec.keypoints)[None]
    _, state = runner.step({"keypoints": kp}, runner.init_state(1))
    before = [s.copy() for s in state]
    logits_a, next_a = runner.step({"keypoints": kp}, state)
    logits_b, next_b = runner.step({"keypoints": kp}, state)
    for s, b in zip(state, before):
        np.testing.assert_array_equal(s, b)
    np.testing.assert_array_equal(logits_a, logits_b)
    assert not any(np.shares_memory(n, s) for n in next_a for s in state)
    names = [s.name for s in runner.spec.state]
    assert names == ["head.lstm.h0", "head.lstm.c0", "head.lstm.h1", "head.lstm.c1", "head.lstm.h2", "head.lstm.c2"]


def test_threads_reach_the_kernels_and_change_no_result(artifacts, synth_dir):
    clip = _clips(synth_dir, 1)[0]
    one = Predictor(artifacts["pose_gru2"]["onnx"], "native", threads=1)
    two = Predictor(artifacts["pose_gru2"]["onnx"], "native", threads=2)
    assert (one.describe()["threads"], two.describe()["threads"]) == (1, 2)
    np.testing.assert_array_equal(np.stack([p.logits for p in _push_clip(one, clip)]),
                                  np.stack([p.logits for p in _push_clip(two, clip)]))


@pytest.mark.parametrize("kind", ["pose_gru2", "fusion"])  # the fused pose step; encoders on ORT + kernels
def test_reduced_precision_weights_reach_every_recurrent_kernel(kind, artifacts, synth_dir):
    clip = _clips(synth_dir, 1)[0]
    model = artifacts[kind]["onnx"]
    full = np.stack([p.logits for p in _push_clip(Predictor(model, "native", policy=LOOSE), clip)])
    for dtype in ("bfloat16", "int8"):
        predictor = Predictor(model, "native", policy=LOOSE, weights_dtype=dtype)
        assert predictor.describe()["weights_dtype"] == dtype
        reduced = np.stack([p.logits for p in _push_clip(predictor, clip)])
        difference = np.abs(reduced - full).max()
        # the weights changed (so the dtype was used), and by a rounding, not a different model
        assert 0 < difference < 0.02 * np.abs(full).max(), (dtype, difference, np.abs(full).max())
    with pytest.raises(BackendError, match=re.escape(
            "weights_dtype must be one of 'float32', 'bfloat16', 'int8' (backend 'native'), got 'fp16'.")):
        Predictor(model, "native", weights_dtype="fp16")
    with pytest.raises(BackendError, match=re.escape("backend 'onnxruntime' does not take option(s) ['weights_dtype']")):
        Predictor(model, "onnxruntime", weights_dtype="int8")


# -- choosing and refusing -----------------------------------------------------------------------
def test_auto_keeps_onnxruntime_and_native_is_opt_in():
    assert resolve_backend("m.onnx").name == "onnxruntime"
    assert resolve_backend("m.onnx", "native").name == "native"
    with pytest.raises(BackendError, match=re.escape("backend 'native' runs .onnx files, got 'm.pt'.")):
        resolve_backend("m.pt", "native")


def test_a_head_without_kernel_plan_is_refused_naming_architecture_and_backends(artifacts, tmp_path):
    def to_attention(spec):  # what an attention head (or an artifact exported before plans) declares
        spec["arch"]["architecture"] = "pose+attention"
        spec["arch"]["config"]["head"] = {"name": "attention", "hidden": 32}
        spec["arch"]["kernel_plan"] = None

    path = _rewrite(artifacts["pose"]["onnx"], tmp_path, edit_spec=to_attention)
    with pytest.raises(BackendError, match=re.escape(
            "backend 'native' cannot run pose.onnx: it declares no kernel plan for its head (architecture "
            "'pose+attention', head 'attention'). Native runs the lstm, gru and two_stage heads of models exported "
            "by edgeact >= 0.1 with `edgeact export`; run this one with backend 'onnxruntime' (or its checkpoint "
            "with 'torch').")):
        Predictor(path, "native")


def test_a_missing_weight_is_named(artifacts, tmp_path):
    def rename(spec):
        spec["arch"]["kernel_plan"]["stacks"][0]["layers"][0]["bias_hh"]["initializer"] = "nope"

    path = _rewrite(artifacts["pose"]["onnx"], tmp_path, edit_spec=rename)
    with pytest.raises(ModelFormatError, match=re.escape(
            f"{path}: its kernel plan names the weight 'nope', which is not among the graph's initializers; "
            "re-export the model.")):
        Predictor(path, "native")


def test_a_plan_reading_an_undeclared_boundary_is_refused(artifacts, tmp_path):
    def misread(spec):
        spec["arch"]["kernel_plan"]["stacks"][0]["inputs"] = ["features.frames"]

    path = _rewrite(artifacts["pose"]["onnx"], tmp_path, edit_spec=misread)
    with pytest.raises(ModelFormatError, match=re.escape(
            f"{path}: its kernel plan's stack 0 reads 'features.frames', which the graph does not declare (it "
            "declares ['features.keypoints']).")):
        Predictor(path, "native")


def test_device_options_and_files_are_checked(artifacts, tmp_path):
    model = artifacts["pose"]["onnx"]
    with pytest.raises(BackendError, match=re.escape(
            "backend 'native' runs on the CPU: device must be 'auto' or 'cpu', got 'cuda'.")):
        Predictor(model, "native", device="cuda")
    with pytest.raises(BackendError, match=re.escape(
            "backend 'native' does not take option(s) ['providers']; it takes device, threads, weights_dtype.")):
        Predictor(model, "native", providers=["CPUExecutionProvider"])
    junk = tmp_path / "m.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelFormatError, match=re.escape(f"{junk} is not a loadable ONNX model (")):
        Predictor(junk, "native")


def test_native_runs_without_torch(artifacts):
    paths = {kind: str(artifacts[kind]["onnx"]) for kind in ("pose", "fusion")}
    result = run_without_torch(
        f"""
        import numpy as np
        from edgeact import Predictor
        kp = np.full((1, 18, 3), 20.0, np.float32)
        kp[..., 2] = 1.0
        kp[0, :, 0] += np.arange(18)
        pose = Predictor({paths["pose"]!r}, "native")
        fusion = Predictor({paths["fusion"]!r}, "native")
        for t in range(3):
            a = pose.push(keypoints=kp)
            b = fusion.push(np.full((64, 64, 3), 40 * t, np.uint8), keypoints=kp)
        assert np.isfinite(a.logits).all() and np.isfinite(b.logits).all() and b.steps == 3
        assert "onnxruntime" in sys.modules and "edgeact._C" in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
