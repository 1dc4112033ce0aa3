"""Pose front ends: keypoints from camera frames for keypoint models (docs/pose.md).

``Predictor(model, pose=MoveNetProvider(path))`` (or ``pose="movenet:PATH"``) runs the
provider on every frame during validation and feeds its keypoints, mapped to the model's
layout, to the model: ``push(frame)`` alone works. Bring any other estimator (an ONNX
RTMPose or YOLO-pose, TensorRT, ...) by subclassing :class:`PoseProvider`.
"""

from edgeact.pose.feed import PoseFeed
from edgeact.pose.layouts import COCO17, COCO18, LAYOUTS, KeypointLayout, LayoutMapping, missing_joints
from edgeact.pose.movenet import MoveNetProvider
from edgeact.pose.provider import PROVIDERS, PoseProvider, ProviderEntry, load_provider

__all__ = [
    "COCO17", "COCO18", "LAYOUTS", "PROVIDERS", "KeypointLayout", "LayoutMapping", "MoveNetProvider", "PoseFeed",
    "PoseProvider", "ProviderEntry", "load_provider", "missing_joints",
]  # fmt: skip
