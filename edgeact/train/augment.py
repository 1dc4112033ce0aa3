"""Clip-level augmentation: one random draw per clip, applied to every frame of it, so the
augmented clip is still a plausible video (a camera does not re-crop between frames).

RGB works on the raw BGR uint8 frames *before* :func:`edgeact.preprocess.preprocess_frames`
(which then resizes and normalises exactly as deployment does): a random resized crop (the crop
is a view; the one preprocessing path does the resize), a horizontal flip, brightness /
contrast / saturation jitter. Keypoints work on preprocessed keypoints (the source's units,
missing joints all zero): scale, shear, a turn (3D: about the vertical axis, as another
camera azimuth would see the person; 2D: in the image plane) and translation, a mirror that
swaps left and right joints, the people's order swapped (interactions), joint dropout.
When a model sees both, the keypoints follow the frames' crop and flip instead (joints that
leave the crop become missing), so the two inputs stay aligned.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from edgeact.data.skeleton import FLIP_PERMUTATION
from edgeact.errors import ConfigError
from edgeact.train.config import Augment

_GRAY_BGR = np.array([0.114, 0.587, 0.299], np.float32)  # ITU-R 601 luma, BGR order


def mirror_permutation(joints: int, pairs: Optional[tuple[tuple[int, int], ...]]) -> np.ndarray:
    """Joint index permutation of a mirrored skeleton: the given left/right pairs swapped, or
    the COCO-18 (OpenPose) pairs of the synthetic data when ``pairs`` is None."""
    if pairs is None:
        if joints != len(FLIP_PERMUTATION):
            raise ConfigError(f"data.augment.keypoints.mirror needs 'mirror_pairs' (left/right joint pairs) for a "
                              f"{joints}-joint skeleton; the default pairs are COCO-18's.")
        return FLIP_PERMUTATION.copy()
    perm = np.arange(joints)
    for a, b in pairs:
        if not (0 <= a < joints and 0 <= b < joints):
            raise ConfigError(f"data.augment.keypoints.mirror_pairs has the pair [{a}, {b}], outside 0..{joints - 1}.")
        perm[a], perm[b] = b, a
    return perm


class ClipAugmenter:
    def __init__(self, cfg: Augment, *, frames: bool, joints: Optional[int]):
        self.cfg = cfg
        self.frames = frames
        kp = cfg.keypoints
        # frames that flip carry their keypoints along, so a flip needs the left/right swap too
        needs_mirror = kp.mirror > 0 or (frames and cfg.frames.flip > 0)
        self.mirror = mirror_permutation(joints, kp.mirror_pairs) if joints and needs_mirror else None
        for name, (low, high) in (("frames.crop_scale", cfg.frames.crop_scale), ("frames.crop_ratio", cfg.frames.crop_ratio),
                                  ("keypoints.scale", kp.scale)):
            if low > high:
                raise ConfigError(f"data.augment.{name} must be [low, high] with low <= high, got [{low}, {high}].")

    def __call__(self, rng: np.random.Generator, frames: Optional[np.ndarray],
                 keypoints: Optional[np.ndarray]) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """frames uint8 [T,H,W,3] BGR (raw), keypoints float32 [T,P,J,C+1] (preprocessed)."""
        if frames is not None:
            height, width = frames.shape[1:3]
            x0, y0, cw, ch = self._crop_box(rng, height, width)
            flip = rng.random() < self.cfg.frames.flip
            frames = frames[:, y0:y0 + ch, x0:x0 + cw]  # [T,ch,cw,3] view
            if flip:
                frames = frames[:, :, ::-1]
            frames = self._colour(rng, frames)
            if keypoints is not None:
                keypoints = _crop_keypoints(keypoints, (x0, y0, cw, ch), (height, width), flip, self.mirror)
        elif keypoints is not None:
            keypoints = self._keypoint_geometry(rng, keypoints)
        people = keypoints.shape[1] if keypoints is not None else 1
        if people > 1 and self.cfg.keypoints.swap_people > 0 and rng.random() < self.cfg.keypoints.swap_people:
            shift = int(rng.integers(1, people))  # another order: two people swapped
            keypoints = np.roll(keypoints, shift, axis=1)
        if keypoints is not None and self.cfg.keypoints.joint_dropout > 0:
            drop = rng.random(keypoints.shape[:-1]) < self.cfg.keypoints.joint_dropout  # [T,P,J]
            keypoints = np.where(drop[..., None], np.float32(0.0), keypoints)
        return frames, keypoints

    def _crop_box(self, rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop box: area share and aspect ratio (log-uniform), 10 tries,
        then the whole frame."""
        cfg = self.cfg.frames
        area = height * width
        log_ratio = np.log(cfg.crop_ratio)
        for _ in range(10):
            target = area * rng.uniform(*cfg.crop_scale)
            ratio = np.exp(rng.uniform(*log_ratio))
            cw, ch = int(round(np.sqrt(target * ratio))), int(round(np.sqrt(target / ratio)))
            if 0 < cw <= width and 0 < ch <= height:
                return int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1)), cw, ch
        return 0, 0, width, height

    def _colour(self, rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
        cfg = self.cfg.frames
        if not (cfg.brightness or cfg.contrast or cfg.saturation):
            return frames
        b, c, s = (1.0 + rng.uniform(-v, v) for v in (cfg.brightness, cfg.contrast, cfg.saturation))
        x = frames.astype(np.float32) * np.float32(b)  # [T,h,w,3]
        gray = x @ _GRAY_BGR  # [T,h,w]
        mean = gray.mean(axis=(1, 2), keepdims=True)[..., None]  # [T,1,1,1]
        x = (x - mean) * np.float32(c) + mean
        gray = (x @ _GRAY_BGR)[..., None]
        x = gray + (x - gray) * np.float32(s)
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)

    def _keypoint_geometry(self, rng: np.random.Generator, kp: np.ndarray) -> np.ndarray:
        cfg = self.cfg.keypoints
        dims = kp.shape[-1] - 1
        visible = kp[..., dims] > 0  # [T,P,J]
        if not visible.any():
            return kp
        xy = kp[..., :dims][visible]  # [N,dims]
        centre = xy.mean(0)
        extent = xy.max(0) - xy.min(0)
        linear = self._linear(rng, dims)  # drawn first: without shear/turn, the draws of before
        shift = rng.uniform(-cfg.translate, cfg.translate, size=dims) * extent
        out = kp.copy()
        coords = (kp[..., :dims] - centre) @ linear.T + centre + shift
        if self.mirror is not None and rng.random() < cfg.mirror:
            coords[..., 0] = 2 * (centre[0] + shift[0]) - coords[..., 0]
            coords, out = coords[:, :, self.mirror], out[:, :, self.mirror]
            visible = visible[:, :, self.mirror]
        out[..., :dims] = np.where(visible[..., None], coords, 0.0)
        return out.astype(np.float32)


    def _linear(self, rng: np.random.Generator, dims: int) -> np.ndarray:
        """One clip's linear map [dims,dims]: per-axis scale, then shear, then the turn."""
        cfg = self.cfg.keypoints
        m = np.diag(rng.uniform(*cfg.scale, size=dims))
        if cfg.shear:
            m = (np.eye(dims) + rng.uniform(-cfg.shear, cfg.shear, size=(dims, dims)) * (1 - np.eye(dims))) @ m
        if cfg.rotate:
            angle = np.deg2rad(rng.uniform(-cfg.rotate, cfg.rotate))
            a, b = [axis for axis in range(dims) if axis != cfg.vertical_axis] if dims == 3 else (0, 1)
            turn = np.eye(dims)
            turn[a, a], turn[a, b], turn[b, a], turn[b, b] = np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)
            m = turn @ m
        return m


def _crop_keypoints(kp: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int], flip: bool,
                    mirror: Optional[np.ndarray]) -> np.ndarray:
    """Keypoints in raw-frame pixels -> pixels of the crop stretched to the raw frame size."""
    x0, y0, cw, ch = box
    height, width = size
    dims = kp.shape[-1] - 1
    out = kp.copy()
    # pixel centres stay aligned, as in cv2.resize: crop pixel i -> (i + 0.5) * scale - 0.5
    x = (kp[..., 0] - x0 + 0.5) * (width / cw) - 0.5
    y = (kp[..., 1] - y0 + 0.5) * (height / ch) - 0.5
    visible = (kp[..., dims] > 0) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    if flip:
        x = width - 1 - x
    out[..., 0], out[..., 1] = x, y
    if flip and mirror is not None:  # the mirror image of a right arm is a left arm
        out, visible = out[:, :, mirror], visible[:, :, mirror]
    return np.where(visible[..., None], out, np.float32(0.0)).astype(np.float32)
