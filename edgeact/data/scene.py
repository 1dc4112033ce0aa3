"""Everything around the figures: background, clutter, occluders, camera shake, light, noise.

A :class:`Scene` is drawn once per clip from the clip's scene stream; per frame, rendering
crops the (oversized) background at the camera offset, draws moving distractors, the figures,
then the foreground occluders, and finally applies lighting and sensor noise in one
vectorised pass over the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeact.data.figure import random_colour


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Blotchy colour texture [h,w,3] float32 in -1..1: low-res noise blown up smoothly."""
    cells = int(rng.integers(3, 12))
    low = rng.normal(0, 1, (cells, cells, 3)).astype(np.float32)
    return np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC), -2, 2) / 2


def _background(rng: np.random.Generator, size: int, horizon: float) -> np.ndarray:
    """Wall above the horizon, floor below, both textured, plus static clutter (uint8 BGR)."""
    img = np.empty((size, size, 3), np.float32)
    cut = int(horizon)
    wall, floor = np.array(random_colour(rng)), np.array(random_colour(rng)) * 0.8
    img[:cut] = wall
    img[cut:] = floor
    img += _texture(rng, size, size) * rng.uniform(10, 45)
    if rng.random() < 0.5:  # wallpaper / floorboard stripes
        period = rng.uniform(4, 16) * size / 112
        axis = np.arange(size, dtype=np.float32)
        img += (np.sin(axis * 2 * np.pi / period) * rng.uniform(5, 20))[None, :, None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 9))):  # furniture, posters, windows
        colour = random_colour(rng)
        x0, y0 = (rng.uniform(0, size, 2)).astype(int)
        w, h = (rng.uniform(0.05, 0.3, 2) * size).astype(int)
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x0, y0), max(2, w // 2), colour, -1, cv2.LINE_AA)
        else:
            cv2.line(img, (x0, y0), (x0 + w, y0 + h), colour, max(1, size // 60), cv2.LINE_AA)
    return img


@dataclass(frozen=True)
class Mover:
    """A shape moving in a straight line: a ball, box or bar; centre [T,2], size in pixels."""

    kind: int
    centre: np.ndarray
    radius: float
    colour: tuple[float, float, float]

    @classmethod
    def sample(cls, rng: np.random.Generator, size: int, t: int, small: bool) -> Mover:
        start = rng.uniform(-0.1, 1.1, 2) * size
        velocity = rng.normal(0, 0.6 if small else 0.3, 2) * size / 112
        radius = rng.uniform(0.03, 0.08) * size if small else rng.uniform(0.06, 0.12) * size
        centre = start + np.arange(t)[:, None] * velocity
        return cls(int(rng.integers(3)), centre, radius, random_colour(rng))

    def draw(self, img: np.ndarray, i: int, offset: np.ndarray) -> None:
        """Draw at frame i, shifted by the camera offset [2]."""
        x, y = np.round(self.centre[i] + offset).astype(int)
        r = int(self.radius)
        if self.kind == 0:
            cv2.circle(img, (x, y), r, self.colour, -1, cv2.LINE_AA)
        elif self.kind == 1:
            cv2.rectangle(img, (x - r, y - r), (x + r, y + r), self.colour, -1)
        else:
            cv2.rectangle(img, (x - r // 3, y - 3 * r), (x + r // 3, y + 3 * r), self.colour, -1)

    def covers(self, points: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Which of points [T,N,2] (frame pixels) this shape hides, [T,N] bool; offset [T,2]."""
        d = points - np.round(self.centre + offset)[:, None, :]
        r = int(self.radius)
        if self.kind == 0:
            return (d**2).sum(-1) <= r * r
        half = np.array([r, r]) if self.kind == 1 else np.array([r / 3, 3 * r])
        return (np.abs(d) <= half).all(-1)


@dataclass(frozen=True)
class Scene:
    background: np.ndarray  # [S+2m, S+2m, 3] uint8, cropped at the camera offset
    margin: int
    offsets: np.ndarray  # [T,2] int camera offset (x, y) added to everything in the scene
    behind: tuple[Mover, ...]  # distractors drawn before the figures
    front: tuple[Mover, ...]  # occluders drawn after the figures; they hide joints
    gain: np.ndarray  # [S,S,3] float32 lighting map
    flicker: np.ndarray  # [T] float32
    noise_sigma: float
    blur: bool

    @classmethod
    def sample(cls, rng: np.random.Generator, size: int, t: int, horizon: float) -> Scene:
        shake = rng.uniform(0.0, 0.03) * size
        margin = int(np.ceil(shake * 1.5)) + 1
        steps = np.arange(t)[:, None]
        period = rng.uniform(20, 80, (1, 2))
        drift = np.sin(2 * np.pi * steps / period + rng.uniform(0, 2 * np.pi, (1, 2)))
        jitter = rng.normal(0, 0.25, (t, 2))
        offsets = np.clip(np.round(shake * (drift + jitter)), -margin, margin).astype(int)
        behind = tuple(Mover.sample(rng, size, t, small=True) for _ in range(rng.integers(0, 4)))
        occluders = 1 if rng.random() < 0.35 else 0
        front = tuple(Mover.sample(rng, size, t, small=False) for _ in range(occluders))
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) * rng.uniform(0, 0.6)
        tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
        gain = (rng.uniform(0.75, 1.15) + ramp)[..., None] * tint
        flicker = 1 + rng.uniform(0, 0.04) * np.sin(2 * np.pi * np.arange(t) / rng.uniform(8, 40))
        return cls(
            background=_background(rng, size + 2 * margin, horizon + margin),
            margin=margin,
            offsets=offsets,
            behind=behind,
            front=front,
            gain=gain.astype(np.float32),
            flicker=flicker.astype(np.float32),
            noise_sigma=float(rng.uniform(1.0, 5.0)),
            blur=bool(rng.random() < 0.3),
        )

    def canvas(self, i: int) -> np.ndarray:
        """Background of frame i with the distractors behind the figures drawn on it."""
        size = self.background.shape[0] - 2 * self.margin
        ox, oy = self.offsets[i]
        y0, x0 = self.margin - oy, self.margin - ox
        img = self.background[y0 : y0 + size, x0 : x0 + size].copy()
        for m in self.behind:
            m.draw(img, i, self.offsets[i])
        return img

    def cover(self, img: np.ndarray, i: int) -> None:
        """Draw the foreground occluders of frame i over the figures."""
        for m in self.front:
            m.draw(img, i, self.offsets[i])

    def hidden(self, points: np.ndarray) -> np.ndarray:
        """[T,N] bool: which points [T,N,2] (frame pixels) the foreground occluders hide."""
        out = np.zeros(points.shape[:2], bool)
        for m in self.front:
            out |= m.covers(points, self.offsets)
        return out

    def noise_bank(self, rng: np.random.Generator) -> np.ndarray:
        """A few frames of sensor noise [K,S,S,3] float32; each frame picks one at random."""
        size = self.gain.shape[0]
        return rng.standard_normal((4, size, size, 3), dtype=np.float32) * np.float32(self.noise_sigma)

    def finish(self, img: np.ndarray, i: int, noise: np.ndarray) -> np.ndarray:
        """Frame i after defocus, lighting and sensor noise (uint8, saturated)."""
        if self.blur:
            img = cv2.GaussianBlur(img, (3, 3), 0)
        lit = cv2.multiply(img, self.gain, scale=float(self.flicker[i]), dtype=cv2.CV_32F)
        return cv2.add(lit, noise, dtype=cv2.CV_8U)
