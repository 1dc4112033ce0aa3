"""The synthetic action classes: four groups of three that share a beginning.

Each group has a *prefix* that keys both figures up to the divergence phase ``d`` (drawn per
clip, 0.35..0.45 of the action) and pins every parameter there; each class then keys only
phases after ``d``. The prefix draws from its own random stream and the class from another,
so for one clip seed the three classes of a group follow the same prefix up to ``d``.

How much the prefix tells about the class is set by the *early cue* ``cue`` in [-1, 1]: the
class's place in its group (-1, 0, +1) times the generator's ``early_cue`` strength. Each
prefix shifts one or two of its drawn parameters by ``cue`` times half their random range, the
way a real punch is wound up a little differently from a handshake, so the classes' prefix
distributions overlap: with strength 0.5 an ideal observer of that parameter alone is right
about half the time within a group (chance: a third). The draws themselves never depend on the
class, so with strength 0 the three prefixes are identical, frame for frame.

Angles are degrees (see :data:`edgeact.data.skeleton.REST_POSE`); distances are body units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeact.data.motion import Motion
from edgeact.data.skeleton import Body


@dataclass
class Cast:
    """The figures of one clip and the phase at which their class starts to matter."""

    a: Motion
    b: Motion | None
    body_a: Body
    body_b: Body | None
    d: float  # divergence phase
    gap0: float = 0.0  # root-to-root distance at the start (two-person groups)

    def pre(self, f: float) -> float:
        """Phase at fraction f of the shared prefix."""
        return f * self.d

    def post(self, f: float) -> float:
        """Phase at fraction f of the class-specific part."""
        return self.d + f * (1.0 - self.d)

    def gap(self, u: float) -> float:
        return self.gap0 - self.a.at("x", u) - self.b.at("x", u)

    def close_to(self, u: float, gap: float, a_share: float) -> None:
        """Key both x positions at u so the figures end ``gap`` apart, A walking a_share of it."""
        walk = self.gap(u) - gap
        self.a.key(u, x=self.a.at("x", u) + a_share * walk)
        self.b.key(u, x=self.b.at("x", u) + (1.0 - a_share) * walk)


DEFAULT_EARLY_CUE = 0.5

Step = Callable[[Cast, np.random.Generator], None]
Prefix = Callable[[Cast, np.random.Generator, float], None]  # the last argument is the early cue


# -- two people approach, A reaches out: handshake / punch / push ---------------------------
def _reach_prefix(c: Cast, rng: np.random.Generator, cue: float) -> None:
    c.gap0 = rng.uniform(1.2, 1.45)  # closer than "approach" starts: the groups differ from frame 0
    mid = rng.uniform(0.8, 0.95)
    share = rng.uniform(0.4, 0.6)
    c.a.key(c.pre(rng.uniform(0.05, 0.2)), x=0.0)
    c.b.key(c.pre(rng.uniform(0.05, 0.2)), x=0.0)
    c.a.key(c.d, x=(c.gap0 - mid) * share)
    c.b.key(c.d, x=(c.gap0 - mid) * (1.0 - share))
    c.a.key(c.pre(rng.uniform(0.3, 0.55)), rsh=6.0, rel=10.0, lean=0.0)
    c.a.key(c.d, rsh=rng.uniform(40, 60) + 10 * cue, rel=rng.uniform(30, 50), lean=rng.uniform(0, 6) + 3 * cue)


def _handshake(c: Cast, rng: np.random.Generator) -> None:
    sh_a, sh_b = rng.uniform(62, 75, size=2)
    t1 = c.post(rng.uniform(0.15, 0.25))
    c.close_to(t1, c.body_a.arm_reach(sh_a, 10) + c.body_b.arm_reach(sh_b, 10), rng.uniform(0.4, 0.6))
    c.a.key(t1, rsh=sh_a, rel=10.0, lean=3.0)
    c.b.key(c.post(0.05), rsh=6.0, rel=10.0).key(t1, rsh=sh_b, rel=10.0, lean=3.0)
    t2 = c.post(rng.uniform(0.55, 0.65))
    cycles, amp = rng.uniform(2.0, 3.5), rng.uniform(8, 14)
    c.a.wave("rsh", amp, cycles, t1, t2)
    c.b.wave("rsh", amp, cycles, t1, t2)
    t3 = c.post(rng.uniform(0.72, 0.82))
    for m in (c.a, c.b):
        m.key(t2, rsh=m.at("rsh", t2), rel=10.0).key(t3, rsh=6.0, rel=10.0, lean=0.0)


def _punch(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.12, 0.2))
    strike = c.body_a.arm_reach(92, 0)
    c.close_to(t1, strike + 0.1, 1.0)
    c.a.key(t1, rsh=rng.uniform(30, 40), rel=rng.uniform(100, 120), lean=8.0)
    t2 = t1 + (1.0 - c.d) * rng.uniform(0.06, 0.1)
    c.a.key(t2, rsh=92.0, rel=0.0, lean=14.0, x=c.a.at("x", t1) + 0.1)
    c.b.pin(t2)
    hit = t2 + 0.03
    c.b.key(hit, lean=rng.uniform(-28, -18), head=-15.0, x=c.b.at("x", t2) + rng.uniform(-0.2, -0.12),
            rsh=50.0, rel=110.0, lsh=40.0, lel=110.0)  # fmt: skip
    t3 = c.post(rng.uniform(0.55, 0.65))
    c.a.key(t3, rsh=20.0, rel=60.0, lean=0.0)
    c.b.key(t3, lean=-5.0, head=0.0)
    t4 = c.post(rng.uniform(0.8, 0.9))
    c.a.key(t4, rsh=6.0, rel=10.0)
    c.b.key(t4, rsh=15.0, rel=40.0, lsh=15.0, lel=40.0, lean=0.0)


def _push(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.12, 0.2))
    sh = rng.uniform(75, 85)
    c.close_to(t1, c.body_a.arm_reach(sh, 15) + 0.05, 1.0)
    c.a.key(t1, rsh=sh, rel=15.0, lsh=sh, lel=15.0, lean=6.0)
    c.b.pin(t1)
    t2 = t1 + (1.0 - c.d) * rng.uniform(0.12, 0.18)
    shove = rng.uniform(0.35, 0.5)
    c.a.key(t2, x=c.a.at("x", t1) + 0.2, lean=15.0, rel=0.0, lel=0.0)
    c.b.key(t2, x=c.b.at("x", t1) - shove, lean=-18.0, rsh=55.0, rel=30.0, lsh=70.0, lel=30.0)
    t3 = c.post(rng.uniform(0.65, 0.75))
    c.a.key(t3, lean=0.0, rsh=6.0, rel=10.0, lsh=6.0, lel=10.0)
    c.b.key(t3, lean=0.0, rsh=15.0, lsh=15.0)


# -- A walks up to B, who stands: point / kick / hug -----------------------------------------
def _approach_prefix(c: Cast, rng: np.random.Generator, cue: float) -> None:
    c.gap0 = rng.uniform(1.6, 1.85)
    c.a.key(c.pre(rng.uniform(0.05, 0.2)), x=0.0)
    c.a.key(c.d, x=c.gap0 - rng.uniform(0.95, 1.1) + 0.075 * cue)  # how far A walks


def _point(c: Cast, rng: np.random.Generator) -> None:
    stop = c.post(rng.uniform(0.08, 0.15))
    c.a.key(stop, x=c.a.at("x", c.d) + rng.uniform(0.03, 0.08))
    t1 = c.post(rng.uniform(0.18, 0.28))
    c.a.key(t1, rsh=rng.uniform(80, 95), rel=rng.uniform(-5, 5))
    t2 = c.post(rng.uniform(0.7, 0.8))
    c.a.key(t2, rsh=c.a.at("rsh", t1), rel=c.a.at("rel", t1)).key(t2 + 0.1, rsh=6.0, rel=10.0)


def _kick(c: Cast, rng: np.random.Generator) -> None:
    hip = rng.uniform(70, 85)
    t1 = c.post(rng.uniform(0.12, 0.2))
    c.close_to(t1, (c.body_a.thigh + c.body_a.shin) * np.sin(np.radians(hip)) + 0.02, 1.0)
    t2 = t1 + (1.0 - c.d) * rng.uniform(0.12, 0.18)
    c.a.key(t1, rhip=0.0, rkn=0.0, lean=0.0)
    c.a.key(t2, rhip=hip, rkn=rng.uniform(-15, 0), lean=-15.0, rsh=40.0, lsh=50.0, rel=30.0, lel=30.0)
    c.b.pin(t2)
    c.b.key(t2 + 0.04, lean=rng.uniform(22, 32), x=c.b.at("x", t2) - rng.uniform(0.12, 0.2),
            rsh=25.0, rel=90.0, lsh=25.0, lel=90.0)  # fmt: skip
    t3 = t2 + (1.0 - c.d) * rng.uniform(0.12, 0.18)
    c.a.key(t3, rhip=0.0, rkn=0.0, lean=0.0, rsh=6.0, lsh=6.0, rel=10.0, lel=10.0)
    c.b.key(c.post(0.85), lean=8.0, rsh=10.0, lsh=10.0, rel=40.0, lel=40.0)


def _hug(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.22, 0.3))
    c.b.key(c.post(0.05), x=0.0)
    c.close_to(t1, rng.uniform(0.22, 0.3), rng.uniform(0.6, 0.8))
    for m in (c.a, c.b):
        m.key(c.post(0.1), rsh=6.0, lsh=6.0)
        sh = rng.uniform(75, 90)
        m.key(t1, rsh=sh, lsh=sh, rel=rng.uniform(30, 50), lel=rng.uniform(30, 50), lean=8.0)
    t2 = c.post(rng.uniform(0.62, 0.72))
    t3 = t2 + (1.0 - c.d) * 0.15
    for m in (c.a, c.b):
        m.pin(t2).key(t3, rsh=6.0, lsh=6.0, rel=10.0, lel=10.0, lean=0.0, x=m.at("x", t2) - 0.12)


# -- one person (front view) raises both arms: wave one hand / wave both hands / clap -------
def _raise_prefix(c: Cast, rng: np.random.Generator, cue: float) -> None:
    lift = rng.uniform(55, 80) + 12.5 * cue
    c.a.key(c.pre(rng.uniform(0.1, 0.3)), rsh=6.0, lsh=6.0, rel=10.0, lel=10.0)
    c.a.key(c.d, rsh=lift + rng.normal(0, 4), lsh=lift + rng.normal(0, 4),
            rel=rng.uniform(10, 35), lel=rng.uniform(10, 35))  # fmt: skip


def _lower_after(c: Cast, rng: np.random.Generator, t1: float, params: tuple[str, ...]) -> float:
    """Hold the keyed pose from t1 to a random end, then let the arms down; returns the end."""
    t2 = c.post(rng.uniform(0.75, 0.85))
    c.a.key(t2, **{p: c.a.at(p, t1) for p in params})
    c.a.key(min(t2 + 0.1, 1.0), rsh=6.0, lsh=6.0, rel=10.0, lel=10.0, rua=1.0, lua=1.0)
    return t2


def _wave_one_hand(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.12, 0.2))
    c.a.key(t1, rsh=rng.uniform(140, 160), rel=rng.uniform(15, 35), lsh=6.0, lel=10.0)
    t2 = _lower_after(c, rng, t1, ("rsh", "rel"))
    cycles = rng.uniform(3, 5)
    c.a.wave("rel", rng.uniform(25, 35), cycles, t1, t2).wave("rsh", 5.0, cycles, t1, t2)


def _wave_both_hands(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.12, 0.2))
    sh = rng.uniform(140, 160)
    c.a.key(t1, rsh=sh, lsh=sh, rel=rng.uniform(5, 20), lel=rng.uniform(5, 20))
    t2 = _lower_after(c, rng, t1, ("rsh", "lsh", "rel", "lel"))
    cycles, amp = rng.uniform(2.5, 4), rng.uniform(15, 25)
    together = rng.integers(2)  # arms sway the same way, or mirror each other
    c.a.wave("rsh", amp, cycles, t1, t2).wave("lsh", amp, cycles, t1, t2, phase=np.pi * together)


def _clap(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.12, 0.2))
    b = c.body_a
    sh, fore = rng.uniform(18, 30), rng.uniform(0.45, 0.6)
    # Elbow angle that brings the wrist to the body's midline: the hands meet.
    reach = (b.shoulder + b.upper_arm * fore * np.sin(np.radians(sh))) / b.forearm
    el = -np.degrees(np.arcsin(min(reach, 1.0))) - sh
    c.a.key(t1, rsh=sh, lsh=sh, rua=fore, lua=fore, rel=el, lel=el)
    t2 = _lower_after(c, rng, t1, ("rsh", "lsh", "rel", "lel", "rua", "lua"))
    cycles, amp = rng.uniform(4, 6), rng.uniform(25, 35)
    c.a.wave("rel", amp, cycles, t1, t2, pulse=True).wave("lel", amp, cycles, t1, t2, pulse=True)


# -- one person (profile) lowers the body: sit down / bend / jump ---------------------------
def _lower_prefix(c: Cast, rng: np.random.Generator, cue: float) -> None:
    hip, knee = rng.uniform(18, 30), rng.uniform(35, 50)
    arms = rng.uniform(15, 35)
    c.a.key(c.pre(rng.uniform(0.15, 0.35)), rhip=0.0, lhip=0.0, rkn=0.0, lkn=0.0, lean=0.0)
    c.a.key(c.d, rhip=hip + rng.normal(0, 2), lhip=hip + rng.normal(0, 2), rkn=-knee, lkn=-knee,
            lean=rng.uniform(10, 22) + 6 * cue, rsh=arms, lsh=arms, rel=rng.uniform(15, 35))  # fmt: skip


def _sit_down(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.25, 0.35))
    hip = rng.uniform(85, 95)
    arms = rng.uniform(25, 40)
    c.a.key(t1, rhip=hip, lhip=hip, rkn=-hip + rng.uniform(-5, 5), lkn=-hip + rng.uniform(-5, 5),
            lean=rng.uniform(0, 10), x=-rng.uniform(0.08, 0.15), rsh=arms, lsh=arms,
            rel=rng.uniform(40, 60), lel=rng.uniform(40, 60))  # fmt: skip


def _bend(c: Cast, rng: np.random.Generator) -> None:
    t1 = c.post(rng.uniform(0.2, 0.3))
    hip, arms = rng.uniform(5, 15), rng.uniform(0, 15)
    c.a.key(t1, rhip=hip, lhip=hip, rkn=-hip, lkn=-hip, lean=rng.uniform(75, 100),
            head=rng.uniform(10, 25), rsh=arms, lsh=arms, rel=rng.uniform(0, 15))  # fmt: skip
    t2 = t1 + (1.0 - c.d) * rng.uniform(0.1, 0.2)
    c.a.pin(t2)
    c.a.key(t2 + (1.0 - c.d) * rng.uniform(0.2, 0.3),
            rhip=0.0, lhip=0.0, rkn=0.0, lkn=0.0, lean=0.0, head=0.0, rsh=6.0, lsh=6.0, rel=10.0)  # fmt: skip


def _jump(c: Cast, rng: np.random.Generator) -> None:
    span = 1.0 - c.d
    t1 = c.post(rng.uniform(0.1, 0.15))
    hip = rng.uniform(55, 70)
    back = -rng.uniform(30, 45)
    c.a.key(t1, rhip=hip, lhip=hip, rkn=-rng.uniform(95, 110), lkn=-rng.uniform(95, 110),
            lean=rng.uniform(35, 45), rsh=back, lsh=back, rel=10.0)  # fmt: skip
    t2 = t1 + span * rng.uniform(0.08, 0.12)
    c.a.key(t2, rhip=0.0, lhip=0.0, rkn=0.0, lkn=0.0, lean=5.0, rsh=160.0, lsh=160.0, jump=0.0)
    air = span * rng.uniform(0.07, 0.1)
    c.a.key(t2 + air, jump=rng.uniform(0.2, 0.3), rhip=15.0, lhip=15.0, rkn=-20.0, lkn=-20.0)
    land = t2 + 2 * air
    c.a.key(land, jump=0.0, rhip=35.0, lhip=35.0, rkn=-60.0, lkn=-60.0, lean=20.0, rsh=40.0, lsh=40.0)
    c.a.key(land + span * 0.15, rhip=0.0, lhip=0.0, rkn=0.0, lkn=0.0, lean=0.0, rsh=6.0, lsh=6.0)


@dataclass(frozen=True)
class Group:
    name: str
    classes: dict[str, Step]
    prefix: Prefix
    two_person: bool
    front: bool  # front view; otherwise profile

    def cue(self, class_name: str) -> float:
        """The class's place in the group, -1, 0 or +1: the sign and size of its early cue."""
        return float(list(self.classes).index(class_name) - 1)


GROUPS = (
    Group("reach", {"handshake": _handshake, "punch": _punch, "push": _push}, _reach_prefix, True, False),
    Group("approach", {"point": _point, "kick": _kick, "hug": _hug}, _approach_prefix, True, False),
    Group("raise_arms", {"wave_one_hand": _wave_one_hand, "wave_both_hands": _wave_both_hands, "clap": _clap},
          _raise_prefix, False, True),
    Group("lower_body", {"sit_down": _sit_down, "bend": _bend, "jump": _jump}, _lower_prefix, False, False),
)  # fmt: skip
CLASS_GROUPS: dict[str, tuple[str, ...]] = {g.name: tuple(g.classes) for g in GROUPS}
CLASS_NAMES: tuple[str, ...] = tuple(name for g in GROUPS for name in g.classes)
GROUP_OF: dict[str, Group] = {name: g for g in GROUPS for name in g.classes}
