"""Tiny fixtures in the on-disk layouts of the public datasets, written the way the datasets
ship them (file names, folders, split files, the NTU text format, JHMDB's .mat files), so the
adapters are tested against the layouts and not against themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.data.video import CODECS, write_video

NTU_JOINTS = 25


def write_clip_video(path: Path, num_frames: int = 8, *, size: int = 32, seed: int = 0) -> Path:
    """A small MJPG .avi (any name) with frames that differ, so decoding is real."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, 25.0, CODECS["mjpg"])
    return path


# ---------------------------------------------------------------------------------------- NTU
def ntu_body_lines(body_id: str, xyz: np.ndarray, tracking: np.ndarray) -> list[str]:
    """One body of one frame: the 10 body-info values, the joint count, 25 joint lines of 12 values."""
    lines = [f"{body_id} 0 1 1 1 1 0 0.0123 -0.0456 2", str(NTU_JOINTS)]
    for (x, y, z), state in zip(xyz, tracking):
        lines.append(f"{x:.7f} {y:.7f} {z:.7f} 256.1 212.3 960.5 540.7 0.1 0.2 0.3 0.9 {int(state)}")
    return lines


def write_ntu_file(path: Path, frames: list[list[tuple[str, np.ndarray, np.ndarray]]]) -> Path:
    """``frames[t]`` = the bodies of frame t as (tracking id, xyz [25, 3], tracking state [25])."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, xyz, tracking in bodies:
            lines += ntu_body_lines(body_id, xyz, tracking)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(lines) + "\r\n")  # the files were written on Windows
    return path


def ntu_body(t: int, person: int, *, motion: float, seed: int) -> np.ndarray:
    """xyz [25, 3] of a person at frame t: a fixed pose offset by person, moving by ``motion`` per frame."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(0, 0.3, (NTU_JOINTS, 3)) + [person * 1.0, 0.0, 3.0]
    return pose + motion * np.sin(t + np.arange(NTU_JOINTS))[:, None]


def write_ntu_sample(root: Path, name: str, num_frames: int = 6, *, two_people: bool = False,
                     noise_body: bool = False) -> Path:
    """Sample ``name`` (SsssCcccPpppRrrrAaaa): a main actor in every frame; with ``two_people`` a
    second, less active one from frame 2 on; with ``noise_body`` a static third body (a chair)."""
    tracked = np.full(NTU_JOINTS, 2)
    frames = []
    for t in range(num_frames):
        bodies = [("72057594037931101", ntu_body(t, 0, motion=0.2, seed=1), tracked)]
        if noise_body:
            bodies.insert(0, ("72057594037931999", ntu_body(0, 2, motion=0.0, seed=3), tracked))
        if two_people and t >= 2:
            bodies.append(("72057594037931102", ntu_body(t, 1, motion=0.05, seed=2), tracked))
        frames.append(bodies)
    return write_ntu_file(root / "nturgb+d_skeletons" / f"{name}.skeleton", frames)


# ------------------------------------------------------------------------------------ UCF-101
def write_ucf101(root: Path, classes: list[str], videos_per_class: int = 8, splits: int = 3,
                 num_classes: int | None = None) -> Path:
    """UCF101/UCF-101/<Class>/v_<Class>_gGG_c01.avi and ucfTrainTestlist/ with ``splits`` pairs of
    lists; split n tests groups whose number is n mod 3 (UCF-101 tests 7 of 25 groups per split).
    ``num_classes`` pads classInd.txt with classes that have no videos (the real file has 101)."""
    names = list(classes) + [f"Unused{k:03d}" for k in range(len(classes), num_classes or len(classes))]
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{k} {c}\r\n" for k, c in enumerate(names, 1)))
    entries = []
    for k, c in enumerate(classes):
        for g in range(1, videos_per_class + 1):
            rel = f"{c}/v_{c}_g{g:02d}_c01.avi"
            write_clip_video(root / "UCF-101" / rel, 6 + g % 3, seed=k * 100 + g)
            entries.append((rel, k + 1, g))
    for n in range(1, splits + 1):
        (lists / f"trainlist{n:02d}.txt").write_text(
            "".join(f"{rel} {label}\r\n" for rel, label, g in entries if g % 3 != n % 3))
        (lists / f"testlist{n:02d}.txt").write_text(
            "".join(f"{rel}\r\n" for rel, _, g in entries if g % 3 == n % 3))
    return root


# ------------------------------------------------------------------------------ HMDB-51, JHMDB
def write_split_files(directory: Path, flags: dict[str, dict[str, list[int]]]) -> None:
    """``flags[class][video stem]`` = the flag of each split (index 0 = split 1)."""
    directory.mkdir(parents=True, exist_ok=True)
    splits = len(next(iter(next(iter(flags.values())).values())))
    for c, videos in flags.items():
        for n in range(1, splits + 1):
            (directory / f"{c}_test_split{n}.txt").write_text(
                "".join(f"{stem}.avi {f[n - 1]} \n" for stem, f in videos.items()))


def write_hmdb51(root: Path, flags: dict[str, dict[str, list[int]]]) -> Path:
    """ROOT/<class>/<video>.avi and ROOT/testTrainMulti_7030_splits/<class>_test_split<N>.txt."""
    for k, (c, videos) in enumerate(flags.items()):
        for i, stem in enumerate(videos):
            write_clip_video(root / c / f"{stem}.avi", 5, seed=10 * k + i)
    write_split_files(root / "testTrainMulti_7030_splits", flags)
    return root


def write_jhmdb(root: Path, flags: dict[str, dict[str, list[int]]], *, videos: bool = True) -> Path:
    """joint_positions/<class>/<video>/joint_positions.mat (pos_img 2 x 15 x T, as MATLAB saved
    it), splits/<class>_test_split<N>.txt and, with ``videos``, ReCompress_Videos/<class>/<video>.avi."""
    from scipy.io import savemat

    for k, (c, clips) in enumerate(flags.items()):
        for i, stem in enumerate(clips):
            num_frames = 4 + i
            pos = np.stack([100 + 10 * k + np.arange(15)[:, None] + np.arange(num_frames)[None, :] / 10,
                            50 + i + np.zeros((15, num_frames))])  # [2, 15, T]: x = 100 + 10k + j + t / 10
            target = root / "joint_positions" / c / stem
            target.mkdir(parents=True)
            savemat(str(target / "joint_positions.mat"),
                    {"pos_img": pos, "pos_world": pos / 100, "scale": np.ones((1, num_frames)), "viewpoint": "E"})
            if videos:
                write_clip_video(root / "ReCompress_Videos" / c / f"{stem}.avi", num_frames, seed=k * 10 + i)
    write_split_files(root / "splits", flags)
    return root
