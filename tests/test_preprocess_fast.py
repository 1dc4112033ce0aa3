"""FrameSpec.interpolation: "area_fast" (2x2 box halvings, then INTER_AREA) stays close to exact
INTER_AREA and anti-aliases at least as strongly; artifacts saved before the field existed keep
the old path bit for bit; the field round-trips and bad values are refused; a stream may change
frame size (and layout) from one frame to the next."""

from __future__ import annotations

import functools
import json

import cv2
import numpy as np
import pytest

from benchmarks.preprocess import natural_frame
from edgeact import InputError, ModelFormatError, Predictor
from edgeact.parity import ParityCheck
from edgeact.preprocess import preprocess_frame, resize_frame
from edgeact.spec import FrameSpec, ModelSpec, TensorSpec

from tests.streaming import exact_logits


@functools.lru_cache(maxsize=None)
def _frames(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(natural-like frame, uniform noise frame), both BGR uint8, fixed per size."""
    rng = np.random.default_rng(width * 7 + height)
    return natural_frame(rng, height, width), rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _old_preprocess(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """preprocess_frame as it was before FrameSpec.interpolation, written out again."""
    height, width = spec.size
    if spec.resize == "crop":
        h, w = frame.shape[:2]
        aspect = width / height
        if w / h > aspect:
            new_w = max(1, round(h * aspect))
            frame = frame[:, (w - new_w) // 2:(w - new_w) // 2 + new_w]
        else:
            new_h = max(1, round(w / aspect))
            frame = frame[(h - new_h) // 2:(h - new_h) // 2 + new_h]
    if frame.shape[:2] != (height, width):
        shrinking = frame.shape[0] > height or frame.shape[1] > width
        frame = cv2.resize(np.ascontiguousarray(frame), (width, height),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    frame = frame[:, :, ::-1]
    scale = np.float32(1.0 / 255.0) / np.asarray(spec.std, np.float32)
    offset = np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)
    chw = np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32)
    chw *= scale[:, None, None]
    chw -= offset[:, None, None]
    return chw


CAMERA = [(640, 480), (1280, 720), (1920, 1080)]


# ---------------------------------------------------------------------------------- closeness
@pytest.mark.parametrize("mode", ["stretch", "crop"])
@pytest.mark.parametrize("model", [64, 112, 224])
@pytest.mark.parametrize("width,height", CAMERA)
def test_area_fast_is_close_to_area_on_natural_frames(width, height, model, mode):
    """Measured on these 18 cases (natural_frame, benchmarks/preprocess.py's natural-like frame):
    mean |diff| <= 1.52 and 99th percentile <= 10 uint8 units. The bounds 2 and 12 reject a resize
    without area averaging: INTER_LINEAR straight to size is 3.7..10.9 / 24..61 here."""
    natural, _ = _frames(width, height)
    area = resize_frame(natural, FrameSpec(size=(model, model), resize=mode, interpolation="area"))
    fast = resize_frame(natural, FrameSpec(size=(model, model), resize=mode, interpolation="area_fast"))
    diff = np.abs(area.astype(np.float64) - fast)
    assert diff.mean() <= 2.0, f"mean |area_fast - area| = {diff.mean():.2f} uint8 units"
    assert np.percentile(diff, 99) <= 12.0, f"99th percentile |area_fast - area| = {np.percentile(diff, 99):.1f}"


@pytest.mark.parametrize("mode", ["stretch", "crop"])
@pytest.mark.parametrize("model", [64, 112, 224])
@pytest.mark.parametrize("width,height", CAMERA)
def test_area_fast_anti_aliases_white_noise_like_area(width, height, model, mode):
    """Uniform noise carries every frequency: what survives the resize is aliasing. area_fast's
    output varies no more than exact INTER_AREA's (its filter is at least as wide) and at least
    0.8 of it (not much blurrier; measured 0.83..1.0). INTER_LINEAR straight to size keeps 42..50
    (aliasing); INTER_AREA here keeps 3.3..29."""
    _, noise = _frames(width, height)
    area = resize_frame(noise, FrameSpec(size=(model, model), resize=mode, interpolation="area")).std()
    fast = resize_frame(noise, FrameSpec(size=(model, model), resize=mode, interpolation="area_fast")).std()
    assert 0.8 * area <= fast <= 1.01 * area, f"std of the resized noise: area_fast {fast:.2f}, area {area:.2f}"


def test_exact_factor_two_and_odd_sides_match_area():
    """A frame exactly twice the model's size is one 2x2 box mean either way; a frame with odd
    sides is never halved (the geometry stays exact), so it is INTER_AREA itself."""
    natural, _ = _frames(640, 480)
    cases = ((natural[:128, :128], (64, 64)), (natural[:479, :639], (64, 64)), (natural[:477, :], (112, 112)))
    for frame, size in cases:
        area = preprocess_frame(frame, FrameSpec(size=size, interpolation="area"))
        fast = preprocess_frame(frame, FrameSpec(size=size, interpolation="area_fast"))
        np.testing.assert_array_equal(fast, area)


def test_enlarging_is_unchanged():
    tiny = _frames(640, 480)[0][:24, :40]
    for interpolation in ("area", "area_fast"):
        spec = FrameSpec(size=(96, 96), interpolation=interpolation)
        np.testing.assert_array_equal(preprocess_frame(tiny, spec), _old_preprocess(tiny, spec))


@pytest.mark.parametrize("interpolation", ["area", "area_fast"])
def test_views_give_the_same_result_as_contiguous_copies(interpolation):
    natural, _ = _frames(1920, 1080)
    spec = FrameSpec(size=(112, 112), interpolation=interpolation)
    for view in (natural[100:900, 200:1800], natural[:, ::-1], natural[::2, ::2], natural[:, :, ::-1][:, :, ::-1],
                 np.asfortranarray(natural)):
        np.testing.assert_array_equal(preprocess_frame(view, spec), preprocess_frame(np.ascontiguousarray(view), spec))


# ------------------------------------------------------------------------ spec compatibility
def _model_spec(frames: FrameSpec) -> ModelSpec:
    return ModelSpec(classes=("a", "b"), state=(TensorSpec("state_in.h", (4,)),), frames=frames)


def test_a_spec_without_interpolation_is_an_old_artifact_and_runs_the_old_path_bit_for_bit():
    data = json.loads(_model_spec(FrameSpec(size=(112, 112))).to_json())
    del data["frames"]["interpolation"]  # as edgeact wrote it before the field existed
    old = ModelSpec.from_dict(data).frames
    assert old.interpolation == "area"
    natural, noise = _frames(1920, 1080)
    for frame in (natural, noise, natural[:, 300:1500], natural[:700, :1000]):
        for spec in (old, FrameSpec(**{**vars(old), "resize": "crop"})):
            np.testing.assert_array_equal(preprocess_frame(frame, spec), _old_preprocess(frame, spec))


def test_new_specs_use_area_fast_and_round_trip():
    assert FrameSpec(size=(64, 64)).interpolation == "area_fast"
    for interpolation in ("area", "area_fast"):
        spec = _model_spec(FrameSpec(size=(96, 128), resize="crop", interpolation=interpolation))
        assert ModelSpec.from_json(spec.to_json()) == spec
        assert json.loads(spec.to_json())["frames"]["interpolation"] == interpolation


def test_models_built_now_declare_area_fast():
    pytest.importorskip("torch")
    from edgeact.models import build_model
    from tests.conftest import TINY_MODELS

    assert build_model(TINY_MODELS["rgb"]).frame_spec.interpolation == "area_fast"


def test_unknown_interpolation_is_refused_with_the_allowed_values():
    message = "frames interpolation must be one of 'area', 'area_fast', got 'cubic'."
    with pytest.raises(InputError) as err:
        FrameSpec(size=(64, 64), interpolation="cubic")
    assert str(err.value) == message
    data = json.loads(_model_spec(FrameSpec(size=(64, 64))).to_json())
    data["frames"]["interpolation"] = "cubic"
    with pytest.raises(ModelFormatError) as err:
        ModelSpec.from_dict(data, source="m.onnx")
    assert str(err.value) == f"m.onnx: malformed edgeact spec (InputError: {message})."


def test_an_onnx_exported_before_the_field_runs_exact_area(tiny_artifacts, tmp_path):
    import onnx

    from edgeact.spec import METADATA_KEY

    model = onnx.load(str(tiny_artifacts["rgb"]["onnx"]))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            data = json.loads(prop.value)
            assert data["frames"]["interpolation"] == "area_fast"  # exported now
            del data["frames"]["interpolation"]
            prop.value = json.dumps(data)
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    assert Predictor(old).spec.frames.interpolation == "area"


# -------------------------------------------------------------------- size changes mid-stream
def test_frame_size_and_layout_may_change_mid_stream(tiny_artifacts):
    """One stream gets camera frames of changing size (upscaled, views, flipped, a crop, tiny);
    every step equals the float64 model on preprocess_frame of that very frame."""
    artifact = tiny_artifacts["rgb"]
    natural = _frames(1920, 1080)[0]
    frames = [natural, natural[::-1], cv2.resize(natural, (640, 480), interpolation=cv2.INTER_AREA),
              natural[200:900, 300:1500], natural[::3, ::2], natural[:50, :70], natural, natural[:481, :641]]
    candidate, reference = Predictor(artifact["onnx"]), Predictor(artifact["pt"])
    assert candidate.spec.frames.interpolation == "area_fast"
    exact = exact_logits(artifact["pt"], candidate.spec, frames, [None] * len(frames))
    check = ParityCheck()
    for t, frame in enumerate(frames):
        check.update(t, "logits", exact[t], reference.push(frame).logits, candidate.push(frame).logits)
    assert check.ok, check.summary()
    assert candidate.push(natural).frames_seen == len(frames) + 1


# ---------------------------------------------------------------------- benchmarks/preprocess.py
def test_benchmark_reports_times_and_differences(tmp_path, capsys):
    from benchmarks.preprocess import main

    assert main(["--inputs", "256x192", "--models", "32", "--modes", "crop", "--repeats", "3",
                 "--json", str(tmp_path / "b.json")]) == 0
    (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert row["area_ms"] > 0 and row["area_fast_ms"] > 0
    assert 0 < row["natural_mean"] <= row["natural_max"]  # 192 halved to 96, then INTER_AREA to 32: close, not equal
    assert "| 256x192 | 32 | crop |" in capsys.readouterr().out


def test_benchmark_measures_a_model_both_ways(tiny_artifacts, synth_dir, tmp_path):
    from benchmarks.preprocess import main

    assert main(["--model", str(tiny_artifacts["rgb"]["onnx"]), "--data", str(synth_dir), "--clips", "2",
                 "--upscale", "640x480", "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["native"]["identical_logits"]  # 64 px clips, a 96 px model: enlarging, the same path
    assert result["native"]["area"] == result["native"]["area_fast"]
    up = result["upscaled"]
    assert up["num_clips"] == 2 and len(up["agreement"]) == len(result["ratios"]) == 10
    assert all(0.0 <= v <= 1.0 for key in ("area", "area_fast", "agreement", "baseline_agreement") for v in up[key])


def test_benchmark_times_and_checks_another_version(tmp_path, capsys):
    from pathlib import Path

    import edgeact.preprocess
    from benchmarks.preprocess import main

    source = Path(edgeact.preprocess.__file__).read_text()
    same, other = tmp_path / "same.py", tmp_path / "other.py"
    same.write_text(source)
    other.write_text(source.replace("np.float32(1.0 / 255.0)", "np.float32(1.0 / 254.0)"))
    for against, identical in ((same, True), (other, False)):
        assert main(["--inputs", "640x480", "--models", "112", "--modes", "crop", "--repeats", "3",
                     "--against", str(against), "--json", str(tmp_path / "b.json")]) == 0
        (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
        assert row["against_ms"] > 0 and row["against_identical"] is identical
        assert f"| {'yes' if identical else 'NO'} |" in capsys.readouterr().out
