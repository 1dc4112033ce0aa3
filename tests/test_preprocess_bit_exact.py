"""The "area_fast" path gives, bit for bit, what it gave when artifacts started recording it
(edgeact 3b2cb18: halvings by cv2.resize, then one cv2.resize to the model's size), now that its
last INTER_AREA runs as _area_by_rows (OpenCV's horizontal sums once per row, numpy's vertical
sums): preprocess_frame and resize_frame over camera and odd sizes, crop and stretch, both
colour orders, views, and _area_by_rows itself against cv2.resize over random sizes."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from benchmarks.preprocess import natural_frame
from edgeact import InputError
from edgeact import preprocess as prep
from edgeact.preprocess import preprocess_frame, resize_frame
from edgeact.spec import FrameSpec


def _reference_resize(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """resize_frame as of 3b2cb18 (every cv2.resize call as it made them), written out again."""
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
        if shrinking and spec.interpolation == "area_fast":
            h, w = frame.shape[:2]
            while h % 2 == 0 and w % 2 == 0 and h // 2 >= height and w // 2 >= width and (
                (h // 2 >= 2 * height and w // 2 >= 2 * width) or h * w > 400_000
            ):
                h, w = h // 2, w // 2
                frame = cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_AREA)
        frame = cv2.resize(np.ascontiguousarray(frame), (width, height),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return frame


def _reference_preprocess(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """preprocess_frame as of 3b2cb18, written out again."""
    frame = _reference_resize(frame, spec)
    if spec.color_order == "RGB":
        frame = frame[:, :, ::-1]
    scale = np.float32(1.0 / 255.0) / np.asarray(spec.std, np.float32)
    offset = np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)
    chw = np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32)
    chw *= scale[:, None, None]
    chw -= offset[:, None, None]
    return chw


@functools.lru_cache(maxsize=None)
def _frames(width: int, height: int) -> tuple[np.ndarray, ...]:
    """A natural-like frame, uniform noise, and black/white pixels with a few mid-greys (sums
    that land on and near .5, where a different float32 rounding would show)."""
    rng = np.random.default_rng(width * 31 + height)
    extremes = rng.choice(np.array([0, 127, 128, 255], np.uint8), (height, width, 3), p=[0.4, 0.1, 0.1, 0.4])
    return (natural_frame(rng, height, width), rng.integers(0, 256, (height, width, 3), dtype=np.uint8), extremes)


def _assert_same(frame: np.ndarray, spec: FrameSpec) -> None:
    want, got = _reference_preprocess(frame, spec), preprocess_frame(frame, spec)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    want, got = _reference_resize(frame, spec), resize_frame(frame, spec)
    assert got.dtype == want.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


CAMERA = [(1920, 1080), (1919, 1079), (1280, 720), (640, 480), (340, 256), (1000, 1000), (333, 1000)]
MODELS = [(64, 64), (96, 96), (112, 112), (224, 224), (96, 128), (224, 160), (97, 101)]


@pytest.mark.parametrize("mode", ["stretch", "crop"])
@pytest.mark.parametrize("size", MODELS, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("width,height", CAMERA)
def test_area_fast_is_bit_for_bit_what_it_was(width, height, size, mode):
    for frame in _frames(width, height):
        _assert_same(frame, FrameSpec(size=size, resize=mode, interpolation="area_fast"))
    bgr = FrameSpec(size=size, resize=mode, interpolation="area_fast", color_order="BGR",
                    mean=(0.5, 0.25, 0.125), std=(0.3, 0.2, 0.1))
    _assert_same(_frames(width, height)[0], bgr)


@pytest.mark.parametrize("mode", ["stretch", "crop"])
def test_views_are_bit_for_bit_what_they_were(mode):
    natural = _frames(1920, 1080)[0]
    views = (natural[100:1000, 200:1800], natural[:, ::-1], natural[::-1], natural[::2, ::2], natural[1::3, ::2],
             natural[:, :, ::-1], np.asfortranarray(natural), natural[:1079, 1:], natural[7:547, 300:840])
    for view in views:
        for size in ((224, 224), (112, 112), (64, 64)):
            _assert_same(view, FrameSpec(size=size, resize=mode, interpolation="area_fast"))


@pytest.fixture
def any_source_size(monkeypatch):
    """_area_plan for every source size (not only where _area_by_rows is the faster)."""
    monkeypatch.setattr(prep, "_AREA_BY_ROWS_PIXELS", (0, 10**9))
    prep._area_plan.cache_clear()
    yield
    prep._area_plan.cache_clear()


def test_the_last_area_step_is_cv2_resize_bit_for_bit_over_random_sizes(any_source_size):
    """_area_by_rows against cv2.resize INTER_AREA (uint8 out, and the float32 sums that OpenCV
    rounds, from float32 in) on sizes drawn at random, where it applies."""
    rng = np.random.default_rng(13)
    checked = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(2, 600, 2))
        dh, dw = max(1, int(h / rng.uniform(1.0, 6.0))), max(1, int(w / rng.uniform(1.0, 6.0)))
        plan = prep._area_plan(h, w, dh, dw)
        if plan is None:
            continue
        frame = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if checked % 2 else
                 rng.choice(np.array([0, 1, 127, 128, 254, 255], np.uint8), (h, w, 3)))
        sums = prep._area_by_rows(frame, plan)
        want = cv2.resize(frame.astype(np.float32), (dw, dh), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(sums, want, err_msg=f"{h}x{w} -> {dh}x{dw}")
        np.testing.assert_array_equal(np.rint(sums).astype(np.uint8),
                                      cv2.resize(frame, (dw, dh), interpolation=cv2.INTER_AREA))
        checked += 1
    assert checked >= 200  # the rest: integer factors or unchanged sizes, cv2.resize's


@pytest.mark.parametrize("mode", ["stretch", "crop"])
def test_small_sources_too_are_bit_for_bit_what_they_were(any_source_size, mode):
    for width, height in ((340, 256), (640, 480), (1920, 1080), (333, 1000)):
        for size in ((64, 64), (96, 96), (112, 112), (97, 101)):
            for frame in _frames(width, height):
                _assert_same(frame, FrameSpec(size=size, resize=mode, interpolation="area_fast"))


def test_where_cv2_resize_stays_the_path():
    assert prep._area_plan(540, 540, 224, 224) is not None  # 1080p crop to 224 px, after one halving
    assert prep._area_plan(270, 480, 224, 224) is not None  # 1080p stretched to 224 px, after two
    assert prep._area_plan(540, 448, 224, 224) is None  # an integer horizontal factor: OpenCV's other path
    assert prep._area_plan(540, 224, 224, 224) is None  # width unchanged: the same
    assert prep._area_plan(100, 540, 224, 224) is None  # not shrinking both ways
    assert prep._area_plan(1079, 1919, 224, 224) is None  # outside _AREA_BY_ROWS_PIXELS: too large,
    assert prep._area_plan(135, 135, 64, 64) is None  # too small
    assert prep._area_plan(256, 512, 128, 96) is None  # vertical factor 2: no row is summed twice


def test_an_opencv_that_sums_otherwise_keeps_cv2_resize(monkeypatch):
    """The plan is checked against cv2.resize once per size: weights that differ in one bit (as
    from an OpenCV that computes its tables or sums another way) leave cv2.resize the path."""
    tab = prep._opencv_area_tab

    def off_by_one_bit(ssize, dsize):
        terms = tab(ssize, dsize)
        source, weight = terms[3][0]
        terms[3][0] = (source, np.nextafter(weight, np.float32(2)))
        return terms

    monkeypatch.setattr(prep, "_opencv_area_tab", off_by_one_bit)
    prep._area_plan.cache_clear()
    try:
        assert prep._area_plan(540, 540, 224, 224) is None
        natural = _frames(1920, 1080)[0]
        _assert_same(natural, FrameSpec(size=(224, 224), resize="crop", interpolation="area_fast"))
    finally:
        prep._area_plan.cache_clear()


def test_grayscale_is_still_refused():
    gray = _frames(640, 480)[0][:, :, 0]
    for frame in (gray, gray[:, :, None]):
        with pytest.raises(InputError):
            preprocess_frame(frame, FrameSpec(size=(64, 64), interpolation="area_fast"))


def test_mean_and_std_given_as_lists():
    spec = FrameSpec(size=(224, 224), resize="crop", mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0])
    _assert_same(_frames(1920, 1080)[0], spec)

