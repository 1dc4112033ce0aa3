"""UCF-101 as distributed: the videos ``UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` and the official
split lists ``ucfTrainTestlist/`` (``classInd.txt``: ``1 ApplyEyeMakeup``; ``trainlist0N.txt``:
``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``; ``testlist0N.txt``: the path alone; N = 1..3).
Either folder may also be ``ROOT`` itself. The three splits are the folds ``fold1``..``fold3``.
Video only: keypoints need a pose front end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.data.protocol import TEST, TRAIN, UNUSED
from edgeact.data.video_dataset import VideoDataset, VideoEntry, is_video, missing_videos_error
from edgeact.errors import DatasetError

LIST_DIRS = ("ucfTrainTestlist", ".")
VIDEO_DIRS = ("UCF-101", "UCF101", ".")
FPS = 25.0


def _lists_dir(root: Path) -> Path | None:
    return next((root / d for d in LIST_DIRS if (root / d / "classInd.txt").is_file()), None)


def probe(path: Path) -> bool:
    return path.is_dir() and _lists_dir(path) is not None


def _read_lines(path: Path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"Cannot read {path}: {err}.") from err


def _class_index(path: Path) -> list[str]:
    rows = _read_lines(path)
    for number, row in enumerate(rows, 1):
        if len(row) != 2 or row[0] != str(number):
            raise DatasetError(f"{path}: line {number} should be '{number} ClassName'; got {' '.join(row)!r}.")
    return [name for _, name in rows]


def _videos_by_key(video_root: Path) -> dict[str, Path]:
    """'class/file.avi' (lower case) -> the file, so list entries match whatever the case on disk."""
    return {f"{d.name}/{f.name}".lower(): f for d in video_root.iterdir() if d.is_dir()
            for f in d.iterdir() if is_video(f)}


def load(path: Path) -> VideoDataset:
    lists = _lists_dir(path)
    classes = _class_index(lists / "classInd.txt")
    label_of = {c.lower(): k for k, c in enumerate(classes)}
    video_root = next((path / d for d in VIDEO_DIRS if (path / d).is_dir() and any(
        (path / d / c).is_dir() for c in classes)), None)
    if video_root is None:
        raise DatasetError(f"{path}: found the UCF-101 split lists in {lists} but no class folders of videos in "
                           f"{', '.join(str(path / d) for d in VIDEO_DIRS)}.")
    splits = sorted(int(f.stem.removeprefix("trainlist")) for f in lists.glob("trainlist0*.txt"))
    if not splits:
        raise DatasetError(f"{lists} has classInd.txt but no trainlist01.txt (the official split lists).")
    listed: dict[str, dict[int, int]] = {}  # lower-case key -> {split: role}
    names: dict[str, str] = {}  # lower-case key -> as listed
    for n in splits:
        for kind, role in (("trainlist", TRAIN), ("testlist", TEST)):
            list_file = lists / f"{kind}{n:02d}.txt"
            if not list_file.is_file():
                raise DatasetError(f"{lists} has trainlist{n:02d}.txt but no {list_file.name}.")
            for row in _read_lines(list_file):
                key = row[0].lower()
                names.setdefault(key, row[0])
                listed.setdefault(key, {})[n] = role
    on_disk = _videos_by_key(video_root)
    missing = [names[k] for k in sorted(listed) if k not in on_disk]
    if missing:
        raise missing_videos_error(video_root, missing, f"the split lists of {lists}")
    keys = sorted(listed)
    unknown = sorted({k.split("/")[0] for k in keys} - set(label_of))
    if unknown:
        raise DatasetError(f"{lists}: the split lists name class folders that classInd.txt lacks: "
                           f"{', '.join(unknown)}.")
    entries = [VideoEntry(on_disk[k], label_of[k.split("/")[0]], Path(names[k]).stem) for k in keys]
    roles = {f"fold{n}": np.array([listed[k].get(n, UNUSED) for k in keys]) for n in splits}
    return VideoDataset(video_root, entries, classes, roles, source=f"UCF-101 ({path})",
                        protocol=f"official trainlist0N/testlist0N as foldN, N = {', '.join(map(str, splits))}",
                        fps=FPS)
