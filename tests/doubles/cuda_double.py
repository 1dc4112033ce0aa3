"""A strict test double of cuda-python's runtime module (``cuda.bindings.runtime``, or the older
``cuda.cudart``): the subset edgeact calls, on the CPU.

"Device memory" is a registry of host numpy byte buffers keyed by fake integer pointers above
2**48 (never a host address on x86-64 or aarch64 Linux), spaced so that running off the end of
an allocation lands in no allocation. A pointer inside an allocation addresses that offset, so
views made by pointer arithmetic work. Every call returns cuda-python's tuple
``(cudaError_t, *values)``; nothing raises for a CUDA error, as in cuda-python.

Checked like the real runtime: copies and memsets must lie inside one live allocation (sizes
included), a copy's direction must match its pointers (host addresses are plain ints), streams
must be live, freeing takes an allocation's base pointer. Work runs when it is issued, except
on a stream that is capturing: then it is recorded into the graph, and host<->device copies
(pageable memory) are refused as CUDA refuses them in a capture. A failed kernel (TensorRT
reading or writing an address that is no live allocation) poisons the context: every later call
returns ``cudaErrorIllegalAddress``, as a sticky CUDA error does.

Counters for tests: ``copies`` (kind, bytes) in order, ``memsets``, ``launches`` of graphs,
``live`` allocations.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class cudaError_t(enum.IntEnum):  # the values are CUDA's
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevicePointer = 17
    cudaErrorInvalidMemcpyDirection = 21
    cudaErrorInvalidResourceHandle = 400
    cudaErrorIllegalState = 401
    cudaErrorIllegalAddress = 700
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901
    cudaErrorStreamCaptureUnmatched = 903


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStreamCaptureMode(enum.IntEnum):
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


class cudaStream_t:
    __slots__ = ("_handle",)

    def __init__(self, handle: int = 0):
        self._handle = handle

    def __int__(self) -> int:
        return self._handle

    def getPtr(self) -> int:
        return self._handle

    def __eq__(self, other) -> bool:
        return isinstance(other, cudaStream_t) and other._handle == self._handle

    def __hash__(self) -> int:
        return hash(self._handle)


class cudaGraph_t:
    __slots__ = ("_ops", "_alive")

    def __init__(self, ops):
        self._ops, self._alive = ops, True


class cudaGraphExec_t:
    __slots__ = ("_ops", "_alive")

    def __init__(self, ops):
        self._ops, self._alive = ops, True


class cudaDeviceProp:
    __slots__ = ("name", "major", "minor", "totalGlobalMem")

    def __init__(self, name: bytes, major: int, minor: int, total: int):
        self.name, self.major, self.minor, self.totalGlobalMem = name, major, minor, total


E = cudaError_t
BASE = 1 << 48
ALIGN = 256
GAP = 1 << 16


@dataclass
class _Stream:
    handle: int
    capture: list[Callable[[], None]] | None = None  # recorded work while capturing


@dataclass
class CudaDouble:
    """The state behind the module: memory, streams, counters."""

    gpu_name: str = "Edgeact Double GPU"
    compute_capability: tuple[int, int] = (8, 7)
    copies: list[tuple[str, int]] = field(default_factory=list)
    memsets: int = 0
    launches: int = 0

    def __post_init__(self):
        self._lock = threading.RLock()
        self._memory: dict[int, np.ndarray] = {}  # base pointer -> bytes
        self._next = BASE
        self._streams: dict[int, _Stream] = {}
        self._next_stream = 1
        self._sticky: cudaError_t | None = None

    # -- what the TensorRT double uses ------------------------------------------------------------
    @property
    def live(self) -> int:
        return len(self._memory)

    def locate(self, ptr: int, nbytes: int) -> np.ndarray | None:
        """The bytes [ptr, ptr + nbytes) as a writable view, or None when they are not inside one
        live allocation."""
        if not isinstance(ptr, int) or ptr < BASE:
            return None
        for base, buffer in self._memory.items():
            if base <= ptr and ptr + nbytes <= base + len(buffer):
                return buffer[ptr - base:ptr - base + nbytes]
        return None

    def stream_of(self, handle: int) -> _Stream | None:
        return self._streams.get(handle) if handle else _Stream(0)

    def issue(self, stream: _Stream, work: Callable[[], None]) -> None:
        """Run ``work`` now, or record it when the stream is capturing."""
        if stream.capture is not None:
            stream.capture.append(work)
        else:
            work()

    def poison(self, error: cudaError_t = E.cudaErrorIllegalAddress) -> None:
        self._sticky = error

    # -- the module -------------------------------------------------------------------------------
    def module(self, name: str = "cuda.bindings.runtime") -> types.ModuleType:
        rt = types.ModuleType(name, "test double of cuda-python's CUDA runtime module")
        rt.__spec__ = importlib.machinery.ModuleSpec(name, None)
        for value in (cudaError_t, cudaMemcpyKind, cudaStreamCaptureMode, cudaStream_t, cudaGraph_t, cudaGraphExec_t,
                      cudaDeviceProp):
            setattr(rt, value.__name__, value)
        for function in ("cudaGetErrorName", "cudaGetDevice", "cudaGetDeviceProperties", "cudaMalloc", "cudaFree",
                         "cudaMemcpyAsync", "cudaMemsetAsync", "cudaStreamCreate", "cudaStreamDestroy",
                         "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaStreamBeginCapture",
                         "cudaStreamEndCapture", "cudaGraphInstantiate", "cudaGraphLaunch", "cudaGraphDestroy",
                         "cudaGraphExecDestroy"):
            setattr(rt, function, getattr(self, function))
        return rt

    def cudaGetErrorName(self, error):
        return E.cudaSuccess, cudaError_t(error).name.encode()

    def cudaGetDevice(self):
        return (self._sticky, None) if self._sticky else (E.cudaSuccess, 0)

    def cudaGetDeviceProperties(self, device: int):
        if device != 0:
            return E.cudaErrorInvalidValue, None
        major, minor = self.compute_capability
        return E.cudaSuccess, cudaDeviceProp(self.gpu_name.encode(), major, minor, 1 << 34)

    def cudaMalloc(self, size: int):
        with self._lock:
            if self._sticky:
                return self._sticky, None
            if not isinstance(size, int) or size < 0:
                return E.cudaErrorInvalidValue, None
            ptr = self._next
            self._memory[ptr] = np.zeros(size, np.uint8)
            self._next += -(-size // ALIGN) * ALIGN + GAP
            return E.cudaSuccess, ptr

    def cudaFree(self, ptr: int):
        with self._lock:
            if self._sticky:
                return (self._sticky,)
            if ptr not in self._memory:
                return (E.cudaErrorInvalidValue,)
            del self._memory[ptr]
            return (E.cudaSuccess,)

    def _stream(self, stream) -> _Stream | None:
        if isinstance(stream, cudaStream_t):
            stream = int(stream)
        if not isinstance(stream, int):
            raise TypeError(f"Argument 'stream' is not instance of type (expected <class 'int'>, or cudaStream_t, "
                            f"found {type(stream)})")
        return self.stream_of(stream)

    def _usable(self, stream):
        """(the stream, None), or (None, the error a call on it returns): a sticky error first."""
        if self._sticky:
            return None, self._sticky
        s = self._stream(stream)
        return (s, None) if s is not None else (None, E.cudaErrorInvalidResourceHandle)

    def cudaMemcpyAsync(self, dst, src, count: int, kind, stream):
        with self._lock:
            s, error = self._usable(stream)
            if error:
                return (error,)
            if not isinstance(kind, cudaMemcpyKind) or kind not in (cudaMemcpyKind.cudaMemcpyHostToDevice,
                                                                     cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                                                     cudaMemcpyKind.cudaMemcpyDeviceToDevice):
                return (E.cudaErrorInvalidMemcpyDirection,)
            if not (isinstance(dst, int) and isinstance(src, int) and isinstance(count, int)) or count < 0:
                return (E.cudaErrorInvalidValue,)
            to_device = kind != cudaMemcpyKind.cudaMemcpyDeviceToHost
            from_device = kind != cudaMemcpyKind.cudaMemcpyHostToDevice
            target = self.locate(dst, count) if to_device else None
            source = self.locate(src, count) if from_device else None
            if (to_device and target is None) or (from_device and source is None):
                return (E.cudaErrorInvalidValue,)
            if (not to_device and dst >= BASE) or (not from_device and src >= BASE) or (not to_device and dst == 0) \
                    or (not from_device and src == 0):
                return (E.cudaErrorInvalidValue,)  # a host side that is a device pointer, or NULL
            if s.capture is not None and kind != cudaMemcpyKind.cudaMemcpyDeviceToDevice:
                s.capture = None  # CUDA invalidates the capture
                return (E.cudaErrorStreamCaptureUnsupported,)
            self.copies.append((kind.name.removeprefix("cudaMemcpy"), count))
            if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
                target[:] = np.frombuffer(ctypes.string_at(src, count), np.uint8)  # pageable: read now
            elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
                ctypes.memmove(dst, source.ctypes.data, count)
            else:
                self.issue(s, lambda: target.__setitem__(slice(None), source.copy()))
            return (E.cudaSuccess,)

    def cudaMemsetAsync(self, ptr, value: int, count: int, stream):
        with self._lock:
            s, error = self._usable(stream)
            if error:
                return (error,)
            target = self.locate(ptr, count) if isinstance(count, int) and count >= 0 else None
            if target is None or not isinstance(value, int):
                return (E.cudaErrorInvalidValue,)
            self.memsets += 1
            self.issue(s, lambda: target.fill(value & 0xFF))
            return (E.cudaSuccess,)

    def cudaStreamCreate(self):
        with self._lock:
            if self._sticky:
                return self._sticky, None
            handle = self._next_stream
            self._next_stream += 1
            self._streams[handle] = _Stream(handle)
            return E.cudaSuccess, cudaStream_t(handle)

    def cudaStreamDestroy(self, stream):
        with self._lock:
            handle = int(stream)
            if handle not in self._streams:
                return (E.cudaErrorInvalidResourceHandle,)
            del self._streams[handle]
            return (E.cudaSuccess,)

    def cudaStreamSynchronize(self, stream):
        with self._lock:
            s, error = self._usable(stream)
            if error:
                return (error,)
            if s.capture is not None:
                s.capture = None
                return (E.cudaErrorStreamCaptureUnsupported,)
            return (E.cudaSuccess,)

    def cudaDeviceSynchronize(self):
        return (self._sticky or E.cudaSuccess,)

    def cudaStreamBeginCapture(self, stream, mode):
        with self._lock:
            s = self._stream(stream)
            if s is None or s.handle == 0:  # the legacy default stream cannot capture
                return (E.cudaErrorInvalidResourceHandle if s is None else E.cudaErrorStreamCaptureUnsupported,)
            if not isinstance(mode, cudaStreamCaptureMode) or s.capture is not None:
                return (E.cudaErrorIllegalState,)
            s.capture = []
            return (E.cudaSuccess,)

    def cudaStreamEndCapture(self, stream):
        with self._lock:
            s = self._stream(stream)
            if s is None or s.handle == 0:
                return E.cudaErrorInvalidResourceHandle, None
            if s.capture is None:
                return E.cudaErrorStreamCaptureInvalidated, None
            ops, s.capture = s.capture, None
            return E.cudaSuccess, cudaGraph_t(ops)

    def cudaGraphInstantiate(self, graph, flags: int):
        if not isinstance(graph, cudaGraph_t) or not graph._alive or not isinstance(flags, int):
            return E.cudaErrorInvalidValue, None
        return E.cudaSuccess, cudaGraphExec_t(list(graph._ops))

    def cudaGraphLaunch(self, graph_exec, stream):
        with self._lock:
            s, error = self._usable(stream)
            if error:
                return (error,)
            if not isinstance(graph_exec, cudaGraphExec_t) or not graph_exec._alive:
                return (E.cudaErrorInvalidValue,)
            self.launches += 1
            for work in graph_exec._ops:
                self.issue(s, work)
            return (E.cudaSuccess,)

    def cudaGraphDestroy(self, graph):
        if not isinstance(graph, cudaGraph_t) or not graph._alive:
            return (E.cudaErrorInvalidValue,)
        graph._alive = False
        return (E.cudaSuccess,)

    def cudaGraphExecDestroy(self, graph_exec):
        if not isinstance(graph_exec, cudaGraphExec_t) or not graph_exec._alive:
            return (E.cudaErrorInvalidValue,)
        graph_exec._alive = False
        return (E.cudaSuccess,)
