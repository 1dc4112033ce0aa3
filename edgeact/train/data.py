"""Training batches from dataset clips: augmented samples, padding, length buckets.

The clip cache (:class:`~edgeact.data.clip_store.ClipStore`) and frame sampling
(:func:`~edgeact.data.sampling.sample_indices`) are torch-free and live in :mod:`edgeact.data`.
Inputs always go through :mod:`edgeact.preprocess` with the student's :class:`ModelSpec`, the
same functions and spec every backend uses, so training and deployment see the same numbers.
Clips differ in length; a batch is padded to its longest clip by repeating the last step, with
a ``mask`` [B,T] of the real steps. Batches hold clips of similar length so padding stays small. A streaming (causal) model runs the padded batch as is; an offline model (a teacher
that reads the future) runs each length separately (:func:`forward_exact`), so padding never
reaches its real steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, Sampler

from edgeact.data.clip_store import ClipStore
from edgeact.data.sampling import Sampling, sample_indices
from edgeact.models import StreamingModel
from edgeact.preprocess import preprocess_frames
from edgeact.spec import ModelSpec
from edgeact.train.augment import ClipAugmenter


class TrainClips(Dataset):
    """Augmented training samples, indexed by (epoch, clip) (the batch sampler yields those, so
    persistent workers need no epoch updates). Every random choice comes from (seed, stream,
    epoch, clip): a run is reproducible and a resumed run sees what an uninterrupted one would."""

    def __init__(self, store: ClipStore, spec: ModelSpec, sampling: Sampling, *, labeled: np.ndarray,
                 augmenter: Optional[ClipAugmenter], seed: int, stream: int):
        self.store, self.spec, self.sampling = store, spec, sampling
        self.labeled = labeled
        self.augmenter = augmenter
        self.seed, self.stream = seed, stream

    def __len__(self) -> int:
        return len(self.store)

    def lengths(self) -> np.ndarray:
        """Steps per clip without jitter (the bucketing key)."""
        return np.array([len(sample_indices(int(n), self.sampling)) for n in self.store.num_frames])

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, i = key
        rng = np.random.default_rng([self.seed, self.stream, epoch, i])
        indices = sample_indices(int(self.store.num_frames[i]), self.sampling, train=True, rng=rng)
        frames = self.store.frames(i)[indices] if self.spec.frames is not None else None
        keypoints = self.store.keypoints(i)[indices] if self.spec.keypoints is not None else None
        if self.augmenter is not None:
            frames, keypoints = self.augmenter(rng, frames, keypoints)
        sample = {"label": int(self.store.labels[i]), "labeled": bool(self.labeled[i]), "length": len(indices)}
        if frames is not None:
            sample["frames"] = torch.from_numpy(preprocess_frames(frames, self.spec.frames))  # [T,3,h,w]
        if keypoints is not None:
            sample["keypoints"] = torch.from_numpy(np.ascontiguousarray(keypoints))  # [T,P,J,C+1]
        return sample


def pad_steps(sequences: Sequence[Tensor]) -> Tensor:
    """[T_i, ...] tensors -> [B, max T, ...], each padded by repeating its last step."""
    T = max(len(s) for s in sequences)
    return torch.stack([s if len(s) == T else torch.cat((s, s[-1:].expand(T - len(s), *s.shape[1:])))
                        for s in sequences])


def collate(samples: list[dict]) -> dict[str, Tensor]:
    lengths = torch.tensor([s["length"] for s in samples])
    batch = {"labels": torch.tensor([s["label"] for s in samples]),
             "labeled": torch.tensor([s["labeled"] for s in samples]),
             "lengths": lengths,
             "mask": torch.arange(int(lengths.max()))[None] < lengths[:, None]}  # [B,T]
    for key in ("frames", "keypoints"):
        if key in samples[0]:
            batch[key] = pad_steps([s[key] for s in samples])
    return batch


class BucketBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (epoch, clip) keys, clips of similar length together.

    Each epoch the clips (``subset`` of them, default all) are shuffled and sharded across ranks
    by a DistributedSampler (one rank without torchrun); the shard is sorted by length (ties in
    shuffled order) and cut into batches, and the batches are shuffled. Every rank gets the same
    number of batches (DistributedSampler pads the shards), as DDP needs. Similar lengths keep
    padding small and give an offline teacher few length groups to run (see forward_exact).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, *, seed: int, num_replicas: int = 1, rank: int = 0,
                 subset: Optional[np.ndarray] = None):
        self.subset = np.arange(len(lengths)) if subset is None else np.asarray(subset)
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.sampler = DistributedSampler(range(len(self.subset)), num_replicas=num_replicas, rank=rank, shuffle=True,
                                          seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        clips = [int(self.subset[k]) for k in self.sampler]  # shuffled: a stable sort keeps ties random
        clips.sort(key=lambda i: self.lengths[i])
        batches = [[(self.epoch, i) for i in clips[j:j + self.batch_size]]
                   for j in range(0, len(clips), self.batch_size)]
        order = np.random.default_rng([self.seed, self.epoch, 1]).permutation(len(batches))
        return iter([batches[k] for k in order])

    def __len__(self) -> int:
        return math.ceil(self.sampler.num_samples / self.batch_size)


def choose_labeled(labels: np.ndarray, unlabeled_fraction: float, seed: int) -> np.ndarray:
    """bool [N]: which training clips keep their label. Per class, round(fraction * count) clips
    (leaving at least one per class) are unlabeled; the choice depends only on the seed."""
    labeled = np.ones(len(labels), bool)
    if unlabeled_fraction <= 0:
        return labeled
    rng = np.random.default_rng([seed, 2])
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = min(int(round(unlabeled_fraction * len(members))), len(members) - 1)
        labeled[rng.choice(members, size=count, replace=False)] = False
    return labeled


def forward_exact(model: StreamingModel, inputs: dict[str, Tensor], lengths: Tensor) -> dict[str, Tensor]:
    """forward_offline on a padded batch, exact on every real step.

    A streaming model is causal: the padded tail cannot change earlier steps, so one call does.
    An offline model (bidirectional head or shift, NetVLAD) reads the future, so each length
    group runs on its own; outputs past a clip's length are zeros.
    """
    if model.is_streamable or bool((lengths == lengths[0]).all()):
        return model.forward_offline(inputs)
    B, T = lengths.shape[0], next(iter(inputs.values())).shape[1]
    out: dict[str, Tensor] = {}
    for length in torch.unique(lengths).tolist():
        rows = (lengths == length).nonzero().squeeze(1)
        part = model.forward_offline({k: v[rows, :length] for k, v in inputs.items()})
        for key, value in part.items():
            if key not in out:
                out[key] = value.new_zeros(B, T, *value.shape[2:])
            out[key] = out[key].index_put((rows,), torch.cat(
                (value, value.new_zeros(len(rows), T - length, *value.shape[2:])), dim=1))
    return out
