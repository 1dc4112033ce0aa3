"""The one dataset interface every source implements, and :func:`open_dataset`.

A :class:`Dataset` names its classes and hands out splits; a split is a lazy sequence of
:class:`Clip` objects, cheap to create, that decode video or load keypoints only when asked.
Adapters (the synthetic generator's format today; UCF-101, NTU, ... later) subclass both and
add one row to :data:`FORMATS`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from edgeact.errors import DatasetError, InputError

SPLITS = ("train", "val", "test")


class Clip(ABC):
    """One labelled clip. Metadata are plain attributes; pixels and keypoints load on demand."""

    def __init__(
        self, *, clip_id: str, label: int, label_name: str, num_frames: int, fps: float,
        action_start: int, action_end: int,
    ) -> None:  # fmt: skip
        self.clip_id = clip_id
        self.label = label
        self.label_name = label_name
        self.num_frames = num_frames
        self.fps = fps
        self.action_start = action_start  # first frame of the action
        self.action_end = action_end  # one past its last frame: frames()[action_start:action_end]

    @abstractmethod
    def frames(self) -> np.ndarray:
        """Decode the clip: uint8 [T,H,W,3], BGR as OpenCV gives it, T == num_frames."""

    @property
    @abstractmethod
    def keypoints(self) -> np.ndarray:
        """Ground-truth 2D keypoints, float32 [T,P,J,3] = (x, y, visibility) in frame pixels."""

    @property
    @abstractmethod
    def noisy_keypoints(self) -> np.ndarray:
        """Keypoints as a pose estimator reports them, same layout as :attr:`keypoints`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.clip_id!r}, {self.label_name!r}, {self.num_frames} frames)"


class ClipList(Sequence[Clip]):
    """A lazy, indexable split: creates a clip object only when one is asked for."""

    def __init__(self, entries: Sequence[object], make: Callable[[object], Clip]) -> None:
        self._entries = entries
        self._make = make

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> Clip: ...
    @overload
    def __getitem__(self, index: slice) -> ClipList: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return ClipList(self._entries[index], self._make)
        return self._make(self._entries[index])

    def __iter__(self) -> Iterator[Clip]:
        return (self._make(e) for e in self._entries)


class Dataset(ABC):
    """A labelled video dataset. ``split()`` validates the name; ``_split_impl()`` serves it."""

    splits: tuple[str, ...] = SPLITS

    @property
    @abstractmethod
    def classes(self) -> list[str]:
        """Class names, indexed by :attr:`Clip.label`."""

    def split(self, name: str) -> ClipList:
        if name not in self.splits:
            raise InputError(f"Unknown split {name!r}; this dataset has the splits {', '.join(self.splits)}.")
        return self._split_impl(name)

    @abstractmethod
    def _split_impl(self, name: str) -> ClipList: ...


# On-disk formats open_dataset recognises: (what it looks for, module with probe() and load()).
FORMATS = (("manifest.json of an edgeact synthetic dataset", "edgeact.data.synth_dataset"),)


def open_dataset(path: str | Path) -> Dataset:
    """Open the dataset in directory ``path``, whichever supported format it is in."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"Dataset directory {root} does not exist or is not a directory.")
    for _, module_name in FORMATS:
        module = importlib.import_module(module_name)
        if module.probe(root):
            return module.load(root)
    looked_for = "; ".join(what for what, _ in FORMATS)
    raise DatasetError(f"{root} is not a dataset edgeact can read: looked for {looked_for}, found none.")
