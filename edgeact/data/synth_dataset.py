"""Reading the on-disk format written by :mod:`edgeact.data.synth` (see docs/dataset.md)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from edgeact.data.dataset import SPLITS, Clip, ClipList, Dataset
from edgeact.data.skeleton import JOINT_NAMES, NUM_JOINTS, NUM_PERSONS
from edgeact.data.video import read_video
from edgeact.errors import DatasetError

MANIFEST = "manifest.json"
FORMAT = "edgeact-synth"
FORMAT_VERSION = 1


class SynthClip(Clip):
    def __init__(self, root: Path, entry: dict, classes: list[str], fps: float) -> None:
        super().__init__(
            clip_id=entry["id"],
            label=entry["label"],
            label_name=classes[entry["label"]],
            num_frames=entry["num_frames"],
            fps=fps,
            action_start=entry["action_start"],
            action_end=entry["action_end"],
        )
        self.divergence = entry["divergence"]  # first frame where the class can tell
        self.video_path = root / entry["video"]
        self.keypoints_path = root / entry["keypoints"]

    def frames(self) -> np.ndarray:
        frames = read_video(self.video_path)
        if len(frames) != self.num_frames:
            raise DatasetError(
                f"{self.video_path} decodes to {len(frames)} frames but the manifest says {self.num_frames}."
            )
        return frames

    @property
    def keypoints(self) -> np.ndarray:
        return self._arrays["keypoints"]

    @property
    def noisy_keypoints(self) -> np.ndarray:
        return self._arrays["noisy_keypoints"]

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        if not self.keypoints_path.is_file():
            raise DatasetError(f"Keypoint file {self.keypoints_path} does not exist.")
        with np.load(self.keypoints_path) as npz:
            arrays = {k: npz[k] for k in ("keypoints", "noisy_keypoints")}
        expected = (self.num_frames, NUM_PERSONS, NUM_JOINTS, 3)
        for name, arr in arrays.items():
            if arr.shape != expected or arr.dtype != np.float32:
                raise DatasetError(
                    f"{self.keypoints_path}: {name} is {arr.dtype}{list(arr.shape)}, expected float32{list(expected)}."
                )
        return arrays


class SynthDataset(Dataset):
    """A directory written by :func:`edgeact.data.synth.generate`."""

    people = NUM_PERSONS
    joint_names = tuple(JOINT_NAMES)
    coords = 2
    units = "pixels of the frame"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = _load_manifest(root)
        self.fps = float(self.manifest["fps"])
        self.frame_size = tuple(self.manifest["frame_size"])  # (height, width)
        self.groups = {name: list(members) for name, members in self.manifest["groups"].items()}

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    def _split_impl(self, name: str) -> ClipList:
        classes = self.classes
        return ClipList(self.manifest["splits"][name], lambda e: SynthClip(self.root, e, classes, self.fps))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.manifest['splits'][s])}" for s in self.splits)
        return f"SynthDataset({str(self.root)!r}, {len(self.classes)} classes, {sizes})"


def _load_manifest(root: Path) -> dict:
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"Cannot read {path}: {err}.") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path} is not an edgeact synthetic dataset manifest (no \"format\": \"{FORMAT}\").")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path} has format_version {manifest.get('format_version')!r}; "
            f"this edgeact reads version {FORMAT_VERSION}. Regenerate the dataset with this version."
        )
    missing = [k for k in ("classes", "groups", "fps", "frame_size", "splits") if k not in manifest]
    if "splits" in manifest:
        missing += [f"splits.{s}" for s in SPLITS if s not in manifest["splits"]]
    if missing:
        raise DatasetError(f"{path} lacks the fields {', '.join(missing)}.")
    return manifest


def probe(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def load(root: Path) -> SynthDataset:
    return SynthDataset(root)
