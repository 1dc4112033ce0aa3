"""ONNX Runtime backend: the portable default (CPU, or CUDA/TensorRT execution providers).

The session runs through IOBinding: inputs are read from, and next states written straight
into, the caller's buffers (the state pool's halves), so a step allocates no state. A binding
is cached per thread for each set of buffers the pool hands over (``key``), so the steady state
of a stream re-runs a ready binding. On the CUDA or TensorRT provider the pool's buffers are
device memory (``edgeact.backends.device``), bound by pointer: the state never leaves the GPU,
only the frame goes up (ORT copies bound host inputs) and the logits come down.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.backends.base import Loader, Runner
from edgeact.errors import BackendError, ModelFormatError
from edgeact.spec import LOGITS, STATE_IN, STATE_OUT, ModelSpec, TensorSpec, read_graph, spec_from_metadata

DEVICE_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")  # state in device memory
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def make_session(model: str | Path | bytes, *, device: str = "auto", threads: int | None = None, source: Any = None):
    """An InferenceSession on ``device`` ('auto': CUDA when present, else CPU), ``threads``
    intra-op threads; ``model`` is a path or serialized bytes (``source`` names it in errors)."""
    import onnxruntime as ort

    source = source if source is not None else model
    available = ort.get_available_providers()
    if device == "auto":
        providers = [p for p in PROVIDERS["cuda"] if p in available]
    elif device in PROVIDERS:
        providers = PROVIDERS[device]
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendError(
                f"device {device!r} needs ONNX Runtime providers {missing}, but this onnxruntime has only {available}."
            )
    else:
        raise BackendError(f"onnxruntime device must be one of {['auto', *PROVIDERS]}, got {device!r}.")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=options,
                                    providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelFormatError(f"{source} is not a loadable ONNX model ({type(exc).__name__}: {exc}).") from exc


class OnnxRuntimeLoader(Loader):
    backend = "onnxruntime"

    def __call__(self):
        read_graph(self.path)  # the weights the graph was written with (the hash in its metadata), before a session
        return make_session(self.path, device=self.device, threads=self.threads)


class BoundSession:
    """A session stepped through IOBinding into caller-owned numpy buffers.

    ``run(feeds, outputs, key)``: ``feeds`` in ``input_names`` order, ``outputs`` preallocated
    C-contiguous arrays in ``output_names`` order. With a ``key`` the binding is kept (per
    thread, the last few keys) and re-run when the same buffers come again.
    """

    CACHED = 8  # bindings kept per thread: ping and pong of a few batch shapes

    def __init__(self, session, input_names: Sequence[str], output_names: Sequence[str]):
        self.session = session
        self.input_names, self.output_names = list(input_names), list(output_names)
        self._local = threading.local()

    def forget(self) -> None:
        """Drop this thread's bindings (its output buffers moved)."""
        self._local.cache = OrderedDict()

    def run(self, feeds: Sequence[Any], outputs: Sequence[Any], key: Hashable | None = None) -> None:
        """``feeds``/``outputs``: numpy arrays (host) or DeviceArrays (bound by device pointer)."""
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = OrderedDict()
        binding = cache.get(key) if key is not None else None
        if binding is None:
            binding = self.session.io_binding()
            for name, array in zip(self.input_names, feeds):
                if isinstance(array, np.ndarray):
                    binding.bind_cpu_input(name, array)
                else:
                    binding.bind_input(name, "cuda", 0, array.dtype, list(array.shape), array.ptr)
            for name, array in zip(self.output_names, outputs):
                where, pointer = ("cpu", array.ctypes.data) if isinstance(array, np.ndarray) else ("cuda", array.ptr)
                binding.bind_output(name, where, 0, array.dtype, list(array.shape), pointer)
            if key is not None:
                cache[key] = binding
                if len(cache) > self.CACHED:
                    cache.popitem(last=False)
        elif key is not None:
            cache.move_to_end(key)
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()  # device outputs complete before the pool reads or copies them


# ONNX Runtime's type strings of the dtypes step graphs use
ORT_DTYPES = {"tensor(bool)": "bool", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int16)": "int16",
              "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(float16)": "float16",
              "tensor(float)": "float32", "tensor(double)": "float64"}


def graph_tensor_fits(arg: Any, want: TensorSpec) -> bool:
    """Whether a session's input or output (an ONNX Runtime NodeArg) is ``want`` behind a batch
    axis: the same dtype, rank and fixed sizes (a symbolic size fits any)."""
    shape = list(arg.shape)
    return (ORT_DTYPES.get(arg.type, arg.type) == want.dtype and len(shape) == len(want.shape) + 1
            and all(not isinstance(g, int) or g == w for g, w in zip(shape[1:], want.shape)))


def _check_graph_against_spec(session, spec: ModelSpec, path: Any) -> None:
    """Every step input and output the spec declares, with its dtype and (non-batch) shape: metadata
    that disagrees with the graph is refused here, not by a failed first push."""
    outputs = {o.name: o for o in session.get_outputs()}
    missing = [name for name in (LOGITS, *(STATE_OUT + s.name for s in spec.state)) if name not in outputs]
    if missing:
        raise ModelFormatError(f"{path}: graph outputs {sorted(outputs)} lack {missing}, which its edgeact spec declares.")
    declared = {s.name: s for s in spec.data_inputs} | {STATE_IN + s.name: s for s in spec.state}
    # an input the spec lacks is reported by the name check
    args = [(a, declared[a.name], "input") for a in session.get_inputs() if a.name in declared]
    args += [(outputs[STATE_OUT + s.name], s, "output") for s in spec.state]
    for arg, want, kind in args:
        if not graph_tensor_fits(arg, want):
            raise ModelFormatError(f"{path}: graph {kind} {arg.name!r} is {arg.type} of shape {list(arg.shape)}, but "
                                   f"its edgeact spec declares {want.describe()}; re-export the model.")


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def _spec_of(self, session) -> ModelSpec:
        return spec_from_metadata(session.get_modelmeta().custom_metadata_map, "the session's model")

    def _open(self, session) -> None:
        spec = self.spec
        graph_inputs = [i.name for i in session.get_inputs()]
        if sorted(graph_inputs) != sorted(spec.input_names):
            raise ModelFormatError(
                f"{self.describe()['path']}: graph inputs {graph_inputs} do not match its edgeact spec "
                f"{list(spec.input_names)}."
            )
        _check_graph_against_spec(session, spec, self.describe()["path"])
        self.providers = session.get_providers()
        self._bound = BoundSession(session, spec.input_names, [LOGITS] + [STATE_OUT + s.name for s in spec.state])
        self._logits = threading.local()
        self._device = None
        if self.providers and self.providers[0] in DEVICE_PROVIDERS:
            from edgeact.backends.device import Device

            self._device = Device()  # the pool's state lives here, bound by pointer

    def allocate(self, spec: TensorSpec, rows: int) -> Any:
        """Host numpy on the CPU provider; device memory on CUDA/TensorRT, so state stays there."""
        self.runtime  # noqa: B018 (the provider is known once open)
        if self._device is None:
            return super().allocate(spec, rows)
        return self._device.zeros((rows, *spec.shape), spec.dtype)

    def _run(self, inputs, state_in, state_out, key=None) -> np.ndarray:
        batch = len(state_in[0]) if state_in else len(next(iter(inputs.values())))
        logits = getattr(self._logits, "buffer", None)
        if logits is None or len(logits) < batch:
            logits = self._logits.buffer = np.empty((max(batch, 4), self.spec.num_classes), np.float32)
            self._bound.forget()  # bound to the old logits buffer
        feeds = [inputs[s.name] for s in self.spec.data_inputs] + list(state_in)
        if self._device is not None:
            self._device.synchronize()  # the pool's gathers (on its stream) land before ORT reads them
        self._bound.run(feeds, [logits[:batch], *state_out], key)
        return logits[:batch].copy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "providers": getattr(self, "providers", None)}
