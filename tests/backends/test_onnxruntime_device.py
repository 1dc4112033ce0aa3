"""The onnxruntime backend on the CUDA provider keeps the state pool in device memory and binds it
by pointer (IOBinding): checked through a strict double of a CUDA session (a real CPU session
runs the graph on bytes read from the CUDA double's memory) and the cuda-python double."""

from __future__ import annotations

import ctypes

import numpy as np
import onnxruntime as ort
import pytest

from edgeact import Predictor
from edgeact.backends.device import DeviceArray
from edgeact.backends.onnxruntime import OnnxRuntimeRunner
from tests.doubles import install
from tests.streaming import clips, push_clip


class _Binding:
    def __init__(self, session):
        self._session = session
        self.inputs, self.outputs = {}, {}
        self.synchronized = 0

    def bind_cpu_input(self, name, array):
        assert isinstance(array, np.ndarray) and array.flags.c_contiguous
        self.inputs[name] = ("cpu", array)

    def bind_input(self, name, device_type, device_id, element_type, shape, buffer_ptr):
        assert (device_type, device_id) == ("cuda", 0)
        self.inputs[name] = ("cuda", self._session.device_view(buffer_ptr, element_type, shape))

    def bind_output(self, name, device_type, device_id, element_type, shape, buffer_ptr):
        if device_type == "cpu":
            count = int(np.prod(shape))
            raw = (ctypes.c_byte * (count * np.dtype(element_type).itemsize)).from_address(buffer_ptr)
            view = np.frombuffer(raw, dtype=element_type).reshape(shape)
        else:
            assert (device_type, device_id) == ("cuda", 0)
            view = self._session.device_view(buffer_ptr, element_type, shape)
        self.outputs[name] = (device_type, view)

    def synchronize_outputs(self):
        self.synchronized += 1


class CudaSessionDouble:
    """What edgeact uses of an InferenceSession on CUDAExecutionProvider; strict about device
    pointers (they must lie in live allocations of the CUDA double, with room for the shape)."""

    def __init__(self, path, cuda):
        self._cpu = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._cuda = cuda
        self.bindings = []

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def get_inputs(self):
        return self._cpu.get_inputs()

    def get_outputs(self):
        return self._cpu.get_outputs()

    def get_modelmeta(self):
        return self._cpu.get_modelmeta()

    def io_binding(self):
        binding = _Binding(self)
        self.bindings.append(binding)
        return binding

    def device_view(self, ptr, dtype, shape):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        memory = self._cuda.locate(ptr, nbytes)
        assert memory is not None, f"pointer {ptr:#x} is not {nbytes} bytes of live device memory"
        return memory.view(dtype).reshape(shape)

    def run_with_iobinding(self, binding, run_options=None):
        assert set(binding.inputs) == {i.name for i in self._cpu.get_inputs()}
        feed = {name: np.array(value) for name, (_, value) in binding.inputs.items()}
        names = list(binding.outputs)
        for name, result in zip(names, self._cpu.run(names, feed)):
            binding.outputs[name][1][...] = result


@pytest.fixture
def cuda_session(monkeypatch, tiny_artifacts):
    doubles = install(monkeypatch)
    return CudaSessionDouble(tiny_artifacts["pose"]["onnx"], doubles.cuda), doubles


def test_state_stays_in_device_memory_and_logits_equal_the_cpu_run(cuda_session, tiny_artifacts, synth_dir):
    session, doubles = cuda_session
    runner = OnnxRuntimeRunner(session)
    on_gpu, on_cpu = Predictor(runner), Predictor(tiny_artifacts["pose"]["onnx"])
    clip = clips(synth_dir, 1)[0]
    ours, theirs = push_clip(on_gpu, clip), push_clip(on_cpu, clip)
    np.testing.assert_array_equal(np.stack([p.logits for p in ours]), np.stack([p.logits for p in theirs]))
    pool = on_gpu._pool
    assert all(isinstance(buffer, DeviceArray) for half in pool._halves for buffer in half)
    binding = session.bindings[-1]
    state_inputs = {n: kind for n, (kind, _) in binding.inputs.items() if n.startswith("state_in.")}
    state_outputs = {n: kind for n, (kind, _) in binding.outputs.items() if n.startswith("state_out.")}
    assert set(state_inputs.values()) == set(state_outputs.values()) == {"cuda"}  # bound by device pointer
    assert binding.inputs["keypoints"][0] == "cpu" and binding.outputs["logits"][0] == "cpu"
    assert binding.synchronized > 0


def test_streams_gathered_on_the_device_match_the_cpu_run(cuda_session, tiny_artifacts, synth_dir):
    session, _ = cuda_session
    on_gpu, on_cpu = Predictor(OnnxRuntimeRunner(session)), Predictor(tiny_artifacts["pose"]["onnx"])
    clip_list = clips(synth_dir, 3)
    length = min(c.num_frames for c in clip_list)
    for t in range(length):
        keys = [i for i in range(3) if t % (i + 1) == 0]  # streams due at different rates: gathered slots
        items = {i: {"keypoints": clip_list[i].noisy_keypoints[t]} for i in keys}
        a, b = on_gpu.push_many(items), on_cpu.push_many(items)
        for i in keys:
            np.testing.assert_array_equal(a[i].logits, b[i].logits)  # the same batches on both sides
