"""HMDB-51 as distributed: the videos ``<class>/<video>.avi`` (in ``ROOT`` or ``ROOT/videos``) and
the official split files ``testTrainMulti_7030_splits/<class>_test_split<N>.txt`` (or in
``ROOT/splits`` or ``ROOT``), one line per video, ``<video>.avi <flag>``: 1 train, 2 test, 0 not
used in split N. The three splits are the folds ``fold1``..``fold3``. Video only.

:func:`read_split_files` also reads JHMDB's ``splits/`` (the same layout, flags 1 and 2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeact.data.protocol import TEST, TRAIN, UNUSED
from edgeact.data.video_dataset import VideoDataset, VideoEntry, is_video, missing_videos_error
from edgeact.errors import DatasetError

SPLIT_DIRS = ("testTrainMulti_7030_splits", "splits", ".")
VIDEO_DIRS = (".", "videos")
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")
FPS = 30.0


def split_files_dir(root: Path, candidates: Sequence[str] = SPLIT_DIRS) -> Path | None:
    """The first candidate folder holding ``<class>_test_split<N>.txt`` files."""
    return next((root / d for d in candidates if (root / d).is_dir()
                 and any(SPLIT_FILE.match(f.name) for f in (root / d).iterdir())), None)


def read_split_files(directory: Path) -> tuple[list[str], dict[str, dict[str, int]]]:
    """(classes, sorted; {fold name: {"<class>/<video stem>": role}}) from the split files."""
    folds: dict[str, dict[str, int]] = {}
    classes = set()
    for path in sorted(directory.iterdir()):
        match = SPLIT_FILE.match(path.name)
        if match is None:
            continue
        classes.add(match["cls"])
        roles = folds.setdefault(f"fold{int(match['n'])}", {})
        try:
            lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"Cannot read {path}: {err}.") from err
        for number, row in enumerate(lines, 1):
            if len(row) != 2 or row[1] not in ("0", "1", "2"):
                raise DatasetError(f"{path}: line {number} should be '<video>.avi 0|1|2' (0 unused, 1 train, "
                                   f"2 test); got {' '.join(row)!r}.")
            roles[f"{match['cls']}/{Path(row[0]).stem}"] = {"0": UNUSED, "1": TRAIN, "2": TEST}[row[1]]
    return sorted(classes), dict(sorted(folds.items()))


def probe(path: Path) -> bool:
    return path.is_dir() and split_files_dir(path) is not None


def load(path: Path) -> VideoDataset:
    splits = split_files_dir(path)
    classes, folds = read_split_files(splits)
    video_root = next((path / d for d in VIDEO_DIRS if any((path / d / c).is_dir() for c in classes)), None)
    if video_root is None:
        raise DatasetError(f"{path}: found the HMDB-51 split files in {splits} but no class folders of videos in "
                           f"{', '.join(str(path / d) for d in VIDEO_DIRS)}.")
    keys = sorted({key for roles in folds.values() for key in roles})
    videos = {f"{c}/{f.stem}": f for c in classes if (video_root / c).is_dir()
              for f in sorted((video_root / c).iterdir()) if is_video(f)}
    missing = [key for key in keys if key not in videos]
    if missing:
        raise missing_videos_error(video_root, missing, f"the split files of {splits}")
    entries = [VideoEntry(videos[k], classes.index(k.split("/", 1)[0]), k.split("/", 1)[1]) for k in keys]
    roles = {fold: np.array([r.get(k, UNUSED) for k in keys]) for fold, r in folds.items()}
    return VideoDataset(video_root, entries, classes, roles, source=f"HMDB-51 ({path})",
                        protocol="official <class>_test_split<N>.txt files (1 train, 2 test, 0 unused) as foldN",
                        fps=FPS)
