"""An exported step graph as an NVIDIA Triton Inference Server model repository.

``write_triton_repository("student.onnx", "repo/")`` writes::

    repo/student/config.pbtxt          platform onnxruntime_onnx, sequence batcher, implicit state
    repo/student/1/model.onnx          the export, byte for byte
    repo/student_trt/config.pbtxt      platform tensorrt_plan (with platforms=("onnxruntime", "tensorrt"))
    repo/student_trt/README.md         how to build 1/model.plan on the serving machine (not built here)

Triton keeps each stream's state (implicit state, ``sequence_batching { state [...] }``): every
``state_in.X``/``state_out.X`` pair of the graph is one state entry, started from zeros
(``initial_state { zero_data: true }``) on the request that carries ``sequence_start``. A client
sends only the data inputs of one step with its stream's correlation id (``sequence_id``); it
never sees the state. The graph needs no wrapper and no START control input: zeroing the state at
the start of a sequence is what ``initial_state`` does.

The configuration is built as a dict keyed by ``model_config.proto``'s field names (``config``),
then written in protobuf text format; tests parse both against Triton's compiled schema where
``tritonclient`` is installed. See docs/triton.md.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeact.backends.onnxruntime import ORT_DTYPES, graph_tensor_fits
from edgeact.errors import InputError, ModelFormatError
from edgeact.spec import PRECISION_KEY, STATE_IN, STATE_OUT, ModelSpec, TensorSpec, onnx_metadata, read_spec

# numpy's dtype names -> Triton's DataType (model_config.proto)
TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int16": "TYPE_INT16",
    "int32": "TYPE_INT32", "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}


@dataclass(frozen=True)
class TritonPlatform:
    """One row of the platform table: Triton's platform name, the model file, the name suffix."""

    platform: str
    filename: str
    suffix: str  # appended to the model name, so both platforms can live in one repository
    built_here: bool  # False: the model file must be built on the serving machine


PLATFORMS = {
    "onnxruntime": TritonPlatform("onnxruntime_onnx", "model.onnx", "", True),
    "tensorrt": TritonPlatform("tensorrt_plan", "model.plan", "_trt", False),
}
SEQUENCE_IDLE_US = 10_000_000  # a stream silent for 10 s is dropped (Triton's default is 1 s)
QUEUE_DELAY_US = 2_000  # how long a step waits for other streams' steps to batch with


class Enum(str):
    """A protobuf enum value: written bare in text format (``TYPE_FP32``), a string elsewhere."""


@dataclass(frozen=True)
class TritonRepository:
    """What ``write_triton_repository`` wrote."""

    root: Path
    configs: dict[str, dict[str, Any]]  # model name -> its ModelConfig, keyed by the proto's field names
    to_build: tuple[Path, ...]  # model files whose config is written but which must be built on the device

    def model_dir(self, name: str) -> Path:
        return self.root / name


def write_triton_repository(
    model_path: str | Path,
    repo_dir: str | Path,
    *,
    name: str | None = None,
    platforms: Sequence[str] = ("onnxruntime",),
    max_batch_size: int = 16,
    instances: int = 1,
    max_streams: int = 64,
) -> TritonRepository:
    """Write a Triton model repository for the exported step graph ``model_path`` (an edgeact
    ``.onnx``) under ``repo_dir``: one model per platform, named ``name`` (default: the file's stem)
    plus the platform's suffix. ``max_batch_size``: the most streams one execution steps together;
    ``instances``: model instances (one execution each at a time); ``max_streams``: streams one
    instance keeps state for at once (the sequence batcher's candidate sequences; further streams
    wait until one ends or idles out)."""
    model_path = Path(model_path)
    for arg, value in (("max_batch_size", max_batch_size), ("instances", instances), ("max_streams", max_streams)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{arg} must be a positive int, got {value!r}.")
    if isinstance(platforms, str):
        raise InputError(f"platforms must be a sequence of platform names such as ('onnxruntime',), got {platforms!r}.")
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise InputError(f"platforms must be one or more of {sorted(PLATFORMS)}, got {list(platforms)!r}.")
    if model_path.suffix.lower() != ".onnx":
        raise ModelFormatError(f"{model_path}: a Triton repository is written from an exported step graph (.onnx); "
                               f"got {model_path.suffix or 'a file without a suffix'!r}. "
                               "Export it with `edgeact export`.")
    spec = read_spec(model_path)  # refuses files that are not edgeact ONNX graphs
    name = model_path.stem if name is None else name
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InputError(f"name must be a plain directory name, got {name!r}.")
    _check_graph(model_path, spec)

    root = Path(repo_dir)
    for key in platforms:  # an engine of an earlier graph would be served beside this graph's config
        stale = root / (name + PLATFORMS[key].suffix) / "1" / PLATFORMS[key].filename
        if not PLATFORMS[key].built_here and stale.exists():
            raise InputError(f"{stale} exists, built from an earlier graph that may not be this one; delete it "
                             "(and build it again from this graph) or write the repository elsewhere.")
    configs: dict[str, dict[str, Any]] = {}
    to_build: list[Path] = []
    for key in dict.fromkeys(platforms):  # in order, once each
        row = PLATFORMS[key]
        model_name = name + row.suffix
        config = triton_config(spec, model_name, row.platform, max_batch_size=max_batch_size, instances=instances,
                               max_streams=max_streams)
        model_dir = root / model_name
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        (model_dir / "config.pbtxt").write_text(to_pbtxt(config))
        if row.built_here:
            shutil.copyfile(model_path, model_dir / "1" / row.filename)
        else:
            precision = onnx_metadata(model_path).get(PRECISION_KEY, "fp32")
            (model_dir / "README.md").write_text(_plan_instructions(spec, name, model_name, max_batch_size, precision))
            to_build.append(model_dir / "1" / row.filename)
        configs[model_name] = config
    return TritonRepository(root, configs, tuple(to_build))


def triton_config(spec: ModelSpec, name: str, platform: str, *, max_batch_size: int, instances: int,
                  max_streams: int) -> dict[str, Any]:
    """The ModelConfig of a step graph, keyed by model_config.proto's field names. Triton owns the
    batch axis, so every dims below is the spec's shape without it."""
    if not spec.state:
        raise ModelFormatError(
            f"model {name!r} has no state tensors (its spec declares no state_in.*/state_out.* pair): it is not a "
            "streaming step graph, and Triton's sequence batcher with implicit state has nothing to keep."
        )
    state = []
    for s in spec.state:
        state.append({
            "input_name": STATE_IN + s.name,
            "output_name": STATE_OUT + s.name,
            "data_type": _triton_dtype(s),
            "dims": list(s.shape),
            "initial_state": [{"data_type": _triton_dtype(s), "dims": list(s.shape), "zero_data": True,
                               "name": f"zeros.{s.name}"}],
        })
    kind = Enum("KIND_GPU" if platform == PLATFORMS["tensorrt"].platform else "KIND_AUTO")
    return {
        "name": name,
        "platform": platform,
        "max_batch_size": max_batch_size,
        "input": [_tensor(t) for t in spec.data_inputs],
        "output": [_tensor(t) for t in _outputs(spec)],
        "sequence_batching": {
            "max_sequence_idle_microseconds": SEQUENCE_IDLE_US,
            "oldest": {"max_candidate_sequences": max_streams, "preferred_batch_size": [max_batch_size],
                       "max_queue_delay_microseconds": QUEUE_DELAY_US},
            "state": state,
        },
        "instance_group": [{"count": instances, "kind": kind}],
        "parameters": {"edgeact": {"string_value": json.dumps(
            {"classes": list(spec.classes), "stride": spec.stride, "weights_sha256": spec.weights_sha256},
            sort_keys=True)}},
    }


def to_pbtxt(message: dict[str, Any], indent: int = 0) -> str:
    """A config dict in protobuf text format: ``Enum`` values bare, strings quoted, lists of
    messages as ``field [ {...}, {...} ]``, maps (``parameters``) as one entry per key."""
    pad = "  " * indent
    lines = []
    for key, value in message.items():
        if isinstance(value, dict) and key == "parameters":  # a proto map: key/value entries
            for k, v in value.items():
                lines.append(f"{pad}{key} {{\n{pad}  key: {_scalar(k)}\n{pad}  value {{\n"
                             f"{to_pbtxt(v, indent + 2)}{pad}  }}\n{pad}}}")
        elif isinstance(value, dict):
            lines.append(f"{pad}{key} {{\n{to_pbtxt(value, indent + 1)}{pad}}}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = ",\n".join(f"{pad}  {{\n{to_pbtxt(v, indent + 2)}{pad}  }}" for v in value)
            lines.append(f"{pad}{key} [\n{items}\n{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "".join(line + "\n" for line in lines)


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # escapes \\ \" and control characters as text format does
    raise InputError(f"no text-format spelling for {type(value).__name__} value {value!r}.")


def _triton_dtype(t: TensorSpec) -> Enum:
    if t.dtype not in TRITON_DTYPES:
        raise ModelFormatError(f"tensor {t.name!r} is {t.dtype}, which has no Triton data type; "
                               f"expected one of {sorted(TRITON_DTYPES)}.")
    return Enum(TRITON_DTYPES[t.dtype])


def _tensor(t: TensorSpec) -> dict[str, Any]:
    return {"name": t.name, "data_type": _triton_dtype(t), "dims": list(t.shape)}


def _outputs(spec: ModelSpec) -> tuple[TensorSpec, ...]:
    """What a client may ask for: logits, probs and the declared feature outputs (not the state)."""
    n = spec.num_classes
    return (TensorSpec("logits", (n,)), TensorSpec("probs", (n,)), *spec.features)


def _check_graph(model_path: Path, spec: ModelSpec) -> None:
    """The graph's inputs and outputs must be what its spec says, batch first and dynamic: Triton
    reads the config, the backend reads the graph, and a mismatch fails only at load time."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelFormatError(f"{model_path} is not a loadable ONNX model ({type(exc).__name__}: {exc}).") from exc
    graph = {t.name: t for t in (*session.get_inputs(), *session.get_outputs())}
    inputs = [t.name for t in session.get_inputs()]
    if sorted(inputs) != sorted(spec.input_names):
        raise ModelFormatError(f"{model_path}: graph inputs {inputs} do not match its edgeact spec "
                               f"{list(spec.input_names)}.")
    wanted = [*spec.data_inputs, *_outputs(spec)]
    for s in spec.state:
        wanted += [TensorSpec(STATE_IN + s.name, s.shape, s.dtype), TensorSpec(STATE_OUT + s.name, s.shape, s.dtype)]
    for t in wanted:
        if t.name not in graph:
            raise ModelFormatError(f"{model_path}: its edgeact spec declares {t.name!r}, "
                                   "which the graph does not have.")
        arg = graph[t.name]
        if not graph_tensor_fits(arg, t) or isinstance(arg.shape[0], int):  # Triton batches: a symbolic axis
            raise ModelFormatError(
                f"{model_path}: tensor {t.name!r} must be {t.describe()} with a dynamic batch for Triton's batching, "
                f"got {ORT_DTYPES.get(arg.type, arg.type)} of shape {tuple(arg.shape)}. Export it with a dynamic "
                "batch (the default of `edgeact export`)."
            )


def _plan_instructions(spec: ModelSpec, name: str, model_name: str, max_batch_size: int, precision: str) -> str:
    def shapes(batch: int) -> str:
        return ",".join(f"{n}:{'x'.join(map(str, (batch, *shape)))}" for n, shape in
                        [(t.name, t.shape) for t in spec.data_inputs]
                        + [(STATE_IN + s.name, s.shape) for s in spec.state])

    tf32 = " --noTF32" if precision == "fp32" else ""
    return f"""# {model_name}: build 1/model.plan on the serving machine

This directory holds the Triton configuration of `{name}` on TensorRT (`platform: "tensorrt_plan"`),
but **no engine**: `1/model.plan` was not built. A plan runs only under the TensorRT version and on
the GPU it was built with, so build it where Triton runs, with the TensorRT version of the Triton
image you serve with (`trtexec` of that version: the image's own where it has one, else the
`nvcr.io/nvidia/tensorrt` image whose TensorRT version is the same; compare `trtexec`'s banner):

```bash
trtexec --onnx=../{name}/1/model.onnx --saveEngine=1/model.plan --stronglyTyped{tf32} \\
    --minShapes={shapes(1)} \\
    --optShapes={shapes(max_batch_size)} \\
    --maxShapes={shapes(max_batch_size)}
```

(The graph is edgeact's `{precision}` graph, built strongly typed as `build_engines` builds it.) Or,
where edgeact runs beside the same TensorRT version: `python -m build_engines <the fp32 graph> --precision
{precision} --max-streams {max_batch_size} --eval-data DATA --out engines/` builds and gates the engine;
copy it to `1/model.plan` only if its sidecar's `tensorrt_version` is the image's.

The profile's largest batch must be at least `max_batch_size` ({max_batch_size}) of config.pbtxt.
Until `1/model.plan` exists Triton cannot load this model: start the server with
`--exit-on-error=false`, or load models explicitly (`--model-control-mode=explicit --load-model={name}`).
"""
