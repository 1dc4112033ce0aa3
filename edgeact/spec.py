"""What a deployable model declares about itself: classes, inputs, state, preprocessing.

One ``ModelSpec`` travels with every artifact (checkpoint, ONNX ``metadata_props``, engine
sidecar), so a runtime needs nothing else to preprocess inputs and own the state. It is plain
data (JSON-able) and imports neither torch nor onnx.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeact._version import __version__
from edgeact.errors import ModelFormatError

SPEC_FORMAT = "edgeact.step/1"
METADATA_KEY = "edgeact"  # key of the JSON spec in ONNX metadata_props
FRAMES = "frames"
KEYPOINTS = "keypoints"
LOGITS = "logits"
PROBS = "probs"
STATE_IN = "state_in."
STATE_OUT = "state_out."


@dataclass(frozen=True)
class TensorSpec:
    """A tensor without its batch axis: the batch is always axis 0 and dynamic."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class FrameSpec:
    """How a BGR uint8 camera frame becomes the model's [3,H,W] float32 input."""

    size: tuple[int, int]  # (height, width) after resizing
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # RGB, on [0,1] pixels
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    color_order: str = "RGB"  # channel order the model was trained on
    resize: str = "stretch"  # "stretch" to size, or "crop": shorter side then centre crop


@dataclass(frozen=True)
class KeypointSpec:
    """Keypoints per frame: [people, joints, dims + 1] = (x, y[, z], visibility)."""

    people: int
    joints: int
    dims: int = 2  # spatial coordinates per joint: 2 (x, y) or 3 (x, y, z)
    units: str = "pixel"  # "pixel" (frame coordinates) or "normalized" ([0,1] of the frame)


@dataclass(frozen=True)
class ModelSpec:
    classes: tuple[str, ...]
    state: tuple[TensorSpec, ...]
    frames: FrameSpec | None = None
    keypoints: KeypointSpec | None = None
    stride: int = 1  # the model steps on every stride-th frame (M2-style sampling)
    arch: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    edgeact_version: str = __version__
    format: str = SPEC_FORMAT

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_names(self) -> tuple[str, ...]:
        """Step-graph inputs in order: the data inputs, then every state tensor."""
        data = tuple(name for name, spec in ((FRAMES, self.frames), (KEYPOINTS, self.keypoints)) if spec)
        return data + tuple(STATE_IN + s.name for s in self.state)

    @property
    def output_names(self) -> tuple[str, ...]:
        return (LOGITS, PROBS) + tuple(STATE_OUT + s.name for s in self.state)

    def input_shape(self, name: str) -> tuple[int, ...]:
        """Shape of a data input without the batch axis."""
        if name == FRAMES and self.frames is not None:
            return (3, *self.frames.size)
        if name == KEYPOINTS and self.keypoints is not None:
            return (self.keypoints.people, self.keypoints.joints, self.keypoints.dims + 1)
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model") -> ModelSpec:
        if not isinstance(data, dict):
            raise ModelFormatError(f"{source}: the edgeact spec must be a JSON object, got {type(data).__name__}.")
        if data.get("format") != SPEC_FORMAT:
            raise ModelFormatError(
                f"{source}: unsupported edgeact spec format {data.get('format')!r}; expected {SPEC_FORMAT!r}."
            )
        try:
            frames = data.get("frames")
            keypoints = data.get("keypoints")
            return cls(
                classes=tuple(data["classes"]),
                state=tuple(
                    TensorSpec(s["name"], tuple(int(d) for d in s["shape"]), s.get("dtype", "float32"))
                    for s in data["state"]
                ),
                frames=None if frames is None else FrameSpec(
                    size=tuple(frames["size"]),
                    mean=tuple(frames["mean"]),
                    std=tuple(frames["std"]),
                    color_order=frames["color_order"],
                    resize=frames["resize"],
                ),
                keypoints=None if keypoints is None else KeypointSpec(**keypoints),
                stride=int(data.get("stride", 1)),
                arch=dict(data.get("arch", {})),
                weights_sha256=data.get("weights_sha256", ""),
                edgeact_version=data.get("edgeact_version", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{source}: malformed edgeact spec ({type(exc).__name__}: {exc}).") from exc

    @classmethod
    def from_json(cls, text: str, *, source: str = "model") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFormatError(f"{source}: the edgeact metadata is not valid JSON ({exc}).") from exc
        return cls.from_dict(data, source=source)
