"""From dataset clips to model inputs: frame sampling, the clip cache, training batches.

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

from edgeact.data.dataset import Clip
from edgeact.data.sampling import segment_indices, stride_indices
from edgeact.models import StreamingModel
from edgeact.preprocess import preprocess_frames, preprocess_keypoints
from edgeact.spec import KeypointSpec, ModelSpec
from edgeact.train.augment import ClipAugmenter
from edgeact.train.config import Sampling


def sample_indices(num_frames: int, sampling: Sampling, *, train: bool = False,
                   rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Frame indices of the sequence a model sees. Training with ``jitter`` draws a random phase
    (stride) or a random frame per segment; evaluation is deterministic."""
    jitter = train and sampling.jitter
    if sampling.mode == "segments":
        return segment_indices(num_frames, sampling.segments, train=jitter, rng=rng)
    offset = int(rng.integers(0, min(sampling.stride, num_frames))) if jitter and sampling.stride > 1 else 0
    return offset + stride_indices(num_frames - offset, sampling.stride, sampling.max_steps)


def sampling_stride(sampling: Sampling) -> int:
    """The ``stride`` a checkpoint declares: the Predictor steps on every stride-th frame.
    Segment sampling has no fixed rate; its students are saved with stride 1."""
    return sampling.stride if sampling.mode == "stride" else 1


class ClipStore:
    """The clips of one split with their labels; decoded frames cached in memory when asked,
    keypoints preprocessed once per clip with ``keypoint_spec``."""

    def __init__(self, clips: Sequence[Clip], *, keypoint_view: str = "noisy_keypoints",
                 keypoint_spec: Optional[KeypointSpec] = None, cache_frames: bool = False):
        self.clips = list(clips)  # clip objects keep their own loaded keypoint arrays
        self.labels = np.array([c.label for c in self.clips], np.int64)
        self.num_frames = np.array([c.num_frames for c in self.clips], np.int64)
        self.keypoint_view = keypoint_view
        self.keypoint_spec = keypoint_spec
        self.cache_frames = cache_frames
        self._frames: dict[int, np.ndarray] = {}
        self._keypoints: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def frames(self, i: int) -> np.ndarray:
        """uint8 [T,H,W,3] BGR, as decoded."""
        if i in self._frames:
            return self._frames[i]
        frames = self.clips[i].frames()
        if self.cache_frames:
            self._frames[i] = frames
        return frames

    def keypoints(self, i: int) -> np.ndarray:
        """float32 [T,P,J,C+1], every frame through preprocess_keypoints."""
        if i not in self._keypoints:
            raw = getattr(self.clips[i], self.keypoint_view)
            self._keypoints[i] = np.stack([preprocess_keypoints(kp, self.keypoint_spec) for kp in raw])
        return self._keypoints[i]

    def inputs(self, i: int, spec: ModelSpec, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The model inputs [T,...] of clip i at ``indices``, without augmentation."""
        out = {}
        if spec.frames is not None:
            out["frames"] = preprocess_frames(self.frames(i)[indices], spec.frames)
        if spec.keypoints is not None:
            out["keypoints"] = self.keypoints(i)[indices]
        return out


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
