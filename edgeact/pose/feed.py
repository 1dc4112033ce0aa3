"""A pose provider bound to one model's keypoint input: the Predictor's pose front end.

``PoseFeed.attach(pose, spec)`` checks, once, that the provider can feed the model (the model
takes keypoints, in as many coordinates as the provider gives, in a layout the provider's can
be mapped to) and then turns each frame into keypoints in the model's layout and units. The
people count needs no check: the Predictor pads missing people as absent and keeps the most
visible ones when there are more (``preprocess_keypoints``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeact.errors import InputError, InputTypeError
from edgeact.pose.layouts import KeypointLayout, LayoutMapping, missing_joints, resolve_layout
from edgeact.pose.provider import PoseProvider, load_provider
from edgeact.spec import ModelSpec

_DIMS = {2: "2D (x, y)", 3: "3D (x, y, z)"}


class PoseFeed:
    """``feed(frame)`` -> keypoints ``[people, model joints, dims + 1]`` for the model of ``spec``."""

    def __init__(self, provider: PoseProvider, spec: ModelSpec, layout: KeypointLayout | str | None = None, *,
                 owned: bool = False) -> None:
        if not isinstance(provider, PoseProvider):
            raise InputTypeError(f"pose must be a PoseProvider or 'NAME:PATH' (e.g. 'movenet:model.tflite'), "
                                 f"got {type(provider).__name__}.")
        keypoints = spec.keypoints
        if keypoints is None:
            raise InputError(f"this model takes no keypoints (frames only), so pose provider {provider.name} has "
                             "nothing to feed; leave pose= out.")
        if provider.dims != keypoints.dims:
            raise InputError(f"this model takes {_DIMS[keypoints.dims]} keypoints; pose provider {provider.name} "
                             f"gives {_DIMS[provider.dims]}.")
        target = resolve_layout(layout, keypoints)
        missing = missing_joints(provider.layout, target)
        if missing:
            raise InputError(
                f"this model takes keypoints in the layout {target.describe()}; pose provider {provider.name} "
                f"gives {provider.layout.describe()}, which lacks {', '.join(missing)}. Use a provider that reports "
                f"them, or pass keypoint_layout= if the model's joints are named otherwise."
            )
        self.provider, self.spec, self.owned = provider, keypoints, owned
        self.mapping = LayoutMapping.between(provider.layout, target)

    @classmethod
    def attach(cls, pose: PoseProvider | str, spec: ModelSpec, layout: KeypointLayout | str | None = None) -> PoseFeed:
        """Bind ``pose``: a provider the caller keeps (and closes), or ``"NAME:PATH"``, built
        here and closed with the feed."""
        if not isinstance(pose, str):
            return cls(pose, spec, layout)
        provider = load_provider(pose)
        try:
            return cls(provider, spec, layout, owned=True)
        except BaseException:
            provider.close()
            raise

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        keypoints = self.mapping(self.provider(frame))
        if self.spec.units == "normalized":
            height, width = frame.shape[:2]
            keypoints[:, :, :2] /= np.array([width, height], np.float32)
        return keypoints

    def close(self) -> None:
        if self.owned:
            self.provider.close()

    def describe(self) -> dict[str, Any]:
        return {**self.provider.describe(), "mapping": self.mapping.describe(), "owned": self.owned}
