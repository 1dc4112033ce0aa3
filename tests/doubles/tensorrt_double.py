"""A strict test double of the TensorRT Python API (10.x or 11.x) that edgeact uses, executing
the step graph with ONNX Runtime on the CPU, over the memory of the cuda-python double.

``make_tensorrt("10.8.0" | "11.1.0", cuda)`` returns ``(module, record)``: a module to install
as ``tensorrt`` and a :class:`TensorRTRecord` of what was asked of it.

Strict like the real library:

* every class has fixed attributes: an unknown attribute raises AttributeError, on read and on
  write; in 11.x mode the APIs TensorRT 11 removed are absent (``BuilderFlag.FP16/INT8/BF16/
  FP8/INT4/FP4/OBEY_PRECISION_CONSTRAINTS/PREFER_PRECISION_CONSTRAINTS/DIRECT_IO``,
  ``IBuilderConfig.int8_calibrator``, ``Builder.platform_has_fast_fp16/fast_int8/tf32``), and
  ``NetworkDefinitionCreationFlag`` has only STRONGLY_TYPED (deprecated, every network being
  strongly typed) and the plugin flags;
* a logger subclassing ``ILogger`` must call ``ILogger.__init__``;
* a 10.x network made without STRONGLY_TYPED is allowed but recorded (``record.networks``), as are
  precision builder flags; the build fails when they are set on a strongly typed network;
* the build needs a profile with a shape for every dynamic input, inside the network's dims;
  a DLA build needs a DLA core (``dla_cores``);
* ``set_input_shape`` returns False (and logs an error) for a name that is not an input, a shape of
  the wrong rank, a fixed axis changed, or a shape outside profile 0; ``set_tensor_address``
  returns False for a name that is not an I/O tensor; ``execute_async_v3`` returns False before
  every input shape and every I/O address is set, for a stream that is not live, for aliased
  input/output memory, and when called on a capturing stream before one plain enqueue with the
  current shapes. An address that is no live allocation (or too small) fails at execution: the
  CUDA double is poisoned with cudaErrorIllegalAddress, which the next CUDA call returns;
* ``deserialize_cuda_engine`` returns None for bytes that are not an engine of this double, an
  engine of another TensorRT version, or one built for another GPU.

The "engine" serializes the ONNX bytes with the I/O table (names, modes, dtypes, shapes: output
shapes found by running the graph at batch 1 and 2), the profile, and the build's flags.
Executing reads the inputs from their addresses, runs ONNX Runtime, writes the outputs to theirs.
"""

from __future__ import annotations

import enum
import importlib.machinery
import json
import math
import threading
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"EDGEACT TENSORRT DOUBLE ENGINE\n"
CACHE_MAGIC = b"EDGEACT TENSORRT DOUBLE TIMING CACHE\n"


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9


_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
          DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}
_FROM_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
              2: DataType.UINT8, 7: DataType.INT64, 16: DataType.BF16}


def nptype(trt_type: DataType) -> type:
    if trt_type not in _NUMPY:
        raise TypeError(f"Could not resolve TensorRT datatype {trt_type!r} to an equivalent numpy datatype.")
    return _NUMPY[trt_type]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DeviceType(enum.IntEnum):
    GPU = 0
    DLA = 1


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4
    TACTIC_SHARED_MEMORY = 5


class ErrorCode(enum.IntEnum):
    SUCCESS = 0
    INTERNAL_ERROR = 1
    MEM_ALLOC_FAILED = 2
    MODEL_DESERIALIZE_FAILED = 3
    INVALID_VALUE = 4
    INVALID_GRAPH = 5
    INVALID_NODE = 6
    UNSUPPORTED_GRAPH = 7
    UNSUPPORTED_NODE = 8


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class Dims(tuple):
    __slots__ = ()


class IHostMemory(bytes):
    @property
    def nbytes(self) -> int:
        return len(self)


COMMON_FLAGS = ("DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS", "SAFETY_SCOPE",
                "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "REJECT_EMPTY_ALGORITHMS", "ERROR_ON_TIMING_CACHE_MISS",
                "STRIP_PLAN", "REFIT_IDENTICAL", "WEIGHT_STREAMING", "EDITABLE_TIMING_CACHE")
REMOVED_IN_11 = ("FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                 "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO")


@dataclass
class TensorRTRecord:
    """What edgeact asked of the double."""

    version: str
    networks: list[dict] = field(default_factory=list)  # {"flags", "strongly_typed"} per create_network
    builds: list[dict] = field(default_factory=list)  # the configuration of every build that succeeded
    executions: list[int] = field(default_factory=list)  # the batch of every executed step (graph replays too)
    captures: int = 0  # steps captured into CUDA graphs
    errors: list[str] = field(default_factory=list)  # every error logged
    calibrators: list[Any] = field(default_factory=list)  # int8_calibrator assignments (10.x)
    fail_next_build: str | None = None  # set by a test: the next build logs this error and returns None


def make_tensorrt(version: str, cuda: Any, *, dla_cores: int = 0) -> tuple[types.ModuleType, TensorRTRecord]:
    major = int(version.split(".")[0])
    record = TensorRTRecord(version)
    flags = COMMON_FLAGS + (REMOVED_IN_11 if major < 11 else ())
    BuilderFlag = enum.IntEnum("BuilderFlag", [(name, i) for i, name in enumerate(flags)])
    precision_flags = {BuilderFlag[name] for name in REMOVED_IN_11 if name in BuilderFlag.__members__}
    if major < 11:
        NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", [
            ("EXPLICIT_BATCH", 0), ("STRONGLY_TYPED", 1), ("PREFER_AOT_PYTHON_PLUGINS", 2),
            ("PREFER_JIT_PYTHON_PLUGINS", 3)])
    else:
        NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", [
            ("STRONGLY_TYPED", 0), ("PREFER_AOT_PYTHON_PLUGINS", 1), ("PREFER_JIT_PYTHON_PLUGINS", 2)])
    device_key = {"name": cuda.gpu_name, "compute_capability": list(cuda.compute_capability)}

    def report(logger, severity: Severity, message: str) -> None:
        if severity <= Severity.ERROR:
            record.errors.append(message)
        logger.log(severity, message)

    def check_logger(logger) -> None:
        if not isinstance(logger, ILogger) or not getattr(logger, "_initialized", False):
            raise TypeError("ILogger.__init__() must be called when overriding __init__")

    # -- logging ----------------------------------------------------------------------------------
    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING,
                                                         Severity.INFO, Severity.VERBOSE)

        def __init__(self):
            self._initialized = True

        def log(self, severity, msg):
            raise RuntimeError("Tried to call pure virtual function \"ILogger::log\"")

    ILogger.Severity = Severity

    class Logger(ILogger):
        def __init__(self, min_severity: Severity = Severity.WARNING):
            ILogger.__init__(self)
            self.min_severity = min_severity

        def log(self, severity, msg):
            pass

    # -- network and parser -----------------------------------------------------------------------
    class ITensor:
        __slots__ = ("_name", "_shape", "_dtype")

        def __init__(self, name: str, shape: tuple, dtype: DataType):
            self._name, self._shape, self._dtype = name, Dims(shape), dtype

        name = property(lambda self: self._name)
        shape = property(lambda self: self._shape)
        dtype = property(lambda self: self._dtype)

    class INetworkDefinition:
        __slots__ = ("_flags", "_strongly_typed", "_inputs", "_outputs", "_onnx")

        def __init__(self, flags: int, strongly_typed: bool):
            self._flags, self._strongly_typed = flags, strongly_typed
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self._onnx: bytes | None = None

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))

        def get_input(self, index: int) -> ITensor:
            return self._inputs[index]

        def get_output(self, index: int) -> ITensor:
            return self._outputs[index]

        def get_flag(self, flag) -> bool:
            if flag == NetworkDefinitionCreationFlag.STRONGLY_TYPED:
                return self._strongly_typed
            return bool(self._flags & (1 << int(flag)))

    class ParserError:
        __slots__ = ("_code", "_desc", "_node")

        def __init__(self, code: ErrorCode, desc: str, node: int = -1):
            self._code, self._desc, self._node = code, desc, node

        def code(self) -> ErrorCode:
            return self._code

        def desc(self) -> str:
            return self._desc

        def node(self) -> int:
            return self._node

        def __str__(self) -> str:
            return f"In node {self._node} with name:  and operator:  ({self._code.name}) {self._desc}"

    class OnnxParser:
        __slots__ = ("_network", "_logger", "_errors")

        def __init__(self, network: INetworkDefinition, logger):
            check_logger(logger)
            self._network, self._logger, self._errors = network, logger, []

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, index: int) -> ParserError:
            return self._errors[index]

        def clear_errors(self) -> None:
            self._errors = []

        def parse_from_file(self, model: str) -> bool:
            with open(model, "rb") as f:
                return self.parse(f.read(), model)

        def parse(self, model, path: str | None = None) -> bool:
            import onnx

            data = bytes(model)
            try:
                proto = onnx.load_from_string(data)
                onnx.checker.check_model(proto)
            except Exception as exc:  # protobuf and the checker raise their own errors
                self._errors.append(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED,
                                                f"Failed to parse ONNX model from memory ({type(exc).__name__})"))
                report(self._logger, Severity.ERROR, f"ModelImporter: failed to parse the ONNX model: {exc}")
                return False
            graph = proto.graph
            initializers = {i.name for i in graph.initializer}
            inputs = []
            for value in graph.input:
                if value.name in initializers:
                    continue
                tensor = value.type.tensor_type
                if tensor.elem_type not in _FROM_ONNX:
                    self._errors.append(ParserError(ErrorCode.UNSUPPORTED_GRAPH,
                                                    f"input {value.name} has unsupported type {tensor.elem_type}"))
                    return False
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
                inputs.append(ITensor(value.name, shape, _FROM_ONNX[tensor.elem_type]))
            outputs = [ITensor(o.name, tuple(-1 for _ in o.type.tensor_type.shape.dim),
                               _FROM_ONNX.get(o.type.tensor_type.elem_type, DataType.FLOAT)) for o in graph.output]
            self._network._inputs, self._network._outputs, self._network._onnx = inputs, outputs, data
            return True

    # -- builder ----------------------------------------------------------------------------------
    class IOptimizationProfile:
        __slots__ = ("_shapes",)

        def __init__(self):
            self._shapes: dict[str, tuple[Dims, Dims, Dims]] = {}

        def set_shape(self, input: str, min, opt, max) -> None:  # noqa: A002 (TensorRT's names)
            shapes = [Dims(int(d) for d in s) for s in (min, opt, max)]
            if len({len(s) for s in shapes}) != 1 or any(not 1 <= a <= b <= c for a, b, c in zip(*shapes)):
                raise ValueError(f"inconsistent profile shapes for {input}: {shapes}")
            self._shapes[input] = tuple(shapes)

        def get_shape(self, input: str) -> list:  # noqa: A002
            return list(self._shapes.get(input, ()))

        def __bool__(self) -> bool:
            return bool(self._shapes)

    class ITimingCache:
        __slots__ = ("_device", "_entries")

        def __init__(self, device: dict, entries: int = 0):
            self._device, self._entries = device, entries

        def serialize(self) -> IHostMemory:
            return IHostMemory(CACHE_MAGIC + json.dumps({"device": self._device, "version": version,
                                                         "entries": self._entries}).encode())

        def combine(self, input_cache, ignore_mismatch: bool) -> bool:
            if input_cache._device != self._device and not ignore_mismatch:
                return False
            self._entries += input_cache._entries
            return True

        def reset(self) -> bool:
            self._entries = 0
            return True

    class IBuilderConfig:
        __slots__ = ("_flags", "_pools", "_profiles", "_device_type", "_dla_core", "_timing_cache")

        def __init__(self):
            self._flags = {BuilderFlag.TF32}  # TF32 is on by default
            self._pools: dict[MemoryPoolType, int] = {}
            self._profiles: list[IOptimizationProfile] = []
            self._device_type = DeviceType.GPU
            self._dla_core = -1
            self._timing_cache: ITimingCache | None = None

        def set_flag(self, flag) -> None:
            if not isinstance(flag, BuilderFlag):
                raise TypeError(f"set_flag(): incompatible function arguments: {flag!r}")
            self._flags.add(flag)

        def clear_flag(self, flag) -> None:
            if not isinstance(flag, BuilderFlag):
                raise TypeError(f"clear_flag(): incompatible function arguments: {flag!r}")
            self._flags.discard(flag)

        def get_flag(self, flag) -> bool:
            if not isinstance(flag, BuilderFlag):
                raise TypeError(f"get_flag(): incompatible function arguments: {flag!r}")
            return flag in self._flags

        def set_memory_pool_limit(self, pool, pool_size: int) -> None:
            if not isinstance(pool, MemoryPoolType) or not isinstance(pool_size, int) or pool_size < 0:
                raise TypeError(f"set_memory_pool_limit(): incompatible function arguments: {pool!r}, {pool_size!r}")
            self._pools[pool] = pool_size

        def get_memory_pool_limit(self, pool) -> int:
            return self._pools.get(pool, 1 << 40)

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            if not isinstance(profile, IOptimizationProfile) or not profile:
                return -1
            self._profiles.append(profile)
            return len(self._profiles) - 1

        num_optimization_profiles = property(lambda self: len(self._profiles))

        @property
        def default_device_type(self) -> DeviceType:
            return self._device_type

        @default_device_type.setter
        def default_device_type(self, value) -> None:
            if not isinstance(value, DeviceType):
                raise TypeError(f"default_device_type must be a DeviceType, got {value!r}")
            self._device_type = value

        @property
        def DLA_core(self) -> int:  # noqa: N802 (TensorRT's name)
            return self._dla_core

        @DLA_core.setter
        def DLA_core(self, value: int) -> None:  # noqa: N802
            if not isinstance(value, int):
                raise TypeError(f"DLA_core must be an int, got {value!r}")
            self._dla_core = value

        def create_timing_cache(self, serialized_timing_cache) -> ITimingCache | None:
            data = bytes(serialized_timing_cache)
            if not data:
                return ITimingCache(device_key)
            if not data.startswith(CACHE_MAGIC):
                return None
            header = json.loads(data[len(CACHE_MAGIC):])
            return ITimingCache(header["device"], header["entries"])

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if cache._device != device_key and not ignore_mismatch:
                record.errors.append("timing cache made on another device")
                return False
            self._timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._timing_cache

    class IBuilderConfig10(IBuilderConfig):
        __slots__ = ("_calibrator",)

        @property
        def int8_calibrator(self):
            return getattr(self, "_calibrator", None)

        @int8_calibrator.setter
        def int8_calibrator(self, value) -> None:
            record.calibrators.append(value)
            self._calibrator = value

    class Builder:
        __slots__ = ("_logger",)

        def __init__(self, logger):
            check_logger(logger)
            self._logger = logger

        logger = property(lambda self: self._logger)
        num_DLA_cores = property(lambda self: dla_cores)
        max_DLA_batch_size = property(lambda self: 4096 if dla_cores else 1)

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            if not isinstance(flags, int) or isinstance(flags, bool):
                raise TypeError(f"create_network(): incompatible function arguments: {flags!r}")
            bit = 1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            strongly_typed = major >= 11 or bool(flags & bit)
            record.networks.append({"flags": flags, "strongly_typed": strongly_typed})
            return INetworkDefinition(flags, strongly_typed)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig10() if major < 11 else IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
            def fail(message: str) -> None:
                report(self._logger, Severity.ERROR, message)

            if record.fail_next_build:
                message, record.fail_next_build = record.fail_next_build, None
                return fail(message)
            if network._onnx is None:
                return fail("Network must have at least one output")
            weak = sorted(f.name for f in config._flags & precision_flags)
            if weak and network._strongly_typed:
                return fail(f"precision flags {weak} set on a strongly typed network (the double refuses them)")
            if not config._profiles:
                return fail("Network has dynamic or shape inputs, but no optimization profile has been defined.")
            profile = config._profiles[0]._shapes
            for tensor in network._inputs:
                shapes = profile.get(tensor.name)
                if shapes is None:
                    return fail(f"{tensor.name}: dynamic input is missing dimensions in profile 0.")
                for shape in shapes:
                    if len(shape) != len(tensor.shape) or any(d != s for d, s in zip(tensor.shape, shape) if d != -1):
                        return fail(f"{tensor.name}: profile shape {tuple(shape)} does not fit the network's "
                                    f"{tuple(tensor.shape)}.")
            if config._device_type == DeviceType.DLA and not 0 <= config._dla_core < dla_cores:
                return fail(f"DLA core {config._dla_core} requested, but this platform has {dla_cores} DLA cores.")
            timing_entries = config._timing_cache._entries if config._timing_cache is not None else None
            if config._timing_cache is not None:
                config._timing_cache._entries += len(network._inputs)
            header = {
                "version": version,
                "device": device_key,
                "io": _probe_io(network),
                "profile": {name: [list(s) for s in shapes] for name, shapes in profile.items()},
                "strongly_typed": network._strongly_typed,
            }
            record.builds.append({
                "flags": sorted(f.name for f in config._flags),
                "strongly_typed": network._strongly_typed,
                "profile": header["profile"],
                "workspace": config._pools.get(MemoryPoolType.WORKSPACE),
                "device_type": config._device_type.name,
                "dla_core": config._dla_core,
                "timing_cache_entries": timing_entries,
            })
            return IHostMemory(MAGIC + json.dumps(header).encode() + b"\n" + network._onnx)

    if major < 11:
        class Builder10(Builder):
            __slots__ = ()
            platform_has_fast_fp16 = property(lambda self: True)
            platform_has_fast_int8 = property(lambda self: True)
            platform_has_tf32 = property(lambda self: True)

        Builder10.__name__ = "Builder"
        Builder = Builder10  # noqa: N806

    # -- runtime ----------------------------------------------------------------------------------
    class ICudaEngine:
        __slots__ = ("_io", "_names", "_profile", "_onnx", "_session", "_lock", "_logger")

        def __init__(self, header: dict, onnx_bytes: bytes, logger):
            self._logger = logger
            self._io = {name: (TensorIOMode[mode], tuple(shape), DataType[dtype])
                        for name, mode, shape, dtype in header["io"]}
            self._names = [entry[0] for entry in header["io"]]
            self._profile = {name: [Dims(s) for s in shapes] for name, shapes in header["profile"].items()}
            self._onnx = onnx_bytes
            self._session = None
            self._lock = threading.Lock()

        num_io_tensors = property(lambda self: len(self._names))
        num_optimization_profiles = property(lambda self: 1)

        def get_tensor_name(self, index: int) -> str:
            return self._names[index]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return self._io[name][0] if name in self._io else TensorIOMode.NONE

        def get_tensor_dtype(self, name: str) -> DataType:
            return self._io[name][2]

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self._io[name][1]) if name in self._io else Dims()

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
            if profile_index != 0 or name not in self._profile:
                raise RuntimeError(f"get_tensor_profile_shape: {name!r} has no shapes in profile {profile_index}")
            return list(self._profile[name])

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

        def serialize(self) -> IHostMemory:
            raise NotImplementedError("the double's engines are serialized by the builder only")

        def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            with self._lock:
                if self._session is None:
                    self._session = _session(self._onnx)
                names = [o.name for o in self._session.get_outputs()]
                return dict(zip(names, self._session.run(None, feeds)))

    class IExecutionContext:
        __slots__ = ("_engine", "_shapes", "_addresses", "_enqueued_shapes")

        def __init__(self, engine: ICudaEngine):
            self._engine = engine
            self._shapes: dict[str, tuple] = {}
            self._addresses: dict[str, int] = {}
            self._enqueued_shapes: dict[str, tuple] | None = None

        engine = property(lambda self: self._engine)

        def _fail(self, message: str) -> bool:
            report(self._engine._logger, Severity.ERROR, message)
            return False

        def set_input_shape(self, name: str, shape) -> bool:
            io = self._engine._io
            if name not in io or io[name][0] != TensorIOMode.INPUT:
                return self._fail(f"setInputShape: {name!r} is not an input tensor of this engine")
            shape = tuple(int(d) for d in shape)
            network = io[name][1]
            if len(shape) != len(network):
                return self._fail(f"setInputShape: {name!r} has rank {len(network)}, got shape {shape}")
            if any(d != s for d, s in zip(network, shape) if d != -1):
                return self._fail(f"setInputShape: {name!r} is {network}, got {shape}")
            low, _, high = self._engine._profile[name]
            if any(not a <= d <= b for a, d, b in zip(low, shape, high)):
                return self._fail(f"setInputShape: {shape} for {name!r} is outside the profile "
                                  f"{tuple(low)}..{tuple(high)}")
            self._shapes[name] = shape
            return True

        def get_tensor_shape(self, name: str) -> Dims:
            io = self._engine._io
            if name in self._shapes:
                return Dims(self._shapes[name])
            if name not in io:
                return Dims()
            batch = self._batch()
            return Dims(io[name][1] if batch is None else (batch, *io[name][1][1:]))

        def set_tensor_address(self, name: str, memory: int) -> bool:
            if name not in self._engine._io:
                return self._fail(f"setTensorAddress: {name!r} is not an I/O tensor of this engine")
            if not isinstance(memory, int):
                raise TypeError(f"set_tensor_address(): incompatible function arguments: {memory!r}")
            self._addresses[name] = memory
            return True

        def get_tensor_address(self, name: str) -> int:
            return self._addresses.get(name, 0)

        def infer_shapes(self) -> list[str]:
            io = self._engine._io
            return [n for n, (mode, _, _) in io.items() if mode == TensorIOMode.INPUT and n not in self._shapes]

        def _batch(self) -> int | None:
            batches = {s[0] for s in self._shapes.values()}
            return batches.pop() if len(batches) == 1 and not self.infer_shapes() else None

        def execute_async_v3(self, stream_handle: int) -> bool:
            if type(stream_handle) is not int:
                raise TypeError(f"execute_async_v3(): incompatible function arguments: {stream_handle!r}")
            io = self._engine._io
            unset = self.infer_shapes()
            if unset:
                return self._fail(f"enqueueV3: the shapes of inputs {unset} are not specified")
            unbound = [n for n in io if not self._addresses.get(n)]
            if unbound:
                return self._fail(f"enqueueV3: no address is set for {unbound}")
            batch = self._batch()
            if batch is None:
                return self._fail(f"enqueueV3: the inputs disagree on the batch: {self._shapes}")
            stream = cuda.stream_of(stream_handle)
            if stream is None:
                return self._fail(f"enqueueV3: {stream_handle:#x} is not a live CUDA stream")
            spans = {n: (self._addresses[n], self._nbytes(n, batch)) for n in io}
            inputs = [n for n in io if io[n][0] == TensorIOMode.INPUT]
            outputs = [n for n in io if io[n][0] == TensorIOMode.OUTPUT]
            aliased = [(i, o) for i in inputs for o in outputs if _overlap(spans[i], spans[o])]
            if aliased:
                return self._fail(f"enqueueV3: input and output memory overlap for {aliased} (undefined in TensorRT)")
            if stream.capture is not None:
                if self._shapes != self._enqueued_shapes:
                    return self._fail("enqueueV3 was captured before one enqueue with the current input shapes")
                record.captures += 1
            else:
                self._enqueued_shapes = dict(self._shapes)
            shapes = {n: (batch, *io[n][1][1:]) for n in io}
            cuda.issue(stream, lambda: self._execute(shapes, spans, inputs, outputs))
            return True

        def _nbytes(self, name: str, batch: int) -> int:
            _, shape, dtype = self._engine._io[name]
            return batch * math.prod(shape[1:]) * np.dtype(nptype(dtype)).itemsize

        def _execute(self, shapes, spans, inputs, outputs) -> None:
            io, feeds = self._engine._io, {}
            for name in inputs:
                memory = cuda.locate(*spans[name])
                if memory is None:
                    return cuda.poison()
                feeds[name] = memory.view(nptype(io[name][2])).reshape(shapes[name]).copy()
            results = self._engine._run(feeds)
            for name in outputs:
                value = np.ascontiguousarray(results[name], dtype=nptype(io[name][2]))
                if value.shape != shapes[name]:
                    raise AssertionError(f"the double computed {name} of shape {value.shape}, expected {shapes[name]}")
                memory = cuda.locate(*spans[name])
                if memory is None:
                    return cuda.poison()
                memory[:] = value.reshape(-1).view(np.uint8)
            record.executions.append(shapes[inputs[0]][0])

    class Runtime:
        __slots__ = ("_logger",)

        def __init__(self, logger):
            check_logger(logger)
            self._logger = logger

        def deserialize_cuda_engine(self, serialized_engine) -> ICudaEngine | None:
            data = bytes(serialized_engine)
            if not data.startswith(MAGIC):
                report(self._logger, Severity.ERROR, "deserializeCudaEngine: the data is not an engine (magic tag)")
                return None
            header_line, _, onnx_bytes = data[len(MAGIC):].partition(b"\n")
            header = json.loads(header_line)
            if header["version"] != version:
                report(self._logger, Severity.ERROR, f"deserializeCudaEngine: the engine was built by TensorRT "
                                                     f"{header['version']}, this is {version}")
                return None
            if header["device"] != device_key:
                report(self._logger, Severity.ERROR, f"deserializeCudaEngine: the engine was built for "
                                                     f"{header['device']}, this device is {device_key}")
                return None
            return ICudaEngine(header, onnx_bytes, self._logger)

    module = types.ModuleType("tensorrt", "test double of TensorRT's Python API (tests/doubles/tensorrt_double.py)")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    module.__version__ = version
    for value in (ILogger, Logger, Builder, Runtime, OnnxParser, IBuilderConfig, IOptimizationProfile, ITimingCache,
                  INetworkDefinition, ITensor, ICudaEngine, IExecutionContext, IHostMemory, Dims, DataType,
                  TensorIOMode, DeviceType, MemoryPoolType, ErrorCode, nptype):
        setattr(module, value.__name__, value)
    module.BuilderFlag = BuilderFlag
    module.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag
    module.ParserError = ParserError
    return module, record


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def _session(onnx_bytes: bytes):
    """The session the double runs: the options edgeact's onnxruntime backend uses on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def _probe_io(network) -> list[list]:
    """[name, mode, shape, dtype] of every I/O tensor; an output axis that changes between
    batch 1 and 2 is dynamic (-1), as TensorRT's shape inference makes it."""
    session = _session(network._onnx)
    results = []
    for batch in (1, 2):
        feeds = {t.name: np.zeros(tuple(batch if d == -1 else d for d in t.shape), nptype(t.dtype))
                 for t in network._inputs}
        names = [o.name for o in session.get_outputs()]
        results.append(dict(zip(names, session.run(None, feeds))))
    io = [[t.name, "INPUT", list(t.shape), t.dtype.name] for t in network._inputs]
    for t in network._outputs:
        one, two = results[0][t.name], results[1][t.name]
        shape = [-1 if a != b else a for a, b in zip(one.shape, two.shape)]
        io.append([t.name, "OUTPUT", shape, _FROM_ONNX_NP[one.dtype.name].name])
    return io


_FROM_ONNX_NP = {np.dtype(v).name: k for k, v in _NUMPY.items()}
