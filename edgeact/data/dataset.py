"""The one dataset interface every source implements, and :func:`open_dataset`.

A :class:`Dataset` names its classes and hands out splits; a split is a lazy sequence of
:class:`Clip` objects, cheap to create, that decode video or load keypoints only when asked.
Adapters subclass both (most through :class:`IndexedDataset`, whose splits come from a
protocol, see :mod:`edgeact.data.protocol`) and add one row to :data:`FORMATS`.
"""

from __future__ import annotations

import difflib
import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from edgeact.data.protocol import SPLITS, fold_argument, fold_name, resolve_fold, split_indices
from edgeact.errors import DatasetError, InputError


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
    """A labelled dataset. ``split()`` validates the name; ``_split_impl()`` serves it.

    What the clips carry is plain metadata, so a config can be checked against it before
    training: ``modalities`` (``"frames"`` and/or ``"keypoints"``); for keypoints, ``people``,
    ``joint_names``, ``coords`` (2 or 3) and ``units`` as the source records them (None
    without keypoints). A dataset with several ``folds`` serves ``"<fold>:train"`` and so on;
    the plain names ``train``/``val``/``test`` refer to the chosen :attr:`fold`.
    """

    modalities: tuple[str, ...] = ("frames", "keypoints")
    people: int | None = None
    joint_names: tuple[str, ...] | None = None
    coords: int | None = None
    units: str | None = None
    folds: tuple[str, ...] = ()
    _fold: str | None = None

    @property
    @abstractmethod
    def classes(self) -> list[str]:
        """Class names, indexed by :attr:`Clip.label`."""

    @property
    def fold(self) -> str | None:
        """The fold the plain split names refer to (None: not chosen, or no folds)."""
        return self._fold

    @fold.setter
    def fold(self, fold: int | str | None) -> None:
        self._fold = resolve_fold(fold, self.folds)

    @property
    def splits(self) -> tuple[str, ...]:
        per_fold = tuple(f"{fold}:{split}" for fold in self.folds for split in SPLITS)
        return per_fold if self.folds and self.fold is None else SPLITS + per_fold

    def split(self, name: str) -> ClipList:
        if name in SPLITS and self.folds:
            if self.fold is None:
                first = self.folds[0]
                raise InputError(
                    f"Split {name!r} needs a fold: this dataset has the folds {', '.join(self.folds)}. Choose one "
                    f"with open_dataset(path, fold={fold_argument(first)}) or the "
                    f"path suffix '#{first}' (PATH#{first}), or ask for the split '{first}:{name}'."
                )
            name = f"{self.fold}:{name}"
        if name not in self.splits:
            raise InputError(f"Unknown split {name!r}; this dataset has the splits {', '.join(self.splits)}.")
        return self._split_impl(name)

    @abstractmethod
    def _split_impl(self, name: str) -> ClipList: ...


class IndexedDataset(Dataset):
    """Clips numbered 0..N-1, with splits from each clip's role under the protocol(s)
    (:func:`edgeact.data.protocol.split_indices`). Subclasses make clip ``i`` in :meth:`_clip`."""

    def __init__(self, classes: Sequence[str], labels: np.ndarray, roles: Mapping[str | None, np.ndarray]) -> None:
        self._classes = list(classes)
        self.labels = np.asarray(labels, np.int64)
        self.roles = {fold: np.asarray(role) for fold, role in roles.items()}  # edgeact.data.protocol codes
        self.folds = tuple(fold for fold in roles if fold is not None)
        self._indices = split_indices(self.labels, roles)

    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    def __len__(self) -> int:
        return len(self.labels)

    def clip(self, index: int) -> Clip:
        """Clip number ``index`` (0..len - 1), whatever its split."""
        if not 0 <= index < len(self.labels):
            raise InputError(f"Clip index {index} is outside 0..{len(self.labels) - 1}.")
        return self._clip(index)

    def indices(self, name: str) -> np.ndarray:
        """The clip numbers of split ``name`` (validated as :meth:`split` does)."""
        return np.asarray(self.split(name)._entries)

    def _split_impl(self, name: str) -> ClipList:
        return ClipList(self._indices[name].tolist(), self._clip)

    @abstractmethod
    def _clip(self, index: int) -> Clip: ...


@dataclass(frozen=True)
class Format:
    """An on-disk layout :func:`open_dataset` recognises: ``module`` has ``probe(path) -> bool``
    (does ``path``, a file or a directory, look like this format?) and ``load(path) -> Dataset``."""

    name: str
    looks_for: str  # for the message when no format matches
    module: str


FORMATS = (
    Format("synth", "manifest.json of an edgeact synthetic dataset", "edgeact.data.synth_dataset"),
    Format("skeleton", "an edgeact skeleton .npz file (or a directory holding exactly one)",
           "edgeact.data.skeleton_npz"),
    Format("ntu", "NTU RGB+D SsssCcccPpppRrrrAaaa.skeleton files (in nturgb+d_skeletons/ or the directory)",
           "edgeact.data.ntu"),
    Format("jhmdb", "JHMDB joint_positions/ and splits/<class>_test_split<N>.txt", "edgeact.data.jhmdb"),
    Format("ucf101", "UCF-101 classInd.txt (in ucfTrainTestlist/ or the directory)", "edgeact.data.ucf101"),
    Format("hmdb51", "HMDB-51 <class>_test_split<N>.txt files (in testTrainMulti_7030_splits/, splits/ or the "
           "directory)", "edgeact.data.hmdb51"),
    Format("ut-interaction", "UT-Interaction <seq>_<sample>_<class>.avi clips", "edgeact.data.ut_interaction"),
    Format("folder", "class folders of videos (or train/ and test/ folders of them)", "edgeact.data.video_folder"),
)

_FOLD_SUFFIX = re.compile(r"^(?P<path>.+)#(?P<fold>[A-Za-z][A-Za-z0-9_]*)$")


def open_dataset(path: str | Path, *, fold: int | str | None = None, format: str | None = None) -> Dataset:
    """Open the dataset at ``path`` (a directory, or a file such as a skeleton .npz).

    The format is recognised from what is there (the first row of :data:`FORMATS` whose probe
    accepts ``path``), or named by ``format`` (a row's name: "ntu", "ucf101", ...). ``fold``, or
    a ``#fold3`` / ``#xsub`` suffix on the path (how ``--data`` chooses one), picks the fold the
    plain split names refer to.
    """
    path, fold = _fold_from_suffix(Path(path), fold)
    if not path.exists():
        raise DatasetError(f"Dataset {path} does not exist.")
    formats = FORMATS if format is None else (format_named(format),)
    for fmt in formats:
        module = importlib.import_module(fmt.module)
        if module.probe(path):
            dataset = module.load(path)
            dataset._fold = resolve_fold(fold, dataset.folds, where=str(path))
            return dataset
    if format is not None:
        raise DatasetError(f"{path} is not in the {format} format: looked for {formats[0].looks_for}, found none.")
    raise DatasetError(
        f"{path} is not a dataset edgeact can read: it is in none of the layouts {', '.join(f.name for f in FORMATS)} "
        "(docs/dataset.md describes each; naming one with format= says what that one looks for)."
    )


def format_named(name: str) -> Format:
    """The :data:`FORMATS` row called ``name``."""
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    names = [f.name for f in FORMATS]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise InputError(f"Unknown dataset format {name!r}{hint} Valid formats: {', '.join(names)}.")


def _fold_from_suffix(path: Path, fold: int | str | None) -> tuple[Path, int | str | None]:
    """``DIR#fold3`` -> (DIR, "fold3"), ``DIR#xsub`` -> (DIR, "xsub"), unless a file or directory of
    that very name exists."""
    match = _FOLD_SUFFIX.match(str(path))
    if match is None or path.exists():
        return path, fold
    if fold is not None and fold_name(fold) != match["fold"]:
        raise InputError(f"{path} names {match['fold']} but fold={fold!r} was also given; choose one.")
    return Path(match["path"]), match["fold"]
