"""StreamingModel: one model definition, two forms.

* ``forward_offline(inputs)`` runs whole clips (training, teachers, evaluation).
* ``step(inputs_t, state) -> (logits_t, state')`` runs one frame (deployment); ``step_flat``
  is the same step over positional tensors in spec order, the graph the exporter traces.

A model is: optional frame streams (a TSM encoder on RGB, optionally a second one on RGB
differences), an optional pose encoder on keypoints, and one head. The streams' per-frame
features are concatenated (RGB, RGB difference, pose) and the head models time. We fuse the
RGB-difference stream by concatenation rather than M4's score averaging so that one recurrent
head (one state) serves both streams and learns their weighting.

Config schema (``build_model(cfg)``; YAML-friendly dicts; every key is checked, unknown keys
are answered with "did you mean"):

    inputs:       "frames" and/or "keypoints" (list or one string)           required
    num_classes:  int >= 1                                                   required
    encoder:      (when "frames" is an input; default {"name": "tsm_mobilenet_v2"})
      name:       tsm_mobilenet_v2 | tsm_resnet18 | tsm_resnet50             required
      size:       int or [H, W], input frame size (default 224)
      width:      MobileNetV2 width multiplier (tsm_mobilenet_v2 only, default 1.0)
      shift:      online (students) | bidirectional (offline teachers) | none
      fold_div:   1/fold_div of the channels shift (default 8)
      rgb_diff:   bool, add M4's RGB-difference stream (default false)
    pose:         (when "keypoints" is an input; defaults: PoseConfig in pose.py)
      joints, coords (2|3), people, center_joints, min_confidence, joint_channels,
      relation_channels, dim
    head:
      name:       lstm | gru (hidden, layers 1-3, bidirectional, dropout)
                  two_stage (hidden, bidirectional, dropout; needs frames and keypoints)
                  attention (hidden, layers, mlp, share_prob, dropout)
                  netvlad (clusters, dropout; offline teacher)
                  convlstm (channels, kernel, attention, lstm_hidden, lstm_layers, fc; frames only)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from edgeact.errors import ConfigError, InputError, InputTypeError
from edgeact.models.attention import AttentionHead, AttentionHeadConfig
from edgeact.config import (check_choice, check_keys, config_to_dict, did_you_mean, parse_config,
                                   parse_value, section_name)
from edgeact.models.convlstm import ConvLSTMHead, ConvLSTMHeadConfig
from edgeact.models.frame_encoder import FrameEncoder, RGBDifference
from edgeact.models.heads import RecurrentHead, RecurrentHeadConfig, TwoStageConfig, TwoStageHead
from edgeact.models.mobilenet_v2 import MobileNetV2Config, TSMMobileNetV2
from edgeact.models.netvlad import NetVLADHead, NetVLADHeadConfig
from edgeact.models.pose import PoseConfig, PoseEncoder
from edgeact.models.resnet import ResNetConfig, TSMResNet
from edgeact.models.state import State, dtype_name, flatten_state, substate, unflatten_state
from edgeact.spec import FEATURES, FRAMES, KEYPOINTS, LOGITS, FrameSpec, KeypointSpec, TensorSpec

INPUTS = (FRAMES, KEYPOINTS)

# name -> (config dataclass, factory(config, spatial) -> FrameEncoder)
ENCODERS: dict[str, tuple[type, Callable[..., FrameEncoder]]] = {
    "tsm_mobilenet_v2": (MobileNetV2Config, TSMMobileNetV2),
    "tsm_resnet18": (ResNetConfig, lambda cfg, spatial: TSMResNet(cfg, 18, spatial)),
    "tsm_resnet50": (ResNetConfig, lambda cfg, spatial: TSMResNet(cfg, 50, spatial)),
}

# name -> (config dataclass, factory(config, frame_dim, pose_dim, num_classes) -> head)
HEADS: dict[str, tuple[type, Callable[..., nn.Module]]] = {
    "lstm": (RecurrentHeadConfig, lambda c, f, p, k: RecurrentHead("lstm", c, f + p, k)),
    "gru": (RecurrentHeadConfig, lambda c, f, p, k: RecurrentHead("gru", c, f + p, k)),
    "two_stage": (TwoStageConfig, TwoStageHead),
    "attention": (AttentionHeadConfig, lambda c, f, p, k: AttentionHead(c, f + p, k)),
    "netvlad": (NetVLADHeadConfig, lambda c, f, p, k: NetVLADHead(c, f + p, k)),
    "convlstm": (ConvLSTMHeadConfig, lambda c, f, p, k: ConvLSTMHead(c, f, k)),
}



@dataclass(frozen=True)
class EncoderChoice:
    name: str
    rgb_diff: bool
    arch: Union[MobileNetV2Config, ResNetConfig]


@dataclass(frozen=True)
class HeadChoice:
    name: str
    arch: Any  # the config dataclass of HEADS[name]


@dataclass(frozen=True)
class ModelConfig:
    inputs: tuple[str, ...]  # canonical order: frames, keypoints
    num_classes: int
    head: HeadChoice
    encoder: Optional[EncoderChoice] = None
    pose: Optional[PoseConfig] = None

    @classmethod
    def from_dict(cls, data: Any) -> "ModelConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"The model config must be a mapping, got {type(data).__name__}.")
        check_keys(data, [f.name for f in fields(cls)], "")
        needs = {"inputs": "a list with 'frames' and/or 'keypoints'", "num_classes": "the number of action classes",
                 "head": "a mapping with at least 'name'"}
        for key, what in needs.items():
            if key not in data:
                raise ConfigError(f"The model config needs '{key}' ({what}).")
        inputs = _parse_inputs(data["inputs"])
        num_classes = parse_value(data["num_classes"], int, "num_classes", {"min": 1})
        for key, input_name in (("encoder", "frames"), ("pose", "keypoints")):
            if key in data and input_name not in inputs:
                raise ConfigError(f"The model config has a '{key}' section but '{input_name}' is not in 'inputs'; "
                                  f"add '{input_name}' to 'inputs' or remove the section.")
        encoder = None
        if "frames" in inputs:
            section = data.get("encoder", {"name": "tsm_mobilenet_v2"})
            name = _section_name(section, "encoder", ENCODERS)
            arch = parse_config(ENCODERS[name][0], section, "encoder", extra=("name", "rgb_diff"))
            encoder = EncoderChoice(name, parse_value(section.get("rgb_diff", False), bool, "encoder.rgb_diff"), arch)
        pose = parse_config(PoseConfig, data.get("pose", {}), "pose") if "keypoints" in inputs else None
        name = _section_name(data["head"], "head", HEADS)
        head = HeadChoice(name, parse_config(HEADS[name][0], data["head"], "head", extra=("name",)))
        if name == "two_stage" and inputs != INPUTS:
            raise ConfigError("Head 'two_stage' needs both 'frames' (stage 1, context features) and 'keypoints' "
                              "(stage 2, action features) in 'inputs'.")
        if name == "convlstm" and inputs != ("frames",):
            raise ConfigError("Head 'convlstm' reads frame feature maps; its 'inputs' must be ['frames'] only.")
        return cls(inputs, num_classes, head, encoder, pose)

    def to_dict(self) -> dict:
        """Plain dict that :meth:`from_dict` maps back to this config (for YAML and metadata)."""
        out: dict[str, Any] = {"inputs": list(self.inputs), "num_classes": self.num_classes}
        if self.encoder:
            out["encoder"] = {"name": self.encoder.name, "rgb_diff": self.encoder.rgb_diff,
                              **config_to_dict(self.encoder.arch)}
        if self.pose:
            out["pose"] = config_to_dict(self.pose)
        out["head"] = {"name": self.head.name, **config_to_dict(self.head.arch)}
        return out


def _parse_inputs(value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise ConfigError(
            f"Model config 'inputs' must be a non-empty list of 'frames' and/or 'keypoints', got {value!r}.")
    for name in names:
        check_choice(name, INPUTS, "inputs", "input")
    if len(set(names)) != len(names):
        raise ConfigError(f"Model config 'inputs' lists an input twice: {list(names)}.")
    return tuple(n for n in INPUTS if n in names)


def _section_name(section: Any, where: str, table: Mapping[str, Any]) -> str:
    if not isinstance(section, Mapping):
        raise ConfigError(f"{section_name(where).capitalize()} must be a mapping, got {type(section).__name__}.")
    if "name" not in section:
        raise ConfigError(f"{section_name(where).capitalize()} needs 'name', one of: {', '.join(table)}.")
    name = parse_value(section["name"], str, f"{where}.name")
    check_choice(name, table, f"{where}.name", where)
    return name


def build_model(cfg: Union[Mapping, ModelConfig]) -> "StreamingModel":
    """Build a StreamingModel from a config dict (see the module docstring) or a ModelConfig."""
    return StreamingModel(cfg if isinstance(cfg, ModelConfig) else ModelConfig.from_dict(cfg))


class StreamingModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.num_classes = cfg.num_classes
        spatial = cfg.head.name == "convlstm"  # the ConvLSTM reads feature maps, not pooled vectors
        self.rgb: Optional[FrameEncoder] = None
        self.rgb_diff: Optional[RGBDifference] = None
        self.pose: Optional[PoseEncoder] = None
        frame_dim = pose_dim = 0
        if cfg.encoder:
            make = ENCODERS[cfg.encoder.name][1]
            self.rgb = make(cfg.encoder.arch, spatial)
            frame_dim = self.rgb.out_channels
            if cfg.encoder.rgb_diff:
                self.rgb_diff = RGBDifference(make(cfg.encoder.arch, spatial))
                frame_dim *= 2
        if cfg.pose:
            self.pose = PoseEncoder(cfg.pose)
            pose_dim = self.pose.out_dim
        self.head = HEADS[cfg.head.name][1](cfg.head.arch, frame_dim, pose_dim, cfg.num_classes)
        self.feature_dim: int = self.head.feature_dim
        self._specs: Optional[tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]] = None  # states, features

    # ----------------------------------------------------------------------------- specs
    @property
    def input_spec(self) -> tuple[TensorSpec, ...]:
        """Per-step inputs in step_flat order; shapes without the batch dimension."""
        dtype = dtype_name(self._dtype)
        specs = []
        if self.rgb is not None:
            specs.append(TensorSpec(FRAMES, (3, *self.rgb.size), dtype))
        if self.pose is not None:
            specs.append(TensorSpec(KEYPOINTS, self.pose.input_shape, dtype))
        return tuple(specs)

    @property
    def frame_spec(self) -> Optional[FrameSpec]:
        """How camera frames become this model's input: RGB in [0, 1] normalised with ImageNet
        statistics (FrameSpec's defaults: those of the checkpoints load_pretrained accepts)."""
        return FrameSpec(size=tuple(self.rgb.size)) if self.rgb is not None else None

    @property
    def keypoint_spec(self) -> Optional[KeypointSpec]:
        """Keypoints in pixels; the pose encoder normalises them inside the model."""
        if self.pose is None:
            return None
        return KeypointSpec(people=self.pose.cfg.people, joints=self.pose.cfg.joints, dims=self.pose.cfg.coords)

    @property
    def state_spec(self) -> tuple[TensorSpec, ...]:
        """Streaming state tensors in step_flat order, derived by running one step from no state."""
        return self._probe()[0]

    @property
    def features_spec(self) -> tuple[TensorSpec, ...]:
        """The step's declared feature boundaries (``features.frames``, ``features.keypoints``):
        what the encoders of each input hand to the head, in step_flat output order."""
        return self._probe()[1]

    def _probe(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        self._require_streamable("state_spec")
        dtype = dtype_name(self._dtype)
        if self._specs is None or any(s.dtype != dtype for s in self._specs[0] + self._specs[1]):  # e.g. after .half()
            inputs = {s.name: torch.zeros(1, *s.shape, dtype=self._dtype, device=self._device) for s in self.input_spec}
            with torch.no_grad(), _eval_mode(self):
                _, state, features = self._step_impl(inputs, None)
            self._specs = (tuple(TensorSpec(n, tuple(t.shape[1:]), dtype_name(t.dtype))
                                 for n, t in flatten_state(state).items()),
                           tuple(TensorSpec(n, tuple(t.shape[1:]), dtype_name(t.dtype)) for n, t in features.items()))
        return self._specs

    @property
    def offline_reason(self) -> Optional[str]:
        """Why this model cannot stream (a teacher), or None for a deployable student."""
        for part in (self.rgb, self.rgb_diff, self.head):
            if part is not None and part.offline_reason:
                return part.offline_reason
        return None

    @property
    def is_streamable(self) -> bool:
        return self.offline_reason is None

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """Zero state for ``batch`` new streams, on the model's device."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InputError(f"init_state() needs a batch size >= 1, got {batch!r}.")
        return {s.name: torch.zeros(batch, *s.shape, dtype=getattr(torch, s.dtype), device=self._device)
                for s in self.state_spec}

    def describe(self) -> dict:
        """What an exporter writes into metadata: architecture, inputs, states, sizes, config."""
        parts = [self.config.encoder.name] if self.config.encoder else []
        parts += ["rgb_diff"] if self.rgb_diff is not None else []
        parts += ["pose"] if self.pose is not None else []
        description = {
            "architecture": "+".join(parts + [self.config.head.name]),
            "inputs": [s.as_dict() for s in self.input_spec],
            "states": [s.as_dict() for s in self.state_spec] if self.is_streamable else [],
            "outputs": [{"name": LOGITS, "shape": [self.num_classes], "dtype": dtype_name(self._dtype)}],
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
            "streamable": self.is_streamable,
            "parameters": sum(p.numel() for p in self.parameters()),
            "preprocessing": {},
            "config": self.config.to_dict(),
        }
        if self.frame_spec is not None:
            description["preprocessing"][FRAMES] = asdict(self.frame_spec)
        if self.keypoint_spec is not None:
            description["preprocessing"][KEYPOINTS] = asdict(self.keypoint_spec)
        return description

    # ----------------------------------------------------------------------------- offline
    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.forward_offline(inputs)

    def forward_offline(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """inputs {frames [B,T,3,H,W], keypoints [B,T,P,J,C+1]} -> {logits [B,T,K], features [B,T,F], ...}."""
        self._check_inputs(inputs, "forward_offline", ("B", "T"))
        parts = []
        if self.rgb is not None:
            parts.append(self.rgb(inputs["frames"]))  # [B,T,D] (or [B,T,C,h,w] maps)
        if self.rgb_diff is not None:
            parts.append(self.rgb_diff(inputs["frames"]))
        if self.pose is not None:
            parts.append(self.pose(inputs["keypoints"]))  # [B,T,P*dim]
        return self.head(_concat(parts, dim=2))

    # ----------------------------------------------------------------------------- streaming
    def step(self, inputs_t: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One frame: inputs {frames [B,3,H,W], keypoints [B,P,J,C+1]}, state from init_state/step
        -> (logits [B,K], next state)."""
        self._require_streamable("step")
        batch = self._check_inputs(inputs_t, "step", ("B",))
        self._check_state(state, batch)
        logits, new, _ = self._step_impl(inputs_t, unflatten_state(dict(state)))
        return logits, flatten_state(new)

    def step_flat(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """step over positional tensors: (*inputs in input_spec order, *states in state_spec order)
        -> (logits, *features in features_spec order, *next states in state_spec order). No
        validation: this is the traced graph."""
        inputs, states = self.input_spec, self.state_spec
        if len(tensors) != len(inputs) + len(states):
            raise InputError(f"step_flat takes {len(inputs)} inputs and {len(states)} states "
                             f"({len(inputs) + len(states)} tensors), got {len(tensors)}.")
        named_inputs = {s.name: t for s, t in zip(inputs, tensors)}
        state = unflatten_state({s.name: t for s, t in zip(states, tensors[len(inputs):])})
        logits, new, features = self._step_impl(named_inputs, state)
        new_flat = flatten_state(new)
        return (logits, *features.values(), *(new_flat[s.name] for s in states))

    def kernel_plan(self) -> Optional[dict]:
        """The head's step as a kernel plan over the declared feature boundaries (heads.py), or
        None when the head has none (attention, ConvLSTM, NetVLAD) or cannot stream."""
        plan = getattr(self.head, "kernel_plan", None)
        if plan is None or not self.is_streamable:
            return None
        return plan("head.", [f.name for f in self.features_spec])

    def as_step_module(self) -> nn.Module:
        """The step graph as an nn.Module, what the exporter traces (and what the tests export):
        forward(*inputs, *states) -> (logits, probs, *features, *next states), the order of
        ``ModelSpec.output_names``."""
        return StepModule(self)

    def _step_impl(self, inputs: Mapping[str, Tensor], state: Optional[State]) -> tuple[Tensor, State, dict[str, Tensor]]:
        """state None = start of stream (each module makes zeros shaped from its input).
        Returns (logits, next state, the features each input's encoders hand to the head)."""
        frame_parts, features, new = [], {}, {}
        if self.rgb is not None:
            rgb, new["rgb"] = self.rgb.step(inputs[FRAMES], substate(state, "rgb"))  # [B,D]
            frame_parts.append(rgb)
        if self.rgb_diff is not None:
            diff, new["rgb_diff"] = self.rgb_diff.step(inputs[FRAMES], substate(state, "rgb_diff"))
            frame_parts.append(diff)
        if frame_parts:
            features[FEATURES + FRAMES] = _concat(frame_parts, dim=1)  # [B,F] (or maps [B,C,h,w])
        if self.pose is not None:
            features[FEATURES + KEYPOINTS], new["pose"] = self.pose.step(inputs[KEYPOINTS], substate(state, "pose"))
        logits, new["head"] = self.head.step(_concat(list(features.values()), dim=1), substate(state, "head"))
        return logits, new, features

    # ----------------------------------------------------------------------------- validation
    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _require_streamable(self, what: str) -> None:
        reason = self.offline_reason
        if reason:
            raise ConfigError(f"This model is offline-only ({reason}), so it has no {what}. "
                              f"Stream a student: unidirectional head and the online temporal shift.")

    def _check_inputs(self, inputs: Any, method: str, lead: tuple[str, ...]) -> int:
        """Validate names, types, dtypes and shapes; return the batch size."""
        specs = {s.name: s for s in self.input_spec}
        if not isinstance(inputs, Mapping):
            raise InputTypeError(f"{method}() takes a dict of tensors keyed by input name ({', '.join(specs)}), "
                                 f"got {type(inputs).__name__}.")
        for name in inputs:
            if name not in specs:
                raise InputError(f"Unknown input '{name}'.{did_you_mean(str(name), specs)} "
                                 f"This model takes: {', '.join(specs)}.")
        sizes: dict[str, tuple[int, ...]] = {}
        for name, spec in specs.items():
            expected = "[" + ", ".join([*lead, *map(str, spec.shape)]) + "]"
            if name not in inputs:
                raise InputError(f"Missing input '{name}' ({expected}, {spec.dtype}).")
            tensor = inputs[name]
            if not isinstance(tensor, Tensor):
                raise InputTypeError(f"Input '{name}' must be a torch.Tensor, got {type(tensor).__name__}.")
            if dtype_name(tensor.dtype) != spec.dtype:
                raise InputTypeError(f"Input '{name}' has dtype {dtype_name(tensor.dtype)}; expected {spec.dtype}.")
            if tensor.dim() != len(lead) + len(spec.shape) or tuple(tensor.shape[len(lead):]) != spec.shape:
                raise InputError(f"Input '{name}' has shape {list(tensor.shape)}; expected {expected}.")
            sizes[name] = tuple(tensor.shape[:len(lead)])
        if len(set(sizes.values())) > 1:
            listing = ", ".join(f"'{n}' has {list(s)}" for n, s in sizes.items())
            raise InputError(f"Inputs disagree on their leading {lead} sizes: {listing}.")
        return next(iter(sizes.values()))[0]

    def _check_state(self, state: Any, batch: int) -> None:
        specs = {s.name: s for s in self.state_spec}
        hint = "start a stream with model.init_state(batch) and pass back the state step() returns"
        if not isinstance(state, Mapping):
            raise InputTypeError(f"step() takes the state as a dict of tensors keyed by name; {hint}.")
        for name in state:
            if name not in specs:
                raise InputError(f"Unknown state '{name}'.{did_you_mean(str(name), specs)} "
                                 f"This model's states: {', '.join(specs)}.")
        for name, spec in specs.items():
            if name not in state:
                raise InputError(f"Missing state '{name}'; {hint}.")
            tensor = state[name]
            if not isinstance(tensor, Tensor):
                raise InputTypeError(f"State '{name}' must be a torch.Tensor, got {type(tensor).__name__}.")
            if dtype_name(tensor.dtype) != spec.dtype:
                raise InputTypeError(f"State '{name}' has dtype {dtype_name(tensor.dtype)}; expected {spec.dtype}.")
            if tuple(tensor.shape) != (batch, *spec.shape):
                raise InputError(f"State '{name}' has shape {list(tensor.shape)}; expected {[batch, *spec.shape]} "
                                 f"for a batch of {batch}.")


class StepModule(nn.Module):
    """The one step wrapper: step_flat plus softmax probabilities, in ModelSpec.output_names order."""

    def __init__(self, model: StreamingModel):
        super().__init__()
        self.model = model
        # exporters put a module in eval mode and then restore *its* mode recursively; a fresh
        # module is in training mode, which would flip the wrapped model's BatchNorms to training
        self.training = model.training

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        logits, *rest = self.model.step_flat(*tensors)
        return (logits, torch.softmax(logits, dim=-1), *rest)


def _concat(parts: list[Tensor], dim: int) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for a shape probe (no BatchNorm statistics updated), each module's mode restored."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
