"""Datasets for edgeact: one interface, the synthetic action generator, clip sampling.

``open_dataset(path)`` opens any supported dataset (a skeleton ``.npz``, NTU, JHMDB, UCF-101,
HMDB-51, UT-Interaction, a folder of class folders, the synthetic set; ``path#fold2`` or
``fold=2`` chooses a fold); splits and folds are in :mod:`edgeact.data.protocol`, conversion to
a skeleton file in :mod:`edgeact.data.convert`, the generator in :mod:`edgeact.data.synth`
(``generate()``), frame sampling (``Sampling``, frame-index helpers) in
:mod:`edgeact.data.sampling`, a split's clips as model inputs in :mod:`edgeact.data.clip_store`.
"""

from edgeact.data.dataset import FORMATS, SPLITS, Clip, ClipList, Dataset, Format, IndexedDataset, open_dataset
from edgeact.data.skeleton import JOINT_NAMES, LIMBS, NUM_JOINTS, NUM_PERSONS

__all__ = [
    "FORMATS", "JOINT_NAMES", "LIMBS", "NUM_JOINTS", "NUM_PERSONS", "SPLITS", "Clip", "ClipList", "Dataset", "Format",
    "IndexedDataset", "open_dataset",
]  # fmt: skip
