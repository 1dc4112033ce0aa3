"""The built-in estimator: MoveNet SinglePose Lightning int8 on ai-edge-litert, against the
reference keypoints of its test photo; what it refuses. The model file lives outside the
repository (../shared/models); the tests that need it skip where it or ai-edge-litert is absent."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeact import BackendError, InputError, ModelFormatError, Predictor
from edgeact.pose import COCO17, COCO18, MoveNetProvider, load_provider

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"
MOVENET_SHA256 = "cd7cc22fa946e5d146a7b98d496853e1923e22828d3972d579973f27f91bb105"  # docs/pose.md
SQUAT = MODELS / "squat.bmp"
REFERENCE = MODELS / "movenet_single_pose_lightning_ptq_reference.csv"

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
needs_files = pytest.mark.skipif(not MOVENET.is_file(), reason=f"the MoveNet test files are not here ({MODELS})")
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason="ai-edge-litert is not installed (pip install 'edgeact[pose]')")


def _reference() -> np.ndarray:
    """[17, 3] = (x, y normalised to the photo, score), COCO-17 order."""
    with REFERENCE.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["keypoint_id"]))
    return np.array([[float(r["keypoint_x"]), float(r["keypoint_y"]), float(r["keypoint_score"])] for r in rows])


@needs_files
@needs_litert
@pytest.mark.parametrize("resize, worst, median", [("stretch", 0.035, 0.01), ("pad", 0.05, 0.01)])
def test_movenet_reproduces_the_reference_keypoints(resize, worst, median):
    assert hashlib.sha256(MOVENET.read_bytes()).hexdigest() == MOVENET_SHA256
    photo = cv2.imread(str(SQUAT))
    height, width = photo.shape[:2]
    with MoveNetProvider(MOVENET, threads=1, resize=resize) as movenet:
        keypoints = movenet(photo)
        assert movenet(photo).tolist() == keypoints.tolist()  # deterministic
    assert keypoints.shape == (1, 17, 3) and keypoints.dtype == np.float32
    error = np.abs(keypoints[0, :, :2] / [width, height] - _reference()[:, :2])
    # The reference was made with a plain resize to 192 x 192 by another resizer: with OpenCV's
    # the worst joint (the left hip) is 0.030 off, the median 0.006. Fitting the photo in with
    # its aspect kept ("pad", the default) moves the hips by up to 0.045.
    assert error.max() <= worst and np.median(error) <= median, error.round(3)
    assert ((keypoints[0, :, 2] == 0) | (keypoints[0, :, 2] >= 0.2)).all()  # min_score 0.2
    assert (keypoints[0, :, 2] > 0).sum() >= 15  # a clear photo: nearly every joint found


@needs_files
@needs_litert
def test_movenet_feeds_a_coco18_model_through_the_predictor(tiny_artifacts):
    photo = cv2.imread(str(SQUAT))
    with Predictor(tiny_artifacts["pose"]["onnx"], pose=f"movenet:{MOVENET}") as p:
        movenet = p.pose
        assert isinstance(movenet, MoveNetProvider) and p.describe()["pose"]["owned"]
        preds = [p.push(np.ascontiguousarray(photo[:, i:i + 400])) for i in range(0, 100, 20)]
        direct = movenet(np.ascontiguousarray(photo[:, 80:480]))
    assert all(pred.timings_ms["pose"] > 0 for pred in preds)
    seen = preds[-1].keypoints
    assert seen.shape == (2, 18, 3) and not seen[1].any()
    for name in COCO17.joints:  # every COCO-17 joint where the model's layout has it
        got, want = seen[0, COCO18.joints.index(name)], direct[0, COCO17.joints.index(name)]
        np.testing.assert_array_equal(got, want if want[2] > 0 else np.zeros(3, np.float32))
    shoulders = direct[0, [COCO17.joints.index("l_shoulder"), COCO17.joints.index("r_shoulder")]]
    neck = seen[0, COCO18.joints.index("neck")]
    np.testing.assert_allclose(neck[:2], shoulders[:, :2].mean(axis=0), rtol=1e-6)
    assert neck[2] == shoulders[:, 2].min()
    with pytest.raises(InputError, match=r"^pose provider MoveNetProvider is closed\.$"):
        movenet(photo)  # built from its name by the Predictor, closed with it


def test_what_movenet_refuses(tmp_path, monkeypatch):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(ModelFormatError, match=f"^MoveNet model file not found: {re.escape(str(missing))}$"):
        load_provider(f"movenet:{missing}")
    with pytest.raises(InputError, match=r"^resize must be one of pad, stretch, got 'crop'\.$"):
        MoveNetProvider(missing, resize="crop")
    with pytest.raises(InputError, match=r"^threads must be a positive int or None, got 0\.$"):
        MoveNetProvider(missing, threads=0)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 8)
    if HAS_LITERT:
        with pytest.raises(ModelFormatError, match=f"^{re.escape(str(junk))} is not a loadable TFLite model"):
            MoveNetProvider(junk)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if not installed
    with pytest.raises(BackendError, match=re.escape("MoveNetProvider needs ai-edge-litert, which is not installed "
                                                     "here; pip install 'edgeact[pose]'.")):
        MoveNetProvider(junk)
