"""Writing, probing and reading clip videos with OpenCV, one table row per codec.

``mjpg`` uses OpenCV's built-in Motion-JPEG AVI writer, present in every OpenCV build (FFmpeg
or not), so the bytes it writes do not depend on the FFmpeg version; it is lossy (JPEG with
chroma subsampling: mean error ~4 grey levels, more on saturated edges), small and fast.
``ffv1`` is lossless (decoded frames equal the rendered ones bit for bit) but needs an OpenCV
built with FFmpeg, writes ~4x more bytes and decodes ~3x slower.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeact.errors import DatasetError


@dataclass(frozen=True)
class Codec:
    name: str
    fourcc: str
    suffix: str
    backend: int  # cv2.CAP_* used to write
    lossless: bool


CODECS = {
    "mjpg": Codec("mjpg", "MJPG", ".avi", cv2.CAP_OPENCV_MJPEG, lossless=False),
    "ffv1": Codec("ffv1", "FFV1", ".mkv", cv2.CAP_FFMPEG, lossless=True),
}


def write_video(path: Path, frames: np.ndarray, fps: float, codec: Codec) -> None:
    """Write frames [T,H,W,3] uint8 BGR to path."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), codec.backend, cv2.VideoWriter_fourcc(*codec.fourcc), fps, (width, height))
    if not writer.isOpened():
        raise DatasetError(
            f"OpenCV {cv2.__version__} cannot write {codec.fourcc} video to {path}; "
            f"this build may lack the backend it needs. Choose another codec: {', '.join(CODECS)}."
        )
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()


@contextmanager
def _opened(path: Path) -> Iterator[cv2.VideoCapture]:
    """An opened capture of ``path``, released afterwards; a missing or unreadable file is a DatasetError."""
    if not path.is_file():
        raise DatasetError(f"Video file {path} does not exist.")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DatasetError(f"OpenCV {cv2.__version__} cannot open the video {path}.")
        yield capture
    finally:
        capture.release()


def probe_video(path: Path) -> tuple[int, float]:
    """(frame count, frames per second) from a video's container header, without decoding;
    fps is 0.0 where the container does not say."""
    with _opened(path) as capture:
        count, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), float(capture.get(cv2.CAP_PROP_FPS))
    if count < 1:
        raise DatasetError(f"The video {path} reports {count} frames in its header; edgeact needs the frame count.")
    return count, fps if np.isfinite(fps) and fps > 0 else 0.0


def read_video(path: Path) -> np.ndarray:
    """All frames of a video as uint8 [T,H,W,3], BGR as OpenCV decodes them."""
    with _opened(path) as capture:
        frames = []
        ok, frame = capture.read()
        while ok:
            frames.append(frame)
            ok, frame = capture.read()
    if not frames:
        raise DatasetError(f"The video {path} has no readable frames.")
    return np.stack(frames)
