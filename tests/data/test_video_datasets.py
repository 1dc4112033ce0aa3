"""Video datasets in their distributed layouts: UCF-101, HMDB-51, UT-Interaction, a folder of
class folders. Clips decode with OpenCV and have no keypoints; conversion says why it cannot."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from edgeact.cli import main
from edgeact.data import open_dataset
from edgeact.data.convert import convert
from edgeact.data.video_dataset import VideoDataset, fit_length
from edgeact.errors import DatasetError
from tests.data.layouts import write_clip_video, write_hmdb51, write_ucf101

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "YoYo"]


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def _ids(clips) -> list[str]:
    return [c.clip_id for c in clips]


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory):
    return write_ucf101(tmp_path_factory.mktemp("ucf") / "UCF101", UCF_CLASSES, videos_per_class=9, num_classes=101)


def test_ucf101_splits_are_folds(ucf_root):
    ds = open_dataset(ucf_root)
    assert isinstance(ds, VideoDataset) and ds.root == ucf_root / "UCF-101"
    assert len(ds.classes) == 101 and ds.classes[:3] == UCF_CLASSES and ds.folds == ("fold1", "fold2", "fold3")
    assert ds.modalities == ("frames",) and ds.people is None and len(ds) == 27
    test = _ids(ds.split("fold1:test"))
    assert test == [f"v_{c}_g{g:02d}_c01" for c in UCF_CLASSES for g in (1, 4, 7)]
    assert len(ds.split("fold1:train")) == 15 and len(ds.split("fold1:val")) == 3  # 6 per class, 1 to val
    assert set(_ids(ds.split("fold2:test"))) == {f"v_{c}_g{g:02d}_c01" for c in UCF_CLASSES for g in (2, 5, 8)}


def test_ucf101_clips_decode_and_have_no_keypoints(ucf_root):
    clip = open_dataset(f"{ucf_root}#fold1").split("test")[0]
    assert (clip.clip_id, clip.label, clip.label_name, clip.num_frames, clip.fps) == (
        "v_ApplyEyeMakeup_g01_c01", 0, "ApplyEyeMakeup", 7, 25.0)
    frames = clip.frames()
    assert frames.dtype == np.uint8 and frames.shape == (7, 32, 32, 3)
    message = (f"Clip 'v_ApplyEyeMakeup_g01_c01' of {ucf_root / 'UCF-101'} has no keypoints: it is a video of a "
               "dataset without skeletons. A pose model needs a skeleton source (an edgeact skeleton .npz, NTU "
               ".skeleton files, JHMDB joint positions) or a pose front end that estimates keypoints from the frames; "
               "a frames model can train on it as it is.")
    for view in ("keypoints", "noisy_keypoints"):
        with pytest.raises(DatasetError, match=_exact(message)):
            getattr(clip, view)


def test_ucf101_list_entries_match_the_files_whatever_the_case(tmp_path):
    root = write_ucf101(tmp_path / "UCF101", ["HandstandPushups"], videos_per_class=3, splits=1)
    lists = root / "ucfTrainTestlist"
    for name in ("trainlist01.txt", "testlist01.txt"):  # as in the real lists: "HandStandPushups" file names
        (lists / name).write_text((lists / name).read_text().replace("v_HandstandPushups", "v_HandStandPushups"))
    assert len(open_dataset(root)) == 3


def test_ucf101_missing_videos_are_named(tmp_path):
    root = write_ucf101(tmp_path / "UCF101", UCF_CLASSES, videos_per_class=3, splits=1)
    for g in (1, 2):
        (root / "UCF-101" / "YoYo" / f"v_YoYo_g{g:02d}_c01.avi").unlink()
    (root / "UCF-101" / "Basketball" / "v_Basketball_g03_c01.avi").unlink()
    (root / "UCF-101" / "Basketball" / "v_Basketball_g02_c01.avi").unlink()
    message = (f"{root / 'UCF-101'}: 4 videos listed in the split lists of {root / 'ucfTrainTestlist'} are missing: "
               "Basketball/v_Basketball_g02_c01.avi, Basketball/v_Basketball_g03_c01.avi, YoYo/v_YoYo_g01_c01.avi "
               "and 1 more.")
    with pytest.raises(DatasetError, match=_exact(message)):
        open_dataset(root)


def test_ucf101_bad_class_index(tmp_path):
    root = write_ucf101(tmp_path / "UCF101", UCF_CLASSES, videos_per_class=3, splits=1)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n3 Basketball\n")
    message = f"{root / 'ucfTrainTestlist' / 'classInd.txt'}: line 2 should be '2 ClassName'; got '3 Basketball'."
    with pytest.raises(DatasetError, match=_exact(message)):
        open_dataset(root, format="ucf101")


@pytest.mark.slow
def test_configs_ucf101_mobilenet_trains_on_the_adapter(ucf_root, tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    sets = ["teacher.epochs=1", "student.epochs=1", "teacher.batch_size=8", "student.batch_size=8", "data.workers=0",
            "teacher.model.encoder.size=64", "student.model.encoder.size=64"]
    argv = ["train", "--config", "configs/ucf101_tsm_mobilenetv2.yaml", "--data", f"{ucf_root}#fold1",
            "--out", str(run), "--quiet", "--threads", "1"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["split"], metrics["num_clips"]) == ("test", 9)


HMDB_FLAGS = {"brush_hair": {"April_09_brush_hair_u_nm_np1_ba_goo_0": [1, 2, 1],
                             "Blonde_being_brushed_f_nm_np2_ri_med_1": [2, 1, 0],
                             "brushing_hair_2_brush_hair_h_nm_np2_le_goo_0": [0, 1, 2]},
              "cartwheel": {"Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0": [1, 1, 2],
                            "Cartwheel_(Rad)_cartwheel_f_cm_np1_ba_med_0": [2, 0, 1]}}


def test_hmdb51_split_flags(tmp_path):
    root = write_hmdb51(tmp_path / "hmdb51", HMDB_FLAGS)
    ds = open_dataset(root)
    assert ds.classes == ["brush_hair", "cartwheel"] and ds.folds == ("fold1", "fold2", "fold3") and len(ds) == 5
    assert _ids(ds.split("fold1:test")) == ["Blonde_being_brushed_f_nm_np2_ri_med_1",
                                            "Cartwheel_(Rad)_cartwheel_f_cm_np1_ba_med_0"]
    assert sorted(_ids(ds.split("fold2:train")) + _ids(ds.split("fold2:val"))) == [
        "Blonde_being_brushed_f_nm_np2_ri_med_1", "Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0",
        "brushing_hair_2_brush_hair_h_nm_np2_le_goo_0"]  # flag 0: in neither
    clip = ds.split("fold3:test")[0]
    assert clip.label_name == "brush_hair" and clip.frames().shape == (5, 32, 32, 3)


def test_hmdb51_bad_flag(tmp_path):
    root = write_hmdb51(tmp_path / "hmdb51", HMDB_FLAGS)
    bad = root / "testTrainMulti_7030_splits" / "cartwheel_test_split2.txt"
    bad.write_text("Cartwheel_(Rad)_cartwheel_f_cm_np1_ba_med_0.avi 3\n")
    message = (f"{bad}: line 1 should be '<video>.avi 0|1|2' (0 unused, 1 train, 2 test); "
               "got 'Cartwheel_(Rad)_cartwheel_f_cm_np1_ba_med_0.avi 3'.")
    with pytest.raises(DatasetError, match=_exact(message)):
        open_dataset(root)


def test_ut_interaction_leaves_one_sequence_out(tmp_path):
    root = tmp_path / "segmented_set1"
    for seq in (1, 2, 3):
        for sample in (1, 2):
            write_clip_video(root / f"{seq}_{sample}_{(seq + sample) % 6}.avi", 4, seed=seq * 10 + sample)
    ds = open_dataset(root)
    assert ds.classes == ["handshake", "hugging", "kicking", "pointing", "punching", "pushing"]
    assert ds.folds == ("fold1", "fold2", "fold3")
    assert _ids(ds.split("fold2:test")) == ["2_1_3", "2_2_4"]
    assert [c.label_name for c in ds.split("fold2:test")] == ["pointing", "punching"]
    ds.fold = 3
    assert _ids(ds.split("test")) == ["3_1_4", "3_2_5"]
    assert sorted(_ids(ds.split("train")) + _ids(ds.split("val"))) == ["1_1_2", "1_2_3", "2_1_3", "2_2_4"]


def test_a_folder_of_class_folders_carves_test_and_val(tmp_path):
    for k, cls in enumerate(("clap", "wave")):
        for i in range(10):
            write_clip_video(tmp_path / "clips" / cls / f"take{i}.avi", 3, seed=10 * k + i)
    (tmp_path / "clips" / "notes.txt").write_text("not a class")
    ds = open_dataset(tmp_path / "clips")
    assert ds.classes == ["clap", "wave"] and ds.folds == () and ds.splits == ("train", "val", "test")
    test, val, train = (_ids(ds.split(s)) for s in ("test", "val", "train"))
    assert len(test) == 4 and len(val) == 2 and len(train) == 14  # 2 per class of 10, then 1 per class of 8
    assert sorted(test + val + train) == sorted(f"{c}/take{i}" for c in ("clap", "wave") for i in range(10))
    assert _ids(open_dataset(tmp_path / "clips").split("test")) == test


def test_a_folder_with_split_folders_uses_them(tmp_path):
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        for cls in ("clap", "wave"):
            for i in range(count):
                write_clip_video(tmp_path / "clips" / split / cls / f"{i}.avi", 3)
    ds = open_dataset(tmp_path / "clips")
    assert [len(ds.split(s)) for s in ("train", "val", "test")] == [6, 2, 4]
    assert _ids(ds.split("val")) == ["val/clap/0", "val/wave/0"]


def test_convert_refuses_a_video_dataset(ucf_root, tmp_path, capsys):
    message = (f"{ucf_root} is a video dataset without keypoints (UCF-101 ({ucf_root})), so it cannot become a "
               "skeleton file: conversion needs keypoints, from a skeleton source or estimated from the frames by a "
               f"pose front end first. Train a frames model on it directly: edgeact train --data {ucf_root}#FOLD.")
    with pytest.raises(DatasetError, match=_exact(message)):
        convert(open_dataset(ucf_root), tmp_path / "ucf.npz", name=str(ucf_root))
    with pytest.raises(SystemExit):
        main(["data", "convert", str(ucf_root), "--format", "ucf101", "--out", str(tmp_path / "ucf.npz")])
    assert capsys.readouterr().err == f"edgeact: error: {message}\n"
    assert not (tmp_path / "ucf.npz").exists()


def test_data_info_on_ucf101(ucf_root, capsys):
    assert main(["data", "info", str(ucf_root), "--fold", "2"]) == 0
    out = capsys.readouterr().out
    assert "inputs: frames\n" in out and "folds: fold1, fold2, fold3 (the plain split names are fold2)\n" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isalnum()}
    assert rows["test"][0] == "9" and rows["YoYo"] == ["5", "1", "3", "9"]


@pytest.mark.parametrize(("decoded", "expected"), [(10, 10), (11, 10), (12, 10), (8, 10), (9, 10)])
def test_fit_length_repairs_small_differences(tmp_path, decoded, expected):
    frames = np.arange(decoded, dtype=np.uint8)[:, None, None, None].repeat(2, axis=1)
    fitted = fit_length(frames, expected, tmp_path / "v.avi")
    assert len(fitted) == expected and fitted[-1, 0, 0, 0] == min(decoded, expected) - 1


def test_fit_length_refuses_a_truncated_video(tmp_path):
    message = f"{tmp_path / 'v.avi'} decodes to 7 frames but its header says 10; the file may be truncated or damaged."
    with pytest.raises(DatasetError, match=_exact(message)):
        fit_length(np.zeros((7, 2, 2, 3), np.uint8), 10, tmp_path / "v.avi")


def test_a_video_format_named_for_the_wrong_layout(tmp_path):
    shutil.copytree(write_ucf101(tmp_path / "UCF101", UCF_CLASSES, videos_per_class=3, splits=1), tmp_path / "copy")
    message = (f"{tmp_path / 'copy'} is not in the hmdb51 format: looked for HMDB-51 <class>_test_split<N>.txt files "
               "(in testTrainMulti_7030_splits/, splits/ or the directory), found none.")
    with pytest.raises(DatasetError, match=_exact(message)):
        open_dataset(tmp_path / "copy", format="hmdb51")
