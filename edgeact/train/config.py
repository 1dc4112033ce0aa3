"""Training configs: YAML files (configs/*.yaml), ``--set`` overrides, typed sections.

A config is a mapping; every key is checked and unknown keys are answered with "did you mean":

    description: free text
    seed: 0
    data:
      keypoints: noisy_keypoints | keypoints     # which keypoint view pose models see
      sampling: {mode: stride, stride: 2, max_steps: null, jitter: true}
                # or {mode: segments, segments: 10} (M3's N segments; does not match a fixed-rate stream)
      unlabeled_fraction: 0.0                   # semi-supervised: this share of train clips loses its label
      augment: {frames: {...}, keypoints: {...}}  # see FrameAugment / KeypointAugment
      cache_frames: true                        # keep decoded clips in memory between epochs
      workers: 0                                # DataLoader worker processes
    teacher: null | a stage                     # trained first, on whole sequences
    student: a stage                            # streaming; distilled from the teacher
    eval: {batch_size: 32}                      # streams stepped together in evaluation

A stage: ``model`` (the dict :func:`edgeact.models.build_model` takes; ``num_classes`` may be
left out and is then taken from the dataset), ``epochs``, ``batch_size``, ``optimizer``,
``losses`` (see :class:`Losses`), ``select`` (keep the ``best`` epoch by validation AUC, or
the ``last``) and ``pretrained`` (frame-encoder weights to start from).

``--set a.b.c=value`` overrides one key; the value is parsed as YAML (``3``, ``0.5``, ``true``,
``null``, ``[1, 2]``). PyYAML reads ``1e-3`` as a string, so number fields also accept strings
that Python's ``float()`` parses.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from edgeact.errors import ConfigError
from edgeact.config import Wording, did_you_mean, parse_config
from edgeact.data.sampling import KEYPOINT_VIEWS, Sampling
from edgeact.models.streaming import ModelConfig


# "Config 'student.epochs' must be ...", "Unknown key 'epoch' in section 'student'. ... Valid keys: <as declared>"
WORDING = Wording(label="Config", part="section", sort_keys=False, quote=True)


# ----------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class FrameAugment:
    """Clip-level RGB augmentation: one crop box, flip and colour change for all frames of a clip."""

    crop_scale: tuple[float, float] = field(default=(0.6, 1.0), metadata={"min": 0.05, "max": 1.0})  # area share
    crop_ratio: tuple[float, float] = field(default=(0.75, 1.333), metadata={"min": 0.1})  # width / height
    flip: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # probability
    brightness: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})  # factor in 1 +- this
    contrast: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})
    saturation: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True)
class KeypointAugment:
    """Clip-level keypoint augmentation. For models that also see frames, the geometry follows
    the frames' crop and flip instead of ``scale``/``translate``, so both inputs stay aligned."""

    scale: tuple[float, float] = field(default=(0.9, 1.1), metadata={"min": 0.1})  # per axis, about the centre
    translate: float = field(default=0.1, metadata={"min": 0.0})  # share of the clip's keypoint extent
    mirror: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # probability, left/right swapped
    # left/right joint pairs swapped by the mirror; null: the COCO-18 (OpenPose) pairs, 18 joints only
    mirror_pairs: Optional[tuple[tuple[int, int], ...]] = None
    joint_dropout: float = field(default=0.05, metadata={"min": 0.0, "max": 0.9})  # per joint and step
    # a turn of up to +- this many degrees: about the vertical axis for 3D keypoints (another camera
    # azimuth), in the image plane for 2D
    rotate: float = field(default=0.0, metadata={"min": 0.0, "max": 180.0})
    vertical_axis: int = field(default=1, metadata={"min": 0, "max": 2})  # 3D: the up axis (Kinect: y)
    shear: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})  # off-diagonal terms in +- this
    # probability that the people's order is rotated (two people: swapped), for interactions where
    # who is listed first carries no meaning (SBU's actor and receiver); 0 draws nothing
    swap_people: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True)
class Augment:
    enabled: bool = True
    frames: FrameAugment = field(default_factory=FrameAugment)
    keypoints: KeypointAugment = field(default_factory=KeypointAugment)


@dataclass(frozen=True)
class Data:
    keypoints: str = field(default="noisy_keypoints", metadata={"choices": KEYPOINT_VIEWS})
    sampling: Sampling = field(default_factory=Sampling)
    unlabeled_fraction: float = field(default=0.0, metadata={"min": 0.0, "max": 0.95})
    augment: Augment = field(default_factory=Augment)
    cache_frames: bool = True
    workers: int = field(default=0, metadata={"min": 0})


@dataclass(frozen=True)
class Optimizer:
    """``adamw`` decouples weight decay from the gradient. ``adam`` adds it to the gradient (L2),
    where it can outweigh a small loss gradient: with M1's class-averaged loss and Adam's
    weight_decay 1e-4, the synthetic-data teachers stayed near chance for 40+ epochs."""

    name: str = field(default="adamw", metadata={"choices": ("adam", "adamw", "sgd")})
    lr: float = field(default=1e-3, metadata={"min": 0.0})
    weight_decay: float = field(default=0.01, metadata={"min": 0.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})  # sgd only
    schedule: str = field(default="cosine", metadata={"choices": ("cosine", "constant")})
    warmup_epochs: int = field(default=0, metadata={"min": 0})  # linear warm-up, then the schedule
    grad_clip: Optional[float] = field(default=5.0, metadata={"min": 0.0})  # max global grad norm


@dataclass(frozen=True)
class Classification:
    """L_cls at every step: ``ce`` (M3: softmax cross-entropy) or ``bce`` (M1: per-class binary
    cross-entropy, a term on the true class and one on every wrong class)."""

    kind: str = field(default="ce", metadata={"choices": ("ce", "bce")})
    weight: float = field(default=1.0, metadata={"min": 0.0})


@dataclass(frozen=True)
class FeatureKD:
    """M1: weight * MSE(student hidden features, teacher hidden features) per step."""

    weight: float = field(default=0.0, metadata={"min": 0.0})


@dataclass(frozen=True)
class LogitKD:
    """M3: weight * KL(teacher || student) per step, teacher probabilities as soft targets."""

    weight: float = field(default=0.0, metadata={"min": 0.0})
    temperature: float = field(default=1.0, metadata={"min": 0.01})


@dataclass(frozen=True)
class SelfKD:
    """M3: weight * KL(student at n+tau, detached || student at n)."""

    weight: float = field(default=0.0, metadata={"min": 0.0})
    tau: int = field(default=1, metadata={"min": 1})
    temperature: float = field(default=1.0, metadata={"min": 0.01})


@dataclass(frozen=True)
class Losses:
    """Every term is switched off by a weight of 0. Classification terms are averaged over the
    steps of labeled clips; the distillation terms over the steps of all clips (``mean``) or
    summed over steps and averaged over clips (``sum``, M3's sum_n)."""

    classification: Classification = field(default_factory=Classification)
    feature_kd: FeatureKD = field(default_factory=FeatureKD)
    logit_kd: LogitKD = field(default_factory=LogitKD)
    self_kd: SelfKD = field(default_factory=SelfKD)
    kd_reduction: str = field(default="mean", metadata={"choices": ("mean", "sum")})
    # two-stage heads (M1): weight of stage 1's own classification and feature-KD terms
    stage1_weight: float = field(default=1.0, metadata={"min": 0.0})

    @property
    def uses_teacher(self) -> bool:
        return self.feature_kd.weight > 0 or self.logit_kd.weight > 0


@dataclass(frozen=True)
class FrameWarmup:
    """Per-frame classification of the RGB encoder before the sequence stage, for training from
    scratch (edgeact.train.frame_warmup); 0 epochs (the default) skips it. Frames are augmented
    as ``data.augment`` says. The RGB-difference stream's encoder (``encoder.rgb_diff``) is not
    warmed up."""

    epochs: int = field(default=0, metadata={"min": 0})
    frames_per_clip: int = field(default=4, metadata={"min": 1})  # drawn anew each epoch
    from_ratio: float = field(default=0.5, metadata={"min": 0.0, "max": 0.95})  # frames from here to the end
    batch_size: int = field(default=64, metadata={"min": 1})
    lr: float = field(default=0.002, metadata={"min": 0.0})  # AdamW, cosine to 0; weight decay from the stage


@dataclass(frozen=True)
class Stage:
    model: dict
    epochs: int = field(default=10, metadata={"min": 1})
    # clips per optimizer step over all processes: under torchrun each of N ranks takes batch_size / N,
    # so the same config makes the same number of steps of the same size on 1 or N processes
    batch_size: int = field(default=16, metadata={"min": 1})
    optimizer: Optimizer = field(default_factory=Optimizer)
    losses: Losses = field(default_factory=Losses)
    select: str = field(default="best", metadata={"choices": ("best", "last")})
    val_every: int = field(default=1, metadata={"min": 1})  # epochs between validations
    # ImageNet / Kinetics weights for the frame encoder(s), a torchvision or timm state dict on
    # disk (edgeact.models.load_pretrained); loaded before the first epoch
    pretrained: Optional[str] = None
    frame_warmup: FrameWarmup = field(default_factory=FrameWarmup)


@dataclass(frozen=True)
class Eval:
    batch_size: int = field(default=32, metadata={"min": 1})


@dataclass(frozen=True)
class TrainConfig:
    student: Stage
    teacher: Optional[Stage] = None
    seed: int = field(default=0, metadata={"min": 0})
    data: Data = field(default_factory=Data)
    eval: Eval = field(default_factory=Eval)
    description: str = ""

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> TrainConfig:
        """Build and check a config from a plain mapping (the inverse of :meth:`to_dict`);
        ``source`` (a file's path) starts the messages about the mapping as a whole."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: a training config must be a mapping, got {type(data).__name__}.")
        if data.get("student") is None:
            raise ConfigError(f"{source}: the config needs a 'student' section (model, epochs, ...).")
        cfg = parse_config(cls, data, "", wording=WORDING)
        for name in ("teacher", "student"):
            stage = getattr(cfg, name)
            if stage is not None:
                _check_model(stage.model, name)
        if cfg.teacher is not None:
            losses = cfg.teacher.losses
            if losses.uses_teacher or losses.self_kd.weight > 0:
                raise ConfigError("The teacher learns from labels only: set teacher.losses feature_kd, logit_kd "
                                  "and self_kd weights to 0.")
        speed = cfg.data.sampling.speed
        if speed[0] > speed[1]:
            raise ConfigError(f"data.sampling.speed must be [low, high] with low <= high, got [{speed[0]}, {speed[1]}].")
        if speed != (1.0, 1.0) and cfg.data.sampling.mode != "stride":
            raise ConfigError(f"data.sampling.speed replays clips at another pace in stride mode; mode "
                              f"'{cfg.data.sampling.mode}' draws its frames per segment: remove speed or use stride.")
        if cfg.student.losses.uses_teacher and cfg.teacher is None:
            raise ConfigError("student.losses use a teacher (feature_kd or logit_kd weight > 0) but the config "
                              "has no 'teacher' section; add one or set those weights to 0.")
        return cfg

    def to_dict(self) -> dict:
        """Plain dict (lists, no tuples) that :meth:`from_dict` maps back to this config."""
        return _plain(dataclasses.asdict(self))


# ----------------------------------------------------------------------------- loading
def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config, apply ``--set`` overrides, validate."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"Cannot read config {path}: {exc.strerror or exc}.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config {path} is not valid YAML: {exc}") from exc
    return TrainConfig.from_dict(apply_overrides(data if data is not None else {}, overrides), source=str(path))


def apply_overrides(data: Mapping, overrides: Sequence[str]) -> dict:
    """A copy of ``data`` with each ``a.b.c=value`` applied; keys are checked against the schema
    (inside a stage's ``model`` any key goes through, build_model checks those)."""
    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE (e.g. student.epochs=3), got {item!r}.")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({exc}).") from exc
        path = key.strip().split(".")
        _check_path(path, item)
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), Mapping):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return out


def _check_path(path: list[str], item: str) -> None:
    cls: Any = TrainConfig
    for depth, part in enumerate(path):
        if cls is dict:  # a model section: build_model validates it
            return
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ConfigError(f"--set {item}: '{'.'.join(path[:depth])}' is a value, not a section.")
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            where = ".".join(path[:depth]) or "the top level"
            raise ConfigError(f"--set {item}: unknown key '{part}' in {where}.{did_you_mean(part, names)} "
                              f"Valid keys: {', '.join(names)}.")
        cls = _unwrap_optional(typing.get_type_hints(cls)[part])


def _check_model(model: dict, stage: str) -> None:
    # num_classes may come from the dataset later; any valid count lets the rest be checked now
    probe = {**model, "num_classes": model.get("num_classes", 2)}
    try:
        ModelConfig.from_dict(probe)
    except ConfigError as exc:
        raise ConfigError(f"{stage}.model: {exc}") from exc


def _unwrap_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
