"""The one preprocessing path: camera frames and keypoints -> model inputs.

Every backend, the trainer and the evaluator call these functions, so a model sees the same
numbers in training and in deployment. numpy, OpenCV and one compiled kernel (no torch).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from edgeact import _C
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
    frame = resize_frame(frame, spec)
    if spec.color_order == "RGB":
        frame = frame[:, :, ::-1]
    scale = np.float32(1.0 / 255.0) / np.asarray(spec.std, np.float32)
    offset = np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)
    chw = np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32)
    chw *= scale[:, None, None]
    chw -= offset[:, None, None]
    return chw


def resize_frame(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """The geometric half of preprocess_frame: BGR uint8 (H, W, 3) -> BGR uint8 (h, w, 3) at the
    model's size (``spec.resize`` crop or stretch, ``spec.interpolation`` when shrinking)."""
    frame = check_frame(frame)
    height, width = spec.size
    if spec.resize == "crop":
        frame = _centre_crop_to_aspect(frame, width / height)
    if frame.shape[:2] != (height, width):
        shrinking = frame.shape[0] > height or frame.shape[1] > width
        if shrinking and spec.interpolation == "area_fast":
            frame = _halve_towards(frame, height, width)
        if shrinking and _area_general(frame.shape[:2], (height, width)):
            return _area_resize(frame, width, height)
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        frame = cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=interpolation)
    return frame


def _area_general(src: tuple[int, int], dst: tuple[int, int]) -> bool:
    """Whether cv2.resize(INTER_AREA) from src to dst (height, width) takes OpenCV's general area
    path, the one edgeact._C.area_resize reproduces bit for bit: both axes shrink or stay, and not
    both by an integer factor (OpenCV's own fast path then). Its factors are computed as cv::resize
    computes them, in double."""
    scale_y, scale_x = (1.0 / (d / s) for s, d in zip(src, dst))
    if scale_x < 1 or scale_y < 1:
        return False
    return not (abs(scale_x - round(scale_x)) < sys.float_info.epsilon
                and abs(scale_y - round(scale_y)) < sys.float_info.epsilon)


def _area_resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize(frame, (width, height), INTER_AREA) on OpenCV's general path, with each source
    row summed once (cpp_ext/area_resize.cpp: the same float32 arithmetic in the same order, so
    the same bytes; 540x540 -> 224 px 0.42 against 0.84 ms, 1080p -> 64 px 1.6 against 4.3 ms on
    one core). Row-strided views (crops) are read in place."""
    return _C.area_resize(_packed_rows(frame), width, height)


def _packed_rows(frame: np.ndarray) -> np.ndarray:
    """``frame`` itself where OpenCV and area_resize read it in place (packed pixels, rows apart
    by a positive stride: a crop), else a C-contiguous copy (flips, strided pixels)."""
    if frame.strides[1:] != (3, 1) or frame.strides[0] < 3 * frame.shape[1]:
        return np.ascontiguousarray(frame)
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
        frame = _packed_rows(frame)
        h, w = h // 2, w // 2
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return frame


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
