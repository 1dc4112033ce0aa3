"""PyTorch backend: the reference every exported artifact is compared with (needs torch).

State lives in torch tensors on the model's device (``allocate``); the step writes the next
state into the pool's buffers with ``copy_`` (torch allocates its activations itself).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from edgeact.backends.base import Loader, Runner
from edgeact.checkpoint import checkpoint_spec, load_checkpoint
from edgeact.errors import BackendError
from edgeact.models import StreamingModel
from edgeact.spec import ModelSpec, TensorSpec


class LoadedCheckpoint(NamedTuple):
    model: StreamingModel  # eval mode, on its device
    spec: ModelSpec


class TorchLoader(Loader):
    backend = "torch"

    def __call__(self) -> LoadedCheckpoint:
        device = "cuda" if self.device == "auto" and torch.cuda.is_available() else self.device
        device = "cpu" if device == "auto" else device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device {self.device!r} was asked for, but torch sees no CUDA GPU.")
        if device != "cpu" and not device.startswith("cuda"):
            raise BackendError(f"torch device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}.")
        if self.threads:
            torch.set_num_threads(self.threads)
        model, payload = load_checkpoint(self.path, map_location=torch.device(device))
        return LoadedCheckpoint(model.eval(), checkpoint_spec(model, payload, self.path))


class TorchRunner(Runner):
    name = "torch"

    def _open(self, loaded: LoadedCheckpoint) -> None:
        self._model = loaded.model.eval()
        self._device = next(self._model.parameters()).device

    def allocate(self, spec: TensorSpec, rows: int) -> torch.Tensor:
        self.runtime  # noqa: B018 (the device is known once open)
        return torch.zeros(rows, *spec.shape, dtype=getattr(torch, spec.dtype), device=self._device)

    def _run(self, inputs: dict[str, np.ndarray], state_in: Sequence[Any], state_out: Sequence[Any],
             key: Hashable | None = None) -> np.ndarray:
        data = [torch.as_tensor(inputs[s.name], device=self._device) for s in self.spec.data_inputs]
        state = [torch.as_tensor(s, device=self._device) for s in state_in]
        with torch.inference_mode():
            logits, *rest = self._model.step_flat(*data, *state)
            for out, new in zip(state_out, rest[len(self.spec.features):]):
                torch.as_tensor(out).copy_(new)  # a numpy array or a pool tensor: written in place
        return logits.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "torch_device": str(getattr(self, "_device", None))}
