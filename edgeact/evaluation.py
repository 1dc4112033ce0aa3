"""Accuracy per observation ratio and its AUC, measured as deployment runs a model. Torch-free.

The prediction at ratio r is the model's output after ceil(r * T) steps of the sampled sequence
(:func:`edgeact.data.sampling.observation_cutoff`); the AUC is the mean accuracy over the ten
ratios 0.1 ... 1.0.

:func:`evaluate_stream` steps the clips one frame at a time through a Runner's stateless
``step`` (torch on a .pt, ONNX Runtime on an .onnx, ...), many clips as one batch of streams,
with the preprocessing the artifact's spec declares; :func:`evaluate_model` is ``edgeact eval``:
load an artifact's backend and evaluate it on a dataset split. Only a backend that needs
PyTorch (the torch backend of a .pt checkpoint) imports it. The offline counterpart for models
that cannot stream is :func:`edgeact.train.evaluate.evaluate_offline`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgeact.data.clip_store import ClipStore
from edgeact.data.sampling import KEYPOINT_VIEWS, Sampling, observation_cutoff, sample_indices
from edgeact.errors import DatasetError, InputError
from edgeact.spec import ModelSpec

RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def cutoff_steps(num_steps: int, ratios: Sequence[float] = RATIOS) -> np.ndarray:
    """Steps observed at each ratio: ceil(r * num_steps), clamped to [1, num_steps]."""
    return np.array([observation_cutoff(num_steps, r) for r in ratios], np.int64)


@dataclass
class Evaluation:
    logits: np.ndarray  # [N,R,K] after each ratio's cut-off
    labels: np.ndarray  # [N]
    classes: list[str]

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)  # [N,R]

    def metrics(self) -> dict:
        """{"ratios", "accuracy", "auc", "num_clips", "per_class": {name: {"accuracy", "auc", "num_clips"}}}."""
        correct = self.predictions == self.labels[:, None]  # [N,R]
        per_class = {}
        for c, name in enumerate(self.classes):
            rows = correct[self.labels == c]
            accuracy = rows.mean(0).tolist() if len(rows) else [None] * len(RATIOS)
            per_class[name] = {"accuracy": accuracy, "auc": float(np.mean(rows)) if len(rows) else None,
                               "num_clips": int(len(rows))}
        accuracy = correct.mean(0)
        return {"ratios": list(RATIOS), "accuracy": accuracy.tolist(), "auc": float(accuracy.mean()),
                "num_clips": int(len(self.labels)), "per_class": per_class}


def clip_batches(store: ClipStore, sampling: Sampling, batch_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each clip's frame indices, and batches of clip numbers of similar length."""
    steps = [sample_indices(int(n), sampling) for n in store.num_frames]
    order = np.argsort([len(s) for s in steps], kind="stable")
    return steps, [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def evaluate_stream(backend, store: ClipStore, classes: list[str], sampling: Sampling, *, batch_size: int = 32,
                    progress: Optional[Callable[[int], None]] = None) -> Evaluation:
    """Step every clip through ``backend`` (a Runner's stateless ``step``), ``batch_size`` streams at a time."""
    spec: ModelSpec = backend.spec
    steps, batches = clip_batches(store, sampling, batch_size)
    logits = np.zeros((len(store), len(RATIOS), spec.num_classes), np.float32)
    for rows in batches:
        clips = [store.inputs(i, spec, steps[i]) for i in rows]
        lengths = [len(steps[i]) for i in rows]
        names = list(clips[0])
        padded = {n: np.stack([np.concatenate((c[n], np.repeat(c[n][-1:], max(lengths) - len(c[n]), 0)))
                               for c in clips]) for n in names}  # [B,T,...], last step repeated
        cuts = [cutoff_steps(length) - 1 for length in lengths]  # [R] step read at each ratio, per clip
        wanted = [set(c.tolist()) for c in cuts]
        state = backend.init_state(len(rows))
        for t in range(max(lengths)):
            out, state = backend.step({n: np.ascontiguousarray(padded[n][:, t]) for n in names}, state)
            for j, i in enumerate(rows):
                if t in wanted[j]:
                    logits[i, cuts[j] == t] = out[j]
        if progress:
            progress(len(rows))
    return Evaluation(logits, store.labels, list(classes))


def evaluate_model(model: str | Path, data: str | Path, *, split: str = "test", backend: str = "auto",
                   device: str = "cpu", threads: Optional[int] = None, batch_size: int = 32,
                   segments: Optional[int] = None, keypoints: str = "noisy_keypoints",
                   progress: bool = False, per_clip: bool = False) -> dict:
    """Streaming evaluation of a deployable artifact on a dataset split (``edgeact eval``).

    Frames are sampled as the artifact declares (every ``spec.stride``-th frame, what the
    Predictor does) unless ``segments`` asks for M3's N-segment sampling. With ``per_clip``
    the metrics also list every clip: ``{"id", "label", "predictions": [class at each ratio]}``.
    """
    from edgeact.backends import load_backend
    from edgeact.data import open_dataset

    if keypoints not in KEYPOINT_VIEWS:
        raise InputError(f"keypoints must be one of {', '.join(KEYPOINT_VIEWS)}, got {keypoints!r}.")
    if segments is not None and segments < 1:
        raise InputError(f"segments must be at least 1, got {segments}.")
    dataset = open_dataset(data)
    started = time.perf_counter()
    runner = load_backend(model, backend=backend, device=device, threads=threads)
    try:
        spec = runner.spec
        if list(spec.classes) != list(dataset.classes):
            raise DatasetError(f"{model} predicts the classes {list(spec.classes)}, but {data} has "
                               f"{list(dataset.classes)}; evaluate a model on the dataset it was trained for.")
        sampling = Sampling(mode="segments", segments=segments) if segments else Sampling(stride=spec.stride)
        clips = dataset.split(split)
        store = ClipStore(clips, keypoint_view=keypoints, keypoint_spec=spec.keypoints)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(store), desc=f"eval {Path(model).name}", unit="clip", leave=False)
        try:
            result = evaluate_stream(runner, store, list(spec.classes), sampling, batch_size=batch_size,
                                     progress=bar.update if bar else None)
        finally:
            if bar:
                bar.close()
        metrics = result.metrics()
        metrics.update(model=str(model), data=str(data), split=split, backend=runner.name,
                       sampling=asdict(sampling), keypoints=keypoints, seconds=time.perf_counter() - started)
        if per_clip:
            metrics["clips"] = [{"id": clip.clip_id, "label": int(label), "predictions": row.tolist()}
                                for clip, label, row in zip(clips, result.labels, result.predictions)]
    finally:
        runner.close()
    return metrics


def format_table(metrics: dict) -> str:
    """The accuracy per ratio as a small text table, AUC last."""
    lines = [f"{'ratio':>5}  {'accuracy':>8}"]
    lines += [f"{r:>5.1f}  {a:>8.4f}" for r, a in zip(metrics["ratios"], metrics["accuracy"])]
    lines.append(f"{'AUC':>5}  {metrics['auc']:>8.4f}   ({metrics['num_clips']} clips)")
    return "\n".join(lines)
