"""UT-Interaction, segmented version: a folder of ``<seq>_<sample>_<class>.avi`` clips (one set,
e.g. ``segmented_set1``: sequences 1-10), class 0-5 = handshake, hugging, kicking, pointing,
punching, pushing. The standard protocol is leave-one-sequence-out: fold ``fold<s>`` tests
sequence ``s`` and trains on the others (10 folds per set). Video only.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgeact.data.protocol import TEST, TRAIN
from edgeact.data.video_dataset import VideoDataset, VideoEntry

CLASSES = ("handshake", "hugging", "kicking", "pointing", "punching", "pushing")
CLIP_NAME = re.compile(r"^(?P<seq>\d+)_(?P<sample>\d+)_(?P<cls>[0-5])\.avi$", re.IGNORECASE)
FPS = 30.0


def _clips(path: Path) -> list[tuple[Path, re.Match]]:
    return [(f, m) for f in sorted(path.iterdir()) if f.is_file() and (m := CLIP_NAME.match(f.name))]


def probe(path: Path) -> bool:
    return path.is_dir() and bool(_clips(path))


def load(path: Path) -> VideoDataset:
    clips = sorted(_clips(path), key=lambda c: (int(c[1]["seq"]), int(c[1]["sample"]), c[0].name))
    entries = [VideoEntry(f, int(m["cls"]), f.stem) for f, m in clips]
    sequence = np.array([int(m["seq"]) for _, m in clips])
    roles = {f"fold{s}": np.where(sequence == s, TEST, TRAIN) for s in np.unique(sequence).tolist()}
    return VideoDataset(path, entries, CLASSES, roles, source=f"UT-Interaction, segmented ({path})",
                        protocol="leave one sequence out: fold<s> tests sequence s", fps=FPS)
