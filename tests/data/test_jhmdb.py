"""JHMDB in its distributed layout: joint_positions.mat keypoints, split files, optional videos."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeact.cli import main
from edgeact.data import open_dataset
from edgeact.data.jhmdb import JOINT_NAMES, JhmdbDataset
from edgeact.errors import DatasetError
from tests.data.layouts import write_jhmdb

pytest.importorskip("scipy", reason="reading JHMDB's .mat files needs scipy (the datasets extra)")

FLAGS = {"catch": {"Frisbee_catch_f_cm_np1_ri_med_0": [1, 2, 1],
                   "Goalkeeper_Training_catch_u_cm_np1_fr_med_1": [2, 1, 1]},
         "wave": {"Hello_wave_h_nm_np1_fr_goo_0": [1, 1, 2]}}


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_keypoints_come_from_pos_img(tmp_path):
    ds = open_dataset(write_jhmdb(tmp_path / "JHMDB", FLAGS))
    assert isinstance(ds, JhmdbDataset) and ds.classes == ["catch", "wave"] and ds.folds == ("fold1", "fold2", "fold3")
    assert (ds.people, ds.joint_names, ds.coords, ds.modalities) == (1, JOINT_NAMES, 2, ("frames", "keypoints"))
    clip = ds.split("fold1:test")[0]
    assert (clip.clip_id, clip.label_name, clip.num_frames, clip.fps) == (
        "Goalkeeper_Training_catch_u_cm_np1_fr_med_1", "catch", 5, 30.0)
    kp = clip.keypoints
    assert kp.dtype == np.float32 and kp.shape == (5, 1, 15, 3)
    np.testing.assert_allclose(kp[:, 0, :, 0], 100 + np.arange(15)[None, :] + np.arange(5)[:, None] / 10, atol=1e-5)
    assert (kp[..., 1] == 51).all() and (kp[..., 2] == 1).all()  # y = 50 + clip number within the class
    np.testing.assert_array_equal(clip.noisy_keypoints, kp)
    assert clip.frames().shape == (5, 32, 32, 3)
    assert [c.clip_id for c in ds.split("fold3:test")] == ["Hello_wave_h_nm_np1_fr_goo_0"]


def test_without_videos_clips_say_where_to_put_them(tmp_path):
    root = write_jhmdb(tmp_path / "JHMDB", FLAGS, videos=False)
    ds = open_dataset(root)
    assert ds.modalities == ("keypoints",)
    message = (f"Clip 'Frisbee_catch_f_cm_np1_ri_med_0' of {root} has no video: put JHMDB's videos in "
               f"{root / 'ReCompress_Videos'} or {root / 'videos'}/<class>/<video>.avi.")
    with pytest.raises(DatasetError, match=_exact(message)):
        ds.clip(0).frames()


def test_a_listed_clip_without_joint_positions(tmp_path):
    root = write_jhmdb(tmp_path / "JHMDB", FLAGS)
    (root / "joint_positions" / "wave" / "Hello_wave_h_nm_np1_fr_goo_0" / "joint_positions.mat").unlink()
    message = (f"{root}: 1 videos in {root / 'splits'} have no joint_positions/<class>/<video>/joint_positions.mat: "
               "wave/Hello_wave_h_nm_np1_fr_goo_0.")
    with pytest.raises(DatasetError, match=_exact(message)):
        open_dataset(root)


def test_pos_img_of_the_wrong_shape(tmp_path):
    from scipy.io import savemat

    root = write_jhmdb(tmp_path / "JHMDB", FLAGS)
    mat = root / "joint_positions" / "wave" / "Hello_wave_h_nm_np1_fr_goo_0" / "joint_positions.mat"
    savemat(str(mat), {"pos_img": np.zeros((2, 13, 4))})
    with pytest.raises(DatasetError, match=_exact(f"{mat}: pos_img must be 2 x 15 x frames; got 2 x 13 x 4.")):
        open_dataset(root).clip(2)


def test_convert_one_split_and_read_it_back(tmp_path, capsys):
    root = write_jhmdb(tmp_path / "JHMDB", FLAGS)
    out = tmp_path / "jhmdb_split1.npz"
    assert main(["data", "convert", f"{root}#fold1", "--format", "jhmdb", "--out", str(out), "--quiet"]) == 0
    converted, source = open_dataset(out), open_dataset(root, fold=1)
    assert converted.units == "pixels of the 320x240 video frame (annotated 2D)"
    assert [c.clip_id for c in converted.split("test")] == [c.clip_id for c in source.split("test")]
    for a, b in zip(converted.split("test"), source.split("test")):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
    with pytest.raises(SystemExit):  # the file exists
        main(["data", "convert", f"{root}#fold1", "--out", str(out)])
    assert capsys.readouterr().err == (f"edgeact: error: {out} already exists; pass overwrite=True (edgeact data "
                                       "convert --overwrite) to replace it.\n")
