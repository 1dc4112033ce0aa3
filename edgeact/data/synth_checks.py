"""Validation of :func:`edgeact.data.synth.generate`'s arguments, one exact sentence per mistake."""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

from edgeact.data.actions import CLASS_NAMES
from edgeact.data.dataset import SPLITS
from edgeact.data.synth_dataset import MANIFEST
from edgeact.data.video import CODECS
from edgeact.errors import DatasetError, InputError, InputTypeError

MIN_SIZE = 32
MIN_FRAMES = 16


def check_int(name: str, value: object, minimum: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an int; got {type(value).__name__}.")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}{unit}; got {value}.")
    return int(value)


def did_you_mean(name: str, valid: Sequence[str]) -> str:
    """"; did you mean 'x'?" or ".": the end of a sentence about an unknown name."""
    close = difflib.get_close_matches(name, valid, n=1)
    return f"; did you mean {close[0]!r}?" if close else "."


def check_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        return CLASS_NAMES
    if isinstance(classes, str):
        raise InputTypeError(f"classes must be a list of class names, not one string; use [{classes!r}].")
    names = tuple(classes)
    if not names:
        raise InputError("classes must name at least one class; got an empty list.")
    for name in names:
        if name not in CLASS_NAMES:
            raise InputError(
                f"Unknown class {name!r}{did_you_mean(str(name), CLASS_NAMES)} "
                f"Valid classes: {', '.join(CLASS_NAMES)}."
            )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"classes lists {', '.join(map(repr, duplicated))} more than once.")
    return names


def check_num_clips(num_clips: object, num_classes: int) -> int:
    num_clips = check_int("num_clips", num_clips, 1)
    if num_clips < num_classes:
        raise InputError(
            f"num_clips must be at least the number of classes ({num_classes}) so every class "
            f"appears; got {num_clips}."
        )
    return num_clips


def check_frame_range(frame_range: object) -> tuple[int, int]:
    ok = (
        isinstance(frame_range, Sequence)
        and len(frame_range) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in frame_range)
        and MIN_FRAMES <= frame_range[0] <= frame_range[1]
    )
    if not ok:
        raise InputError(
            f"frame_range must be (min, max) frame counts with {MIN_FRAMES} <= min <= max; got {frame_range!r}."
        )
    return int(frame_range[0]), int(frame_range[1])


def split_counts(num_clips: int, splits: object) -> list[int]:
    """Clips per split, rounded so they sum to num_clips (largest remainder first)."""
    valid = (
        isinstance(splits, Sequence)
        and len(splits) == len(SPLITS)
        and all(isinstance(f, numbers.Real) and math.isfinite(f) and f >= 0 for f in splits)
        and abs(sum(splits) - 1.0) < 1e-6
    )
    if not valid:
        raise InputError(f"splits must be three fractions (train, val, test) >= 0 that sum to 1; got {splits!r}.")
    exact = [f * num_clips for f in splits]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: num_clips - sum(counts)]:
        counts[i] += 1
    return counts


def check_fps(fps: object) -> float:
    if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number; got {fps!r}.")
    return float(fps)


def check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0.0 <= value <= 1.0):
        raise InputError(f"{name} must be a number from 0 to 1; got {value!r}.")
    return float(value)


def check_codec(codec: object) -> str:
    if codec not in CODECS:
        raise InputError(f"Unknown codec {codec!r}{did_you_mean(str(codec), CODECS)} Valid codecs: {', '.join(CODECS)}.")
    return str(codec)


def check_workers(workers: object, num_clips: int) -> int:
    """Worker processes to use: never more than clips; by default one per available CPU."""
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(cpus, num_clips))
    return min(check_int("workers", workers, 1), num_clips)


def check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise InputTypeError(f"progress must be a callable progress(done, total) or None; got {type(progress).__name__}.")


def check_target(out_dir: object, overwrite: bool) -> Path:
    """The output directory, if it may be written: absent, empty, or an old dataset to overwrite."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise InputTypeError(f"out_dir must be a path (str or os.PathLike); got {type(out_dir).__name__}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} exists and is not a directory.")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    if not overwrite:
        raise DatasetError(f"{out} already exists and is not empty; pass overwrite=True (edgeact data synth --overwrite) to replace it.")
    if not (out / MANIFEST).is_file():
        raise DatasetError(
            f"Refusing to overwrite {out}: it is not empty and has no {MANIFEST}, "
            "so it is not a dataset this generator wrote."
        )
    return out
