"""Load externally trained frame-encoder weights (ImageNet / Kinetics checkpoints).

Accepts torchvision and timm key names; each encoder maps them onto its own module names
(``map_pretrained_key``) and drops the ImageNet classifier. Nothing is downloaded: the caller
passes a file already on disk (the build machines have no internet) or a state dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn

from edgeact.errors import ConfigError, ModelFormatError
from edgeact.models.frame_encoder import FrameEncoder

Source = Union[str, os.PathLike, Mapping[str, Tensor]]


def load_pretrained(model: nn.Module, source: Source) -> list[str]:
    """Load ``source`` into every frame encoder inside ``model`` (RGB and RGB-difference streams).

    ``model`` is a StreamingModel or a FrameEncoder. Returns the checkpoint keys dropped on
    purpose (the classifier). Raises ModelFormatError listing missing, unexpected and
    wrongly shaped keys when the checkpoint does not fit the architecture.
    """
    encoders = [m for m in model.modules() if isinstance(m, FrameEncoder)]
    if not encoders:
        raise ConfigError(
            "The model has no frame encoder to load pretrained weights into (its inputs are keypoints only).")
    label = "from a state dict" if isinstance(source, Mapping) else f"from '{source}'"
    state = _read_state_dict(source)
    dropped: list[str] = []
    for encoder in encoders:
        dropped = _load_into(encoder, state, label)
    return dropped


def _read_state_dict(source: Source) -> dict[str, Tensor]:
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ModelFormatError(f"Pretrained weights file '{path}' does not exist.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unpickling/zip failure means the same thing to the user
            raise ModelFormatError(f"Cannot read pretrained weights from '{path}': {exc}") from exc
        # training checkpoints wrap the weights (timm: state_dict, others: model)
        for wrapper in ("state_dict", "model"):
            if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
                state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFormatError("Pretrained weights must be a state dict mapping names to tensors.")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def _load_into(encoder: FrameEncoder, state: dict[str, Tensor], label: str) -> list[str]:
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    dropped = []
    for key, tensor in state.items():
        ours = encoder.map_pretrained_key(key)
        if ours is None:
            dropped.append(key)
        else:
            mapped[ours], origin[ours] = tensor, key
    own = encoder.state_dict()
    # checkpoints from older PyTorch lack BatchNorm's step counter; it does not affect outputs
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    unexpected = [origin[k] for k in mapped if k not in own]
    mismatched = [f"{k} {list(mapped[k].shape)} (ours {list(own[k].shape)})"
                  for k in own if k in mapped and mapped[k].shape != own[k].shape]
    problems = [f"{what} ({len(keys)}): {_listing(keys)}" for what, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("wrongly shaped keys", mismatched))
                if keys]
    if problems:
        raise ModelFormatError(
            f"Pretrained weights {label} do not fit the {encoder.name} encoder: {'; '.join(problems)}. "
            f"Keys are read as torchvision/timm names; check the architecture, depth and width."
        )
    encoder.load_state_dict({**own, **mapped}, strict=True)
    return dropped


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
