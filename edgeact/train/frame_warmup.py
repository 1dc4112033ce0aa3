"""Frame warm-up: train the RGB frame encoder as a per-frame classifier before the sequence stage.

A TSM network is normally initialised from ImageNet weights, then trained on clips. Where no such
weights exist (a new domain, or machines that cannot download them), a video model trained from
scratch learns its frame features slowly through the recurrent head and the per-step loss: on
the procedural set a TSM-MobileNetV2 + LSTM student stayed at chance after 3 epochs of 1680 clips,
while the same encoder trained on single frames separated the classes within a few epochs.

So this stage does what ImageNet pretraining would, on the training clips' own frames (as TSN
trains its 2D network per frame): frames from the part of each clip where the action shows
(``from_ratio`` of the clip on), augmented like clips, go through the encoder one at a time
(T = 1) into a linear classifier with cross-entropy. The classifier is dropped afterwards; the
sequence stage then starts from the warmed-up encoder.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from edgeact.data.clip_store import ClipStore
from edgeact.models.frame_encoder import FrameEncoder
from edgeact.train.augment import ClipAugmenter
from edgeact.train.config import FrameWarmup
from edgeact.preprocess import preprocess_frames
from edgeact.spec import FrameSpec

log = logging.getLogger("edgeact.train.epoch")  # a line per epoch, like the trainer's epoch lines


def frame_picks(store: ClipStore, clips: np.ndarray, cfg: FrameWarmup, rng: np.random.Generator) -> np.ndarray:
    """[N, 2] (clip, frame) pairs: ``cfg.frames_per_clip`` frames of each clip in ``clips``, drawn
    uniformly from ``cfg.from_ratio`` of the clip to its end, in random order."""
    picks = []
    for i in clips:
        n = int(store.num_frames[i])
        first = min(int(cfg.from_ratio * n), n - 1)
        picks += [(i, int(k)) for k in rng.integers(first, n, size=cfg.frames_per_clip)]
    picks = np.array(picks, np.int64).reshape(-1, 2)
    return picks[rng.permutation(len(picks))]


def frame_batch(store: ClipStore, picks: np.ndarray, spec: FrameSpec, augmenter: Optional[ClipAugmenter],
                rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """Preprocessed frames [N,1,3,h,w] (one-step clips) and their labels [N]."""
    frames = []
    for i, k in picks:
        frame = store.frames(int(i))[int(k):int(k) + 1]  # [1,H,W,3]
        if augmenter is not None:
            frame, _ = augmenter(rng, frame, None)
        frames.append(preprocess_frames(np.ascontiguousarray(frame), spec))
    x = torch.from_numpy(np.stack(frames))  # [N,1,3,h,w]
    return x, torch.from_numpy(store.labels[picks[:, 0]])


def _pooled(features: Tensor) -> Tensor:
    """Encoder output [N,1,D] (or [N,1,C,h,w] maps) -> [N,D]."""
    return features[:, 0].flatten(2).mean(-1) if features.dim() == 5 else features[:, 0]


def _accuracy(encoder: FrameEncoder, classifier: nn.Linear, store: ClipStore, cfg: FrameWarmup,
              spec: FrameSpec, seed: int) -> float:
    rng = np.random.default_rng([seed, 1])
    picks = frame_picks(store, np.arange(len(store)), cfg, rng)
    was_training = encoder.training
    encoder.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(picks), cfg.batch_size):
            x, y = frame_batch(store, picks[start:start + cfg.batch_size], spec, None, rng)
            correct += int((classifier(_pooled(encoder(x))).argmax(-1) == y).sum())
    encoder.train(was_training)
    return correct / max(len(picks), 1)


def warm_up_frames(encoder: FrameEncoder, num_classes: int, cfg: FrameWarmup, *, train: ClipStore,
                   clips: np.ndarray, val: Optional[ClipStore], spec: FrameSpec,
                   augmenter: Optional[ClipAugmenter], weight_decay: float, seed: int, label: str) -> list[dict]:
    """Train ``encoder`` in place on single labelled frames of ``train``'s ``clips``; returns one
    row per epoch (loss, train and validation frame accuracy, seconds)."""
    generator = torch.Generator().manual_seed(seed)
    dim = encoder.out_channels
    classifier = nn.Linear(dim, num_classes)
    with torch.no_grad():
        bound = 1.0 / dim**0.5
        classifier.weight.uniform_(-bound, bound, generator=generator)
        classifier.bias.zero_()
    params = list(encoder.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=weight_decay)
    steps = cfg.epochs * -(-len(clips) * cfg.frames_per_clip // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + np.cos(np.pi * min(step, steps) / max(steps, 1))))
    encoder.train()
    rows, started = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        rng = np.random.default_rng([seed, 0, epoch])
        picks = frame_picks(train, clips, cfg, rng)
        loss_sum = correct = 0.0
        for start in range(0, len(picks), cfg.batch_size):
            x, y = frame_batch(train, picks[start:start + cfg.batch_size], spec, augmenter, rng)
            logits = classifier(_pooled(encoder(x)))
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(-1) == y).sum())
        row = {"epoch": epoch + 1, "loss": loss_sum / len(picks), "train_accuracy": correct / len(picks)}
        if val is not None and len(val):
            row["val_accuracy"] = _accuracy(encoder, classifier, val, cfg, spec, seed)
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        log.info("%s frame warm-up %d/%d: loss=%.4f train_acc=%.3f%s %.1fs", label, epoch + 1, cfg.epochs,
                 row["loss"], row["train_accuracy"],
                 f" val_acc={row['val_accuracy']:.3f}" if "val_accuracy" in row else "", row["seconds"])
    return rows
