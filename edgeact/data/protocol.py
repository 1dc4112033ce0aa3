"""Which clips each split holds under a dataset's evaluation protocol.

A protocol gives every clip a role: :data:`TRAIN`, :data:`TEST` or :data:`UNUSED` (the codes
HMDB-51's split files use), or :data:`VAL` where a source has its own validation clips. A dataset
has one protocol (plain splits ``train``/``val``/``test``) or several folds (``fold0:train``,
...: cross-validation folds, the official splits of UCF-101, NTU's ``xsub``/``xview``). Where
the source has no validation clips, ``val`` is carved from the training clips, stratified by
class, with a fixed fraction and seed (:func:`carve_validation`), so recipes choose epochs and
hyper-parameters without looking at ``test``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgeact.errors import InputError

SPLITS = ("train", "val", "test")
UNUSED, TRAIN, TEST, VAL = 0, 1, 2, 3
VAL_FRACTION = 0.1  # of each class's training clips
VAL_SEED = 0


def carve_validation(labels: np.ndarray, train: np.ndarray, *, fraction: float = VAL_FRACTION,
                     seed: int = VAL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split the clip indices ``train`` into (train, val), both sorted.

    Of each class's n training clips, round(fraction * n) go to val, drawn with ``seed`` (never
    all of them: a class keeps at least one training clip). The draw depends only on the labels
    of ``train``, in order, so the same file gives the same validation split on every machine.
    """
    rng = np.random.default_rng(seed)
    train = np.asarray(train, np.int64)
    val = []
    for c in np.unique(labels[train]):
        members = train[labels[train] == c]
        count = min(int(round(fraction * len(members))), len(members) - 1)
        val.append(rng.choice(members, size=count, replace=False))
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return np.setdiff1d(train, val), val


def split_indices(labels: np.ndarray, roles: Mapping[str | None, np.ndarray]) -> dict[str, np.ndarray]:
    """Split name -> sorted clip indices. ``roles`` maps a fold name (None: the dataset's single
    protocol) to each clip's role; a fold's splits are named ``"<fold>:train"`` and so on."""
    out = {}
    for fold, role in roles.items():
        role = np.asarray(role)
        if (role == VAL).any():
            train, val = np.flatnonzero(role == TRAIN), np.flatnonzero(role == VAL)
        else:
            train, val = carve_validation(labels, np.flatnonzero(role == TRAIN))
        prefix = "" if fold is None else f"{fold}:"
        out.update({prefix + "train": train, prefix + "val": val, prefix + "test": np.flatnonzero(role == TEST)})
    return out


def fold_name(fold: int | str) -> str:
    """``3`` or ``"fold3"`` -> ``"fold3"`` (folds are numbered as the dataset numbers them); a
    protocol name such as ``"xsub"`` stays as it is."""
    if isinstance(fold, (int, np.integer)) and not isinstance(fold, bool):
        return f"fold{int(fold)}"
    if isinstance(fold, str):
        return fold
    raise InputError(f"fold must be an int or a fold name like 'fold0' or 'xsub'; got {type(fold).__name__}.")


def resolve_fold(fold: int | str | None, folds: Sequence[str], where: str = "this dataset") -> str | None:
    """The fold name plain split names refer to, checked against the dataset's ``folds``;
    ``where`` names the dataset in messages."""
    if fold is None:
        return None
    name = fold_name(fold)
    if not folds:
        raise InputError(f"There are no folds in {where} (it has one train/test split); got fold {fold!r}.")
    if name not in folds:
        raise InputError(f"Unknown fold {fold!r}; {where} has the folds {', '.join(folds)}.")
    return name


def fold_argument(name: str) -> str:
    """How to choose fold ``name`` in open_dataset: ``fold=3`` for fold3, ``fold='xsub'`` otherwise."""
    number = name.removeprefix("fold")
    return number if name.startswith("fold") and number.isdigit() else repr(name)
