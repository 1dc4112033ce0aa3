"""What a deployable model declares about itself: the one schema of the streaming step.

One ``ModelSpec`` travels with every artifact (checkpoint, ONNX ``metadata_props``, engine
sidecar), so a runtime needs nothing else to preprocess inputs and own the state:

* the data inputs (``frames`` [3,H,W] and/or ``keypoints`` [P,J,C+1]) and how camera input
  becomes them (``FrameSpec``, ``KeypointSpec``: the one preprocessing vocabulary, shared by
  the models, the exporter and every runtime);
* the state tensors (name, shape, dtype), zeros at the start of a stream;
* the declared feature boundaries (``features.frames``, ``features.keypoints``): named graph
  outputs where the encoders hand over to the head, for runtimes that run the head themselves;
* the step graph's input and output names, derived from the above.

``check_step`` validates a step's inputs and state against it (every runner calls it, so every
runner refuses the same thing with the same sentence), ``zero_state`` makes the state of a new
stream, ``read_spec`` reads the spec of any artifact. Plain data (JSON-able); imports neither
torch nor onnx at module level.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact._version import __version__
from edgeact.errors import InputError, InputTypeError, ModelFormatError

SPEC_FORMAT = "edgeact.step/1"
METADATA_KEY = "edgeact"  # key of the JSON spec in ONNX metadata_props
INITIALIZERS_KEY = "edgeact.initializers_sha256"  # the weights' hash in ONNX metadata_props
PRECISION_KEY = "edgeact_precision"  # fp32 | fp16 | int8, written by build_engines (absent: fp32)
FRAMES = "frames"
KEYPOINTS = "keypoints"
LOGITS = "logits"
PROBS = "probs"
FEATURES = "features."  # + a data input's name: the encoder's output for that input
STATE_IN = "state_in."
STATE_OUT = "state_out."
FRAME_INTERPOLATIONS = ("area", "area_fast")  # exact cv2.INTER_AREA; halved by 2x2 box means, then INTER_AREA


@dataclass(frozen=True)
class TensorSpec:
    """A tensor without its batch axis: the batch is always axis 0 and dynamic."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"  # numpy's spelling

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), tuple(int(d) for d in data["shape"]), str(data.get("dtype", "float32")))

    def describe(self, batch: int | str = "batch") -> str:
        """'float32 of shape (batch, 128)' for messages."""
        return f"{self.dtype} of shape ({', '.join(map(str, (batch, *self.shape)))})"


@dataclass(frozen=True)
class FrameSpec:
    """How a BGR uint8 camera frame becomes the model's [3,H,W] float32 input."""

    size: tuple[int, int]  # (height, width) after resizing
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # in color_order, on [0,1] pixels (ImageNet's)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    color_order: str = "RGB"  # channel order the model was trained on
    resize: str = "stretch"  # "stretch" to size, or "crop": shorter side then centre crop
    interpolation: str = "area_fast"  # how frames shrink, one of FRAME_INTERPOLATIONS (edgeact.preprocess)
    # (height, width) of the raw BGR uint8 camera frame the step graph takes when it preprocesses
    # in the graph (edgeact.preprocess_graph, `edgeact export --frame-input`); None: [3, *size] float32
    raw_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.interpolation not in FRAME_INTERPOLATIONS:
            raise InputError(f"frames interpolation must be one of {', '.join(map(repr, FRAME_INTERPOLATIONS))}, "
                             f"got {self.interpolation!r}.")
        if self.raw_size is not None and not (
            len(self.raw_size) == 2 and all(isinstance(d, int) and d >= 1 for d in self.raw_size)
        ):
            raise InputError(f"frames raw_size must be None or (height, width) of positive ints, got {self.raw_size!r}.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameSpec:
        # artifacts saved before the field existed were trained and exported with exact INTER_AREA
        return cls(size=tuple(data["size"]), mean=tuple(data["mean"]), std=tuple(data["std"]),
                   color_order=data["color_order"], resize=data["resize"],
                   interpolation=data.get("interpolation", "area"),
                   raw_size=None if data.get("raw_size") is None else tuple(int(d) for d in data["raw_size"]))


@dataclass(frozen=True)
class KeypointSpec:
    """Keypoints per frame: [people, joints, dims + 1] = (x, y[, z], visibility)."""

    people: int
    joints: int
    dims: int = 2  # spatial coordinates per joint: 2 (x, y) or 3 (x, y, z)
    units: str = "pixel"  # "pixel" (frame coordinates) or "normalized" ([0,1] of the frame)

    @property
    def channels(self) -> tuple[str, ...]:
        return ("x", "y", "z")[: self.dims] + ("visibility",)


@dataclass(frozen=True)
class ModelSpec:
    classes: tuple[str, ...]
    state: tuple[TensorSpec, ...]
    frames: FrameSpec | None = None
    keypoints: KeypointSpec | None = None
    stride: int = 1  # the model steps on every stride-th frame (M2-style sampling)
    features: tuple[TensorSpec, ...] = ()  # declared encoder outputs (FEATURES + input name), graph outputs
    arch: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    edgeact_version: str = __version__
    format: str = SPEC_FORMAT

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def data_inputs(self) -> tuple[TensorSpec, ...]:
        """The per-step data inputs in graph order (frames, then keypoints), float32."""
        out = []
        if self.frames is not None and self.frames.raw_size is not None:  # preprocessed inside the graph
            out.append(TensorSpec(FRAMES, (*self.frames.raw_size, 3), "uint8"))
        elif self.frames is not None:
            out.append(TensorSpec(FRAMES, (3, *self.frames.size)))
        if self.keypoints is not None:
            k = self.keypoints
            out.append(TensorSpec(KEYPOINTS, (k.people, k.joints, k.dims + 1)))
        return tuple(out)

    @property
    def input_names(self) -> tuple[str, ...]:
        """Step-graph inputs in order: the data inputs, then every state tensor."""
        return tuple(s.name for s in self.data_inputs) + tuple(STATE_IN + s.name for s in self.state)

    @property
    def output_names(self) -> tuple[str, ...]:
        return (LOGITS, PROBS) + tuple(f.name for f in self.features) + tuple(STATE_OUT + s.name for s in self.state)

    def input_shape(self, name: str) -> tuple[int, ...]:
        """Shape of a data input without the batch axis."""
        for spec in self.data_inputs:
            if spec.name == name:
                return spec.shape
        raise KeyError(name)

    def zero_state(self, batch: int) -> list[np.ndarray]:
        """The state of ``batch`` new streams: zeros, one array per ``state`` entry."""
        return [np.zeros((batch, *s.shape), dtype=s.dtype) for s in self.state]

    def check_step(self, inputs: Any, state: Any) -> int:
        """Validate one step's data inputs and state (numpy arrays, batch first) against the
        spec; returns the batch size. Every runner calls this before stepping."""
        specs = self.data_inputs
        if not isinstance(inputs, Mapping):
            raise InputTypeError(f"step inputs must be a dict of numpy arrays keyed by {[s.name for s in specs]}, "
                                 f"got {type(inputs).__name__}.")
        if sorted(inputs) != sorted(s.name for s in specs):
            raise InputError(f"step inputs must be {[s.name for s in specs]}, got {sorted(map(str, inputs))}.")
        batch = None
        for spec in specs:
            batch = _check_tensor(inputs[spec.name], spec, f"step input {spec.name!r}", batch)
        if not isinstance(state, Sequence) or isinstance(state, (str, bytes)):
            raise InputTypeError(f"state must be a list of {len(self.state)} numpy arrays (one per state tensor), "
                                 f"got {type(state).__name__}.")
        if len(state) != len(self.state):
            raise InputError(f"state must have {len(self.state)} tensors ({', '.join(s.name for s in self.state)}), "
                             f"got {len(state)}.")
        for spec, array in zip(self.state, state):
            batch = _check_tensor(array, spec, f"state {spec.name!r}", batch)
        return batch if batch is not None else 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.frames is not None and self.frames.raw_size is None:
            del data["frames"]["raw_size"]  # graphs that take preprocessed frames keep their metadata as it was
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model") -> ModelSpec:
        if not isinstance(data, dict):
            raise ModelFormatError(f"{source}: the edgeact spec must be a JSON object, got {type(data).__name__}.")
        if data.get("format") != SPEC_FORMAT:
            raise ModelFormatError(f"{source}: unsupported edgeact spec format {data.get('format')!r}; expected "
                                   f"{SPEC_FORMAT!r}.{newer_format_hint(data.get('format'), SPEC_FORMAT, data)}")
        try:
            frames = data.get("frames")
            keypoints = data.get("keypoints")
            return cls(
                classes=tuple(data["classes"]),
                state=tuple(TensorSpec.from_dict(s) for s in data["state"]),
                frames=None if frames is None else FrameSpec.from_dict(frames),
                keypoints=None if keypoints is None else KeypointSpec(**keypoints),
                stride=int(data.get("stride", 1)),
                features=tuple(TensorSpec.from_dict(f) for f in data.get("features", ())),
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


def _check_tensor(array: Any, spec: TensorSpec, what: str, batch: int | None) -> int:
    """One step tensor against its spec; the batch must agree with the tensors before it."""
    if not isinstance(array, np.ndarray):
        raise InputTypeError(f"{what} must be a numpy.ndarray, {spec.describe()}; got {type(array).__name__}.")
    if array.dtype != np.dtype(spec.dtype) or array.ndim != len(spec.shape) + 1 or array.shape[1:] != spec.shape:
        raise InputError(f"{what} must be {spec.describe()}, got {array.dtype} of shape {array.shape}.")
    if batch is not None and array.shape[0] != batch:
        raise InputError(f"{what} has batch {array.shape[0]}, but the tensors before it have batch {batch}.")
    if array.shape[0] < 1:
        raise InputError(f"{what} must hold at least one stream, got batch 0.")
    return array.shape[0]


def newer_format_hint(found: Any, supported: str, data: Mapping[str, Any]) -> str:
    """' It was written by a newer edgeact ...' when ``found`` is a later version of ``supported``
    (same name, higher number), else ''."""
    name, _, version = supported.rpartition("/")
    if not isinstance(found, str) or not found.startswith(name + "/"):
        return ""
    try:
        newer = int(found.rpartition("/")[2]) > int(version)
    except ValueError:
        return ""
    if not newer:
        return ""
    from edgeact._version import __version__

    writer = data.get("edgeact_version") or "a newer edgeact"
    return (f" It was written by edgeact {writer}, newer than this {__version__}: upgrade edgeact "
            "(pip install -U edgeact) to load it.")


def spec_from_metadata(metadata: Mapping[str, str], source: str | Path) -> ModelSpec:
    """The spec in an ONNX model's ``metadata_props`` (as onnx or onnxruntime read them)."""
    if METADATA_KEY not in metadata:
        raise ModelFormatError(
            f"{source} is an ONNX model without edgeact metadata (no {METADATA_KEY!r} entry in "
            "metadata_props); export it with `edgeact export`."
        )
    return ModelSpec.from_json(metadata[METADATA_KEY], source=str(source))


def read_spec(path: str | Path) -> ModelSpec:
    """The spec of any edgeact artifact: an exported ``.onnx`` (its metadata) or a ``.pt``
    checkpoint (needs torch)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return spec_from_metadata(onnx_metadata(path), path)
    if suffix in (".pt", ".pth"):
        from edgeact.checkpoint import checkpoint_spec, load_checkpoint

        model, payload = load_checkpoint(path)
        return checkpoint_spec(model, payload, path)
    raise ModelFormatError(f"{path}: no edgeact spec reader for {suffix or 'files without a suffix'!r}; "
                           "expected .onnx, .pt or .pth.")


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """metadata_props of an ONNX file, read without its weights where onnx is installed."""
    try:
        import onnx
    except ImportError:  # a runtime-only install: onnxruntime reads it too
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFormatError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc}).") from exc
        return dict(session.get_modelmeta().custom_metadata_map)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own untyped errors
        raise ModelFormatError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc}).") from exc
    return {entry.key: entry.value for entry in proto.metadata_props}


def initializers_sha256(proto: Any) -> str:
    """Hash of an ONNX graph's initializers (name, type, shape and data), in name order: what
    the weights are, however the file around them is laid out."""
    digest = hashlib.sha256()
    for tensor in sorted(proto.graph.initializer, key=lambda t: t.name):
        digest.update(tensor.name.encode())
        digest.update(tensor.SerializeToString(deterministic=True))
    return digest.hexdigest()


def save_graph(proto: Any, path: str | Path) -> None:
    """Write an edgeact step graph: its weights' hash recorded in its metadata, checked by onnx,
    saved. Every writer of a graph (export, --frame-input, build_engines) goes through here."""
    import onnx

    stamp_initializers(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def stamp_initializers(proto: Any) -> None:
    """Record the graph's weight hash in its metadata, so the loader can tell edited or damaged
    weights from the ones that were written (:func:`save_graph` does it for every writer)."""
    for entry in proto.metadata_props:
        if entry.key == INITIALIZERS_KEY:
            entry.value = initializers_sha256(proto)
            return
    entry = proto.metadata_props.add()
    entry.key, entry.value = INITIALIZERS_KEY, initializers_sha256(proto)


def read_graph(path: str | Path) -> Any:
    """An edgeact graph as an onnx ModelProto, its weights checked against the hash they were
    written with; a file onnx cannot read is a ModelFormatError."""
    import onnx

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf raises its own untyped errors
        raise ModelFormatError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc}).") from exc
    check_initializers(proto, path)
    return proto


def check_initializers(proto: Any, source: str | Path) -> None:
    """ModelFormatError if the graph's weights are not those its metadata recorded (graphs
    written before the hash existed carry none and pass)."""
    recorded = {e.key: e.value for e in proto.metadata_props}.get(INITIALIZERS_KEY)
    if recorded is None:
        return
    found = initializers_sha256(proto)
    if found != recorded:
        raise ModelFormatError(f"{source}: the weights do not match the hash recorded when the graph was written "
                               f"(sha256 {found[:12]}... instead of {recorded[:12]}...): the file was damaged or "
                               "its weights edited; export it again.")
