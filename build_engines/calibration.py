"""Calibration data for INT8: what the step graph really sees, in stream order.

The step's inputs are the preprocessed frame/keypoints *and* the recurrent and shift-buffer
state that earlier steps produced. Calibrating on zero states would fit the state inputs'
ranges to the first step only; so the fp32 step graph is streamed over calibration clips
(sampled as the spec declares: every ``stride``-th frame) and every step's full feed, states
included, is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.spec import STATE_IN, ModelSpec


@dataclass
class CalibrationSet:
    """Recorded step feeds: per graph input name, the rows of every recorded step [N,...]."""

    feeds: dict[str, np.ndarray]
    clips: int
    steps: int

    def batches(self, size: int = 32) -> Iterator[dict[str, np.ndarray]]:
        """Batches of ``size`` recorded steps (all the same size, which ONNX Runtime's histogram
        calibrators need; the remainder, fewer than ``size`` steps, is left out)."""
        size = min(size, self.steps)
        for start in range(0, self.steps - size + 1, size):
            yield {name: array[start:start + size] for name, array in self.feeds.items()}

    def ranges(self) -> dict[str, tuple[float, float]]:
        """min and max of every recorded input (for the report)."""
        return {name: (float(a.min()), float(a.max())) for name, a in self.feeds.items() if a.size}


def record(fp32_graph: str | Path, data: str | Path, *, split: str = "train", clips: int = 32, seed: int = 0,
           keypoints: str = "noisy_keypoints") -> CalibrationSet:
    """Stream ``clips`` clips of ``split`` (a seeded random choice) through the fp32 graph on
    ONNX Runtime and record every step's feed, data inputs and incoming states."""
    from edgeact.backends import load_backend
    from edgeact.data import open_dataset
    from edgeact.data.clip_store import ClipStore
    from edgeact.data.sampling import Sampling, sample_indices

    runner = load_backend(fp32_graph, "onnxruntime", device="cpu")
    spec: ModelSpec = runner.spec
    available = open_dataset(data).split(split)
    if not available:
        raise ValueError(f"{data} has no clips in split {split!r} to calibrate on.")
    chosen = np.random.default_rng(seed).choice(len(available), size=min(clips, len(available)), replace=False)
    store = ClipStore([available[i] for i in sorted(chosen)], keypoint_view=keypoints, keypoint_spec=spec.keypoints)
    sampling = Sampling(stride=spec.stride)
    names = [s.name for s in spec.data_inputs] + [STATE_IN + s.name for s in spec.state]
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for i in range(len(store)):
        inputs = store.inputs(i, spec, sample_indices(int(store.num_frames[i]), sampling))
        state = runner.init_state(1)
        for t in range(len(next(iter(inputs.values())))):
            step = {name: np.ascontiguousarray(array[t:t + 1]) for name, array in inputs.items()}
            for name, array in zip(names, [step[s.name] for s in spec.data_inputs] + state):
                rows[name].append(array)
            _, state = runner.step(step, state)
    runner.close()
    feeds = {name: np.concatenate(parts) for name, parts in rows.items()}
    return CalibrationSet(feeds, clips=len(store), steps=len(feeds[names[0]]))
