"""How a synthetic person looks (clothes, skin, build) and how it is drawn with OpenCV."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeact.data.skeleton import J

SHIFT = 4  # OpenCV fixed-point bits: sub-pixel joint positions draw smoothly
_ONE = 1 << SHIFT
_SKIN = np.array([[60, 80, 120], [90, 130, 190], [120, 160, 220], [150, 190, 235], [40, 60, 95]], float)
_HAIR = np.array([[20, 20, 25], [30, 50, 80], [60, 110, 170], [150, 150, 150], [15, 30, 50]], float)
_PANTS = np.array([[120, 70, 40], [30, 30, 30], [90, 90, 90], [90, 140, 170], [60, 50, 40]], float)

Colour = tuple[float, float, float]


def _bgr(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> Colour:
    c = palette[rng.integers(len(palette))] + rng.normal(0, jitter, 3)
    return tuple(np.clip(c, 0, 255).tolist())


def random_colour(rng: np.random.Generator) -> Colour:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 230), rng.integers(70, 240)]]])
    return tuple(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(float).tolist())


@dataclass(frozen=True)
class Look:
    """Colours and limb thicknesses of one person, thicknesses as fractions of height."""

    skin: Colour
    hair: Colour
    shirt: Colour
    pants: Colour
    shoes: Colour
    long_sleeves: bool
    shorts: bool
    arm: float
    leg: float
    torso: float

    @classmethod
    def sample(cls, rng: np.random.Generator, front: bool) -> Look:
        return cls(
            skin=_bgr(rng, _SKIN, 8),
            hair=_bgr(rng, _HAIR, 10),
            shirt=random_colour(rng),
            pants=random_colour(rng) if rng.random() < 0.3 else _bgr(rng, _PANTS, 15),
            shoes=_bgr(rng, _HAIR, 10),
            long_sleeves=bool(rng.random() < 0.6),
            shorts=bool(rng.random() < 0.25),
            arm=rng.uniform(0.04, 0.055),
            leg=rng.uniform(0.055, 0.07),
            torso=rng.uniform(0.17, 0.21) if front else rng.uniform(0.11, 0.14),
        )


def fixed_point(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as the integers OpenCV draws with at :data:`SHIFT` bits."""
    return np.round(points * _ONE).astype(np.int32)


def _shade(c: Colour, k: float) -> Colour:
    return (c[0] * k, c[1] * k, c[2] * k)


def draw_person(
    img: np.ndarray, px: list[list[int]], head: list[int], height: float, look: Look,
    front: bool, head_radius: float,
) -> None:  # fmt: skip
    """Draw one figure onto img in place; joints [18][2] and head centre in fixed point."""

    def seg(a: int, b: int, colour: Colour, frac: float) -> None:
        cv2.line(img, px[a], px[b], colour, max(1, int(round(frac * height))), cv2.LINE_AA, SHIFT)

    def dot(i: int, colour: Colour, frac: float) -> None:
        cv2.circle(img, px[i], max(1, int(round(frac * height))) * _ONE, colour, -1, cv2.LINE_AA, SHIFT)

    def arm(side: str, k: float) -> None:
        sh, el, wr = J[f"{side}_shoulder"], J[f"{side}_elbow"], J[f"{side}_wrist"]
        seg(sh, el, _shade(look.shirt, k), look.arm)
        seg(el, wr, _shade(look.shirt if look.long_sleeves else look.skin, k), look.arm * 0.9)
        dot(wr, _shade(look.skin, k), look.arm * 0.6)

    def leg(side: str, k: float) -> None:
        hip, kn, an = J[f"{side}_hip"], J[f"{side}_knee"], J[f"{side}_ankle"]
        seg(hip, kn, _shade(look.pants, k), look.leg)
        seg(kn, an, _shade(look.skin if look.shorts else look.pants, k), look.leg * 0.85)
        dot(an, _shade(look.shoes, k), look.leg * 0.55)

    far = 1.0 if front else 0.72  # the far-side limbs of a profile figure sit in shadow
    if not front:
        arm("l", far)
    leg("l", far)
    leg("r", 1.0)
    r_hip, l_hip = px[J["r_hip"]], px[J["l_hip"]]
    mid_hip = [(r_hip[0] + l_hip[0]) // 2, (r_hip[1] + l_hip[1]) // 2]
    quad = np.array([px[J["r_shoulder"]], px[J["l_shoulder"]], l_hip, r_hip], np.int32)
    cv2.fillPoly(img, [quad], look.shirt, cv2.LINE_AA, SHIFT)
    cv2.line(img, px[J["neck"]], mid_hip, look.shirt, max(1, int(round(look.torso * height))), cv2.LINE_AA, SHIFT)
    if front:
        arm("l", 1.0)
    arm("r", 1.0)

    r = head_radius * height
    radius = int(round(r * _ONE))
    cv2.circle(img, head, radius, look.skin, -1, cv2.LINE_AA, SHIFT)
    # Hair covers the back of the head: the half away from the nose.
    nose = px[J["nose"]]
    angle = float(np.degrees(np.arctan2(head[1] - nose[1], head[0] - nose[0])))
    cv2.ellipse(img, head, (radius, radius), angle, -90, 90, look.hair, -1, cv2.LINE_AA, SHIFT)
    if r >= 5:
        for eye in (J["r_eye"], J["l_eye"]):
            cv2.circle(img, px[eye], max(1, int(r * 0.12)) * _ONE, (30, 30, 30), -1, cv2.LINE_AA, SHIFT)
