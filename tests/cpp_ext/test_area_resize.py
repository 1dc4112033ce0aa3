"""edgeact._C.area_resize: bit for bit cv2.resize(INTER_AREA) on OpenCV's general path, and the
preprocessing that uses it unchanged for every artifact ("area" and "area_fast")."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeact import _C
from edgeact.errors import InputError, InputTypeError
from edgeact import preprocess
from edgeact.preprocess import _area_general, resize_frame
from edgeact.spec import FrameSpec


@pytest.fixture(autouse=True)
def _one_opencv_thread():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


def _opencv(frame, width, height):
    return cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=cv2.INTER_AREA)


def test_random_sizes_equal_opencv_bit_for_bit():
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 150:
        h, w = (int(v) for v in rng.integers(1, 500, 2))
        out_h, out_w = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        if not _area_general((h, w), (out_h, out_w)):
            continue
        frame = rng.integers(0, 256, (h, w, 3), np.uint8)
        if checked % 3 == 0:  # saturated areas: sums at exactly 0 and 255
            frame[: h // 2] = 255
            frame[h // 2 :, : w // 2] = 0
        np.testing.assert_array_equal(_C.area_resize(frame, out_w, out_h), _opencv(frame, out_w, out_h),
                                      err_msg=f"{w}x{h} -> {out_w}x{out_h}")
        checked += 1


@pytest.mark.parametrize("src, dst", [((540, 540), (224, 224)), ((1080, 1920), (64, 64)), ((1080, 1920), (112, 200)),
                                      ((270, 480), (96, 96)), ((1079, 1919), (224, 224)), ((300, 7), (299, 7)),
                                      ((5, 640), (5, 33))])
def test_camera_sizes_and_single_axis_shrinks_equal_opencv(src, dst):
    rng = np.random.default_rng(sum(src) + sum(dst))
    frame = rng.integers(0, 256, (*src, 3), np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 3)  # image-like content besides noise
    np.testing.assert_array_equal(_C.area_resize(frame, dst[1], dst[0]), _opencv(frame, dst[1], dst[0]))


def test_row_strided_views_are_read_in_place():
    rng = np.random.default_rng(1)
    camera = rng.integers(0, 256, (600, 900, 3), np.uint8)
    crop = camera[:, 150:750]  # row stride 2700, 600 pixels a row
    assert not crop.flags.c_contiguous
    np.testing.assert_array_equal(_C.area_resize(crop, 224, 224), _opencv(crop, 224, 224))


@pytest.mark.parametrize("interpolation", ["area", "area_fast"])
@pytest.mark.parametrize("resize", ["stretch", "crop"])
@pytest.mark.parametrize("camera", [(1080, 1920), (720, 1280), (1079, 1919), (256, 340), (100, 100), (48, 600)])
@pytest.mark.parametrize("size", [(64, 64), (112, 112), (224, 224), (96, 128)])
def test_preprocessing_output_is_unchanged(size, camera, resize, interpolation, monkeypatch):
    rng = np.random.default_rng(camera[0] + size[0])
    frame = cv2.GaussianBlur(rng.integers(0, 256, (*camera, 3), np.uint8), (0, 0), 2)
    spec = FrameSpec(size=size, resize=resize, interpolation=interpolation)
    views = (frame, frame[::-1], frame[:, ::-1])  # negative strides: copied first
    ours = [resize_frame(view, spec) for view in views]
    monkeypatch.setattr(preprocess, "_area_general", lambda src, dst: False)  # every step on cv2.resize
    for view, got in zip(views, ours):
        np.testing.assert_array_equal(got, resize_frame(view, spec))


def test_bad_arguments_are_named():
    frame = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(InputTypeError, match="frame must be a numpy.ndarray \\(height, width, 3\\) uint8, got list"):
        _C.area_resize([[0]], 2, 2)
    with pytest.raises(InputError, match=r"frame must be a \(height, width, 3\) uint8 array, got shape \(10, 12, 3\) "
                                         r"float32\."):
        _C.area_resize(frame.astype(np.float32), 5, 5)
    with pytest.raises(InputError, match=r"got shape \(10, 12, 4\) uint8"):
        _C.area_resize(np.zeros((10, 12, 4), np.uint8), 5, 5)
    with pytest.raises(InputError, match=r"packed pixels .* got strides \(36, 6, 1\)"):
        _C.area_resize(frame[:, ::2], 5, 5)
    with pytest.raises(InputError, match="area_resize shrinks: the output size must be in \\[1, source\\] on each "
                                         "axis, got 13x5 from 12x10."):
        _C.area_resize(frame, 13, 5)
    with pytest.raises(InputError, match="got 0x5 from 12x10"):
        _C.area_resize(frame, 0, 5)
