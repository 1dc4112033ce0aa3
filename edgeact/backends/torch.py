"""PyTorch backend: the reference every exported artifact is compared with (needs torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeact.backends.base import Backend, State
from edgeact.checkpoint import checkpoint_spec, load_checkpoint
from edgeact.errors import BackendError
from edgeact.spec import ModelSpec


class TorchBackend(Backend):
    name = "torch"

    def _load(self, path: Path, **options: Any) -> ModelSpec:
        device = "cuda" if self.device == "auto" and torch.cuda.is_available() else self.device
        device = "cpu" if device == "auto" else device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device {self.device!r} was asked for, but torch sees no CUDA GPU.")
        if device != "cpu" and not device.startswith("cuda"):
            raise BackendError(f"torch device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}.")
        if self.threads:
            torch.set_num_threads(self.threads)
        self._device = torch.device(device)
        model, payload = load_checkpoint(path, map_location=self._device)
        self._model = model.eval()
        return checkpoint_spec(model, payload, path)

    def init_state(self, batch: int = 1) -> State:
        return [torch.zeros(batch, *s.shape, dtype=getattr(torch, s.dtype), device=self._device) for s in self.spec.state]

    def stack_states(self, states: list[State]) -> State:
        if len(states) == 1:
            return states[0]
        return [torch.cat(parts, dim=0) for parts in zip(*states)]

    def split_state(self, state: State, sizes: list[int]) -> list[State]:
        if len(sizes) == 1:
            return [state]
        per_tensor = [torch.split(t, sizes, dim=0) for t in state]
        return [list(parts) for parts in zip(*per_tensor)]

    def _step(self, inputs: dict[str, np.ndarray], state: State) -> tuple[np.ndarray, State]:
        data = [torch.from_numpy(inputs[n]).to(self._device) for n in self.spec.input_names if n in inputs]
        with torch.inference_mode():
            logits, *next_state = self._model.step_flat(*data, *state)
        return logits.float().cpu().numpy(), next_state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "torch_device": str(self._device)}

    def close(self) -> None:
        self._model = None
