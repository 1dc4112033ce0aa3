"""Test doubles of TensorRT and cuda-python, for tests only: they run the step graph with ONNX
Runtime on the CPU over "device memory" that is host bytes behind fake pointers.

``install(monkeypatch, "10.8.0" | "11.1.0")`` puts them into ``sys.modules`` as ``tensorrt`` and
``cuda.bindings.runtime`` (or, with ``cuda_layout="cudart"``, as older cuda-python's
``cuda.cudart``) for the duration of a test.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from dataclasses import dataclass

from tests.doubles.cuda_double import CudaDouble
from tests.doubles.tensorrt_double import TensorRTRecord, make_tensorrt

VERSIONS = ("10.8.0", "11.1.0")  # a JetPack-era 10.x and a datacenter 11.x


@dataclass
class Doubles:
    trt: types.ModuleType  # installed as ``tensorrt``
    record: TensorRTRecord  # what was asked of it
    cuda: CudaDouble  # device memory, streams and counters
    cudart: types.ModuleType  # installed as cuda-python's runtime module


def _package(name: str) -> types.ModuleType:
    module = types.ModuleType(name, "test double package")
    module.__path__ = []
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    return module


def install(monkeypatch, version: str = "10.8.0", *, dla_cores: int = 0, cuda_layout: str = "bindings",
            gpu_name: str = "Edgeact Double GPU", compute_capability: tuple[int, int] = (8, 7)) -> Doubles:
    cuda = CudaDouble(gpu_name=gpu_name, compute_capability=compute_capability)
    trt, record = make_tensorrt(version, cuda, dla_cores=dla_cores)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    package = _package("cuda")
    monkeypatch.setitem(sys.modules, "cuda", package)
    if cuda_layout == "bindings":
        bindings = _package("cuda.bindings")
        runtime = cuda.module("cuda.bindings.runtime")
        bindings.runtime, package.bindings = runtime, bindings
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    elif cuda_layout == "cudart":
        runtime = cuda.module("cuda.cudart")
        package.cudart = runtime
        monkeypatch.setitem(sys.modules, "cuda.bindings", None)  # importing it fails, as in cuda-python 11
        monkeypatch.setitem(sys.modules, "cuda.cudart", runtime)
    else:
        raise ValueError(f"cuda_layout must be 'bindings' or 'cudart', got {cuda_layout!r}")
    return Doubles(trt, record, cuda, runtime)
