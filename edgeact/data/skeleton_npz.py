"""edgeact's skeleton format: recorded joints of many sequences in one flat ``.npz``
(docs/dataset.md, "Skeleton files"; the layout of the team's ../shared/datasets)::

    joints       float [sum T, P, J, C]  every sequence's frames, concatenated along time;
                                         C = coordinates x, y[, z], plus visibility last if recorded
    offsets      int   [N + 1]           sequence i is joints[offsets[i]:offsets[i + 1]]
    label        int   [N]               indexes classes (str [K])
    split        str   [N] train|test    -- or --  fold  int [N]  (the fold a sequence is tested in)
    joint_names  str   [J];  channels str [C];  units str;  fps float
    subject, view int [N] (-1: unknown), seq_id str [N], source str, protocol str   (optional)

Reading needs no pickle. Metadata are read when the file is opened; the joints on the first
keypoint access (then kept in memory, float32 with a visibility channel).
:func:`write_skeleton_npz` writes the format, streaming one sequence at a time.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from edgeact.data.atomic import atomic_file
from edgeact.data.dataset import Clip, IndexedDataset
from edgeact.data.protocol import TEST, TRAIN
from edgeact.errors import DatasetError, InputError

REQUIRED = ("joints", "offsets", "label", "classes", "joint_names", "channels", "units", "fps")
PER_SEQUENCE = ("label", "split", "fold", "subject", "view", "seq_id")  # one entry per sequence
COORDINATES = ("x", "y", "z")
VISIBILITY = "visibility"


class SkeletonClip(Clip):
    """One recorded sequence; ``keypoints`` and ``noisy_keypoints`` are both the recording (a
    sensor's or an annotator's joints are already what a pose front end would report)."""

    def __init__(self, dataset: SkeletonDataset, index: int) -> None:
        num_frames = int(dataset.offsets[index + 1] - dataset.offsets[index])
        label = int(dataset.labels[index])
        super().__init__(
            clip_id=str(dataset.seq_id[index]), label=label, label_name=dataset.classes[label],
            num_frames=num_frames, fps=dataset.fps, action_start=0, action_end=num_frames,
        )  # fmt: skip
        self.subject = int(dataset.subject[index])  # -1: unknown
        self.view = int(dataset.view[index])
        self._dataset = dataset
        self._index = index

    def frames(self) -> np.ndarray:
        raise DatasetError(
            f"Clip {self.clip_id!r} of {self._dataset.path} has no video: a skeleton dataset holds keypoints only, "
            "so train a model whose inputs are [keypoints]."
        )

    @property
    def keypoints(self) -> np.ndarray:
        """float32 [T, P, J, coords + 1]: the recorded coordinates and visibility (see the dataset)."""
        return self._dataset.sequence(self._index)

    @property
    def noisy_keypoints(self) -> np.ndarray:
        return self._dataset.sequence(self._index)


class SkeletonDataset(IndexedDataset):
    """An edgeact skeleton ``.npz``: a ``split`` array gives the splits train/val/test, a ``fold``
    array the folds ``fold<k>`` (k as recorded), ``val`` carved from train (edgeact.data.protocol)."""

    modalities = ("keypoints",)

    def __init__(self, path: Path) -> None:
        self.path = path
        meta, joints_shape = _read_metadata(path)
        frames, self.people, num_joints, num_channels = joints_shape
        self.recorded_channels = _channels(path, meta["channels"], num_channels)
        self.recorded_visibility = self.recorded_channels[-1] == VISIBILITY
        self.coords = num_channels - self.recorded_visibility
        self.channels = COORDINATES[: self.coords] + (VISIBILITY,)  # of Clip.keypoints
        self.joint_names = tuple(_strings(path, meta, "joint_names", num_joints, "joints has"))
        classes = _strings(path, meta, "classes", None, "")
        if len(set(classes)) != len(classes) or not classes:
            raise DatasetError(f"{path}: classes must be distinct names, at least one; got {classes}.")
        labels = _per_sequence_ints(path, meta, "label")
        num = len(labels)
        self.offsets = _offsets(path, meta["offsets"], num, frames)
        bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
        if len(bad):
            raise DatasetError(f"{path}: label {labels[bad[0]]} of sequence {bad[0]} is outside 0..{len(classes) - 1} "
                               f"(classes has {len(classes)} names).")
        for key in PER_SEQUENCE:
            if key in meta and len(np.atleast_1d(meta[key])) != num:
                raise DatasetError(f"{path}: {key} has {len(np.atleast_1d(meta[key]))} entries but there are "
                                   f"{num} sequences (label has {num}).")
        self.subject = _per_sequence_ints(path, meta, "subject") if "subject" in meta else np.full(num, -1)
        self.view = _per_sequence_ints(path, meta, "view") if "view" in meta else np.full(num, -1)
        self.seq_id = (_strings(path, meta, "seq_id", num, "there are") if "seq_id" in meta
                       else [f"{i:06d}" for i in range(num)])
        if len(set(self.seq_id)) != num:
            repeated = next(s for i, s in enumerate(self.seq_id) if s in self.seq_id[:i])
            raise DatasetError(f"{path}: seq_id {repeated!r} appears more than once; sequence ids must be unique.")
        self.units = _text(path, meta, "units")
        self.fps = _fps(path, meta["fps"])
        self.source = _text(path, meta, "source") if "source" in meta else ""
        self.protocol = _text(path, meta, "protocol") if "protocol" in meta else ""
        super().__init__(classes, labels, _roles(path, meta))

    def sequence(self, index: int) -> np.ndarray:
        """Sequence ``index`` as float32 [T, P, J, coords + 1], a fresh copy."""
        return self._joints[self.offsets[index]:self.offsets[index + 1]].copy()

    def _clip(self, index: int) -> SkeletonClip:
        return SkeletonClip(self, index)

    @cached_property
    def _joints(self) -> np.ndarray:
        """All joints, float32, visibility appended where not recorded: 1, or 0 where a coordinate
        is NaN (a missing joint). NaN coordinates are allowed only where visibility is 0."""
        raw = _load(self.path, "joints")
        if raw.dtype.kind != "f":
            raise DatasetError(f"{self.path}: joints must be a float array; got {raw.dtype}.")
        joints = raw.astype(np.float32, copy=False)
        coords = joints[..., : self.coords]
        if self.recorded_visibility:
            visibility = joints[..., self.coords]
            self._check(~np.isfinite(visibility) | (visibility < 0),
                        "has a visibility that is NaN, inf or negative")
            self._check(~np.isfinite(coords).all(axis=-1) & (visibility > 0),
                        "has NaN or inf coordinates with visibility > 0; give missing joints visibility 0")
            return joints
        self._check(np.isinf(coords).any(axis=-1), "has inf coordinates")
        visible = np.isfinite(coords).all(axis=-1, keepdims=True).astype(np.float32)
        return np.concatenate([coords, visible], axis=-1)

    def _check(self, bad: np.ndarray, what: str) -> None:
        if bad.any():
            row, person, joint = np.argwhere(bad)[0]
            i = int(np.searchsorted(self.offsets, row, side="right")) - 1
            raise DatasetError(
                f"{self.path}: joints {what}: sequence {i} ({self.seq_id[i]!r}), frame {row - self.offsets[i]}, "
                f"person {person}, joint {joint} ({self.joint_names[joint]})."
            )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self._indices[s])}" for s in self._indices)
        return f"SkeletonDataset({str(self.path)!r}, {len(self.classes)} classes, {sizes})"


def _read_metadata(path: Path) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """Every array but joints, and the shape of joints (read from its header, not loaded)."""
    try:
        with np.load(path) as npz:
            missing = [k for k in REQUIRED if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"{path} is not an edgeact skeleton file: it lacks the arrays {', '.join(missing)} "
                    "(see docs/dataset.md, \"Skeleton files\")."
                )
            meta = {k: npz[k] for k in npz.files if k != "joints"}
            with npz.zip.open("joints.npy") as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, _ = read_header(f)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(f"Cannot read {path}: {err}.") from err
    if len(shape) != 4:
        raise DatasetError(f"{path}: joints must be [frames, people, joints, channels]; got shape {list(shape)}.")
    return meta, shape


def _load(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path) as npz:
            return npz[key]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(f"Cannot read {path}: {err}.") from err


def _roles(path: Path, meta: dict[str, np.ndarray]) -> dict[str | None, np.ndarray]:
    """A split array -> one protocol; a fold array -> fold<k> tests the sequences of fold k."""
    if ("split" in meta) == ("fold" in meta):
        has = "both a split and a fold array; keep one" if "split" in meta else (
            "neither a split array (train or test per sequence) nor a fold array (an integer per sequence); "
            "it needs one")
        raise DatasetError(f"{path} has {has}.")
    if "split" in meta:
        split = np.asarray(meta["split"])
        bad = np.flatnonzero(~np.isin(split, ["train", "test"]))
        if len(bad):
            raise DatasetError(f"{path}: split must be 'train' or 'test' for every sequence; sequence {bad[0]} has "
                               f"{split[bad[0]].item()!r}.")
        return {None: np.where(split == "test", TEST, TRAIN)}
    fold = _per_sequence_ints(path, meta, "fold")
    return {f"fold{k}": np.where(fold == k, TEST, TRAIN) for k in np.unique(fold).tolist()}


def _channels(path: Path, value: np.ndarray, count: int) -> tuple[str, ...]:
    names = tuple(str(c) for c in np.atleast_1d(value)) if value.dtype.kind == "U" else ()
    coords = count - (names[-1:] == (VISIBILITY,))
    if len(names) != count or coords not in (2, 3) or names[:coords] != COORDINATES[:coords]:
        raise DatasetError(f"{path}: channels must name the {count} channels of joints: x, y[, z], then visibility "
                           f"where recorded; got {list(names) if names else value.tolist()}.")
    return names


def _strings(path: Path, meta: dict[str, np.ndarray], key: str, count: int | None, of: str) -> list[str]:
    value = meta[key]
    if value.dtype.kind != "U" or value.ndim != 1:
        raise DatasetError(f"{path}: {key} must be a 1-D array of strings; got {value.dtype}{list(value.shape)}.")
    if count is not None and len(value) != count:
        raise DatasetError(f"{path}: {key} has {len(value)} entries but {of} {count}.")
    return [str(v) for v in value]


def _per_sequence_ints(path: Path, meta: dict[str, np.ndarray], key: str) -> np.ndarray:
    value = meta[key]
    if value.dtype.kind not in "iu" or value.ndim != 1:
        raise DatasetError(f"{path}: {key} must be a 1-D integer array; got {value.dtype}{list(value.shape)}.")
    return value.astype(np.int64)


def _offsets(path: Path, value: np.ndarray, num: int, frames: int) -> np.ndarray:
    if value.dtype.kind not in "iu" or value.shape != (num + 1,):
        raise DatasetError(f"{path}: offsets must be integers [{num + 1}] (one more than the {num} sequences); "
                           f"got {value.dtype}{list(value.shape)}.")
    offsets = value.astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != frames:
        raise DatasetError(f"{path}: offsets must run from 0 to {frames}, the frames in joints; "
                           f"got {offsets[0]}..{offsets[-1]}.")
    empty = np.flatnonzero(np.diff(offsets) <= 0)
    if len(empty):
        raise DatasetError(f"{path}: sequence {empty[0]} has no frames (offsets {offsets[empty[0]]} then "
                           f"{offsets[empty[0] + 1]}); every sequence needs at least one.")
    return offsets


def _text(path: Path, meta: dict[str, np.ndarray], key: str) -> str:
    value = meta[key]
    if value.dtype.kind != "U" or value.ndim != 0:
        raise DatasetError(f"{path}: {key} must be one string; got {value.dtype}{list(value.shape)}.")
    return str(value)


def _fps(path: Path, value: np.ndarray) -> float:
    if value.ndim != 0 or value.dtype.kind not in "iuf" or not (np.isfinite(value) and value > 0):
        raise DatasetError(f"{path}: fps must be one positive number; got {value.tolist()!r}.")
    return float(value)


def _skeleton_files(directory: Path) -> list[Path]:
    """The .npz files directly in ``directory`` that hold joints and offsets."""
    found = []
    for candidate in sorted(directory.glob("*.npz")):
        try:
            with zipfile.ZipFile(candidate) as zf:
                names = set(zf.namelist())
        except (OSError, zipfile.BadZipFile):
            continue
        if {"joints.npy", "offsets.npy"} <= names:
            found.append(candidate)
    return found


def probe(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".npz"
    return bool(_skeleton_files(path))


def load(path: Path) -> SkeletonDataset:
    if path.is_dir():
        files = _skeleton_files(path)
        if len(files) > 1:
            raise DatasetError(f"{path} holds {len(files)} skeleton files ({', '.join(f.name for f in files)}); "
                               f"open one of them, e.g. {files[0]}.")
        path = files[0]
    return SkeletonDataset(path)


def write_skeleton_npz(
    path: str | Path, sequences: Iterable[np.ndarray], *, lengths: Sequence[int], people: int,
    labels: Sequence[int], classes: Sequence[str], joint_names: Sequence[str], channels: Sequence[str], units: str,
    fps: float, split: Sequence[str] | None = None, fold: Sequence[int] | None = None,
    subject: Sequence[int] | None = None, view: Sequence[int] | None = None, seq_id: Sequence[str] | None = None,
    source: str = "", protocol: str = "",
) -> Path:
    """Write an edgeact skeleton file: ``sequences`` yields float arrays [lengths[i], people,
    len(joint_names), len(channels)], one at a time (only one is in memory), streamed into the
    ``joints`` member. Exactly one of ``split`` and ``fold``. The file is written beside ``path``,
    read back (metadata checks) and only then moved into place; on any error nothing is left."""
    path = Path(path)
    lengths = [int(n) for n in lengths]
    shape = (people, len(joint_names), len(channels))
    arrays = {
        "offsets": np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64),
        "label": np.asarray(labels, np.int64), "classes": np.asarray(classes, str),
        "joint_names": np.asarray(joint_names, str), "channels": np.asarray(channels, str),
        "units": np.asarray(units, str), "fps": np.asarray(float(fps)),
        "source": np.asarray(source, str), "protocol": np.asarray(protocol, str),
    }  # fmt: skip
    optional = {"split": (split, str), "fold": (fold, np.int64), "subject": (subject, np.int64),
                "view": (view, np.int64), "seq_id": (seq_id, str)}
    arrays |= {key: np.asarray(value, dtype) for key, (value, dtype) in optional.items() if value is not None}
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
              "shape": (sum(lengths), *shape)}
    with atomic_file(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("joints.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, header)
                written = 0
                for i, sequence in enumerate(sequences):
                    expected = (lengths[i] if i < len(lengths) else "?", *shape)
                    if i >= len(lengths) or np.shape(sequence) != expected:
                        raise InputError(f"Sequence {i} to write has shape {list(np.shape(sequence))}; expected "
                                         f"{list(expected)} (lengths[{i}], people, joints, channels).")
                    f.write(np.ascontiguousarray(sequence, "<f4").tobytes())
                    written += 1
                if written != len(lengths):
                    raise InputError(f"{written} sequences were given to write but lengths names {len(lengths)}.")
            for key, value in arrays.items():
                with zf.open(f"{key}.npy", "w") as f:
                    np.lib.format.write_array(f, value, allow_pickle=False)
        try:  # what readers will see: refuse to publish a file the reader rejects
            SkeletonDataset(tmp)
        except DatasetError as err:  # named by its destination, not the temporary name
            raise DatasetError(str(err).replace(str(tmp), str(path))) from None
    return path
