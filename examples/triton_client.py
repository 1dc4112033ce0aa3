"""Stream camera frames to an edgeact model served by NVIDIA Triton (docs/triton.md).

The server keeps each stream's state (the repository from ``edgeact.triton.write_triton_repository``
configures implicit state); the client preprocesses each frame as ``edgeact.Predictor`` does,
sends one step per ``spec.stride``-th frame with its stream's ``sequence_id``, flags the first
request ``sequence_start`` (the server zeroes the state) and the last ``sequence_end`` (the server
frees it)::

    python examples/triton_client.py student.onnx video.mp4 --url localhost:8001 --model student

Needs ``pip install "edgeact[triton]"`` (tritonclient[grpc]). The model file is read for its spec
only (input names, preprocessing, stride, class names); nothing runs locally.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeact.errors import InputError
from edgeact.preprocess import preprocess_frame, preprocess_keypoints
from edgeact.spec import FRAMES, KEYPOINTS, LOGITS, ModelSpec, read_spec

# numpy dtype -> the datatype string of Triton's inference protocol
WIRE_DTYPES = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8", "int32": "INT32", "int64": "INT64"}


def step_inputs(spec: ModelSpec, frame: np.ndarray | None, keypoints: np.ndarray | None) -> dict[str, np.ndarray]:
    """One step's data inputs, batch of one, preprocessed as the Predictor preprocesses them."""
    inputs = {}
    if spec.frames is not None:
        # raw_size: the graph preprocesses (edgeact.preprocess_graph); the BGR frame goes in as it is
        inputs[FRAMES] = frame if spec.frames.raw_size else preprocess_frame(frame, spec.frames)
    if spec.keypoints is not None:
        inputs[KEYPOINTS] = preprocess_keypoints(keypoints, spec.keypoints)
    return {name: np.ascontiguousarray(array)[None] for name, array in inputs.items()}


class TritonStream:
    """One camera on the server: ``push`` every frame, ``close`` when the camera stops.

    ``client`` is a ``tritonclient.grpc.InferenceServerClient``; ``infer_input`` and
    ``requested_output`` are tritonclient.grpc's ``InferInput`` and ``InferRequestedOutput``
    (parameters so the request building can be tested without a server)."""

    def __init__(self, client: Any, model_name: str, spec: ModelSpec, sequence_id: int, *,
                 infer_input: Callable[..., Any], requested_output: Callable[..., Any]) -> None:
        if isinstance(sequence_id, bool) or not isinstance(sequence_id, int) or sequence_id < 1:
            raise InputError(f"sequence_id must be a positive int (0 means no sequence to Triton), "
                             f"got {sequence_id!r}.")
        self.client, self.model_name, self.spec, self.sequence_id = client, model_name, spec, sequence_id
        self._infer_input, self._requested_output = infer_input, requested_output
        self.frames_seen = 0
        self.logits: np.ndarray | None = None  # of the latest step
        self._last: dict[str, np.ndarray] | None = None  # the latest step's inputs, for the closing request
        self._open = False

    def request(self, inputs: dict[str, np.ndarray], *, end: bool = False) -> dict[str, Any]:
        """The keyword arguments of ``client.infer`` for one step of this stream."""
        wire = []
        for name, array in inputs.items():
            tensor = self._infer_input(name, list(array.shape), WIRE_DTYPES[str(array.dtype)])
            tensor.set_data_from_numpy(array)
            wire.append(tensor)
        return {"model_name": self.model_name, "inputs": wire, "outputs": [self._requested_output(LOGITS)],
                "sequence_id": self.sequence_id, "sequence_start": not self._open, "sequence_end": end}

    def push(self, frame: np.ndarray | None = None, keypoints: np.ndarray | None = None, *,
             last: bool = False) -> np.ndarray | None:
        """Send this frame's step if the model steps on it (every ``spec.stride``-th frame from the
        first); returns the latest logits. ``last=True`` ends the sequence with this frame."""
        due = self.frames_seen % self.spec.stride == 0
        self.frames_seen += 1
        if due or (last and self._open):
            inputs = step_inputs(self.spec, frame, keypoints) if due else self._last
            result = self.client.infer(**self.request(inputs, end=last))
            self._open, self._last = not last, inputs
            if due:
                self.logits = result.as_numpy(LOGITS)[0]
        return self.logits

    def close(self) -> None:
        """End the sequence on the server: Triton frees a sequence only on a request flagged
        ``sequence_end`` (or after max_sequence_idle_microseconds), so the latest step is sent
        once more with the flag and its result discarded. Idempotent."""
        if self._open:
            self.client.infer(**self.request(self._last, end=True))
            self._open = False


def main() -> None:  # pragma: no cover - needs a running Triton server
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the exported .onnx (read for its spec only)")
    parser.add_argument("video", help="a video file or a camera index")
    parser.add_argument("--url", default="localhost:8001", help="Triton's gRPC endpoint")
    parser.add_argument("--model-name", help="the model's name in the repository (default: the file's stem)")
    parser.add_argument("--sequence-id", type=int, default=1, help="this stream's correlation id (unique per stream)")
    args = parser.parse_args()
    import cv2
    import tritonclient.grpc as grpcclient

    spec = read_spec(args.model)
    if spec.keypoints is not None:
        parser.error("this example streams frames only; a keypoint model needs keypoints per frame (push(keypoints=))")
    name = args.model_name or Path(args.model).stem
    client = grpcclient.InferenceServerClient(url=args.url)
    stream = TritonStream(client, name, spec, args.sequence_id, infer_input=grpcclient.InferInput,
                          requested_output=grpcclient.InferRequestedOutput)
    capture = cv2.VideoCapture(int(args.video) if args.video.isdigit() else args.video)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            logits = stream.push(frame)
            if logits is not None:
                print(f"frame {stream.frames_seen}: {spec.classes[int(np.argmax(logits))]}")
    finally:
        stream.close()
        capture.release()


if __name__ == "__main__":
    main()
