"""Training: teacher-student distillation (M1, M3), offline evaluation of whole clips.

    from edgeact.train import load_config, train
    cfg = load_config("configs/synth_pose.yaml", ["student.epochs=5"])
    metrics = train(cfg, "data/synth", "runs/pose")      # RUN/student.pt, teacher.pt, metrics.json, ...

Streaming evaluation (accuracy per observation ratio of a deployable model) does not need
torch and lives in :mod:`edgeact.evaluation`:

    from edgeact.evaluation import evaluate_model
    metrics = evaluate_model("model.onnx", "data/synth", split="test")   # or RUN/student.pt (torch backend)

The command line is ``edgeact train`` / ``edgeact eval`` (:mod:`edgeact.train.cli`). Training needs torch.
"""

from __future__ import annotations

import importlib

# public name -> defining module, imported on first use: `edgeact train --help` (and the CLI's
# registration of these commands) must not import torch.
_LAZY = {
    "TrainConfig": "edgeact.train.config", "apply_overrides": "edgeact.train.config",
    "load_config": "edgeact.train.config",
    "evaluate_offline": "edgeact.train.evaluate", "train": "edgeact.train.trainer",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeact.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
