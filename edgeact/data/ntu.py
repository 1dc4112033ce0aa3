"""NTU RGB+D 60 / 120 skeletons as distributed: a folder (``ROOT/nturgb+d_skeletons`` or ``ROOT``)
of ``SsssCcccPpppRrrrAaaa.skeleton`` text files (setup, camera, performer, replication, action).

The official text layout (NTU's read_skeleton_file.m), whitespace separated: the frame count;
per frame the body count; per body 10 values (tracking id, clipped edges, hand left confidence
and state, hand right confidence and state, restricted, lean x and y, tracking state), the
joint count (25) and per joint 12 values (x y z, depthX depthY, colorX colorY, orientation
w x y z, tracking state).

Clips hold keypoints only: float32 [T, 2, 25, 4] = camera-space x, y, z in metres and a
visibility (1 where the joint's tracking state is tracked or inferred, 0 where not tracked).
Of the bodies a file tracks, the two most active (largest summed variance of their joint
coordinates over time, NTU's own heuristic for the main actor) are kept, most active first; a
person absent from a frame has NaN coordinates and visibility 0. Files are parsed on each
keypoint access; the frame counts (first lines) are read when the dataset is opened.

Protocols (folds): ``xsub`` (cross-subject: the official training performers), ``xview``
(cross-view: cameras 2 and 3 train, camera 1 tests), and for NTU 120 also ``xset`` (even setups
train). Samples named in a ``*missing_skeletons*.txt`` file in ``ROOT`` or beside the skeleton
files (NTU's published lists of samples with missing or incomplete skeletons) are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.data.dataset import Clip, IndexedDataset
from edgeact.data.protocol import TEST, TRAIN
from edgeact.errors import DatasetError

FILE_NAME = re.compile(r"^S(?P<setup>\d{3})C(?P<camera>\d{3})P(?P<subject>\d{3})R(?P<replication>\d{3})"
                       r"A(?P<action>\d{3})\.skeleton$")
SKELETON_DIRS = ("nturgb+d_skeletons", ".")
MISSING_LISTS = "*missing_skeletons*.txt"
PEOPLE = 2
BODY_INFO_VALUES = 10
JOINT_VALUES = 12
FPS = 30.0
UNITS = "metres (Kinect v2 camera space)"
# Kinect v2 JointType order
JOINT_NAMES = (
    "spine_base", "spine_mid", "neck", "head", "shoulder_left", "elbow_left", "wrist_left", "hand_left",
    "shoulder_right", "elbow_right", "wrist_right", "hand_right", "hip_left", "knee_left", "ankle_left",
    "foot_left", "hip_right", "knee_right", "ankle_right", "foot_right", "spine_shoulder", "hand_tip_left",
    "thumb_left", "hand_tip_right", "thumb_right",
)  # fmt: skip
# cross-subject training performers (NTU 120's list; its first 20 are NTU 60's, whose performers are 1-40)
XSUB_TRAIN_SUBJECTS = frozenset({
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50, 52, 53, 54,
    55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
})  # fmt: skip
XVIEW_TRAIN_CAMERAS = frozenset({2, 3})
NTU60_SETUPS = 17
# A1..A120 as NTU lists them; NTU 60 is the first 60
ACTIONS = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw", "sitting down",
    "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper", "wear jacket",
    "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something",
    "put something inside pocket / take out something from pocket", "hopping (one foot jumping)", "jump up",
    "make a phone call/answer phone", "playing with phone/tablet", "typing on a keyboard",
    "pointing to something with finger", "taking a selfie", "check time (from watch)", "rub two hands together",
    "nod head/bow", "shake head", "wipe face", "salute", "put the palms together", "cross hands in front (say stop)",
    "sneeze/cough", "staggering", "falling", "touch head (headache)", "touch chest (stomachache/heart pain)",
    "touch back (backache)", "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person", "kicking other person",
    "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other", "put on headphone", "take off headphone",
    "shoot at the basket", "bounce ball", "tennis bat swing", "juggling table tennis balls", "hush (quite)",
    "flick hair", "thumb up", "thumb down", "make ok sign", "make victory sign", "staple book", "counting money",
    "cutting nails", "cutting paper (using scissors)", "snapping fingers", "open bottle", "sniff (smell)",
    "squat down", "toss a coin", "fold paper", "ball up paper", "play magic cube", "apply cream on face",
    "apply cream on hand back", "put on bag", "take off bag", "put something into a bag",
    "take something out of a bag", "open a box", "move heavy objects", "shake fist", "throw up cap/hat",
    "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff", "shoot at other person with a gun",
    "step on foot", "high-five", "cheers and drink", "carry something with other person",
    "take a photo of other person", "follow other person", "whisper in other person's ear",
    "exchange things with other person", "support somebody with one's hand (someone is sick, help him to walk)",
    "finger-guessing game (playing rock-paper-scissors)",
)  # fmt: skip


@dataclass(frozen=True)
class Sample:
    path: Path
    setup: int
    camera: int
    subject: int
    replication: int
    action: int  # 1-based, as in the file name
    num_frames: int


def read_skeleton_file(path: Path) -> tuple[int, dict[str, tuple[list[int], list[np.ndarray]]]]:
    """(frame count, {tracking id: (frames, per frame joints [25, 4] = x, y, z, tracking state)})."""
    try:
        tokens = path.read_text().split()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"Cannot read {path}: {err}.") from err
    bodies: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    try:
        num_frames, i = int(tokens[0]), 1
        for t in range(num_frames):
            count, i = int(tokens[i]), i + 1
            for _ in range(count):
                body_id, i = tokens[i], i + BODY_INFO_VALUES
                joints, i = int(tokens[i]), i + 1
                if joints != len(JOINT_NAMES):
                    raise DatasetError(f"{path}: frame {t} has a body with {joints} joints; NTU (Kinect v2) bodies "
                                       f"have {len(JOINT_NAMES)}.")
                end = i + joints * JOINT_VALUES
                if end > len(tokens):
                    raise IndexError("the file ends inside a body")
                values = np.array(tokens[i:end], dtype=np.float64).reshape(joints, JOINT_VALUES)
                i = end
                frames, poses = bodies.setdefault(body_id, ([], []))
                frames.append(t)
                poses.append(values[:, [0, 1, 2, 11]])
    except (IndexError, ValueError) as err:
        raise DatasetError(
            f"{path} is not a complete NTU .skeleton file (a frame count; per frame a body count; per body "
            f"{BODY_INFO_VALUES} values, a joint count and {JOINT_VALUES} values per joint): {err}."
        ) from err
    return num_frames, bodies


def select_bodies(num_frames: int, bodies: dict[str, tuple[list[int], list[np.ndarray]]],
                  people: int = PEOPLE) -> np.ndarray:
    """The ``people`` most active bodies as float32 [T, people, 25, 4] (x, y, z, visibility)."""
    out = np.full((num_frames, people, len(JOINT_NAMES), 4), np.nan, np.float32)
    out[..., 3] = 0.0
    energy = {b: np.stack(poses)[..., :3].reshape(len(poses), -1).var(axis=0).sum()
              for b, (_, poses) in bodies.items()}
    chosen = sorted(bodies, key=lambda b: -energy[b])[:people]  # stable: ties keep the order of appearance
    for p, body in enumerate(chosen):
        frames, poses = bodies[body]
        joints = np.stack(poses)
        out[frames, p, :, :3] = joints[..., :3]
        out[frames, p, :, 3] = joints[..., 3] > 0
    return out


class NtuClip(Clip):
    def __init__(self, dataset: NtuDataset, sample: Sample) -> None:
        label = sample.action - 1
        super().__init__(clip_id=sample.path.stem, label=label, label_name=dataset.classes[label],
                         num_frames=sample.num_frames, fps=FPS, action_start=0, action_end=sample.num_frames)
        self.path = sample.path
        self.setup, self.camera, self.subject, self.replication = (sample.setup, sample.camera, sample.subject,
                                                                    sample.replication)
        self.view = sample.camera

    def frames(self) -> np.ndarray:
        raise DatasetError(f"Clip {self.clip_id!r} is an NTU skeleton ({self.path}) without video: this adapter reads "
                           "the .skeleton files only, so train a model whose inputs are [keypoints].")

    @property
    def keypoints(self) -> np.ndarray:
        """float32 [T, 2, 25, 4], parsed from the file on every access."""
        num_frames, bodies = read_skeleton_file(self.path)
        if num_frames != self.num_frames:
            raise DatasetError(f"{self.path} changed since the dataset was opened: {num_frames} frames, "
                               f"not {self.num_frames}.")
        return select_bodies(num_frames, bodies)

    @property
    def noisy_keypoints(self) -> np.ndarray:
        return self.keypoints


class NtuDataset(IndexedDataset):
    modalities = ("keypoints",)
    people = PEOPLE
    joint_names = JOINT_NAMES
    coords = 3
    units = UNITS
    channels = ("x", "y", "z", "visibility")
    recorded_visibility = True  # from the joints' tracking states
    fps = FPS

    def __init__(self, directory: Path, root: Path) -> None:
        self.root = directory
        excluded = _missing_skeletons({directory, root})
        self.samples = [s for s in _samples(directory) if s.path.stem not in excluded]
        self.excluded = len(excluded)
        ntu120 = any(s.setup > NTU60_SETUPS or s.action > 60 for s in self.samples)
        setup = np.array([s.setup for s in self.samples])
        subject = np.array([s.subject for s in self.samples])
        camera = np.array([s.camera for s in self.samples])
        roles = {"xsub": np.where(np.isin(subject, list(XSUB_TRAIN_SUBJECTS)), TRAIN, TEST),
                 "xview": np.where(np.isin(camera, list(XVIEW_TRAIN_CAMERAS)), TRAIN, TEST)}
        if ntu120:
            roles["xset"] = np.where(setup % 2 == 0, TRAIN, TEST)
        self.source = f"NTU RGB+D {120 if ntu120 else 60} skeletons ({directory})"
        self.protocol = ("xsub: official training performers; xview: cameras 2, 3 train, camera 1 tests"
                         + ("; xset: even setups train" if ntu120 else ""))
        super().__init__(ACTIONS[: 120 if ntu120 else 60], np.array([s.action - 1 for s in self.samples]), roles)

    def _clip(self, index: int) -> NtuClip:
        return NtuClip(self, self.samples[index])

    def __repr__(self) -> str:
        return f"NtuDataset({str(self.root)!r}, {len(self.samples)} samples, {len(self.classes)} classes)"


def _samples(directory: Path) -> list[Sample]:
    samples = []
    for path in sorted(directory.glob("*.skeleton")):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise DatasetError(f"{path}: NTU skeleton files are named SsssCcccPpppRrrrAaaa.skeleton "
                               "(setup, camera, performer, replication, action).")
        fields = {k: int(v) for k, v in match.groupdict().items()}
        if not 1 <= fields["action"] <= len(ACTIONS):
            raise DatasetError(f"{path}: action A{fields['action']:03d} is outside NTU's A001..A{len(ACTIONS):03d}.")
        samples.append(Sample(path, num_frames=_frame_count(path), **fields))
    return samples


def _frame_count(path: Path) -> int:
    try:
        with path.open() as f:
            count = int(f.readline())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DatasetError(f"{path} does not start with a frame count: {err}.") from err
    if count < 1:
        raise DatasetError(f"{path} has {count} frames; list it in a {MISSING_LISTS} file to leave it out.")
    return count


def _missing_skeletons(directories: set[Path]) -> set[str]:
    """Sample names listed in the missing-skeleton files of ``directories``."""
    names = set()
    for listing in sorted(f for d in directories for f in d.glob(MISSING_LISTS)):
        names |= {line.split()[0] for line in listing.read_text().splitlines() if line.strip()}
    return names


def _skeleton_dir(path: Path) -> Path | None:
    return next((path / d for d in SKELETON_DIRS if (path / d).is_dir() and any((path / d).glob("*.skeleton"))),
                None)


def probe(path: Path) -> bool:
    return path.is_dir() and _skeleton_dir(path) is not None


def load(path: Path) -> NtuDataset:
    return NtuDataset(_skeleton_dir(path), path)
