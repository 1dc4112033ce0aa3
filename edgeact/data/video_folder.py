"""Any folder of labelled videos: ``ROOT/<class>/<video>`` (a class per sub-folder), or
``ROOT/train/<class>/<video>`` and ``ROOT/test/...`` (optionally ``ROOT/val/...``) where the
split is already made. Without split folders, ``test`` is carved like ``val``: stratified,
:data:`TEST_FRACTION` of each class, seed fixed (:func:`edgeact.data.protocol.carve_validation`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.data.protocol import TEST, TRAIN, VAL, carve_validation
from edgeact.data.video_dataset import VideoDataset, VideoEntry, is_video

TEST_FRACTION = 0.2
ROLE_DIRS = {"train": TRAIN, "val": VAL, "test": TEST}
FPS = 30.0  # nominal; clips use their container's rate


def _class_dirs(directory: Path) -> list[Path]:
    """Sub-folders that hold at least one video file."""
    return sorted(d for d in directory.iterdir() if d.is_dir() and any(is_video(f) for f in d.iterdir()))


def _split_dirs(root: Path) -> dict[str, Path]:
    found = {name: root / name for name in ROLE_DIRS if (root / name).is_dir()}
    return found if {"train", "test"} <= set(found) else {}


def probe(path: Path) -> bool:
    return path.is_dir() and bool(_split_dirs(path) or _class_dirs(path))


def load(path: Path) -> VideoDataset:
    split_dirs = _split_dirs(path)
    if split_dirs:
        groups = {name: _class_dirs(d) for name, d in split_dirs.items()}
        classes = sorted({c.name for dirs in groups.values() for c in dirs})
        entries, role = [], []
        for name, dirs in groups.items():
            for class_dir in dirs:
                for video in sorted(filter(is_video, class_dir.iterdir())):
                    entries.append(VideoEntry(video, classes.index(class_dir.name),
                                              f"{name}/{class_dir.name}/{video.stem}"))
                    role.append(ROLE_DIRS[name])
        roles = {None: np.array(role)}
        protocol = f"the folders {', '.join(split_dirs)}" + ("" if "val" in split_dirs else " (val carved from train)")
    else:
        class_dirs = _class_dirs(path)
        classes = [d.name for d in class_dirs]
        entries = [VideoEntry(video, k, f"{d.name}/{video.stem}")
                   for k, d in enumerate(class_dirs) for video in sorted(filter(is_video, d.iterdir()))]
        labels = np.array([e.label for e in entries])
        _, test = carve_validation(labels, np.arange(len(entries)), fraction=TEST_FRACTION)
        role = np.full(len(entries), TRAIN)
        role[test] = TEST
        roles = {None: role}
        protocol = f"test carved: {TEST_FRACTION:.0%} of each class (seed 0), val from the rest"
    return VideoDataset(path, entries, classes, roles, source=f"a folder of class folders of videos ({path})",
                        protocol=protocol, fps=FPS)
