"""JHMDB as distributed: ``joint_positions/<class>/<video>/joint_positions.mat`` (``pos_img``:
2 x 15 x T, the annotated puppet joints in pixels of the 320x240 frames), the split files
``splits/<class>_test_split<N>.txt`` (``<video>.avi 1|2``: 1 train, 2 test; folds ``fold1``..
``fold3``), and optionally the videos ``ReCompress_Videos/<class>/<video>.avi`` (or
``videos/...``). Reading .mat files needs scipy (``pip install 'edgeact[datasets]'``).

Clips have keypoints, float32 [T, 1, 15, 3] = (x, y, visibility 1: every joint is annotated,
occluded ones where they would be), and frames where the videos are present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.data.dataset import Clip, IndexedDataset
from edgeact.data.hmdb51 import read_split_files, split_files_dir
from edgeact.data.protocol import UNUSED
from edgeact.data.video import read_video
from edgeact.data.video_dataset import fit_length, is_video
from edgeact.errors import DatasetError

JOINT_NAMES = (
    "neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "right_elbow", "left_elbow",
    "right_knee", "left_knee", "right_wrist", "left_wrist", "right_ankle", "left_ankle",
)  # fmt: skip
VIDEO_DIRS = ("ReCompress_Videos", "videos")
FPS = 30.0
UNITS = "pixels of the 320x240 video frame (annotated 2D)"


def read_joint_positions(path: Path) -> np.ndarray:
    """``pos_img`` of a joint_positions.mat as float32 [T, 1, 15, 3] (x, y, visibility)."""
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise DatasetError(f"Reading JHMDB's {path.name} needs scipy: pip install 'edgeact[datasets]'.") from err
    try:
        pos = np.asarray(loadmat(str(path))["pos_img"], np.float32)
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f"Cannot read pos_img from {path}: {err}.") from err
    if pos.ndim != 3 or pos.shape[:2] != (2, len(JOINT_NAMES)) or pos.shape[2] < 1:
        got = " x ".join(map(str, pos.shape))
        raise DatasetError(f"{path}: pos_img must be 2 x {len(JOINT_NAMES)} x frames; got {got}.")
    xy = pos.transpose(2, 1, 0)[:, None]  # [T, 1, 15, 2]
    visible = np.isfinite(xy).all(axis=-1, keepdims=True).astype(np.float32)
    return np.concatenate([xy, visible], axis=-1)


class JhmdbClip(Clip):
    def __init__(self, dataset: JhmdbDataset, index: int) -> None:
        key = dataset.keys[index]
        self._keypoints = read_joint_positions(dataset.joint_file(key))
        num_frames = len(self._keypoints)
        label = int(dataset.labels[index])
        super().__init__(clip_id=key.split("/", 1)[1], label=label, label_name=dataset.classes[label],
                         num_frames=num_frames, fps=FPS, action_start=0, action_end=num_frames)
        self.video_path = dataset.videos.get(key)
        self._root = dataset.root

    def frames(self) -> np.ndarray:
        if self.video_path is None:
            raise DatasetError(f"Clip {self.clip_id!r} of {self._root} has no video: put JHMDB's videos in "
                               f"{' or '.join(str(self._root / d) for d in VIDEO_DIRS)}/<class>/<video>.avi.")
        return fit_length(read_video(self.video_path), self.num_frames, self.video_path)

    @property
    def keypoints(self) -> np.ndarray:
        return self._keypoints.copy()

    @property
    def noisy_keypoints(self) -> np.ndarray:
        return self._keypoints.copy()


class JhmdbDataset(IndexedDataset):
    people = 1
    joint_names = JOINT_NAMES
    coords = 2
    units = UNITS
    channels = ("x", "y", "visibility")
    recorded_visibility = False
    fps = FPS

    def __init__(self, root: Path) -> None:
        self.root = root
        splits = split_files_dir(root, ("splits",))
        classes, folds = read_split_files(splits)
        self.keys = sorted({key for roles in folds.values() for key in roles})
        missing = [k for k in self.keys if not self.joint_file(k).is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise DatasetError(f"{root}: {len(missing)} videos in {splits} have no joint_positions/<class>/<video>/"
                               f"joint_positions.mat: {shown}.")
        video_dir = next((root / d for d in VIDEO_DIRS if (root / d).is_dir()), None)
        self.videos = {} if video_dir is None else {
            f"{c.name}/{f.stem}": f for c in video_dir.iterdir() if c.is_dir() for f in c.iterdir() if is_video(f)}
        self.modalities = ("frames", "keypoints") if video_dir is not None else ("keypoints",)
        self.source = f"JHMDB ({root})"
        self.protocol = "official splits/<class>_test_split<N>.txt (1 train, 2 test) as foldN"
        labels = np.array([classes.index(k.split("/", 1)[0]) for k in self.keys])
        super().__init__(classes, labels, {fold: np.array([r.get(k, UNUSED) for k in self.keys])
                                           for fold, r in folds.items()})

    def joint_file(self, key: str) -> Path:
        return self.root / "joint_positions" / key / "joint_positions.mat"

    def _clip(self, index: int) -> JhmdbClip:
        return JhmdbClip(self, index)

    def __repr__(self) -> str:
        return f"JhmdbDataset({str(self.root)!r}, {len(self.keys)} clips, {len(self.classes)} classes)"


def probe(path: Path) -> bool:
    return path.is_dir() and (path / "joint_positions").is_dir() and split_files_dir(path, ("splits",)) is not None


def load(path: Path) -> JhmdbDataset:
    return JhmdbDataset(path)
