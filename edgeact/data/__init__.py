"""Datasets for edgeact: one interface, the synthetic action generator, clip sampling.

``open_dataset(dir)`` opens any supported dataset directory; the generator lives in
:mod:`edgeact.data.synth` (``generate()``), frame sampling (``Sampling``, frame-index helpers) in
:mod:`edgeact.data.sampling`, a split's clips as model inputs in :mod:`edgeact.data.clip_store`.
"""

from edgeact.data.dataset import SPLITS, Clip, ClipList, Dataset, open_dataset
from edgeact.data.skeleton import JOINT_NAMES, LIMBS, NUM_JOINTS, NUM_PERSONS

__all__ = [
    "JOINT_NAMES", "LIMBS", "NUM_JOINTS", "NUM_PERSONS", "SPLITS", "Clip", "ClipList", "Dataset", "open_dataset",
]  # fmt: skip
