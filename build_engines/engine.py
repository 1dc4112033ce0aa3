"""A TensorRT engine from a precision graph, and the sidecar that describes it.

``build_engine(graph.onnx, model.fp16.engine, max_batch=16)``:

* a strongly typed network: the precision is the graph's (fp16 casts, int8 Q/DQ nodes), never a
  builder flag. On TensorRT 10.x that is ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; 11.x
  removed weak typing (``BuilderFlag.FP16/INT8``, INT8 calibrators,
  ``platform_has_fast_fp16``) and deprecated the flag, every network being strongly typed. An
  fp32 graph is built without TF32 (on by default), so fp32 means float32 arithmetic;
* TensorRT's ONNX parser, its errors in the message when it refuses the graph;
* one optimisation profile over the batch axis, 1..max_batch (opt = max_batch), every input;
* a workspace preset per target (``workspace_mb`` overrides), the timing cache read and
  written back when given, and for ``target="jetson"`` DLA core 0 with GPU fallback where the
  device has a DLA (the sidecar says when it has none);
* the sidecar ``<engine>.json``: the edgeact spec (from the graph's metadata), precision
  (``edgeact_precision`` in the graph's metadata, else fp32), TensorRT version, GPU name and
  compute capability, weights hash, max_batch, target, the engine file's sha256, and an
  ``accuracy`` slot the caller fills.

Both files are written under temporary names and renamed into place: a failed build leaves
nothing new under the final names. ``engine_is_current`` says whether an existing engine can be
reused (same weights, precision, TensorRT, GPU and profile) or why not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeact.backends.base import check_path
from edgeact.backends.device import gpu_info
from edgeact.backends.tensorrt import (ENGINE_SUFFIXES, SIDECAR_FORMAT, file_sha256, import_tensorrt, read_sidecar,
                                       sidecar_path, trt_logger)
from edgeact.errors import BackendError, InputError, ModelFormatError
from build_engines import TARGET_DEVICES as TARGETS
from edgeact.spec import PRECISION_KEY, ModelSpec, onnx_metadata, spec_from_metadata

WORKSPACE_MB = {"datacenter": 4096, "jetson": 1024}  # the builder's scratch for tactics; Jetsons share RAM

_log = logging.getLogger(__name__)


class Stale(str):
    """Why an engine cannot be reused: a sentence that is falsy, so ``if engine_is_current(...)``
    reads right (and ``is True`` too)."""

    def __bool__(self) -> bool:
        return False


def read_graph(onnx_path: str | Path) -> tuple[ModelSpec, str]:
    """(spec, precision) an ONNX step graph declares in its metadata."""
    path = check_path(onnx_path)
    metadata = onnx_metadata(path)
    return spec_from_metadata(metadata, path), metadata.get(PRECISION_KEY, "fp32")


def network_flags(trt: Any) -> int:
    """Creation flags of a strongly typed network: the flag on 10.x; nothing on 11.x, where every
    network is strongly typed and the flag is deprecated."""
    if int(trt.__version__.split(".")[0]) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, max_batch: int, target: str = "datacenter",
                 timing_cache: str | Path | None = None, workspace_mb: int | None = None) -> dict[str, Any]:
    """Build ``engine_path`` (and its sidecar) from a precision graph; returns the sidecar."""
    engine_path = Path(engine_path)
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise InputError(f"max_batch must be a positive int, got {max_batch!r}.")
    if target not in TARGETS:
        raise InputError(f"target must be one of {list(TARGETS)}, got {target!r}.")
    if workspace_mb is not None and (isinstance(workspace_mb, bool) or not isinstance(workspace_mb, int)
                                     or workspace_mb < 1):
        raise InputError(f"workspace_mb must be a positive int or None, got {workspace_mb!r}.")
    if engine_path.suffix.lower() not in ENGINE_SUFFIXES:
        raise InputError(f"an engine file ends in {' or '.join(ENGINE_SUFFIXES)}, got {engine_path.name!r}.")
    spec, precision = read_graph(onnx_path)
    onnx_path = Path(onnx_path)
    trt = import_tensorrt()
    gpu = gpu_info()
    logger = trt_logger(trt)
    logger.said()  # forget errors of earlier work

    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise ModelFormatError(f"TensorRT's ONNX parser refused {onnx_path}: {'; '.join(errors) or 'no reason given'}"
                               f"{logger.said()}.")
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    if sorted(t.name for t in inputs) != sorted(spec.input_names):
        raise ModelFormatError(f"{onnx_path}: graph inputs {[t.name for t in inputs]} do not match its edgeact spec "
                               f"{list(spec.input_names)}.")

    config = builder.create_builder_config()
    workspace = workspace_mb or WORKSPACE_MB[target]
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace << 20)
    profile = builder.create_optimization_profile()
    for tensor in inputs:
        shape = tuple(int(d) for d in tensor.shape)
        if not shape or shape[0] != -1 or any(d < 1 for d in shape[1:]):
            raise ModelFormatError(f"{onnx_path}: input {tensor.name!r} has shape {shape}; a step graph's inputs are "
                                   "batch first with a dynamic batch (-1) and every other axis fixed.")
        profile.set_shape(tensor.name, (1, *shape[1:]), (max_batch, *shape[1:]), (max_batch, *shape[1:]))
    if config.add_optimization_profile(profile) < 0:
        raise BackendError(f"TensorRT refused the batch profile 1..{max_batch} of {onnx_path}{logger.said()}.")
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means float32 products, not 10-bit mantissas
    dla = _place(trt, builder, config, target)
    cache = _attach_timing_cache(config, timing_cache)

    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT could not build an engine from {onnx_path}{logger.said()}.")
    engine = bytes(serialized)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "engine": engine_path.name,
        "engine_sha256": hashlib.sha256(engine).hexdigest(),
        "source": onnx_path.name,
        "spec": json.loads(spec.to_json()),
        "precision": precision,
        "tensorrt_version": trt.__version__,
        "gpu": gpu,
        "weights_sha256": spec.weights_sha256,
        "max_batch": max_batch,
        "target": target,
        "dla": dla,
        "tf32": bool(config.get_flag(trt.BuilderFlag.TF32)),
        "workspace_mb": workspace,
        "timing_cache": cache,
        "build_seconds": round(time.perf_counter() - started, 3),
        "accuracy": None,  # filled by the caller's accuracy gate
    }
    text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
    write_atomically([(engine_path, engine), (sidecar_path(engine_path), text.encode())])
    if timing_cache is not None:
        write_atomically([(Path(timing_cache), bytes(config.get_timing_cache().serialize()))])
    return sidecar


def _place(trt: Any, builder: Any, config: Any, target: str) -> dict[str, Any] | None:
    """Jetson: DLA core 0, with the layers a DLA cannot run on the GPU; None elsewhere."""
    if target != "jetson":
        return None
    if builder.num_DLA_cores < 1:
        return {"core": None, "note": "this device has no DLA (TensorRT reports 0 cores): every layer runs on the GPU"}
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = 0
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    return {"core": 0, "gpu_fallback": True}


def _attach_timing_cache(config: Any, path: str | Path | None) -> dict[str, Any] | None:
    """Attach the timing cache at ``path`` (a new one when absent, or made on another device)."""
    if path is None:
        return None
    path = Path(path)
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    reused = bool(blob)
    if cache is None or not config.set_timing_cache(cache, False):
        _log.warning("the timing cache %s was made by another TensorRT or device: building with a new one", path)
        cache, reused = config.create_timing_cache(b""), False
        if cache is None or not config.set_timing_cache(cache, False):
            raise BackendError(f"TensorRT could not attach a new timing cache (for {path}).")
    return {"path": str(path), "reused": reused}


def write_atomically(files: list[tuple[Path, bytes]]) -> None:
    """Write every file under a temporary name beside it, then rename them into place. A failure
    leaves no temporary, and no new file under a final name: one renamed before a later rename
    failed is removed (an engine without its sidecar, or the reverse, is refused anyway)."""
    temporaries: list[Path] = []
    renamed: list[Path] = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temporaries.append(Path(name))
            with os.fdopen(handle, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for (path, _), temporary in zip(files, temporaries):
            os.replace(temporary, path)
            renamed.append(path)
    except BaseException:
        for path in renamed:
            path.unlink(missing_ok=True)
        raise
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


def engine_is_current(engine_path: str | Path, onnx_path: str | Path, max_batch: int, target: str) -> bool | str:
    """``True`` when the engine at ``engine_path`` was built from ``onnx_path``'s weights and
    precision, by this TensorRT, for this GPU, with this profile and target; otherwise a
    :class:`Stale` sentence (falsy) saying why not."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return Stale(f"there is no engine at {engine_path}")
    try:
        sidecar = read_sidecar(engine_path)
    except ModelFormatError as exc:
        return Stale(str(exc))
    if file_sha256(engine_path) != sidecar["engine_sha256"]:
        return Stale(f"{sidecar_path(engine_path).name} describes another engine than {engine_path.name}")
    spec, precision = read_graph(onnx_path)
    if sidecar["weights_sha256"] != spec.weights_sha256:
        return Stale(f"{engine_path.name} was built from other weights (sha256 {sidecar['weights_sha256'][:12]}..., "
                     f"{Path(onnx_path).name} has {spec.weights_sha256[:12]}...)")
    if sidecar["precision"] != precision:
        return Stale(f"{engine_path.name} is {sidecar['precision']}, {Path(onnx_path).name} is {precision}")
    if (sidecar["max_batch"], sidecar["target"]) != (max_batch, target):
        return Stale(f"{engine_path.name} was built for {sidecar['max_batch']} streams on {sidecar['target']}, "
                     f"not {max_batch} on {target}")
    try:
        trt = import_tensorrt()
        gpu = gpu_info()
    except BackendError as exc:
        return Stale(str(exc))
    if sidecar["tensorrt_version"] != trt.__version__:
        return Stale(f"{engine_path.name} was built with TensorRT {sidecar['tensorrt_version']}, this is "
                     f"TensorRT {trt.__version__}")
    if sidecar["gpu"] != gpu:
        return Stale(f"{engine_path.name} was built for {sidecar['gpu'].get('name')} (compute capability "
                     f"{sidecar['gpu'].get('compute_capability')}), this GPU is {gpu['name']} (compute capability "
                     f"{gpu['compute_capability']})")
    return True
