"""Offline evaluation: accuracy per observation ratio from ``forward_offline`` on whole clips.

For the teachers (which cannot stream) and the per-epoch validation during training (for a
streaming student the offline form equals the step form, a tested invariant of edgeact.models).
Clips are read at the same cut-offs, into the same :class:`~edgeact.evaluation.Evaluation`, as
the streaming evaluation in :mod:`edgeact.evaluation` (torch-free; what ``edgeact eval`` runs).
"""

from __future__ import annotations

import numpy as np
import torch

from edgeact.data.clip_store import ClipStore
from edgeact.data.sampling import Sampling
from edgeact.evaluation import RATIOS, Evaluation, clip_batches, cutoff_steps
from edgeact.models import StreamingModel
from edgeact.spec import ModelSpec
from edgeact.train.data import forward_exact, pad_steps


@torch.no_grad()
def evaluate_offline(model: StreamingModel, store: ClipStore, spec: ModelSpec, classes: list[str],
                     sampling: Sampling, *, batch_size: int = 32) -> Evaluation:
    """forward_offline on whole clips (preprocessed with ``spec``), exact for offline models too."""
    was_training = model.training
    model.eval()
    parameter = next(model.parameters())  # inputs follow the model (a float64 twin for parity checks)
    steps, batches = clip_batches(store, sampling, batch_size)
    logits = np.zeros((len(store), len(RATIOS), model.num_classes), np.float64 if parameter.dtype == torch.float64
                      else np.float32)
    try:
        for rows in batches:
            clips = [store.inputs(i, spec, steps[i]) for i in rows]
            lengths = torch.tensor([len(steps[i]) for i in rows])
            inputs = {n: pad_steps([torch.from_numpy(c[n]) for c in clips]).to(parameter.device, parameter.dtype)
                      for n in clips[0]}
            out = forward_exact(model, inputs, lengths)["logits"].cpu().numpy()  # [B,T,K]
            for j, i in enumerate(rows):
                logits[i] = out[j, cutoff_steps(int(lengths[j])) - 1]
    finally:
        model.train(was_training)
    return Evaluation(logits, store.labels, list(classes))
