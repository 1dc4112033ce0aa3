"""Any dataset with keypoints -> an edgeact skeleton file (``edgeact data convert``).

The clips' ``keypoints`` are written one at a time (memory holds one sequence), with their
labels, ids, subjects and views, and the protocol: the chosen fold (or the dataset's single
protocol) as the ``split`` array, train and val clips as ``train``, clips the protocol does not
use left out; or, where no fold is chosen and the folds partition the clips (each tested in
exactly one, as in cross-validation), the ``fold`` array. Reading the file back carves ``val``
from ``train`` as for any skeleton file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import numpy as np

from edgeact._version import __version__
from edgeact.data.dataset import Clip, Dataset, IndexedDataset
from edgeact.data.protocol import TEST, TRAIN, UNUSED, VAL, fold_argument
from edgeact.data.skeleton_npz import COORDINATES, VISIBILITY, write_skeleton_npz
from edgeact.errors import DatasetError, InputError


def convert(dataset: Dataset, out: str | Path, *, name: str, overwrite: bool = False,
            progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write ``dataset``'s keypoints to the skeleton file ``out``; ``name`` (its path) is for messages."""
    out = Path(out)
    if "keypoints" not in dataset.modalities:
        raise DatasetError(
            f"{name} is a video dataset without keypoints ({getattr(dataset, 'source', type(dataset).__name__)}), so "
            "it cannot become a skeleton file: conversion needs keypoints, from a skeleton source or estimated from "
            "the frames by a pose front end first. Train a frames model on it directly: edgeact train --data "
            f"{name}#FOLD."
        )
    if not isinstance(dataset, IndexedDataset):
        raise DatasetError(f"{name} ({type(dataset).__name__}) has no protocol to write; convert reads datasets whose "
                           "clips have train/test roles (NTU, JHMDB, skeleton files).")
    if out.suffix != ".npz":
        raise InputError(f"The output must be a .npz file; got {out}.")
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} already exists; pass overwrite=True (edgeact data convert --overwrite) "
                           "to replace it.")
    keep, protocol_arrays, written = _protocol(dataset, name)
    clips = [dataset.clip(int(i)) for i in keep]
    if not clips:
        raise DatasetError(f"{name} has no clips to write under its protocol.")
    return write_skeleton_npz(
        out, _keypoints(clips, progress), lengths=[c.num_frames for c in clips], people=dataset.people,
        labels=[c.label for c in clips], classes=dataset.classes, joint_names=dataset.joint_names,
        channels=COORDINATES[: dataset.coords] + (VISIBILITY,), units=dataset.units,
        fps=getattr(dataset, "fps", None) or clips[0].fps, **protocol_arrays,
        subject=[getattr(c, "subject", -1) for c in clips], view=[getattr(c, "view", -1) for c in clips],
        seq_id=[c.clip_id for c in clips],
        source=f"{getattr(dataset, 'source', name)}; converted by edgeact {__version__}",
        protocol=getattr(dataset, "protocol", "") + (f" ({written})" if written else ""),
    )


def _keypoints(clips: list[Clip], progress: Optional[Callable[[int, int], None]]) -> Iterator[np.ndarray]:
    for done, clip in enumerate(clips, 1):
        yield clip.keypoints
        if progress is not None:
            progress(done, len(clips))


def _protocol(dataset: IndexedDataset, name: str) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """(clip numbers to write, the split or fold array, a note when one fold of several is written)."""
    fold = dataset.fold if dataset.folds else None
    if fold is not None or not dataset.folds:
        role = dataset.roles[fold]
        keep = np.flatnonzero(role != UNUSED)
        split = np.where(role[keep] == TEST, "test", "train")
        return keep, {"split": split}, f"{fold} written as the split array" if fold else ""
    roles = np.stack([dataset.roles[f] for f in dataset.folds])  # [folds, clips]
    numbers = [f.removeprefix("fold") for f in dataset.folds]
    partition = ((roles == TEST).sum(axis=0) == 1).all() and np.isin(roles, [TRAIN, VAL, TEST]).all()
    if not (partition and all(n.isdigit() for n in numbers)):
        first = dataset.folds[0]
        raise InputError(
            f"{name} has the folds {', '.join(dataset.folds)}, which do not each test a separate part of its clips, so "
            f"they cannot be written as one fold array; choose the fold to write as the split array: --fold "
            f"{first.removeprefix('fold')} (or {name}#{first}; open_dataset(path, fold={fold_argument(first)}))."
        )
    fold_of_clip = np.array(numbers, np.int64)[np.argmax(roles == TEST, axis=0)]
    return np.arange(len(dataset)), {"fold": fold_of_clip}, ""
