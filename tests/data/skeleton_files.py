"""Tiny files in edgeact's skeleton .npz layout (the layout of ../shared/datasets), written by
the tests with plain numpy so the reader is checked against the layout, not against itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("wave", "kick", "hug")
NUM_SEQUENCES = 24  # 8 per class; labels cycle 0, 1, 2


def skeleton_arrays(*, people: int = 1, joints: int = 3, coords: int = 2, visibility: bool = False,
                    folds: int | None = None) -> dict[str, np.ndarray]:
    """24 sequences of 3-7 frames. Sequence i, frame t, person p, joint j, coordinate c holds
    1000 i + 10 t + p + j / 10 + c / 100, so a test can tell which frames a clip returned.
    With ``split``: sequences 0-17 train, 18-23 test. With ``folds``: sequence i is in fold i % folds."""
    lengths = 3 + np.arange(NUM_SEQUENCES) % 5
    seq = np.repeat(np.arange(NUM_SEQUENCES), lengths)
    t = np.concatenate([np.arange(n) for n in lengths])
    value = (1000 * seq[:, None, None, None] + 10 * t[:, None, None, None]
             + np.arange(people)[None, :, None, None] + np.arange(joints)[None, None, :, None] / 10
             + np.arange(coords)[None, None, None, :] / 100)
    channels = ["x", "y", "z"][:coords]
    if visibility:
        value = np.concatenate([value, np.ones((*value.shape[:3], 1))], axis=-1)
        channels.append("visibility")
    arrays = {
        "joints": value.astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "label": (np.arange(NUM_SEQUENCES) % len(CLASSES)).astype(np.int64),
        "classes": np.array(CLASSES),
        "subject": (np.arange(NUM_SEQUENCES) // 6 + 1).astype(np.int64),
        "view": np.full(NUM_SEQUENCES, -1, np.int64),
        "seq_id": np.array([f"s{i:02d}" for i in range(NUM_SEQUENCES)]),
        "joint_names": np.array([f"joint{j}" for j in range(joints)]),
        "channels": np.array(channels),
        "units": np.array("pixels of the video frame"),
        "fps": np.array(25.0),
        "source": np.array("written by tests/data/skeleton_files.py"),
        "protocol": np.array("sequences 0-17 train, 18-23 test" if folds is None else f"{folds} folds"),
    }
    if folds is None:
        arrays["split"] = np.where(np.arange(NUM_SEQUENCES) < 18, "train", "test")
    else:
        arrays["fold"] = (np.arange(NUM_SEQUENCES) % folds).astype(np.int64)
    return arrays


def write_skeleton_file(path: Path, **kwargs) -> Path:
    """skeleton_arrays(**kwargs) saved to ``path``, the way the shared files were saved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **skeleton_arrays(**kwargs))
    return path
