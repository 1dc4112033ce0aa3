"""MoveNet SinglePose (.tflite) on CPU through ai-edge-litert: edgeact's built-in pose estimator.

MoveNet SinglePose Lightning int8 (2.9 MB, Apache-2.0) finds the 17 COCO keypoints of the
most prominent person in a few milliseconds per frame on one CPU core, offline: the file is
passed by path and nothing is downloaded at run time. The input size and dtype are read from
the model, so MoveNet's other SinglePose files (Thunder, 256 px; float16) should run as well;
only Lightning int8 is tested here. Input: RGB ``[1, S, S, 3]`` of 0..255 values; output
``[1, 1, 17, 3]`` = (y, x, score) normalised to the input image.

The frame is fitted into the square input keeping its aspect ratio (``resize="pad"``, what
MoveNet's model card asks for: a stretched person is not what it was trained on) and the
keypoints are mapped back to the frame's pixels; ``resize="stretch"`` resizes to the square
(how the reference keypoints in the test data were made).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeact.errors import BackendError, InputError, ModelFormatError
from edgeact.pose.layouts import COCO17
from edgeact.pose.provider import PoseProvider

RESIZE_MODES = ("pad", "stretch")


class MoveNetProvider(PoseProvider):
    """One person's COCO-17 keypoints per frame from a MoveNet SinglePose ``.tflite`` file."""

    def __init__(self, path: str | Path, *, threads: int | None = None, resize: str = "pad",
                 min_score: float = 0.2) -> None:
        if resize not in RESIZE_MODES:
            raise InputError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}.")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InputError(f"threads must be a positive int or None, got {threads!r}.")
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"MoveNet model file not found: {path}")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendError("MoveNetProvider needs ai-edge-litert, which is not installed here; "
                               "pip install 'edgeact[pose]'.") from exc
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # LiteRT's own errors for files it cannot read
            raise ModelFormatError(f"{path} is not a loadable TFLite model ({type(exc).__name__}: {exc}).") from exc
        (inp,), outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if (len(inp["shape"]) != 4 or inp["shape"][0] != 1 or inp["shape"][3] != 3 or len(outputs) != 1
                or tuple(outputs[0]["shape"]) != (1, 1, len(COCO17), 3)):
            got = f"input {tuple(inp['shape'])}, outputs {[tuple(o['shape']) for o in outputs]}"
            raise ModelFormatError(f"{path} is not a MoveNet SinglePose model: expected input (1, H, W, 3) and one "
                                   f"output (1, 1, 17, 3), got {got}. (MultiPose models are not supported.)")
        super().__init__(COCO17, max_people=1, min_score=min_score)
        self.path, self.resize = path, resize
        self._interpreter = interpreter
        self._input, self._output = inp["index"], outputs[0]["index"]
        self._size = (int(inp["shape"][1]), int(inp["shape"][2]))  # (height, width)
        self._dtype = inp["dtype"]
        self._canvas = np.zeros((1, *self._size, 3), self._dtype)

    def _estimate(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        in_h, in_w = self._size
        if self.resize == "pad":
            scale = min(in_h / height, in_w / width)
            new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        else:
            new_h, new_w = in_h, in_w
        y0, x0 = (in_h - new_h) // 2, (in_w - new_w) // 2
        shrinking = height > new_h or width > new_w
        resized = cv2.resize(np.ascontiguousarray(frame), (new_w, new_h),
                             interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        self._canvas[...] = 0
        self._canvas[0, y0:y0 + new_h, x0:x0 + new_w] = resized[:, :, ::-1]  # BGR -> RGB
        self._interpreter.set_tensor(self._input, self._canvas)
        self._interpreter.invoke()
        y, x, score = self._interpreter.get_tensor(self._output)[0, 0].T  # normalised to the input
        keypoints = np.empty((1, len(COCO17), 3), np.float32)
        keypoints[0, :, 0] = (x * in_w - x0) * (width / new_w)
        keypoints[0, :, 1] = (y * in_h - y0) * (height / new_h)
        keypoints[0, :, 2] = score
        return keypoints

    def _close(self) -> None:
        del self._interpreter

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.path), "resize": self.resize, "input_size": self._size}
