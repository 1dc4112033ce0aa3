"""Datasets of labelled video files (UCF-101, HMDB-51, UT-Interaction, a folder of class folders):
clips decode their video with OpenCV and have no keypoints. Each format's module lists its
videos and their roles under its protocol; this module serves them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.data.dataset import Clip, IndexedDataset
from edgeact.data.video import probe_video, read_video
from edgeact.errors import DatasetError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")
# how far the decoded frame count may be from the container's before frames() refuses the video
LENGTH_TOLERANCE = 0.05  # of the header's count, and at least 2 frames


@dataclass(frozen=True)
class VideoEntry:
    path: Path
    label: int
    clip_id: str


def no_keypoints(clip_id: str, root: Path) -> DatasetError:
    """The error a video-only clip raises when asked for keypoints."""
    return DatasetError(
        f"Clip {clip_id!r} of {root} has no keypoints: it is a video of a dataset without skeletons. A pose model "
        "needs a skeleton source (an edgeact skeleton .npz, NTU .skeleton files, JHMDB joint positions) or a pose "
        "front end that estimates keypoints from the frames; a frames model can train on it as it is."
    )


def fit_length(frames: np.ndarray, num_frames: int, path: Path) -> np.ndarray:
    """Decoded frames -> exactly ``num_frames`` (the container's count, which sampling planned with):
    extra frames are dropped, missing ones repeat the last; a larger gap is an error."""
    if len(frames) == num_frames:
        return frames
    if abs(len(frames) - num_frames) > max(2, LENGTH_TOLERANCE * num_frames):
        raise DatasetError(f"{path} decodes to {len(frames)} frames but its header says {num_frames}; "
                           "the file may be truncated or damaged.")
    if len(frames) > num_frames:
        return frames[:num_frames]
    return np.concatenate([frames, np.repeat(frames[-1:], num_frames - len(frames), axis=0)])


class VideoClip(Clip):
    """One video file. ``num_frames`` and ``fps`` come from the container (read when the clip is
    made); ``frames()`` decodes the file every time it is called."""

    def __init__(self, entry: VideoEntry, classes: Sequence[str], root: Path, default_fps: float) -> None:
        num_frames, fps = probe_video(entry.path)
        super().__init__(clip_id=entry.clip_id, label=entry.label, label_name=classes[entry.label],
                         num_frames=num_frames, fps=fps or default_fps, action_start=0, action_end=num_frames)
        self.path = entry.path
        self._root = root

    def frames(self) -> np.ndarray:
        return fit_length(read_video(self.path), self.num_frames, self.path)

    @property
    def keypoints(self) -> np.ndarray:
        raise no_keypoints(self.clip_id, self._root)

    @property
    def noisy_keypoints(self) -> np.ndarray:
        raise no_keypoints(self.clip_id, self._root)


class VideoDataset(IndexedDataset):
    """Labelled videos with a protocol; ``source`` and ``protocol`` say which dataset and how it splits."""

    modalities = ("frames",)

    def __init__(self, root: Path, entries: Sequence[VideoEntry], classes: Sequence[str],
                 roles: Mapping[str | None, np.ndarray], *, source: str, protocol: str, fps: float) -> None:
        super().__init__(classes, np.array([e.label for e in entries], np.int64), roles)
        self.root = root
        self.entries = list(entries)
        self.source = source
        self.protocol = protocol
        self.fps = fps  # nominal; a clip uses its container's rate where it has one

    def _clip(self, index: int) -> VideoClip:
        return VideoClip(self.entries[index], self._classes, self.root, self.fps)

    def __repr__(self) -> str:
        return (f"VideoDataset({str(self.root)!r}, {self.source!r}, {len(self.entries)} videos, "
                f"{len(self.classes)} classes)")


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def missing_videos_error(root: Path, missing: Sequence[str], listed_in: str) -> DatasetError:
    """The error for videos a split file lists but the directory lacks (the first few named)."""
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return DatasetError(f"{root}: {len(missing)} videos listed in {listed_in} are missing: {shown}.")
