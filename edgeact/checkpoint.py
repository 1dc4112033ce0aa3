"""Checkpoints: a model's weights plus everything needed to rebuild, run and export it.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)`` (no pickled code runs on load):

    format        "edgeact.checkpoint/1"
    model_config  the dict build_model() takes
    spec          the ModelSpec dict (classes, inputs, state, preprocessing, weights hash)
    state_dict    the weights
    train         free-form training facts (config, epoch, metrics), optional
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from edgeact.errors import ModelFormatError
from edgeact.models import StreamingModel, build_model
from edgeact.spec import ModelSpec, newer_format_hint

CHECKPOINT_FORMAT = "edgeact.checkpoint/1"


def weights_sha256(model: torch.nn.Module) -> str:
    """Hash of every parameter and buffer, in name order: identifies the weights, not the file."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def model_spec(model: StreamingModel, classes: list[str] | tuple[str, ...], *, stride: int = 1) -> ModelSpec:
    """The deployable description of a streaming model, derived from the model itself."""
    if len(classes) != model.num_classes:
        raise ModelFormatError(f"the model has {model.num_classes} outputs but {len(classes)} class names were given.")
    return ModelSpec(
        classes=tuple(classes),
        state=model.state_spec,
        frames=model.frame_spec,
        keypoints=model.keypoint_spec,
        stride=stride,
        features=model.features_spec,
        arch={"architecture": model.describe()["architecture"], "config": model.config.to_dict()},
        weights_sha256=weights_sha256(model),
    )


def save_checkpoint(
    path: str | Path,
    model: StreamingModel,
    classes: list[str] | tuple[str, ...],
    *,
    stride: int = 1,
    train: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (a crash never leaves a truncated file under ``path``)."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "classes": list(classes),
        "stride": stride,
        "spec": model_spec(model, classes, stride=stride).to_dict() if model.is_streamable else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train": train or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[StreamingModel, dict]:
    """Rebuild the model (eval mode) from a checkpoint; returns (model, the checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, pickled code refused...
        raise ModelFormatError(f"{path} is not a readable edgeact checkpoint ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        hint = newer_format_hint(found, CHECKPOINT_FORMAT, payload.get("spec") or {}) if isinstance(payload, dict) else ""
        raise ModelFormatError(f"{path} is not an edgeact checkpoint: expected format {CHECKPOINT_FORMAT!r}, "
                               f"got {found!r}.{hint}")
    model = build_model(payload["model_config"])
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise ModelFormatError(f"{path}: weights do not fit the model config (missing {missing}, unexpected {unexpected}).")
    recorded = (payload.get("spec") or {}).get("weights_sha256")
    if recorded:  # streaming checkpoints record it when saved; teachers (no spec) do not
        loaded = weights_sha256(model)
        if loaded != recorded:
            raise ModelFormatError(f"{path}: the weights do not match the hash recorded when it was saved "
                                   f"(sha256 {loaded[:12]}... instead of {recorded[:12]}...): the file was "
                                   "corrupted or its weights edited; use the original or re-save it with "
                                   "edgeact.checkpoint.save_checkpoint.")
    model.eval()
    return model, payload


def checkpoint_spec(model: StreamingModel, payload: dict, path: str | Path) -> ModelSpec:
    """The ModelSpec of a loaded streaming checkpoint (teachers have none)."""
    if payload.get("spec") is None:
        raise ModelFormatError(
            f"{path} holds an offline-only model ({model.offline_reason}); only streaming students deploy."
        )
    spec = ModelSpec.from_dict(payload["spec"], source=str(path))
    # checkpoints saved before the feature boundaries were declared: the model knows them
    return spec if spec.features else replace(spec, features=model.features_spec)
