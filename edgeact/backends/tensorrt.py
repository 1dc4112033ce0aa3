"""TensorRT backend: a strongly typed engine stepped over state that stays on the GPU.

An engine (``model.fp16.engine`` or ``.plan``) comes with its sidecar
(``model.fp16.engine.json``), written by ``build_engines`` (build_engines/engine.py): the
edgeact spec, the precision, the TensorRT version and GPU it was built for, the weights hash,
the profile's largest batch and the engine file's own sha256.

Loading refuses, before the first frame: a sidecar that describes another file; an engine
built by another TensorRT version or for another GPU (name and compute capability: an engine
runs nowhere else), with the command that rebuilds it; engine I/O tensors that are not the
spec's by name, shape and dtype. Then one warm-up step runs.

Stepping uses TensorRT's named-tensor API (10.x and 11.x): the state pool's buffers are device
memory (``allocate`` returns :class:`~edgeact.backends.device.DeviceArray`), a step binds the
current half's views as the ``state_in.*`` addresses and the other half's as ``state_out.*``
(``set_tensor_address``), so the pool's ping-pong is a swap of pointers. Per step only the data
inputs go up and the logits come down. ``max_batch`` is the profile's, so the pool splits
larger batches. With ``cuda_graph=True`` the step over buffers the pool hands again (its
``key``) is captured once into a CUDA graph and replayed after.

tensorrt and cuda-python are imported when an engine is loaded, not with this module.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.backends.base import Loader, Runner
from edgeact.backends.device import Device, DeviceArray
from edgeact.errors import BackendError, ModelFormatError
from edgeact.spec import LOGITS, PROBS, STATE_IN, STATE_OUT, ModelSpec, TensorSpec

ENGINE_SUFFIXES = (".engine", ".plan")
SIDECAR_FORMAT = "edgeact.engine/1"
SIDECAR_KEYS = ("format", "engine_sha256", "spec", "precision", "tensorrt_version", "gpu", "weights_sha256",
                "max_batch", "target")
REBUILD = "python -m build_engines MODEL.onnx --precision {precision}"

_log = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError("the tensorrt backend needs the TensorRT Python package (10.x or 11.x), which is not "
                           "installed here; install it with pip install 'edgeact[tensorrt]' "
                           "(JetPack ships it).") from exc
    return tensorrt


def sidecar_path(engine: str | Path) -> Path:
    """``model.fp16.engine`` -> ``model.fp16.engine.json``."""
    return Path(str(engine) + ".json")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    """The sidecar JSON of an engine file, with its required keys present."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise ModelFormatError(f"{engine} has no sidecar {path.name} beside it (its spec, precision and build "
                               "versions); build engines with `python -m build_engines`, which writes both.")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path} is not a readable engine sidecar ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelFormatError(f"{path}: unsupported engine sidecar format {got!r}; expected {SIDECAR_FORMAT!r}.")
    missing = [key for key in SIDECAR_KEYS if key not in data]
    if missing:
        raise ModelFormatError(f"{path} lacks {missing}; rebuild the engine with `python -m build_engines`.")
    return data


def check_built_here(path: Path, sidecar: dict[str, Any], tensorrt_version: str, gpu: dict[str, str]) -> None:
    """An engine runs only on the TensorRT version and the GPU it was built with and for."""
    rebuild = REBUILD.format(precision=sidecar["precision"])
    built = sidecar["tensorrt_version"]
    if built != tensorrt_version:
        raise ModelFormatError(f"{path} was built with TensorRT {built}, but this is TensorRT {tensorrt_version}; "
                               f"an engine runs only on the TensorRT version that built it. Rebuild it on this "
                               f"machine with `{rebuild}`.")
    there, here = sidecar["gpu"], gpu
    if (there.get("name"), there.get("compute_capability")) != (here["name"], here["compute_capability"]):
        raise ModelFormatError(f"{path} was built for {there.get('name')} (compute capability "
                               f"{there.get('compute_capability')}), but this GPU is {here['name']} (compute "
                               f"capability {here['compute_capability']}). Rebuild it on this machine with "
                               f"`{rebuild}`.")


# -- the engine's I/O against the spec -------------------------------------------------------------
def expected_io(spec: ModelSpec) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """name -> (mode, shape with the batch as -1, dtype) of every step-graph tensor."""
    io: dict[str, tuple[str, tuple[int, ...], str]] = {}
    for s in spec.data_inputs:
        io[s.name] = ("input", (-1, *s.shape), s.dtype)
    for s in spec.state:
        io[STATE_IN + s.name] = ("input", (-1, *s.shape), s.dtype)
    for name in (LOGITS, PROBS):
        io[name] = ("output", (-1, spec.num_classes), "float32")
    for f in spec.features:
        io[f.name] = ("output", (-1, *f.shape), f.dtype)
    for s in spec.state:
        io[STATE_OUT + s.name] = ("output", (-1, *s.shape), s.dtype)
    return io


def engine_io(trt: Any, engine: Any) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """name -> (mode, shape, dtype) of an engine's I/O tensors."""
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        dtype = engine.get_tensor_dtype(name)
        try:
            dtype_name = np.dtype(trt.nptype(dtype)).name
        except TypeError:  # no numpy equivalent (bf16, fp8, int4)
            dtype_name = str(dtype)
        io[name] = (mode, tuple(int(d) for d in engine.get_tensor_shape(name)), dtype_name)
    return io


def check_engine_io(actual: dict, expected: dict, source: Any) -> None:
    """Names, modes, dtypes and shapes. An output axis after the batch that TensorRT leaves to
    run time (-1) passes here and is checked once the input shapes are set (``check_shapes``)."""
    def describe(entry):
        return f"{entry[0]} {entry[2]} of shape {entry[1]}"

    def fits(got, want):
        runtime_axis_ok = want[0] == "output"
        return (got[0], got[2], len(got[1])) == (want[0], want[2], len(want[1])) and all(
            g == w or (g == -1 and runtime_axis_ok and axis > 0) for axis, (g, w) in enumerate(zip(got[1], want[1])))

    problems = [f"it lacks {expected[name][0]} {name!r}" for name in expected if name not in actual]
    problems += [f"it has an extra {actual[name][0]} {name!r}" for name in actual if name not in expected]
    problems += [f"{name!r} is {describe(actual[name])}, the spec says {describe(expected[name])}"
                 for name in expected if name in actual and not fits(actual[name], expected[name])]
    if problems:
        raise ModelFormatError(f"{source}: the engine's I/O tensors do not match its sidecar's spec: "
                               f"{'; '.join(problems)}. Rebuild the engine from the ONNX export of this model.")


def check_shapes(context: Any, expected: dict, batch: int, source: Any) -> None:
    """The output shapes an execution context computes for ``batch`` are the spec's."""
    wrong = [f"{name!r} is {tuple(context.get_tensor_shape(name))}, the spec says {(batch, *shape[1:])}"
             for name, (mode, shape, _) in expected.items()
             if mode == "output" and tuple(context.get_tensor_shape(name)) != (batch, *shape[1:])]
    if wrong:
        raise ModelFormatError(f"{source}: for a batch of {batch} the engine's outputs are not the spec's: "
                               f"{'; '.join(wrong)}. Rebuild the engine from the ONNX export of this model.")


def profile_max_batch(engine: Any, input_names: Sequence[str], source: Any) -> int:
    """The largest batch profile 0 takes for every input; it must take a batch of 1."""
    largest = []
    for name in input_names:
        low, _, high = engine.get_tensor_profile_shape(name, 0)
        if int(low[0]) != 1:
            raise ModelFormatError(f"{source}: the engine's profile takes batches of {int(low[0])}..{int(high[0])} for "
                                   f"{name!r}; a streaming engine must take a batch of 1 (one stream).")
        largest.append(int(high[0]))
    return min(largest)


# -- TensorRT's log --------------------------------------------------------------------------------
_LOGGERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def trt_logger(trt: Any) -> Any:
    """One logger per tensorrt module: errors kept for the next message, warnings to logging."""
    logger = _LOGGERS.get(trt)
    if logger is None:
        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: collections.deque[str] = collections.deque(maxlen=16)

            def log(self, severity, msg):
                if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                    self.errors.append(str(msg))
                elif severity == trt.ILogger.Severity.WARNING:
                    _log.warning("TensorRT: %s", msg)
                else:
                    _log.debug("TensorRT: %s", msg)

            def said(self) -> str:
                """'; TensorRT said: ...' with the errors logged since the last call, or ''."""
                errors = [self.errors.popleft() for _ in range(len(self.errors))]
                return f"; TensorRT said: {' | '.join(errors)}" if errors else ""

        logger = _LOGGERS[trt] = Logger()
    return logger


# -- loading ---------------------------------------------------------------------------------------
@dataclass
class LoadedEngine:
    """What the loader hands the runner: the deserialized engine and what it needs to step it."""

    trt: Any
    trt_runtime: Any  # the trt.Runtime that deserialized the engine: kept alive as long as the engine
    engine: Any
    spec: ModelSpec
    sidecar: dict[str, Any]
    path: Path
    device: Device
    logger: Any
    cuda_graph: bool = False


class TensorRTLoader(Loader):
    backend = "tensorrt"
    options = ("cuda_graph",)

    def __init__(self, path: str | Path, *, device: str = "auto", threads: int | None = None, **options: Any):
        super().__init__(path, device=device, threads=threads, **options)
        if device not in ("auto", "cuda"):
            raise BackendError(f"tensorrt device must be 'auto' or 'cuda' (the current CUDA device), got {device!r}.")
        self.cuda_graph = options.get("cuda_graph", False)
        if not isinstance(self.cuda_graph, bool):
            raise BackendError(f"cuda_graph must be True or False, got {self.cuda_graph!r}.")
        self._sidecar: dict[str, Any] | None = None

    @property
    def sidecar(self) -> dict[str, Any]:
        if self._sidecar is None:
            self._sidecar = read_sidecar(self.path)
        return self._sidecar

    @property
    def spec(self) -> ModelSpec:
        """The spec in the engine's sidecar (read without TensorRT)."""
        if self._spec is None:
            self._spec = ModelSpec.from_dict(self.sidecar["spec"], source=str(sidecar_path(self.path)))
        return self._spec

    def __call__(self) -> LoadedEngine:
        trt = import_tensorrt()
        sidecar, spec, side = self.sidecar, self.spec, sidecar_path(self.path)
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != sidecar["engine_sha256"]:
            raise ModelFormatError(f"{side} describes another engine (sha256 {sidecar['engine_sha256'][:12]}..., "
                                   f"{self.path.name} is {digest[:12]}...); rebuild both with "
                                   f"`{REBUILD.format(precision=sidecar['precision'])}`.")
        if sidecar["weights_sha256"] != spec.weights_sha256:
            raise ModelFormatError(f"{side} is inconsistent: its weights_sha256 {sidecar['weights_sha256'][:12]}... "
                                   f"is not its spec's {spec.weights_sha256[:12]}...; rebuild the engine with "
                                   f"`{REBUILD.format(precision=sidecar['precision'])}`.")
        device = Device()
        try:
            check_built_here(self.path, sidecar, trt.__version__, device.properties())
            logger = trt_logger(trt)
            runtime = trt.Runtime(logger)
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise ModelFormatError(f"TensorRT could not deserialize {self.path}{logger.said()}.")
        except BaseException:
            device.close()
            raise
        return LoadedEngine(trt, runtime, engine, spec, sidecar, self.path, device, logger, self.cuda_graph)


# -- stepping --------------------------------------------------------------------------------------
class TensorRTRunner(Runner):
    name = "tensorrt"

    GRAPHS = 8  # CUDA graphs kept (LRU): ping and pong of a few runs of slots

    def _open(self, loaded: LoadedEngine) -> None:
        try:
            self._setup(loaded)
        except BaseException:
            self._release(loaded.device)  # arrays made so far are freed when collected
            self._runtime = None  # a runner with a loader loads afresh next time
            raise

    def _setup(self, loaded: LoadedEngine) -> None:
        spec, trt, engine = self.spec, loaded.trt, loaded.engine
        self._loaded, self._source = loaded, loaded.path
        expected = expected_io(spec)
        check_engine_io(engine_io(trt, engine), expected, loaded.path)
        self._inputs_spec = [*spec.data_inputs, *(TensorSpec(STATE_IN + s.name, s.shape, s.dtype) for s in spec.state)]
        self.max_batch = profile_max_batch(engine, [s.name for s in self._inputs_spec], loaded.path)
        if self.max_batch != loaded.sidecar["max_batch"]:
            raise ModelFormatError(f"{loaded.path}: the engine's profile takes at most {self.max_batch} streams, its "
                                   f"sidecar says {loaded.sidecar['max_batch']}; rebuild the engine.")
        self._device = device = loaded.device
        self._logger = loaded.logger
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"TensorRT could not create an execution context for {loaded.path}"
                               f"{self._logger.said()}.")
        self._lock = threading.Lock()  # one execution context: one step at a time
        rows = self.max_batch
        self._data = {s.name: device.zeros((rows, *s.shape), s.dtype) for s in spec.data_inputs}
        outputs = [TensorSpec(LOGITS, (spec.num_classes,)), TensorSpec(PROBS, (spec.num_classes,)), *spec.features]
        self._outputs = {s.name: device.zeros((rows, *s.shape), s.dtype) for s in outputs}
        for name, array in {**self._data, **self._outputs}.items():
            self._bind(name, array.ptr)
        # state for the stateless form (host numpy state goes through these)
        self._scratch = tuple([device.zeros((rows, *s.shape), s.dtype) for s in spec.state] for _ in range(2))
        self._batch: int | None = None  # the batch the context's input shapes are set for
        self._flushed = False  # enqueued once since the input shapes last changed (a capture needs it)
        self._graphs: collections.OrderedDict | None = collections.OrderedDict() if loaded.cuda_graph else None
        self._seen: collections.OrderedDict = collections.OrderedDict()  # keys stepped once, not captured yet
        self._capture_stream = device.new_stream() if loaded.cuda_graph else None
        self.captures = 0
        self._prepare(1, [])
        check_shapes(self._context, expected, 1, loaded.path)  # before anything is written to our buffers
        warm = {s.name: np.zeros((1, *s.shape), s.dtype) for s in spec.data_inputs}
        self._run(warm, spec.zero_state(1), spec.zero_state(1))

    def allocate(self, spec: TensorSpec, rows: int) -> DeviceArray:
        """Zeroed device memory: the pool's state stays on the GPU."""
        self.runtime  # noqa: B018 (the device comes with the engine)
        return self._device.zeros((rows, *spec.shape), spec.dtype)

    def _run(self, inputs, state_in, state_out, key: Hashable | None = None) -> np.ndarray:
        with self._lock:
            self._device.collect()
            if state_in and not isinstance(state_in[0], DeviceArray):
                return self._run_host(inputs, state_in, state_out)
            batch = len(state_in[0]) if state_in else len(next(iter(inputs.values())))
            return self._step(inputs, state_in, state_out, batch, key)

    def _step(self, inputs, state_in: Sequence[DeviceArray], state_out: Sequence[DeviceArray], batch: int,
              key: Hashable | None) -> np.ndarray:
        if batch > self.max_batch:
            raise BackendError(f"{self._source}: a step of {batch} streams is more than the engine's profile takes "
                               f"({self.max_batch}); the state pool splits larger batches.")
        for s in self.spec.data_inputs:
            self._data[s.name][:batch].upload(inputs[s.name])
        addresses = [(STATE_IN + s.name, a.ptr) for s, a in zip(self.spec.state, state_in)]
        addresses += [(STATE_OUT + s.name, a.ptr) for s, a in zip(self.spec.state, state_out)]
        if self._graphs is not None and key is not None:
            self._replay(key, batch, addresses)
        else:
            self._enqueue(batch, addresses)
        return self._outputs[LOGITS][:batch].download()

    def _run_host(self, inputs, state_in: Sequence[np.ndarray], state_out: Sequence[np.ndarray]) -> np.ndarray:
        """The stateless form: numpy state through the scratch buffers, split to the profile."""
        batch, logits = len(state_in[0]), []
        scratch_in, scratch_out = self._scratch
        for first in range(0, batch, self.max_batch):
            n = min(self.max_batch, batch - first)
            for array, device in zip(state_in, scratch_in):
                device[:n].upload(np.ascontiguousarray(array[first:first + n]))
            chunk = {name: np.ascontiguousarray(array[first:first + n]) for name, array in inputs.items()}
            logits.append(self._step(chunk, [d[:n] for d in scratch_in], [d[:n] for d in scratch_out], n, None))
            for array, device in zip(state_out, scratch_out):
                array[first:first + n] = device[:n].download()
        return logits[0] if len(logits) == 1 else np.concatenate(logits)

    # -- the execution context --------------------------------------------------------------------
    def _bind(self, name: str, ptr: int) -> None:
        if not self._context.set_tensor_address(name, ptr):
            raise BackendError(f"{self._source}: TensorRT refused the address of {name!r}{self._logger.said()}.")

    def _prepare(self, batch: int, addresses: list[tuple[str, int]]) -> None:
        if batch != self._batch:
            for s in self._inputs_spec:
                if not self._context.set_input_shape(s.name, (batch, *s.shape)):
                    raise BackendError(f"{self._source}: TensorRT refused a batch of {batch} for {s.name!r} (its "
                                       f"profile takes 1..{self.max_batch}){self._logger.said()}.")
            self._batch, self._flushed = batch, False
        for name, ptr in addresses:
            self._bind(name, ptr)

    def _enqueue(self, batch: int, addresses: list[tuple[str, int]]) -> None:
        self._prepare(batch, addresses)
        self._execute(batch)

    def _execute(self, batch: int) -> None:
        if not self._context.execute_async_v3(self._device.handle):
            raise BackendError(f"{self._source}: TensorRT could not enqueue a step of {batch} stream(s)"
                               f"{self._logger.said()}.")
        self._flushed = True

    def _replay(self, key: Hashable, batch: int, addresses: list[tuple[str, int]]) -> None:
        """Launch the CUDA graph of ``key``'s buffers; capture it the second time the key comes
        (a graph bakes in shapes and addresses, and TensorRT must have run once with the
        current shapes before its work is captured)."""
        rt, device = self._device.rt, self._device
        graph = self._graphs.get(key)
        if graph is None:
            self._prepare(batch, addresses)
            if key not in self._seen or not self._flushed:
                self._seen[key] = None
                if len(self._seen) > 8 * self.GRAPHS:
                    self._seen.popitem(last=False)
                self._execute(batch)
                return
            graph = self._graphs[key] = self._capture(batch)
            del self._seen[key]
            if len(self._graphs) > self.GRAPHS:
                _, old = self._graphs.popitem(last=False)
                device.call("cudaGraphExecDestroy", rt.cudaGraphExecDestroy(old))
        self._graphs.move_to_end(key)
        device.call("cudaGraphLaunch", rt.cudaGraphLaunch(graph, device.stream))

    def _capture(self, batch: int) -> Any:
        rt, device, stream = self._device.rt, self._device, self._capture_stream
        # a stream of its own: another thread's reset or copy on the main stream is not captured
        device.call("cudaStreamBeginCapture",
                    rt.cudaStreamBeginCapture(stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
        try:
            enqueued = self._context.execute_async_v3(int(stream))
        finally:
            graph = device.call("cudaStreamEndCapture", rt.cudaStreamEndCapture(stream))
        try:
            if not enqueued:
                raise BackendError(f"{self._source}: TensorRT could not capture a step of {batch} stream(s) into a "
                                   f"CUDA graph{self._logger.said()}; load it without cuda_graph=True.")
            executable = device.call("cudaGraphInstantiate", rt.cudaGraphInstantiate(graph, 0))
        finally:
            device.call("cudaGraphDestroy", rt.cudaGraphDestroy(graph))
        self.captures += 1
        return executable

    # -- lifetime ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        loaded = getattr(self, "_loaded", None)
        if loaded is None:
            return super().describe()
        sidecar = loaded.sidecar
        return {**super().describe(), "precision": sidecar["precision"],
                "tensorrt_version": sidecar["tensorrt_version"], "gpu": sidecar["gpu"], "target": sidecar["target"],
                "cuda_graph": loaded.cuda_graph}

    def close(self) -> None:
        """Destroy the CUDA graphs and the streams, release the engine; idempotent."""
        with self._open_lock, getattr(self, "_lock", None) or contextlib.nullcontext():  # after a step in flight
            device = getattr(self, "_device", None)
            if device is not None:
                self._release(device)
        super().close()

    def _release(self, device: Device) -> None:
        for graph in (getattr(self, "_graphs", None) or {}).values():
            device.call("cudaGraphExecDestroy", device.rt.cudaGraphExecDestroy(graph))
        stream = getattr(self, "_capture_stream", None)
        if stream is not None:
            device.call("cudaStreamDestroy", device.rt.cudaStreamDestroy(stream))
        self._graphs = self._capture_stream = self._context = self._loaded = self._device = None
        device.close()
