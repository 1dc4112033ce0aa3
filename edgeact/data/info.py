"""A dataset summary as text (``edgeact data info PATH``): classes, clips per split and class,
clip lengths, and what the keypoints are (people, joints, coordinates, units)."""

from __future__ import annotations

import numpy as np

from edgeact.data.dataset import Dataset, IndexedDataset
from edgeact.data.protocol import SPLITS, VAL_FRACTION, VAL_SEED


def describe(dataset: Dataset, name: str) -> str:
    """The summary of ``dataset``; ``name`` (its path) heads it."""
    lines = [f"{name}: {type(dataset).__name__}, {len(dataset.classes)} classes"]
    for attribute in ("source", "protocol"):
        if getattr(dataset, attribute, ""):
            lines.append(f"{attribute}: {getattr(dataset, attribute)}")
    lines.append(f"inputs: {', '.join(dataset.modalities)}")
    if "keypoints" in dataset.modalities:
        lines += _keypoint_lines(dataset)
    if getattr(dataset, "fps", None):
        lines.append(f"fps: {dataset.fps:g}")
    if dataset.folds:
        first = dataset.folds[0]
        chosen = (f"the plain split names are {dataset.fold}" if dataset.fold else
                  f"none chosen: add #{first} to the path or --fold {first.removeprefix('fold')} for plain split names")
        lines.append(f"folds: {', '.join(dataset.folds)} ({chosen})")
    if isinstance(dataset, IndexedDataset):
        lines.append(f"val: {VAL_FRACTION:.0%} of each class's training clips, drawn with seed {VAL_SEED}")
    splits = _listed_splits(dataset)
    stats = {s: _split_stats(dataset, s) for s in splits}
    lines += ["", _table(["split", "clips", "frames min", "median", "mean", "max"],
                         [[s, len(labels), *_length_stats(lengths)] for s, (labels, lengths) in stats.items()])]
    columns = [s for s in splits if s in SPLITS] or [s for s in splits if s.endswith(":test")]
    counts = {s: np.bincount(stats[s][0], minlength=len(dataset.classes)) for s in columns}
    everything = sum(counts.values()) if columns[:3] == list(SPLITS) else None
    header = ["class", *columns] + (["all"] if everything is not None else [])
    rows = [[c, *(counts[s][k] for s in columns)] + ([everything[k]] if everything is not None else [])
            for k, c in enumerate(dataset.classes)]
    lines += ["", _table(header, rows)]
    return "\n".join(lines)


def _keypoint_lines(dataset: Dataset) -> list[str]:
    coords = ", ".join(("x", "y", "z")[: dataset.coords])
    visibility = ""
    if hasattr(dataset, "recorded_visibility"):
        visibility = (" (visibility recorded)" if dataset.recorded_visibility
                      else " (visibility not recorded: 1, or 0 where a coordinate is NaN)")
    return [
        f"keypoints: {dataset.people} {'person' if dataset.people == 1 else 'people'} x "
        f"{len(dataset.joint_names)} joints x ({coords}, visibility){visibility}",
        f"units: {dataset.units}",
        f"joints: {', '.join(dataset.joint_names)}",
    ]


def _listed_splits(dataset: Dataset) -> list[str]:
    """Every split once: a chosen fold's splits under their plain names."""
    return [s for s in dataset.splits if not (dataset.fold and s.startswith(f"{dataset.fold}:"))]


def _split_stats(dataset: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    clips = dataset.split(split)
    labels = np.array([c.label for c in clips], np.int64)
    lengths = np.array([c.num_frames for c in clips], np.int64)
    return labels, lengths


def _length_stats(lengths: np.ndarray) -> list[str]:
    if len(lengths) == 0:
        return ["-"] * 4
    return [str(lengths.min()), f"{np.median(lengths):g}", f"{lengths.mean():.1f}", str(lengths.max())]


def _table(header: list[str], rows: list[list[object]]) -> str:
    cells = [header] + [[str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
                     for row in cells)
