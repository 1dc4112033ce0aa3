"""In-graph frame preprocessing (edgeact.preprocess_graph, `edgeact export --frame-input`) against
the CPU path, edgeact.preprocess.preprocess_frame, on ONNX Runtime's CPU provider.

Bounds come from measurements (docs/preprocess.md, "On the device"): the graph rounds to uint8
where OpenCV does, so it differs from the CPU path by at most one uint8 unit, only where OpenCV's
float area average sits on a .5 tie (0 to 9.6 % of the values across camera sizes 340x256 to
1920x1080 and models of 64 to 224 px; 0 % for 1080p to 64 px with area_fast).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeact import InputError, Predictor
from edgeact.cli import main
from edgeact.export import export_onnx
from edgeact.preprocess import preprocess_frame
from edgeact.preprocess_graph import (
    MAX_UINT8_DIFFERENCE,
    frame_plan,
    preprocessing_error,
    preprocessing_model,
    sample_frames,
)
from edgeact.spec import METADATA_KEY, FrameSpec, ModelSpec

RAW = (480, 640)  # (height, width): the camera of the model tests; one halving, then INTER_AREA to 96 px


@pytest.mark.parametrize(("raw_size", "spec", "max_differing"), [
    # max_differing: the share of values one uint8 unit apart, measured on these frames (x ~2 margin)
    ((1080, 1920), FrameSpec(size=(64, 64)), 0.0),  # measured 0: three exact halvings, then 135x240 -> 64
    ((1080, 1920), FrameSpec(size=(112, 112), resize="crop"), 0.0),  # measured 0
    ((480, 640), FrameSpec(size=(96, 96)), 0.01),  # measured 0.0046
    ((720, 1280), FrameSpec(size=(112, 112), interpolation="area"), 0.001),  # measured 0.00009
    ((256, 340), FrameSpec(size=(64, 96), color_order="BGR", mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25)), 0.005),
    # measured 0.0016
])
def test_in_graph_preprocessing_matches_the_cpu_path(raw_size, spec, max_differing):
    error = preprocessing_error(spec, raw_size, sample_frames(raw_size, seed=7))
    print(raw_size, spec.size, spec.resize, spec.interpolation, error)
    assert error["max_uint8"] <= MAX_UINT8_DIFFERENCE
    assert error["differing"] <= max_differing
    assert error["max"] <= MAX_UINT8_DIFFERENCE / (255 * min(spec.std))


def test_the_comparison_can_fail():
    """The same measure sees the difference between area and area_fast (up to 22 uint8 units on
    natural frames at 1080p, docs/preprocess.md), and a wrong mean."""
    raw_size, frames = (1080, 1920), sample_frames((1080, 1920), seed=8)
    graph = FrameSpec(size=(64, 64), interpolation="area")
    session = ort.InferenceSession(preprocessing_model(graph, raw_size).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    ours = session.run(None, {"frames": np.stack(frames)})[0]
    cpu = np.stack([preprocess_frame(f, dataclasses.replace(graph, interpolation="area_fast")) for f in frames])
    assert np.abs(ours - cpu).max() * 255 * 0.225 > 3 * MAX_UINT8_DIFFERENCE
    shifted = dataclasses.replace(graph, mean=(0.4, 0.456, 0.406))
    assert np.abs(ours - np.stack([preprocess_frame(f, shifted) for f in frames])).max() > 0.3


def test_plan_follows_the_cpu_rule():
    assert frame_plan((1080, 1920), FrameSpec(size=(64, 64))) == [("halve",)] * 3 + [("area", 64, 64)]
    assert frame_plan((1080, 1920), FrameSpec(size=(112, 112), resize="crop")) == [
        ("crop", 0, 420, 1080, 1080), ("halve",), ("halve",), ("area", 112, 112)]
    assert frame_plan((256, 340), FrameSpec(size=(64, 64), resize="crop")) == [
        ("crop", 0, 42, 256, 256), ("halve",), ("halve",)]  # 128 -> 64: OpenCV's exact-half path
    assert frame_plan((720, 1280), FrameSpec(size=(112, 112), interpolation="area")) == [("area", 112, 112)]
    assert frame_plan((96, 96), FrameSpec(size=(96, 96))) == []
    with pytest.raises(InputError, match=r"^frame_input 120x90 is smaller than the model's 96x96 input after "
                                         r"its 'stretch' geometry \(120x90\); in-graph preprocessing only "
                                         r"shrinks frames\.$"):
        frame_plan((90, 120), FrameSpec(size=(96, 96)))


@pytest.fixture(scope="module")
def raw_rgb(tiny_artifacts, tmp_path_factory):
    """The tiny RGB student exported twice: as usual, and taking raw 640x480 frames."""
    artifact = tiny_artifacts["rgb"]
    path = tmp_path_factory.mktemp("raw") / "rgb_raw.onnx"
    report = export_onnx(artifact["pt"], path, verify_steps=4, frame_input=RAW)
    return {"pt": artifact["pt"], "onnx": artifact["onnx"], "raw": report.path, "report": report}


def test_raw_artifact_declares_its_frame_input(raw_rgb):
    proto = onnx.load(str(raw_rgb["raw"]), load_external_data=False)
    frames = next(i for i in proto.graph.input if i.name == "frames")
    assert frames.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in frames.type.tensor_type.shape.dim]
    assert dims == ["batch", 480, 640, 3]
    spec = ModelSpec.from_json({e.key: e.value for e in proto.metadata_props}[METADATA_KEY])
    assert spec.frames.raw_size == RAW
    assert [(s.name, s.shape, s.dtype) for s in spec.data_inputs] == [("frames", (480, 640, 3), "uint8")]
    assert "frame_input" in raw_rgb["report"].timings_s
    # the default export is unchanged: no raw_size in its metadata, float frames
    plain = onnx.load(str(raw_rgb["onnx"]), load_external_data=False)
    plain_json = json.loads({e.key: e.value for e in plain.metadata_props}[METADATA_KEY])
    assert "raw_size" not in plain_json["frames"]
    assert ModelSpec.from_dict(plain_json).frames.raw_size is None
    assert plain.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def _stream_frames(steps: int, seed: int) -> list[np.ndarray]:
    """Fresh frames at RAW, natural-like and noise alternately (not the export's verification frames)."""
    return [sample_frames(RAW, seed + t)[t % 2] for t in range(steps)]


def _stream_both(raw_rgb, frames_of_step, steps: int = 12, raw_only=lambda frame: frame):
    """Run the raw graph on uint8 frames and the usual graph on preprocess_frame's output, each
    carrying its own state; returns (top-1 agreement, max |logit difference|, max |difference| of
    the first temporal-shift cache, the earliest encoder activation that is a graph output).
    ``raw_only`` changes the raw graph's frames only (to show the comparison can fail)."""
    raw = ort.InferenceSession(str(raw_rgb["raw"]), providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(str(raw_rgb["onnx"]), providers=["CPUExecutionProvider"])
    spec = ModelSpec.from_json(raw.get_modelmeta().custom_metadata_map[METADATA_KEY])
    state_names = [i.name for i in raw.get_inputs()][1:]
    outputs = [o.name for o in raw.get_outputs()]
    first_state = outputs.index("state_out." + spec.state[0].name)
    n = len(state_names)
    raw_state = plain_state = spec.zero_state(2)
    agree, logits, early = [], 0.0, 0.0
    for t in range(steps):
        frames = np.stack(frames_of_step(t))
        out_raw = raw.run(None, {"frames": np.stack([raw_only(f) for f in frames]),
                                 **dict(zip(state_names, raw_state))})
        pre = np.stack([preprocess_frame(f, spec.frames) for f in frames])
        out_plain = plain.run(None, {"frames": pre, **dict(zip(state_names, plain_state))})
        raw_state, plain_state = out_raw[-n:], out_plain[-n:]
        agree.extend(out_raw[0].argmax(1) == out_plain[0].argmax(1))
        logits = max(logits, float(np.abs(out_raw[0] - out_plain[0]).max()))
        early = max(early, float(np.abs(out_raw[first_state] - out_plain[first_state]).max()))
    return float(np.mean(agree)), logits, early


def test_step_through_both_paths_agrees(raw_rgb):
    """The untrained tiny model's deep activations barely depend on its input (its logits move by
    6e-8 when the channels are swapped), so the witness that the preprocessing is wired right is
    the first temporal-shift cache, an early-layer activation: measured 1.4e-4 apart over 12 steps x
    2 streams (inputs one uint8 unit apart on ~0.5 % of the values); swapped channels move it by
    0.067 (below). Top-1 agreement 1.0 and logits within 1e-6 (measured 6e-8). Trained students:
    docs/preprocess.md, "On the device"."""
    streams = [_stream_frames(12, seed=100), _stream_frames(12, seed=200)]
    agreement, logits, early = _stream_both(raw_rgb, lambda t: [streams[0][t], streams[1][t]])
    print(f"top-1 agreement {agreement:.3f}, max |logit difference| {logits:.2g}, first shift cache {early:.2g}")
    assert agreement == 1.0
    assert logits < 1e-6
    assert early < 1e-3
    swapped = _stream_both(raw_rgb, lambda t: [streams[0][t], streams[1][t]], steps=2,
                           raw_only=lambda frame: np.ascontiguousarray(frame[:, :, ::-1]))
    print(f"channels swapped in the raw graph's input only: first shift cache {swapped[2]:.2g} apart")
    assert swapped[2] > 10 * 1e-3


def test_predictor_runs_the_raw_artifact(raw_rgb):
    """End to end: the Predictor feeds raw frames to the raw artifact (no CPU preprocessing) and
    predicts what it predicts with the usual artifact."""
    with Predictor(raw_rgb["raw"], "onnxruntime") as raw, Predictor(raw_rgb["onnx"], "onnxruntime") as plain:
        assert raw.runner.spec.frames.raw_size == RAW
        for frame in _stream_frames(8, seed=300):
            a, b = raw.push(frame), plain.push(frame)
            assert a.index == b.index
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-3)
        assert a.frames_seen == 8


def test_wrong_frame_size_is_refused_and_the_stream_untouched(raw_rgb):
    frames = _stream_frames(3, seed=400)
    with Predictor(raw_rgb["raw"], "onnxruntime") as p, Predictor(raw_rgb["raw"], "onnxruntime") as clean:
        p.push(frames[0])
        clean.push(frames[0])
        wrong = np.zeros((1080, 1920, 3), np.uint8)
        with pytest.raises(InputError, match=(
                r"^this model preprocesses frames inside its graph and takes BGR uint8 frames of shape \(480, 640, 3\) "
                r"\(640x480, fixed at export\), got shape \(1080, 1920, 3\); resize on the camera side or export the "
                r"model again with --frame-input 1920x1080\.$")):
            p.push(wrong)
        with pytest.raises(InputError, match=r"fixed at export\), got shape \(480, 641, 3\)"):
            p.push_many({"default": frames[1], "other": np.zeros((480, 641, 3), np.uint8)})
        assert p.streams == ("default",)
        a, b = p.push(frames[1]), clean.push(frames[1])
        assert a.frames_seen == 2
        np.testing.assert_array_equal(a.probs, b.probs)


def test_export_refuses_what_it_cannot_preprocess(tiny_artifacts, tmp_path):
    with pytest.raises(InputError, match=r"^frame_input needs a model with a frames input; .*pose\.pt takes "
                                         r"keypoints only\.$"):
        export_onnx(tiny_artifacts["pose"]["pt"], tmp_path / "pose.onnx", frame_input=RAW)
    with pytest.raises(InputError, match=r"^frame_input 64x48 is smaller than the model's 96x96 input"):
        export_onnx(tiny_artifacts["rgb"]["pt"], tmp_path / "small.onnx", frame_input=(48, 64))
    with pytest.raises(InputError, match=r"^frame_input must be None or \(height, width\) of positive ints, "
                                         r"got '1920x1080'\.$"):
        export_onnx(tiny_artifacts["rgb"]["pt"], tmp_path / "str.onnx", frame_input="1920x1080")
    assert not list(tmp_path.iterdir())


def test_frame_spec_raw_size():
    assert FrameSpec(size=(96, 96), raw_size=(1080, 1920)).raw_size == (1080, 1920)
    with pytest.raises(InputError, match=r"^frames raw_size must be None or \(height, width\) of positive ints, "
                                         r"got \(0, 1920\)\.$"):
        FrameSpec(size=(96, 96), raw_size=(0, 1920))
    spec = ModelSpec(classes=("a",), state=(), frames=FrameSpec(size=(96, 96), raw_size=(1080, 1920)))
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_cli_frame_input(tiny_artifacts, tmp_path, capsys):
    out = tmp_path / "cli_raw.onnx"
    assert main(["export", "--model", str(tiny_artifacts["rgb"]["pt"]), "--out", str(out), "--verify-steps", "2",
                 "--frame-input", "640x480"]) == 0
    assert ModelSpec.from_json(
        {e.key: e.value for e in onnx.load(str(out)).metadata_props}[METADATA_KEY]).frames.raw_size == RAW
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(tiny_artifacts["rgb"]["pt"]), "--out", str(tmp_path / "x.onnx"),
              "--frame-input", "1080p"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("edgeact: error: --frame-input must be WIDTHxHEIGHT in pixels, e.g. 1920x1080, "
                                       "got '1080p'.\n")
    assert not (tmp_path / "x.onnx").exists()


def test_a_raw_graph_is_not_rewritten_twice(raw_rgb):
    from edgeact.preprocess_graph import prepend_frame_preprocessing

    proto = onnx.load(str(raw_rgb["raw"]))
    with pytest.raises(InputError, match=r"^the step graph's 'frames' input must be float32 \(preprocessed frames\), "
                                         r"got UINT8: it already takes raw frames\?$"):
        prepend_frame_preprocessing(proto, FrameSpec(size=(96, 96)), RAW)
