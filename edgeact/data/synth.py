"""The procedural action generator: ``generate()`` writes a dataset directory.

Usage::

    from edgeact.data.synth import generate
    path = generate("data/synth", 600, seed=0, size=112, workers=2)
    ds = edgeact.data.open_dataset(path)

Clips are rendered in parallel, but each clip draws its randomness from (seed, clip index)
alone, so the output does not depend on ``workers``. The layout on disk is documented in
docs/dataset.md; :mod:`edgeact.data.actions` describes the classes and their groups.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgeact._version import __version__
from edgeact.data.actions import CLASS_GROUPS, CLASS_NAMES, DEFAULT_EARLY_CUE
from edgeact.data.atomic import atomic_directory
from edgeact.data.dataset import SPLITS
from edgeact.data.skeleton import JOINT_NAMES, NUM_PERSONS
from edgeact.data.synth_clip import make_clip
from edgeact.data.synth_checks import (
    MIN_SIZE,
    check_classes,
    check_codec,
    check_fraction,
    check_fps,
    check_frame_range,
    check_int,
    check_num_clips,
    check_progress,
    check_target,
    check_workers,
    split_counts,
)
from edgeact.data.synth_dataset import FORMAT, FORMAT_VERSION, MANIFEST
from edgeact.data.video import CODECS, write_video
from edgeact.errors import DatasetError

__all__ = ["CLASS_GROUPS", "CLASS_NAMES", "GENERATOR_VERSION", "MIN_SIZE", "generate"]

# Bump whenever the same arguments would produce different clips.
GENERATOR_VERSION = "2"  # 2: the early cue

Progress = Callable[[int, int], None]


class _Job(NamedTuple):
    index: int
    split: str
    label: int


@dataclass(frozen=True)
class _Config:
    root: Path
    seed: int
    size: int
    frame_range: tuple[int, int]
    fps: float
    codec: str
    classes: tuple[str, ...]
    early_cue: float


def generate(
    out_dir: str | os.PathLike,
    num_clips: int,
    *,
    seed: int = 0,
    size: int = 112,
    classes: Sequence[str] | None = None,
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
    frame_range: tuple[int, int] = (32, 96),
    fps: float = 30.0,
    codec: str = "mjpg",
    overwrite: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    early_cue: float = DEFAULT_EARLY_CUE,
) -> Path:
    """Render ``num_clips`` labelled clips into the dataset directory ``out_dir``.

    Args:
        num_clips: total over all splits; at least the number of classes.
        seed: the same seed (and arguments) gives the same clips, whatever ``workers``.
        size: frame height and width in pixels (square frames), at least 32.
        classes: class names to use, in label order; all of :data:`CLASS_NAMES` by default.
        splits: fractions of clips for train, val and test; labels are balanced within each.
        frame_range: inclusive range of clip lengths in frames.
        codec: ``"mjpg"`` (small, fast, any OpenCV) or ``"ffv1"`` (lossless, needs FFmpeg).
        overwrite: replace an existing dataset at ``out_dir`` (only once the new one is done).
        workers: processes to render with; default one per available CPU.
        progress: called as ``progress(done, total)`` after each clip.
        early_cue: 0..1, how much the beginning a group's classes share hints at the class
            (see :mod:`edgeact.data.actions`). 0 makes the beginnings identical, so nothing can
            tell the classes of a group apart before they diverge; the default 0.5 gives a weak
            cue (an ideal observer is right about half the time within a group, chance a third),
            as real actions give away their intent a little before they commit.

    Returns:
        The dataset directory, ready for :func:`edgeact.data.open_dataset`.
    """
    names = check_classes(classes)
    num_clips = check_num_clips(num_clips, len(names))
    seed = check_int("seed", seed, 0)
    size = check_int("size", size, MIN_SIZE, " pixels")
    frame_range = check_frame_range(frame_range)
    counts = split_counts(num_clips, splits)
    fps = check_fps(fps)
    codec = check_codec(codec)
    workers = check_workers(workers, num_clips)
    check_progress(progress)
    early_cue = check_fraction("early_cue", early_cue)
    out = check_target(out_dir, overwrite)

    jobs = _plan(counts, len(names), seed)
    with atomic_directory(out, replace=overwrite) as tmp:
        config = _Config(tmp, seed, size, frame_range, fps, codec, names, early_cue)
        for split in SPLITS:
            (tmp / split).mkdir()
        entries = _render_all(jobs, config, workers, progress)
        manifest = _manifest(config, entries)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def _plan(counts: list[int], num_classes: int, seed: int) -> list[_Job]:
    """Clip index, split and label of every clip; labels balanced within each split.

    Each split takes the next run of labels round-robin (so the whole set is balanced too),
    shuffled with a stream of its own so the order does not reveal the label.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    jobs: list[_Job] = []
    for split, count in zip(SPLITS, counts):
        labels = (np.arange(count) + len(jobs)) % num_classes
        rng.shuffle(labels)
        jobs += [_Job(len(jobs) + i, split, int(label)) for i, label in enumerate(labels)]
    return jobs


def _render_job(job: _Job, config: _Config) -> tuple[str, dict]:
    """Render and write one clip; returns its split and manifest entry. Runs in a worker."""
    clip = make_clip(
        config.seed, job.index, config.classes[job.label], config.size, config.frame_range, config.early_cue
    )
    clip_id = f"{job.index:06d}"
    codec = CODECS[config.codec]
    video = f"{job.split}/{clip_id}{codec.suffix}"
    keypoints = f"{job.split}/{clip_id}.npz"
    write_video(config.root / video, clip.frames, config.fps, codec)
    np.savez_compressed(
        config.root / keypoints,
        keypoints=clip.keypoints,
        noisy_keypoints=clip.noisy_keypoints,
        label=np.int64(job.label),
        start=np.int64(clip.action_start),
        end=np.int64(clip.action_end),
        divergence=np.int64(clip.divergence),
    )
    return job.split, {
        "id": clip_id,
        "label": job.label,
        "label_name": config.classes[job.label],
        "num_frames": len(clip.frames),
        "action_start": clip.action_start,
        "action_end": clip.action_end,
        "divergence": clip.divergence,
        "video": video,
        "keypoints": keypoints,
    }


def _init_worker() -> None:
    # Ctrl-C reaches every process in the group; only the parent should react (and clean up).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes


def _render_all(
    jobs: list[_Job], config: _Config, workers: int, progress: Progress | None
) -> list[tuple[str, dict]]:
    entries = []
    if workers == 1:
        for job in jobs:
            entries.append(_render_job(job, config))
            if progress:
                progress(len(entries), len(jobs))
        return entries
    # spawn, not fork: forking a process that has started OpenCV's threads can deadlock.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
    try:
        pending = {pool.submit(_render_job, job, config) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                entries.append(future.result())
                if progress:
                    progress(len(entries), len(jobs))
    except BrokenProcessPool as err:
        raise DatasetError(
            "A worker process died while rendering clips. If generate() runs at the top level of "
            "a script, put the call under `if __name__ == \"__main__\":`; or pass workers=1."
        ) from err
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return entries


def _manifest(config: _Config, entries: list[tuple[str, dict]]) -> dict:
    chosen = set(config.classes)
    groups = {g: [c for c in members if c in chosen] for g, members in CLASS_GROUPS.items()}
    entries = sorted(entries, key=lambda e: e[1]["id"])
    codec = CODECS[config.codec]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": {
            "name": "edgeact.data.synth",
            "version": GENERATOR_VERSION,
            "edgeact": __version__,
            "early_cue": config.early_cue,
        },
        "seed": config.seed,
        "classes": list(config.classes),
        "groups": {g: members for g, members in groups.items() if members},
        "fps": config.fps,
        "frame_size": [config.size, config.size],
        "frame_range": list(config.frame_range),
        "num_persons": NUM_PERSONS,
        "joint_names": list(JOINT_NAMES),
        "video": {"codec": codec.name, "fourcc": codec.fourcc, "lossless": codec.lossless},
        "splits": {s: [entry for split, entry in entries if split == s] for s in SPLITS},
    }
