"""The one preprocessing path: camera frames and keypoints -> model inputs.

Every backend, the trainer and the evaluator call these functions, so a model sees the same
numbers in training and in deployment. numpy + OpenCV only (no torch).
"""

from __future__ import annotations

import functools
import math
import sys
from typing import NamedTuple

import cv2
import numpy as np

from edgeact.errors import InputError, InputTypeError
from edgeact.spec import FrameSpec, KeypointSpec


def check_frame(frame: object, *, name: str = "frame") -> np.ndarray:
    """Validate a camera frame: a BGR uint8 array of shape (H, W, 3)."""
    if not isinstance(frame, np.ndarray):
        raise InputTypeError(
            f"{name} must be a numpy.ndarray of shape (H, W, 3) and dtype uint8 (BGR, as OpenCV "
            f"gives it), got {type(frame).__name__}."
        )
    if frame.dtype != np.uint8:
        raise InputTypeError(f"{name} must have dtype uint8 (BGR, as OpenCV gives it), got {frame.dtype}.")
    if frame.ndim == 2:
        raise InputError(
            f"{name} must have shape (H, W, 3), got {frame.shape}: a grayscale image? "
            "Convert it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)."
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"{name} must have shape (H, W, 3) with 3 channels (BGR), got {frame.shape}.")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"{name} is empty: shape {frame.shape}.")
    return frame


def preprocess_frame(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """BGR uint8 (H, W, 3) of any size -> float32 (3, h, w) normalised as the model expects.

    Shrinking is area averaging (anti-aliased): ``spec.interpolation`` "area" is cv2.INTER_AREA
    straight to the model's size, "area_fast" first halves the frame by 2x2 box means (see
    _halve_towards; docs/preprocess.md has its speed and its distance from "area"). Enlarging is
    INTER_LINEAR either way. Views (crops, strided arrays) are accepted.
    """
    frame = _resize(frame, spec)
    if spec.color_order == "RGB":
        frame = frame[:, :, ::-1]
    scale, offset = _normalisation(tuple(spec.mean), tuple(spec.std))
    if frame.dtype == np.uint8:
        chw = np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32)
    else:  # _area_by_rows's sums: rounded as OpenCV rounds them to uint8, in the same pass as the copy
        chw = np.rint(frame.transpose(2, 0, 1), out=np.empty((3, *frame.shape[:2]), np.float32))
    chw *= scale
    chw -= offset
    return chw


@functools.lru_cache(maxsize=16)
def _normalisation(mean: tuple, std: tuple) -> tuple[np.ndarray, np.ndarray]:
    """preprocess_frame's (scale, offset), [3, 1, 1] float32 each: x * scale - offset (computed
    once per (mean, std) instead of per frame; the same float32 numbers)."""
    scale = np.float32(1.0 / 255.0) / np.asarray(std, np.float32)
    offset = np.asarray(mean, np.float32) / np.asarray(std, np.float32)
    scale, offset = scale[:, None, None], offset[:, None, None]
    scale.flags.writeable = offset.flags.writeable = False
    return scale, offset


def resize_frame(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """The geometric half of preprocess_frame: BGR uint8 (H, W, 3) -> BGR uint8 (h, w, 3) at the
    model's size (``spec.resize`` crop or stretch, ``spec.interpolation`` when shrinking)."""
    frame = _resize(frame, spec)
    if frame.dtype != np.uint8:  # _area_by_rows's sums: OpenCV's saturate_cast<uchar>, round half to even
        frame = np.rint(frame, out=frame).astype(np.uint8)
    return frame


def _resize(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """resize_frame before its last step: uint8 (h, w, 3), or, where "area_fast" ends in
    _area_by_rows, its float32 sums, which OpenCV would round to uint8 half to even (left to the
    caller: preprocess_frame rounds them in its copy to [3, h, w] float32)."""
    frame = check_frame(frame)
    height, width = spec.size
    if spec.resize == "crop":
        frame = _centre_crop_to_aspect(frame, width / height)
    if frame.shape[:2] != (height, width):
        shrinking = frame.shape[0] > height or frame.shape[1] > width
        if shrinking and spec.interpolation == "area_fast":
            frame = _halve_towards(frame, height, width)
            plan = _area_plan(frame.shape[0], frame.shape[1], height, width)
            if plan is not None:
                return _area_by_rows(frame, plan)
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        frame = cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=interpolation)
    return frame


def preprocess_frames(frames: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """A clip (T, H, W, 3) uint8 BGR -> (T, 3, h, w) float32, frame by frame on the same path."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4:
        got = frames.shape if isinstance(frames, np.ndarray) else type(frames).__name__
        raise InputError(f"frames must be an array of shape (T, H, W, 3), got {got}.")
    return np.stack([preprocess_frame(f, spec) for f in frames]) if len(frames) else np.zeros(
        (0, 3, *spec.size), np.float32
    )


# "area_fast" halves a frame larger than this even when the half is under twice the model's size:
# the final INTER_AREA (OpenCV's general path, ~2 ns a pixel on one core) then costs under ~1 ms.
_AREA_FAST_PIXELS = 400_000


def _halve_towards(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """The "area_fast" pre-reduction: halve by exact 2x2 box means while the half still covers
    (height, width), and either is at least twice that size (so INTER_AREA after it sees blocks of
    at most half an output pixel) or the frame is still over _AREA_FAST_PIXELS (so it is cheap).

    INTER_AREA at exactly half is one vectorised pass (~0.4 ms for 1080p on one core; INTER_AREA
    to an arbitrary size reads 1080p at ~4 ms). Odd sides are never halved, so the geometry stays
    exact; such frames just take longer. The first halving reads row-strided views (crops) in place.
    """
    h, w = frame.shape[:2]
    while h % 2 == 0 and w % 2 == 0 and h // 2 >= height and w // 2 >= width and (
        (h // 2 >= 2 * height and w // 2 >= 2 * width) or h * w > _AREA_FAST_PIXELS
    ):
        if frame.strides[1:] != (3, 1) or frame.strides[0] < 0:  # OpenCV takes row strides only
            frame = np.ascontiguousarray(frame)
        h, w = h // 2, w // 2
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return frame


class _AreaPlan(NamedTuple):
    """How _area_by_rows does cv2.INTER_AREA from (src_height, *) to (height, width)."""

    src_height: int
    height: int
    width: int
    # the terms every output row has: [K, height] source row of the k-th, [K, height, 1] its weight
    rows: np.ndarray
    weights: np.ndarray
    # each later term: (the output rows that have it, their source rows, [n, 1] weights)
    extra: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


def _opencv_area_tab(ssize: int, dsize: int) -> list[list[tuple[int, np.float32]]]:
    """OpenCV's computeResizeAreaTab (imgproc/src/resize.cpp) for one axis, in its double
    arithmetic: per output index, the (source index, float32 weight) terms in the order
    ResizeArea_Invoker adds them."""
    scale = 1.0 / (dsize / ssize)  # cv::resize: inv_scale = dsize / ssize, then scale = 1. / inv_scale
    tab = []
    for d in range(dsize):
        fs1 = d * scale
        fs2 = fs1 + scale
        cell = min(scale, ssize - fs1)
        s1, s2 = math.ceil(fs1), math.floor(fs2)
        s2 = min(s2, ssize - 1)
        s1 = min(s1, s2)
        terms = []
        if s1 - fs1 > 1e-3:
            terms.append((s1 - 1, np.float32((s1 - fs1) / cell)))
        terms.extend((s, np.float32(1.0 / cell)) for s in range(s1, s2))
        if fs2 - s2 > 1e-3:
            terms.append((s2, np.float32(min(min(fs2 - s2, 1.0), cell) / cell)))
        tab.append(terms)
    return tab


# The sources _area_by_rows takes, in pixels. It copies its source to float32 (12 bytes a pixel):
# above the upper bound that memory traffic costs more than the rows summed once save (one core:
# 540x540 -> 224 0.72 ms against cv2.resize's 0.80, 700x700 1.10 / 1.14, 720x1280 2.44 / 2.19,
# 1079x1079 3.06 / 2.52); below the lower one its dozen numpy calls cost what they save (135x135
# -> 64 after another model's preprocessing, as between frames: 0.42 / 0.40 ms for the whole
# preprocess_frame).
_AREA_BY_ROWS_PIXELS = (100_000, 500_000)


@functools.lru_cache(maxsize=256)
def _area_plan(src_height: int, src_width: int, height: int, width: int) -> _AreaPlan | None:
    """The plan for _area_by_rows, or None (cv2.resize then): not OpenCV's general INTER_AREA
    (not shrinking both ways, or an integer horizontal factor, which OpenCV reduces another way),
    a source outside _AREA_BY_ROWS_PIXELS, hardly a source row that OpenCV would sum twice (nothing
    to save: an integer vertical factor), or an OpenCV that does not give bit for bit the same
    numbers. That is checked once per size, on a random frame, against cv2.resize itself (a HAL
    or an OpenCV built to fuse its multiply-adds would show there)."""
    low, high = _AREA_BY_ROWS_PIXELS
    if src_height < height or src_width < width or not low <= src_height * src_width <= high:
        return None
    scale_x = 1.0 / (width / src_width)  # cv::resize's, and its test for the integer-factor path
    if abs(scale_x - round(scale_x)) < sys.float_info.epsilon:
        return None
    tab = _opencv_area_tab(src_height, height)
    if sum(map(len, tab)) < 1.05 * src_height:
        return None
    common = min(len(terms) for terms in tab)
    rows = np.array([[terms[k][0] for terms in tab] for k in range(common)], np.intp).reshape(common, height)
    weights = np.array([[terms[k][1] for terms in tab] for k in range(common)], np.float32).reshape(common, height, 1)
    extra = []
    for k in range(common, max(len(terms) for terms in tab)):
        have = np.array([d for d, terms in enumerate(tab) if len(terms) > k], np.intp)
        extra.append((have, np.array([tab[d][k][0] for d in have], np.intp),
                      np.array([tab[d][k][1] for d in have], np.float32)[:, None]))
    for array in (rows, weights, *(a for term in extra for a in term)):
        array.flags.writeable = False
    plan = _AreaPlan(src_height, height, width, rows, weights, tuple(extra))
    rng = np.random.default_rng(src_height * 7919 + src_width)
    probe = rng.integers(0, 256, (src_height, src_width, 3), np.uint8)
    sums = _area_by_rows(probe, plan)
    if not np.array_equal(sums, cv2.resize(probe.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)):
        return None
    if not np.array_equal(np.rint(sums).astype(np.uint8),
                          cv2.resize(probe, (width, height), interpolation=cv2.INTER_AREA)):
        return None
    return plan


def _area_by_rows(frame: np.ndarray, plan: _AreaPlan) -> np.ndarray:
    """cv2.INTER_AREA of a uint8 (H, W, 3) frame to (plan.height, plan.width) before its rounding
    to uint8: float32 sums, bit for bit OpenCV's (rounded half to even they are its output).

    OpenCV's general INTER_AREA sums each source row horizontally in float32 (weights from
    computeResizeAreaTab), adds the weighted row sums of each output row in order, and rounds.
    It redoes a source row's horizontal sums for every output row the row overlaps (1080p crop
    to 224 px: 540 rows, summed 760 times). Here cv2.resize does the horizontal sums once per
    row (float32 in, the height unchanged: the same table and float32 operations in the same
    order) and numpy the vertical ones (the same float32 products and sums, in the same order)."""
    src_height, width = plan.src_height, plan.width
    sums = cv2.resize(frame.astype(np.float32, order="C"), (width, src_height), interpolation=cv2.INTER_AREA)
    sums = sums.reshape(src_height, width * 3)
    out = sums[plan.rows[0]]
    out *= plan.weights[0]
    term = np.empty_like(out)
    for rows, weights in zip(plan.rows[1:], plan.weights[1:]):
        np.multiply(sums[rows], weights, out=term)
        out += term
    for have, rows, weights in plan.extra:
        out[have] += sums[rows] * weights
    return out.reshape(plan.height, width, 3)


def _centre_crop_to_aspect(frame: np.ndarray, aspect: float) -> np.ndarray:
    h, w = frame.shape[:2]
    if w / h > aspect:
        new_w = max(1, round(h * aspect))
        x0 = (w - new_w) // 2
        return frame[:, x0 : x0 + new_w]
    new_h = max(1, round(w / aspect))
    y0 = (h - new_h) // 2
    return frame[y0 : y0 + new_h]


def preprocess_keypoints(keypoints: object, spec: KeypointSpec) -> np.ndarray:
    """People x joints x (dims or dims+1) -> float32 (spec.people, spec.joints, dims + 1).

    Without a visibility column every joint is visible. A joint with visibility 0 is missing:
    its coordinates are ignored (NaN allowed there, as pose estimators often emit) and zeroed.
    More people than the model takes: the ones with the most visible joints are kept, in their
    original order. Fewer: the rest are padded as absent (visibility 0). A (joints, columns)
    array is one person.
    """
    d = spec.dims
    if (type(keypoints) is np.ndarray and keypoints.dtype == np.float32
            and keypoints.shape == (spec.people, spec.joints, d + 1)
            and np.logical_and.reduce(np.isfinite(keypoints), axis=None)):  # .all() without its wrapper
        # The common input (a pose estimator's float32 output at the model's size, every value
        # finite): nothing to convert, check, select or pad; two numpy passes instead of ~12.
        out = np.zeros(keypoints.shape, np.float32)
        np.copyto(out, keypoints, where=(keypoints[:, :, d] > 0)[:, :, None])
        return out
    expected = f"(people, {spec.joints}, {d} or {d + 1})"
    if not isinstance(keypoints, np.ndarray):
        raise InputTypeError(f"keypoints must be a numpy.ndarray of shape {expected}, got {type(keypoints).__name__}.")
    if keypoints.dtype.kind not in "fiu":
        raise InputTypeError(f"keypoints must have a numeric dtype, got {keypoints.dtype}.")
    if keypoints.ndim == 2:
        keypoints = keypoints[None]
    if keypoints.ndim != 3 or keypoints.shape[1] != spec.joints or keypoints.shape[2] not in (d, d + 1):
        raise InputError(f"keypoints must have shape {expected}, got {keypoints.shape}.")
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.shape[2] == d:
        kp = np.concatenate([kp, np.ones((*kp.shape[:2], 1), np.float32)], axis=2)
    visible = kp[:, :, d]
    if not np.all(np.isfinite(visible)):
        person, joint = np.argwhere(~np.isfinite(visible))[0]
        raise InputError(f"keypoints visibility is NaN or inf at person {person}, joint {joint}.")
    bad = ~np.isfinite(kp[:, :, :d]).all(axis=2) & (visible > 0)
    if bad.any():
        person, joint = np.argwhere(bad)[0]
        raise InputError(
            f"keypoints contain NaN or inf at person {person}, joint {joint} with visibility "
            f"{visible[person, joint]:g}; give missing joints visibility 0."
        )
    kp = np.where((visible > 0)[:, :, None], kp, np.float32(0.0))
    if len(kp) > spec.people:
        keep = np.sort(np.argsort(-(visible > 0).sum(axis=1), kind="stable")[: spec.people])
        kp = kp[keep]
    out = np.zeros((spec.people, spec.joints, d + 1), np.float32)
    out[: len(kp)] = kp
    return out
