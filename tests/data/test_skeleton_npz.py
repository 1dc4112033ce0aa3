"""edgeact's skeleton .npz format read through open_dataset: clips, splits, folds, validation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeact.cli import main
from edgeact.data import SPLITS, open_dataset
from edgeact.data.protocol import VAL_FRACTION, carve_validation
from edgeact.data.skeleton_npz import SkeletonDataset
from edgeact.errors import DatasetError, InputError
from tests.data.skeleton_files import CLASSES, NUM_SEQUENCES, skeleton_arrays, write_skeleton_file


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def _ids(clips) -> list[str]:
    return [c.clip_id for c in clips]


@pytest.fixture
def split_file(tmp_path):
    return write_skeleton_file(tmp_path / "tiny.npz")


@pytest.fixture
def fold_file(tmp_path):
    return write_skeleton_file(tmp_path / "folds.npz", people=2, coords=3, folds=4)


def test_a_file_and_a_directory_holding_one_open_the_same(split_file):
    by_file, by_dir = open_dataset(split_file), open_dataset(str(split_file.parent))
    assert isinstance(by_file, SkeletonDataset) and by_dir.path == split_file
    assert by_file.classes == by_dir.classes == list(CLASSES)
    for split in SPLITS:
        assert _ids(by_file.split(split)) == _ids(by_dir.split(split))


def test_metadata_a_config_can_check(fold_file):
    ds = open_dataset(fold_file, fold=0)
    assert ds.modalities == ("keypoints",)
    assert (ds.people, ds.coords, ds.joint_names) == (2, 3, ("joint0", "joint1", "joint2"))
    assert ds.units == "pixels of the video frame" and ds.fps == 25.0
    assert ds.channels == ("x", "y", "z", "visibility") and ds.recorded_visibility is False
    assert ds.source == "written by tests/data/skeleton_files.py" and ds.protocol == "4 folds"


def test_clips_return_their_own_frames_with_visibility_appended(split_file):
    ds = open_dataset(split_file)
    clip = ds.split("test")[2]  # sequence 20: 3 + 20 % 5 = 3 frames, label 20 % 3 = 2
    assert (clip.clip_id, clip.label, clip.label_name, clip.num_frames) == ("s20", 2, "hug", 3)
    assert (clip.fps, clip.action_start, clip.action_end, clip.subject, clip.view) == (25.0, 0, 3, 4, -1)
    kp = clip.keypoints
    assert kp.dtype == np.float32 and kp.shape == (3, 1, 3, 3)
    expected = 20000 + 10 * np.arange(3)[:, None] + np.arange(3)[None, :] / 10  # frame t, joint j, x
    np.testing.assert_allclose(kp[:, 0, :, 0], expected, rtol=0, atol=1e-3)
    np.testing.assert_allclose(kp[:, 0, :, 1], expected + 0.01, rtol=0, atol=1e-3)
    assert (kp[..., 2] == 1.0).all()
    np.testing.assert_array_equal(clip.noisy_keypoints, kp)
    kp[:] = 0  # a fresh copy each time: the dataset's array is untouched
    assert clip.keypoints[0, 0, 0, 0] == 20000


def test_recorded_visibility_is_kept_and_nan_only_where_it_is_zero(tmp_path):
    arrays = skeleton_arrays(visibility=True)
    arrays["joints"][0, 0, 1] = [np.nan, np.nan, 0.0]  # sequence 0, frame 0, joint 1 missing
    arrays["joints"][1, 0, 2, 2] = 0.5  # a confidence
    np.savez(tmp_path / "vis.npz", **arrays)
    ds = open_dataset(tmp_path / "vis.npz")
    kp = ds.sequence(0)
    assert ds.recorded_visibility and kp.shape == (3, 1, 3, 3)
    assert np.isnan(kp[0, 0, 1, :2]).all() and kp[0, 0, 1, 2] == 0 and kp[1, 0, 2, 2] == 0.5
    assert np.isfinite(kp[kp[..., 2] > 0]).all()


def test_without_recorded_visibility_nan_coordinates_are_invisible(tmp_path):
    arrays = skeleton_arrays()
    arrays["joints"][4, 0, 0, 1] = np.nan  # sequence 1 starts at frame 3: its frame 1, joint 0
    np.savez(tmp_path / "nan.npz", **arrays)
    kp = open_dataset(tmp_path / "nan.npz").sequence(1)
    assert kp[1, 0, 0, 2] == 0.0 and (np.delete(kp.reshape(-1, 3), 3, axis=0)[:, 2] == 1.0).all()


def test_frames_say_a_skeleton_dataset_has_no_video(split_file):
    clip = open_dataset(split_file).split("train")[0]
    message = (f"Clip 's00' of {split_file} has no video: a skeleton dataset holds keypoints only, "
               "so train a model whose inputs are [keypoints].")
    with pytest.raises(DatasetError, match=_exact(message)):
        clip.frames()


def test_split_array_gives_train_val_test_with_val_carved_from_train(split_file):
    ds = open_dataset(split_file)
    assert ds.splits == SPLITS and ds.folds == () and ds.fold is None
    train, val, test = (_ids(ds.split(s)) for s in SPLITS)
    assert test == [f"s{i}" for i in range(18, 24)]
    assert sorted(train + val) == [f"s{i:02d}" for i in range(18)] and not set(train) & set(val)
    # stratified: 6 training sequences per class, round(0.1 * 6) = 1 of each to val; seed fixed
    assert sorted(c.label for c in ds.split("val")) == [0, 1, 2]
    assert val == ["s10", "s11", "s15"]
    assert _ids(open_dataset(split_file).split("val")) == val


def test_carve_validation_is_stratified_and_keeps_one_training_clip_per_class():
    labels = np.array([0] * 40 + [1] * 20 + [2] * 1)
    train, val = carve_validation(labels, np.arange(61))
    assert np.bincount(labels[val], minlength=3).tolist() == [4, 2, 0]
    assert sorted(train.tolist() + val.tolist()) == list(range(61)) and VAL_FRACTION == 0.1
    _, all_but_one = carve_validation(labels, np.arange(61), fraction=1.0)
    assert np.bincount(labels[all_but_one], minlength=3).tolist() == [39, 19, 0]


def test_fold_array_gives_named_folds(fold_file):
    ds = open_dataset(fold_file)
    assert ds.folds == ("fold0", "fold1", "fold2", "fold3") and ds.fold is None
    assert ds.splits == tuple(f"fold{k}:{s}" for k in range(4) for s in SPLITS)
    assert _ids(ds.split("fold1:test")) == [f"s{i:02d}" for i in range(1, NUM_SEQUENCES, 4)]
    train, val = _ids(ds.split("fold1:train")), _ids(ds.split("fold1:val"))
    assert len(val) == 3 and sorted(train + val) == sorted(f"s{i:02d}" for i in range(NUM_SEQUENCES) if i % 4 != 1)


def test_plain_split_names_need_a_fold(fold_file):
    message = ("Split 'train' needs a fold: this dataset has the folds fold0, fold1, fold2, fold3. Choose one with "
               "open_dataset(path, fold=0) or the path suffix '#fold0' (PATH#fold0), or ask for the split "
               "'fold0:train'.")
    with pytest.raises(InputError, match=_exact(message)):
        open_dataset(fold_file).split("train")


@pytest.mark.parametrize("how", ["keyword int", "keyword name", "suffix"])
def test_choosing_a_fold_makes_the_plain_names_refer_to_it(fold_file, how):
    ds = {"keyword int": lambda: open_dataset(fold_file, fold=2),
          "keyword name": lambda: open_dataset(fold_file, fold="fold2"),
          "suffix": lambda: open_dataset(f"{fold_file}#fold2")}[how]()
    assert ds.fold == "fold2" and ds.splits[:3] == SPLITS
    for split in SPLITS:
        assert _ids(ds.split(split)) == _ids(ds.split(f"fold2:{split}"))


def test_a_path_whose_name_has_a_hash_is_not_a_fold_suffix(tmp_path):
    write_skeleton_file(tmp_path / "odd#fold1" / "tiny.npz")
    ds = open_dataset(tmp_path / "odd#fold1")
    assert ds.fold is None and ds.splits == SPLITS


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: open_dataset(f, fold=9), "Unknown fold 9; {f} has the folds fold0, fold1, fold2, fold3."),
        (lambda f: open_dataset(f"{f}#fold7"), "Unknown fold 'fold7'; {f} has the folds fold0, fold1, fold2, fold3."),
        (lambda f: open_dataset(f"{f}#fold1", fold=2), "{f}#fold1 names fold1 but fold=2 was also given; choose one."),
        (lambda f: open_dataset(f, fold=1.0), "fold must be an int or a fold name like 'fold0' or 'xsub'; got float."),
        (lambda f: open_dataset(f, fold=1).split("fold9:test"),
         "Unknown split 'fold9:test'; this dataset has the splits train, val, test, "
         + ", ".join(f"fold{k}:{s}" for k in range(4) for s in SPLITS) + "."),
    ],
)  # fmt: skip
def test_fold_errors(fold_file, make, message):
    with pytest.raises(InputError, match=_exact(message.format(f=fold_file))):
        make(fold_file)


def test_a_fold_for_a_dataset_without_folds(split_file):
    message = f"There are no folds in {split_file} (it has one train/test split); got fold 0."
    with pytest.raises(InputError, match=_exact(message)):
        open_dataset(split_file, fold=0)


def _mutated(**changes):
    def make(arrays):
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value(arrays) if callable(value) else value
        return arrays

    return make


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_mutated(offsets=None, units=None),
         "{f} is not an edgeact skeleton file: it lacks the arrays offsets, units (see docs/dataset.md, "
         "\"Skeleton files\")."),
        (_mutated(split=None), "{f} has neither a split array (train or test per sequence) nor a fold array "
                               "(an integer per sequence); it needs one."),
        (_mutated(fold=np.zeros(NUM_SEQUENCES, np.int64)), "{f} has both a split and a fold array; keep one."),
        (_mutated(joints=lambda a: a["joints"][:, 0]), "{f}: joints must be [frames, people, joints, channels]; "
                                                       "got shape [118, 3, 2]."),
        (_mutated(channels=np.array(["u", "v"])),
         "{f}: channels must name the 2 channels of joints: x, y[, z], then visibility where recorded; "
         "got ['u', 'v']."),
        (_mutated(channels=np.array(["x", "y", "visibility"])),
         "{f}: channels must name the 2 channels of joints: x, y[, z], then visibility where recorded; "
         "got ['x', 'y', 'visibility']."),
        (_mutated(joint_names=np.array(["a", "b"])), "{f}: joint_names has 2 entries but joints has 3."),
        (_mutated(classes=np.array(["wave", "wave", "hug"])),
         "{f}: classes must be distinct names, at least one; got ['wave', 'wave', 'hug']."),
        (_mutated(label=lambda a: a["label"].astype(np.float32)), "{f}: label must be a 1-D integer array; "
                                                                    "got float32[24]."),
        (_mutated(offsets=lambda a: a["offsets"][:-1]),
         "{f}: offsets must be integers [25] (one more than the 24 sequences); got int64[24]."),
        (_mutated(offsets=lambda a: a["offsets"] + 1), "{f}: offsets must run from 0 to 118, the frames in joints; "
                                                        "got 1..119."),
        (_mutated(offsets=lambda a: np.r_[0, 3, 3, a["offsets"][3:]]),
         "{f}: sequence 1 has no frames (offsets 3 then 3); every sequence needs at least one."),
        (_mutated(label=lambda a: np.r_[a["label"][:5], 3, a["label"][6:]]),
         "{f}: label 3 of sequence 5 is outside 0..2 (classes has 3 names)."),
        (_mutated(view=np.zeros(5, np.int64)), "{f}: view has 5 entries but there are 24 sequences (label has 24)."),
        (_mutated(split=lambda a: np.r_[a["split"][:2], ["val"], a["split"][3:]]),
         "{f}: split must be 'train' or 'test' for every sequence; sequence 2 has 'val'."),
        (_mutated(seq_id=lambda a: np.r_[a["seq_id"][:23], ["s01"]]),
         "{f}: seq_id 's01' appears more than once; sequence ids must be unique."),
        (_mutated(units=np.array(["m"])), "{f}: units must be one string; got <U1[1]."),
        (_mutated(fps=np.array(0.0)), "{f}: fps must be one positive number; got 0.0."),
    ],
)  # fmt: skip
def test_malformed_files_are_named_with_what_was_expected(tmp_path, mutate, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **mutate(skeleton_arrays()))
    with pytest.raises(DatasetError, match=_exact(message.format(f=path))):
        open_dataset(path)


@pytest.mark.parametrize(
    ("edit", "visibility", "what"),
    [
        (lambda j: j[7, 0, 2].__setitem__(0, np.nan), True,
         "has NaN or inf coordinates with visibility > 0; give missing joints visibility 0"),
        (lambda j: j[7, 0, 2].__setitem__(2, -1.0), True, "has a visibility that is NaN, inf or negative"),
        (lambda j: j[7, 0, 2].__setitem__(1, np.inf), False, "has inf coordinates"),
    ],
)  # fmt: skip
def test_bad_joint_values_are_located_on_first_access(tmp_path, edit, visibility, what):
    arrays = skeleton_arrays(visibility=visibility)
    edit(arrays["joints"])  # row 7 of the file: sequence 0 has rows 0-2, sequence 1 rows 3-6
    path = tmp_path / "values.npz"
    np.savez(path, **arrays)
    ds = open_dataset(path)  # metadata only: the joints are read on the first keypoint access
    message = f"{path}: joints {what}: sequence 2 ('s02'), frame 0, person 0, joint 2 (joint2)."
    with pytest.raises(DatasetError, match=_exact(message)):
        ds.split("train")[0].keypoints


def test_not_a_zip_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("not a zip")
    with pytest.raises(DatasetError, match=f"^Cannot read {re.escape(str(path))}: "):
        open_dataset(path)


def test_a_directory_with_several_skeleton_files_names_them(tmp_path):
    write_skeleton_file(tmp_path / "a.npz")
    write_skeleton_file(tmp_path / "b.npz")
    (tmp_path / "other.npz").write_bytes(b"")  # not a skeleton file: ignored
    message = f"{tmp_path} holds 2 skeleton files (a.npz, b.npz); open one of them, e.g. {tmp_path / 'a.npz'}."
    with pytest.raises(DatasetError, match=_exact(message)):
        open_dataset(tmp_path)


def test_a_missing_path(tmp_path):
    with pytest.raises(DatasetError, match=_exact(f"Dataset {tmp_path / 'nope.npz'} does not exist.")):
        open_dataset(tmp_path / "nope.npz#fold0")


def test_data_info_prints_splits_classes_and_keypoints(fold_file, capsys):
    assert main(["data", "info", f"{fold_file}#fold1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{fold_file}#fold1: SkeletonDataset, 3 classes\n")
    for line in ["protocol: 4 folds", "inputs: keypoints",
                 "keypoints: 2 people x 3 joints x (x, y, z, visibility) (visibility not recorded: 1, or 0 where "
                 "a coordinate is NaN)",
                 "units: pixels of the video frame", "joints: joint0, joint1, joint2", "fps: 25",
                 "folds: fold0, fold1, fold2, fold3 (the plain split names are fold1)",
                 "val: 10% of each class's training clips, drawn with seed 0"]:
        assert f"\n{line}\n" in out, line
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isalnum()}
    # fold1 tests sequences 1, 5, 9, ..., 21: lengths 4, 3, 7, 6, 5, 4 frames
    assert rows["test"] == ["6", "3", "4.5", "4.8", "7"]
    assert rows["train"][0] == "15" and rows["val"][0] == "3" and rows["fold0:test"][0] == "6"
    assert "fold1:test" not in rows  # listed once, under its plain name
    assert rows["class"] == ["train", "val", "test", "all"]
    assert rows["wave"] == ["5", "1", "2", "8"] and rows["kick"] == ["5", "1", "2", "8"]


def test_data_info_without_a_chosen_fold_lists_every_fold(fold_file, capsys):
    assert main(["data", "info", str(fold_file)]) == 0
    out = capsys.readouterr().out
    assert "folds: fold0, fold1, fold2, fold3 (none chosen: add #fold0 to the path or --fold 0 for plain split " \
           "names)" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isalnum()}
    assert rows["class"] == [f"fold{k}:test" for k in range(4)]
    assert rows["wave"] == ["2", "2", "2", "2"]


def test_data_info_reports_errors_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "info", str(tmp_path / "missing.npz")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"edgeact: error: Dataset {tmp_path / 'missing.npz'} does not exist.\n"


def _write(path, sequences, **overrides):
    from edgeact.data.skeleton_npz import write_skeleton_npz

    kwargs = dict(lengths=[len(s) for s in sequences], people=2, labels=[0, 1, 0][: len(sequences)],
                  classes=["a", "b"], joint_names=["j0", "j1", "j2"], channels=["x", "y", "z", "visibility"],
                  units="m", fps=30.0, split=["train", "train", "test"][: len(sequences)])
    return write_skeleton_npz(path, iter(sequences), **(kwargs | overrides))


def test_write_skeleton_npz_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    sequences = [rng.random((n, 2, 3, 4), np.float32) for n in (3, 1, 5)]
    sequences[1][0, 1, 2] = [np.nan, np.nan, np.nan, 0.0]  # a missing joint
    path = _write(tmp_path / "out.npz", sequences, seq_id=["a", "b", "c"], subject=[1, 2, 3], source="test")
    ds = open_dataset(path)
    assert [c.clip_id for c in ds.split("test")] == ["c"] and ds.split("test")[0].subject == 3
    for i, sequence in enumerate(sequences):
        np.testing.assert_array_equal(ds.sequence(i), sequence)
    with np.load(path) as npz:  # uncompressed members: the joints stream in one sequence at a time
        assert npz.zip.getinfo("joints.npy").compress_type == 0 and str(npz["source"]) == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


@pytest.mark.parametrize(
    ("sequences", "overrides", "error", "message"),
    [
        ([np.zeros((3, 2, 3, 4)), np.zeros((2, 2, 3, 3))], {"lengths": [3, 2]}, InputError,
         "Sequence 1 to write has shape [2, 2, 3, 3]; expected [2, 2, 3, 4] (lengths[1], people, joints, channels)."),
        ([np.zeros((3, 2, 3, 4))], {"lengths": [3, 2]}, InputError,
         "1 sequences were given to write but lengths names 2."),
        ([np.zeros((3, 2, 3, 4))], {"labels": [5]}, DatasetError,
         "{f}: label 5 of sequence 0 is outside 0..1 (classes has 2 names)."),
    ],
)  # fmt: skip
def test_write_skeleton_npz_refuses_and_leaves_nothing(tmp_path, sequences, overrides, error, message):
    path = tmp_path / "out.npz"
    with pytest.raises(error, match=_exact(message.format(f=path))):
        _write(path, sequences, **overrides)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_format_name_gets_a_suggestion(split_file):
    message = ("Unknown dataset format 'skeletons'; did you mean 'skeleton'? Valid formats: synth, skeleton, ntu, "
               "jhmdb, ucf101, hmdb51, ut-interaction, folder.")
    with pytest.raises(InputError, match=_exact(message)):
        open_dataset(split_file, format="skeletons")
