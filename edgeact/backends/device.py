"""Device memory for GPU runners: typed views of CUDA allocations, driven through cuda-python.

A GPU runner's ``allocate`` returns :class:`DeviceArray` s, so the state pool's ping-pong halves
live on the device and a step hands the runner device pointers. A DeviceArray supports exactly
what the pool does with its buffers, each as one CUDA call on the runner's stream:

* ``buffer[first:first + n]``: a view of consecutive rows (no call; the pointer moves);
* ``buffer[slot] = 0``: zero one row (``cudaMemsetAsync``);
* ``staged[i] = buffer[s]``, ``buffer[s] = staged[i]``, ``new[:old] = previous``: row copies
  between buffers (``cudaMemcpyAsync``, device to device);
* ``len(buffer)``;

plus ``upload(numpy)`` (host to device) and ``download() -> numpy`` (device to host, then the
stream is synchronised). Everything is ordered on one stream, so a reset, a gather or a growth
copy is seen by the next step without a synchronisation.

An allocation is freed by ``close()``, or when it is garbage-collected: then at the device's
next safe point (the next allocation or step, or ``Device.close``), never from inside a
finaliser, which may run in the middle of a CUDA graph capture.

cuda-python's calls return a tuple ``(error, *values)``; :meth:`Device.call` turns an error into a
:class:`~edgeact.errors.BackendError` naming the CUDA error. cuda-python is imported when a
``Device`` is made, not with this module.
"""

from __future__ import annotations

import math
import operator
import threading
import weakref
from typing import Any

import numpy as np

from edgeact.errors import BackendError, InputError, InputTypeError


def load_cudart() -> Any:
    """cuda-python's runtime API module: ``cuda.bindings.runtime`` (cuda-python 12.x and later),
    else ``cuda.cudart`` (older releases)."""
    try:
        from cuda.bindings import runtime

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart

        return cudart
    except ImportError as exc:
        raise BackendError("GPU memory and streams need cuda-python, which is not installed here; "
                           "install it with pip install 'edgeact[tensorrt]'.") from exc


class Device:
    """The current CUDA device and one stream: where a GPU runner's memory lives and its copies
    and steps are ordered."""

    def __init__(self, cudart: Any = None):
        self.rt = cudart if cudart is not None else load_cudart()
        self._lock = threading.Lock()
        self._pending: list[int] = []  # pointers of garbage-collected allocations, freed at a safe point
        self._closed = False
        self.index = self.call("cudaGetDevice", self.rt.cudaGetDevice())
        self.stream = self.new_stream()

    def call(self, what: str, result: tuple) -> Any:
        """The value(s) of a cuda-python call, or a BackendError naming the CUDA error."""
        return cuda_call(self.rt, what, result)

    def new_stream(self) -> Any:
        return self.call("cudaStreamCreate", self.rt.cudaStreamCreate())

    @property
    def handle(self) -> int:
        """The stream as the integer handle TensorRT's ``execute_async_v3`` takes."""
        return int(self.stream)

    def properties(self) -> dict[str, str]:
        """{"name", "compute_capability"} of this device (what an engine is built for)."""
        return device_properties(self.rt, self.index)

    # -- memory -----------------------------------------------------------------------------------
    def zeros(self, shape: tuple[int, ...], dtype: Any) -> DeviceArray:
        """A zeroed device array of ``shape`` and ``dtype`` in its own allocation."""
        shape = tuple(int(d) for d in shape)
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        allocation = DeviceAllocation(self, max(nbytes, 1))
        array = DeviceArray(allocation, allocation.ptr, shape, dtype)
        array.zero()
        return array

    def malloc(self, nbytes: int) -> int:
        self._check_open()
        self.collect()
        return int(self.call("cudaMalloc", self.rt.cudaMalloc(nbytes)))

    def free(self, ptr: int) -> None:
        """Free now, after the work queued on the stream (which may still use the memory)."""
        if not self._closed:
            self.synchronize()
        self.call("cudaFree", self.rt.cudaFree(ptr))

    def release(self, ptr: int) -> None:
        """An allocation was garbage-collected: free it at the next safe point."""
        with self._lock:
            if not self._closed:
                self._pending.append(ptr)
                return
        self.call("cudaFree", self.rt.cudaFree(ptr))

    def collect(self) -> None:
        """Free the allocations garbage-collected since the last call (a safe point: no capture)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            self.synchronize()
            for ptr in pending:
                self.call("cudaFree", self.rt.cudaFree(ptr))

    # -- stream -----------------------------------------------------------------------------------
    def copy(self, dst: int, src: int, nbytes: int, kind: str) -> None:
        """cudaMemcpyAsync on the stream; ``kind`` is HostToDevice, DeviceToHost or DeviceToDevice."""
        if nbytes:
            self._check_open()
            kinds = self.rt.cudaMemcpyKind
            self.call("cudaMemcpyAsync", self.rt.cudaMemcpyAsync(dst, src, nbytes, getattr(kinds, f"cudaMemcpy{kind}"),
                                                                self.stream))

    def memset(self, ptr: int, nbytes: int) -> None:
        if nbytes:
            self._check_open()
            self.call("cudaMemsetAsync", self.rt.cudaMemsetAsync(ptr, 0, nbytes, self.stream))

    def synchronize(self) -> None:
        self.call("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(self.stream))

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("this CUDA device handle is closed.")

    def close(self) -> None:
        """Finish the stream's work, free what was collected, destroy the stream; idempotent.
        Allocations still alive are freed when they are closed or collected."""
        if self._closed:
            return
        self.collect()
        self.synchronize()
        with self._lock:
            self._closed = True
        self.call("cudaStreamDestroy", self.rt.cudaStreamDestroy(self.stream))


def cuda_call(rt: Any, what: str, result: tuple) -> Any:
    """The value(s) of a cuda-python call ``(error, *values)``, or a BackendError naming the error."""
    error, *values = result
    if error != rt.cudaError_t.cudaSuccess:
        status, name = rt.cudaGetErrorName(error)
        name = name.decode() if status == rt.cudaError_t.cudaSuccess and isinstance(name, bytes) else str(error)
        raise BackendError(f"{what} failed: {name}.")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_properties(rt: Any, index: int) -> dict[str, str]:
    prop = cuda_call(rt, "cudaGetDeviceProperties", rt.cudaGetDeviceProperties(index))
    name = prop.name.split(b"\0", 1)[0].decode() if isinstance(prop.name, bytes) else str(prop.name)
    return {"name": name.strip(), "compute_capability": f"{prop.major}.{prop.minor}"}


def gpu_info(cudart: Any = None) -> dict[str, str]:
    """{"name", "compute_capability"} of the current CUDA device."""
    rt = cudart if cudart is not None else load_cudart()
    return device_properties(rt, cuda_call(rt, "cudaGetDevice", rt.cudaGetDevice()))


class DeviceAllocation:
    """One ``cudaMalloc`` block; its arrays keep it alive. Freed by :meth:`close` or when
    garbage-collected (deferred to the device's next safe point)."""

    def __init__(self, device: Device, nbytes: int):
        self.device = device
        self.nbytes = nbytes
        self.ptr = device.malloc(nbytes)
        self._finalizer = weakref.finalize(self, device.release, self.ptr)
        self._finalizer.atexit = False  # at interpreter exit the driver reclaims it; CUDA may be gone

    @property
    def alive(self) -> bool:
        return self._finalizer.alive

    def close(self) -> None:
        """Free it now; idempotent. Its arrays must not be used afterwards."""
        if self._finalizer.detach() is not None:
            self.device.free(self.ptr)


class DeviceArray:
    """A typed, C-contiguous view of device memory: pointer, shape, dtype, and the allocation
    it lives in (kept alive by the view)."""

    __slots__ = ("allocation", "ptr", "shape", "dtype")

    def __init__(self, allocation: DeviceAllocation, ptr: int, shape: tuple[int, ...], dtype: Any):
        self.allocation = allocation
        self.ptr = ptr
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def device(self) -> Device:
        return self.allocation.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, ptr={self.ptr:#x})"

    def __getitem__(self, index: Any) -> DeviceArray:
        """Row ``index`` (an int) or the consecutive rows of a step-1 slice, as a view."""
        rows = len(self)
        row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        if isinstance(index, slice):
            start, stop, step = index.indices(rows)
            if step != 1:
                raise InputError(f"a DeviceArray is sliced into consecutive rows (step 1), got step {step}.")
            count = max(stop - start, 0)
            return DeviceArray(self.allocation, self.ptr + start * row_bytes, (count, *self.shape[1:]), self.dtype)
        try:
            row = operator.index(index)
        except TypeError:
            raise InputTypeError(f"a DeviceArray is indexed by a row number or a slice, "
                                 f"got {type(index).__name__}.") from None
        if row < 0:
            row += rows
        if not 0 <= row < rows:
            raise IndexError(f"row {index} is out of range for a DeviceArray of {rows} rows.")
        return DeviceArray(self.allocation, self.ptr + row * row_bytes, self.shape[1:], self.dtype)

    def __setitem__(self, index: Any, value: Any) -> None:
        """``array[i] = 0`` zeroes rows; ``array[i] = other`` copies a DeviceArray of the same
        shape and dtype (device to device). Host data goes up with :meth:`upload`."""
        target = self[index]
        if isinstance(value, DeviceArray):
            target.copy_from(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            target.zero()
        else:
            raise InputTypeError(f"a DeviceArray takes 0 or another DeviceArray, got {type(value).__name__}; "
                                 "copy host data with upload().")

    def copy_from(self, other: DeviceArray) -> None:
        if other.shape != self.shape or other.dtype != self.dtype:
            raise InputError(f"cannot copy a {other.dtype} DeviceArray of shape {other.shape} into a {self.dtype} "
                             f"one of shape {self.shape}.")
        self.device.copy(self.ptr, other.ptr, self.nbytes, "DeviceToDevice")

    def zero(self) -> None:
        self.device.memset(self.ptr, self.nbytes)

    def upload(self, array: np.ndarray) -> None:
        """Copy a host array of the same shape and dtype into this memory."""
        if not isinstance(array, np.ndarray) or array.shape != self.shape or array.dtype != self.dtype:
            got = (f"{array.dtype} of shape {array.shape}" if isinstance(array, np.ndarray)
                   else type(array).__name__)
            raise InputError(f"upload() takes a {self.dtype} array of shape {self.shape}, got {got}.")
        array = np.ascontiguousarray(array)
        # from pageable memory the copy returns once the data is staged for DMA (CUDA runtime API,
        # "API synchronization behavior"): the caller may refill ``array`` right away
        self.device.copy(self.ptr, array.ctypes.data, self.nbytes, "HostToDevice")

    def download(self) -> np.ndarray:
        """A new host array with this memory's contents (after the stream's queued work)."""
        out = np.empty(self.shape, self.dtype)
        self.device.copy(out.ctypes.data, self.ptr, self.nbytes, "DeviceToHost")
        self.device.synchronize()  # a copy to pageable memory has completed on return; this also surfaces kernel errors
        return out
