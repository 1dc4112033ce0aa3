"""ONNX Runtime backend: the portable default (CPU, or CUDA/TensorRT execution providers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeact.backends.base import Backend, State
from edgeact.errors import BackendError, ModelFormatError
from edgeact.spec import LOGITS, METADATA_KEY, STATE_OUT, ModelSpec

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def read_onnx_spec(session, path: Path) -> ModelSpec:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelFormatError(
            f"{path} is an ONNX model without edgeact metadata (no {METADATA_KEY!r} entry in "
            "metadata_props); export it with `edgeact export`."
        )
    return ModelSpec.from_json(meta[METADATA_KEY], source=str(path))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def _load(self, path: Path, **options: Any) -> ModelSpec:
        import onnxruntime as ort

        available = ort.get_available_providers()
        if self.device == "auto":
            providers = [p for p in _PROVIDERS["cuda"] if p in available]
        elif self.device in _PROVIDERS:
            providers = _PROVIDERS[self.device]
            missing = [p for p in providers if p not in available]
            if missing:
                raise BackendError(
                    f"device {self.device!r} needs ONNX Runtime providers {missing}, but this "
                    f"onnxruntime has only {available}."
                )
        else:
            raise BackendError(f"onnxruntime device must be one of {['auto', *_PROVIDERS]}, got {self.device!r}.")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFormatError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc}).") from exc
        spec = read_onnx_spec(self._session, path)
        graph_inputs = [i.name for i in self._session.get_inputs()]
        if sorted(graph_inputs) != sorted(spec.input_names):
            raise ModelFormatError(
                f"{path}: graph inputs {graph_inputs} do not match its edgeact spec {list(spec.input_names)}."
            )
        self._outputs = [LOGITS] + [STATE_OUT + s.name for s in spec.state]
        self._state_inputs = [n for n in spec.input_names if n.startswith("state_in.")]
        self.providers = self._session.get_providers()
        return spec

    def _step(self, inputs: dict[str, np.ndarray], state: State) -> tuple[np.ndarray, State]:
        feed = dict(inputs)
        feed.update(zip(self._state_inputs, state))
        logits, *next_state = self._session.run(self._outputs, feed)
        return logits, next_state  # the outputs become the next inputs: swapped, never copied

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "providers": self.providers}

    def close(self) -> None:
        self._session = None
