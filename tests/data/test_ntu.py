"""NTU RGB+D .skeleton files: parsing the official text layout, choosing the two most active
bodies, the xsub/xview protocols, conversion, and training with configs/ntu_skeleton.yaml."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeact.cli import main
from edgeact.data import open_dataset
from edgeact.data.convert import convert
from edgeact.data.ntu import ACTIONS, JOINT_NAMES, NtuDataset
from edgeact.errors import DatasetError, InputError
from tests.data.layouts import NTU_JOINTS, ntu_body, write_ntu_file, write_ntu_sample

# (setup, camera, performer, replication, action): performer 1 trains under xsub, 3 tests;
# cameras 2 and 3 train under xview, camera 1 tests
SAMPLES = [(1, c, 1, r, 1) for c in (1, 2, 3) for r in (1, 2)] + [(1, 1, 3, 1, 1), (1, 2, 3, 1, 1)] + \
          [(2, c, p, 1, 58) for p in (1, 3) for c in (1, 2)]


def _name(setup, camera, performer, replication, action):
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}"


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.fixture
def ntu_root(tmp_path):
    root = tmp_path / "NTU"
    for fields in SAMPLES:
        write_ntu_sample(root, _name(*fields), 5 + fields[1], two_people=fields[-1] == 58)
    return root


def test_the_two_most_active_bodies_are_kept_most_active_first(tmp_path):
    path = write_ntu_sample(tmp_path, "S001C001P001R001A058", 6, two_people=True, noise_body=True)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, NtuDataset) and ds.root == path.parent
    kp = ds.clip(0).keypoints
    assert kp.dtype == np.float32 and kp.shape == (6, 2, NTU_JOINTS, 4)
    for t in range(6):  # the static third body listed first in every frame is not kept
        np.testing.assert_allclose(kp[t, 0, :, :3], ntu_body(t, 0, motion=0.2, seed=1), atol=1e-6)
    np.testing.assert_allclose(kp[2:, 1, :, :3], [ntu_body(t, 1, motion=0.05, seed=2) for t in range(2, 6)], atol=1e-6)
    assert np.isnan(kp[:2, 1, :, :3]).all() and (kp[:2, 1, :, 3] == 0).all()  # second person absent at first
    assert (kp[:, 0, :, 3] == 1).all() and (kp[2:, 1, :, 3] == 1).all()
    np.testing.assert_array_equal(ds.clip(0).noisy_keypoints, kp, strict=True)


def test_joints_that_are_not_tracked_are_invisible(tmp_path):
    tracking = np.full(NTU_JOINTS, 2)
    tracking[[3, 7]] = [0, 1]  # head not tracked, left hand inferred
    xyz = ntu_body(0, 0, motion=0.1, seed=1)
    write_ntu_file(tmp_path / "S001C001P001R001A001.skeleton", [[("7", xyz, tracking)], []])
    kp = open_dataset(tmp_path).clip(0).keypoints
    assert kp.shape == (2, 2, NTU_JOINTS, 4)
    assert kp[0, 0, 3, 3] == 0 and kp[0, 0, 7, 3] == 1 and np.isfinite(kp[0, 0, 3, :3]).all()
    assert (kp[1, :, :, 3] == 0).all()  # a frame without bodies


def test_metadata_and_clip_fields(ntu_root):
    ds = open_dataset(ntu_root, fold="xsub")
    assert ds.classes == list(ACTIONS[:60]) and ds.classes[57] == "handshaking"
    assert (ds.people, ds.joint_names, ds.coords, ds.units) == (2, JOINT_NAMES, 3, "metres (Kinect v2 camera space)")
    assert ds.modalities == ("keypoints",) and ds.folds == ("xsub", "xview")
    clip = ds.split("test")[0]
    assert (clip.clip_id, clip.label, clip.label_name, clip.num_frames) == ("S001C001P003R001A001", 0, "drink water", 6)
    assert (clip.setup, clip.camera, clip.subject, clip.replication, clip.view, clip.fps) == (1, 1, 3, 1, 1, 30.0)
    message = (f"Clip 'S001C001P003R001A001' is an NTU skeleton ({clip.path}) without video: this adapter reads the "
               ".skeleton files only, so train a model whose inputs are [keypoints].")
    with pytest.raises(DatasetError, match=_exact(message)):
        clip.frames()


def test_cross_subject_and_cross_view(ntu_root):
    ds = open_dataset(ntu_root)
    test_xsub = {c.clip_id for c in ds.split("xsub:test")}
    assert test_xsub == {_name(*f) for f in SAMPLES if f[2] == 3}
    train_xsub = {c.clip_id for s in ("xsub:train", "xsub:val") for c in ds.split(s)}
    assert train_xsub == {_name(*f) for f in SAMPLES if f[2] == 1}
    assert len(ds.split("xsub:val")) == 1  # 6 training clips of A001: round(0.6) = 1; 2 of A058: none
    assert {c.clip_id for c in ds.split("xview:test")} == {_name(*f) for f in SAMPLES if f[1] == 1}
    suffix = open_dataset(f"{ntu_root}#xview")
    assert [c.clip_id for c in suffix.split("test")] == [c.clip_id for c in ds.split("xview:test")]
    message = ("Split 'train' needs a fold: this dataset has the folds xsub, xview. Choose one with "
               "open_dataset(path, fold='xsub') or the path suffix '#xsub' (PATH#xsub), or ask for the split "
               "'xsub:train'.")
    with pytest.raises(InputError, match=_exact(message)):
        ds.split("train")


def test_ntu120_has_120_classes_and_the_cross_setup_protocol(tmp_path):
    for fields in [(18, 1, 45, 1, 61), (17, 2, 2, 1, 1), (32, 3, 106, 2, 120)]:
        write_ntu_sample(tmp_path, _name(*fields), 4)
    ds = open_dataset(tmp_path)
    assert len(ds.classes) == 120 and ds.folds == ("xsub", "xview", "xset")
    assert [c.clip_id for c in ds.split("xset:test")] == ["S017C002P002R001A001"]
    assert [c.clip_id for c in ds.split("xsub:test")] == ["S032C003P106R002A120"]  # 45 and 2 train


def test_samples_on_the_missing_skeleton_list_are_left_out(ntu_root):
    listing = ntu_root / "NTU_RGBD_samples_with_missing_skeletons.txt"
    listing.write_text("S001C001P001R001A001\nS001C002P001R001A001\n")
    ds = open_dataset(ntu_root)
    assert len(ds) == len(SAMPLES) - 2 and ds.excluded == 2
    assert "S001C001P001R001A001" not in {s.path.stem for s in ds.samples}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("2\r\n1\r\n72 0 1 1 1 1 0 0.1 0.2 2\r\n25\r\n0.1 0.2\r\n",
         "{f} is not a complete NTU .skeleton file (a frame count; per frame a body count; per body 10 values, a joint "
         "count and 12 values per joint): the file ends inside a body."),
        ("1\r\n1\r\n72 0 1 1 1 1 0 0.1 0.2 2\r\n20\r\n",
         "{f}: frame 0 has a body with 20 joints; NTU (Kinect v2) bodies have 25."),
        ("3\r\n0\r\n0\r\n", "{f} is not a complete NTU .skeleton file (a frame count; per frame a body count; per body "
                            "10 values, a joint count and 12 values per joint): list index out of range."),
    ],
)  # fmt: skip
def test_malformed_skeleton_files_fail_on_access(tmp_path, content, message):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(content)
    clip = open_dataset(tmp_path).clip(0)  # only the frame count is read when the dataset opens
    with pytest.raises(DatasetError, match=_exact(message.format(f=path))):
        clip.keypoints


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("S001C001P001A001.skeleton", "1\n0\n", "{f}: NTU skeleton files are named SsssCcccPpppRrrrAaaa.skeleton "
                                                "(setup, camera, performer, replication, action)."),
        ("S001C001P001R001A121.skeleton", "1\n0\n", "{f}: action A121 is outside NTU's A001..A120."),
        ("S001C001P001R001A001.skeleton", "0\n", "{f} has 0 frames; list it in a *missing_skeletons*.txt file to "
                                                 "leave it out."),
        ("S001C001P001R001A001.skeleton", "frames\n", "{f} does not start with a frame count: invalid literal for "
                                                      "int() with base 10: 'frames\\n'."),
    ],
)  # fmt: skip
def test_bad_files_fail_when_the_dataset_opens(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError, match=_exact(message.format(f=tmp_path / name))):
        open_dataset(tmp_path)


def test_convert_writes_one_protocol_as_the_split_array(ntu_root, tmp_path, capsys):
    out = tmp_path / "ntu60_xsub.npz"
    assert main(["data", "convert", str(ntu_root), "--format", "ntu", "--fold", "xsub", "--out", str(out),
                 "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} in ")
    source, converted = open_dataset(ntu_root, fold="xsub"), open_dataset(out)
    assert converted.classes == source.classes and converted.joint_names == JOINT_NAMES
    assert (converted.people, converted.coords, converted.units, converted.fps) == (2, 3, source.units, 30.0)
    assert converted.protocol.endswith("(xsub written as the split array)")
    for split in ("train", "val", "test"):
        assert [c.clip_id for c in converted.split(split)] == [c.clip_id for c in source.split(split)]
    for a, b in zip(converted.split("test"), source.split("test")):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        assert (a.subject, a.view, a.label) == (b.subject, b.view, b.label)


def test_convert_needs_a_protocol_when_the_folds_overlap(ntu_root, tmp_path, capsys):
    message = (f"{ntu_root} has the folds xsub, xview, which do not each test a separate part of its clips, so they "
               f"cannot be written as one fold array; choose the fold to write as the split array: --fold xsub (or "
               f"{ntu_root}#xsub; open_dataset(path, fold='xsub')).")
    with pytest.raises(InputError, match=_exact(message)):
        convert(open_dataset(ntu_root), tmp_path / "x.npz", name=str(ntu_root))
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "convert", str(ntu_root), "--out", str(tmp_path / "x.npz")])
    assert exit_info.value.code == 2 and capsys.readouterr().err == f"edgeact: error: {message}\n"
    assert list(tmp_path.iterdir()) == [ntu_root]  # nothing written, no temporary left


def test_configs_ntu_skeleton_trains_on_the_adapter(ntu_root, tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    assert main(["train", "--config", "configs/ntu_skeleton.yaml", "--data", f"{ntu_root}#xsub", "--out", str(run),
                 "--set", "teacher.epochs=1", "--set", "student.epochs=1", "--set", "teacher.batch_size=4",
                 "--set", "student.batch_size=4", "--quiet", "--threads", "1"]) == 0
    import json

    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["split"], metrics["num_clips"]) == ("test", 4)
