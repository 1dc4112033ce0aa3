"""What generate() writes, read back through open_dataset(): format, balance, determinism."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest

from edgeact.data import JOINT_NAMES, SPLITS, ClipList, open_dataset
from edgeact.data.synth import CLASS_GROUPS, CLASS_NAMES, GENERATOR_VERSION, generate
from edgeact.data.synth_clip import make_clip
from edgeact.errors import DatasetError, InputError


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _all_clips(ds):
    return [clip for split in SPLITS for clip in ds.split(split)]


def test_manifest_fields(small_dataset):
    m = _manifest(small_dataset)
    assert m["format"] == "edgeact-synth" and m["format_version"] == 1
    assert m["generator"]["name"] == "edgeact.data.synth"
    assert m["generator"]["version"] == GENERATOR_VERSION
    assert m["generator"]["early_cue"] == 0.5  # the default
    assert m["classes"] == list(CLASS_NAMES)
    assert m["groups"] == {g: list(c) for g, c in CLASS_GROUPS.items()}
    assert m["seed"] == 7 and m["fps"] == 30.0 and m["frame_size"] == [64, 64] and m["frame_range"] == [32, 48]
    assert m["joint_names"] == list(JOINT_NAMES) and m["num_persons"] == 2
    assert m["video"] == {"codec": "mjpg", "fourcc": "MJPG", "lossless": False}
    assert [len(m["splits"][s]) for s in SPLITS] == [17, 4, 3]  # 24 clips at 0.7/0.15/0.15
    ids = [e["id"] for s in SPLITS for e in m["splits"][s]]
    assert len(set(ids)) == 24
    for split in SPLITS:
        for e in m["splits"][split]:
            assert set(e) == {"id", "label", "label_name", "num_frames", "action_start", "action_end",
                              "divergence", "video", "keypoints"}  # fmt: skip
            assert e["video"] == f"{split}/{e['id']}.avi" and e["keypoints"] == f"{split}/{e['id']}.npz"
            assert (small_dataset / e["video"]).is_file() and (small_dataset / e["keypoints"]).is_file()
            assert 32 <= e["num_frames"] <= 48
            assert 0 <= e["action_start"] < e["divergence"] < e["action_end"] <= e["num_frames"]
            assert e["label_name"] == CLASS_NAMES[e["label"]]


def test_round_trip_shapes_and_types(small_dataset):
    ds = open_dataset(small_dataset)
    assert ds.classes == list(CLASS_NAMES)
    split = ds.split("train")
    assert isinstance(split, ClipList) and len(split) == 17
    for clip in list(split[:3]) + [split[-1]]:
        frames = clip.frames()
        assert frames.dtype == np.uint8 and frames.shape == (clip.num_frames, 64, 64, 3)
        for kp in (clip.keypoints, clip.noisy_keypoints):
            assert kp.dtype == np.float32 and kp.shape == (clip.num_frames, 2, 18, 3)
        assert isinstance(clip.label, int) and clip.label_name == ds.classes[clip.label]
        assert clip.fps == 30.0 and clip.clip_id
        with np.load(ds.root / ds.manifest["splits"]["train"][0]["keypoints"]) as npz:
            assert set(npz.files) == {"keypoints", "noisy_keypoints", "label", "start", "end", "divergence"}


def test_keypoints_live_in_frame_pixels(small_dataset):
    for clip in _all_clips(open_dataset(small_dataset)):
        kp = clip.keypoints
        seen = kp[..., 2] > 0
        assert seen.mean() > 0.2
        assert np.all((kp[..., :2][seen] >= 0) & (kp[..., :2][seen] <= 63))
        assert set(np.unique(kp[..., 2])) <= {0.0, 1.0}
        if CLASS_NAMES[clip.label] in CLASS_GROUPS["raise_arms"] + CLASS_GROUPS["lower_body"]:
            assert not kp[:, 1].any()  # single-person action: the second person is all zeros


def test_decoded_frames_are_the_rendered_frames(small_dataset):
    clip = open_dataset(small_dataset).split("val")[0]
    rendered = make_clip(7, int(clip.clip_id), clip.label_name, 64, (32, 48)).frames
    decoded = clip.frames()
    # MJPG is lossy but close; a channel-order or frame-order mistake would be far off.
    assert np.abs(decoded.astype(int) - rendered).mean() < 6
    assert np.abs(decoded.astype(int) - rendered[:, :, :, ::-1]).mean() > 10


@pytest.mark.skipif(not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG), reason="this OpenCV has no FFmpeg")
def test_ffv1_is_lossless(tmp_path):
    path = generate(tmp_path / "ffv1", 12, seed=3, size=32, frame_range=(16, 20), codec="ffv1", workers=1)
    clip = open_dataset(path).split("train")[0]
    rendered = make_clip(3, int(clip.clip_id), clip.label_name, 32, (16, 20)).frames
    assert clip.frames().tobytes() == rendered.tobytes()


def test_labels_are_balanced_within_every_split(small_dataset):
    ds = open_dataset(small_dataset)
    for split in SPLITS:
        counts = Counter(c.label for c in ds.split(split))
        per_class = [counts.get(i, 0) for i in range(len(CLASS_NAMES))]
        assert max(per_class) - min(per_class) <= 1, (split, per_class)
    overall = Counter(c.label for c in _all_clips(ds))
    assert sorted(overall) == list(range(12)) and set(overall.values()) == {2}


def test_labels_are_shuffled_not_in_class_order(small_dataset):
    labels = [c.label for c in open_dataset(small_dataset).split("train")]
    assert labels != sorted(labels) and labels[:12] != list(range(12))


def _arrays(path):
    ds = open_dataset(path)
    return {c.clip_id: (c.keypoints, c.noisy_keypoints, c.frames()) for c in _all_clips(ds)}


def test_same_seed_same_data_whatever_the_worker_count(small_dataset, small_dataset_one_worker):
    assert _manifest(small_dataset) == _manifest(small_dataset_one_worker)
    a, b = _arrays(small_dataset), _arrays(small_dataset_one_worker)
    assert a.keys() == b.keys()
    for clip_id in a:
        for x, y in zip(a[clip_id], b[clip_id]):
            assert x.tobytes() == y.tobytes(), clip_id
    video = _manifest(small_dataset)["splits"]["test"][0]["video"]
    assert (small_dataset / video).read_bytes() == (small_dataset_one_worker / video).read_bytes()


def test_rendering_is_deterministic_in_process():
    a = make_clip(11, 5, "kick", 48, (32, 40))
    b = make_clip(11, 5, "kick", 48, (32, 40))
    for name in ("frames", "keypoints", "noisy_keypoints"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()


def test_another_seed_gives_other_data(small_dataset, small_dataset_other_seed):
    a, b = _arrays(small_dataset), _arrays(small_dataset_other_seed)
    for clip_id in a:
        if a[clip_id][0].shape == b[clip_id][0].shape:
            assert not np.array_equal(a[clip_id][0], b[clip_id][0])
    assert [e["label"] for e in _manifest(small_dataset)["splits"]["train"]] != [
        e["label"] for e in _manifest(small_dataset_other_seed)["splits"]["train"]
    ]


def test_noisy_view_differs_from_truth_but_stays_close(small_dataset):
    ds = open_dataset(small_dataset)
    gt = np.concatenate([c.keypoints.reshape(-1, 3) for c in _all_clips(ds)])
    noisy = np.concatenate([c.noisy_keypoints.reshape(-1, 3) for c in _all_clips(ds)])
    present = gt[:, 2] > 0
    found = noisy[:, 2] > 0
    assert not np.any(found & ~present)  # occluded or absent joints are never reported
    assert np.all(noisy[~found] == 0)  # missing joints are (0, 0, 0)
    assert np.all((noisy[found, 2] > 0) & (noisy[found, 2] <= 1))
    dropped = 1 - found[present].mean()
    assert 0.02 < dropped < 0.3
    both = present & found
    err = np.linalg.norm(noisy[both, :2] - gt[both, :2], axis=1)
    assert 0.1 < np.median(err) < 0.05 * 64  # jittered, but by a few percent of the frame
    assert np.mean(err > 0.25 * 64) < 0.03  # outliers and left/right swaps are rare


@pytest.mark.parametrize("group", list(CLASS_GROUPS))
def test_classes_of_a_group_share_their_beginning(group):
    clips = {name: make_clip(21, 4, name, 48, (40, 60), early_cue=0.0) for name in CLASS_GROUPS[group]}
    first = next(iter(clips.values()))
    d = first.divergence
    assert 0.25 * len(first.frames) < d
    for name, clip in clips.items():
        assert clip.divergence == d and clip.action_start == first.action_start
        assert clip.frames[:d].tobytes() == first.frames[:d].tobytes(), name
        assert clip.keypoints[:d].tobytes() == first.keypoints[:d].tobytes(), name
        assert clip.noisy_keypoints[:d].tobytes() == first.noisy_keypoints[:d].tobytes(), name
    later = [clip.keypoints[d : first.action_end, :, :, :2] for clip in clips.values()]
    for i in range(len(later)):
        for j in range(i + 1, len(later)):
            assert np.abs(later[i] - later[j]).max() > 5.0  # and then they part


def test_clips_are_lazy(tmp_path):
    path = generate(tmp_path / "ds", 12, size=32, frame_range=(16, 20), workers=1)
    ds = open_dataset(path)
    clip = ds.split("test")[0]
    video = path / ds.manifest["splits"]["test"][0]["video"]
    video.unlink()
    assert clip.num_frames >= 16 and ds.split("test")[0].label_name in CLASS_NAMES  # no decoding needed
    assert clip.keypoints.shape[0] == clip.num_frames
    with pytest.raises(DatasetError, match=f"^Video file {video} does not exist.$"):
        clip.frames()


def test_unknown_split_lists_the_valid_ones(small_dataset):
    message = r"^Unknown split 'training'; this dataset has the splits train, val, test\.$"
    with pytest.raises(InputError, match=message):
        open_dataset(small_dataset).split("training")


def test_open_dataset_on_a_missing_directory(tmp_path):
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path / "nope")
    assert str(info.value) == f"Dataset {tmp_path / 'nope'} does not exist."


def test_open_dataset_on_an_unknown_directory_says_what_it_looked_for(tmp_path):
    (tmp_path / "clip.avi").write_bytes(b"")
    message = (
        f"{tmp_path} is not a dataset edgeact can read: it is in none of the layouts synth, skeleton, ntu, jhmdb, "
        "ucf101, hmdb51, ut-interaction, folder (docs/dataset.md describes each; naming one with format= says what "
        "that one looks for)."
    )
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json",
         "Cannot read {path}: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)."),
        ('{"format": "other"}',
         '{path} is not an edgeact synthetic dataset manifest (no "format": "edgeact-synth").'),
        ('{"format": "edgeact-synth", "format_version": 9}',
         "{path} has format_version 9; this edgeact reads version 1. Regenerate the dataset with this version."),
        ('{"format": "edgeact-synth", "format_version": 1, "classes": []}',
         "{path} lacks the fields groups, fps, frame_size, splits."),
    ],
)  # fmt: skip
def test_bad_manifests(tmp_path, text, message):
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path)
    assert str(info.value) == message.replace("{path}", str(path))


@pytest.mark.parametrize("group", list(CLASS_GROUPS))
def test_the_early_cue_hints_at_the_class_before_the_divergence(group):
    names = CLASS_GROUPS[group]
    plain = {name: make_clip(21, 4, name, 48, (40, 60), early_cue=0.0) for name in names}
    cued = {name: make_clip(21, 4, name, 48, (40, 60), early_cue=0.5) for name in names}
    d = plain[names[0]].divergence
    start = plain[names[0]].action_start
    for name in names:
        assert cued[name].divergence == d and cued[name].action_start == start
        # the scene and the idle lead-in are untouched; only the figures' prefix moves
        assert cued[name].keypoints[: start + 1].tobytes() == plain[name].keypoints[: start + 1].tobytes()
    # the middle class of a group carries no cue, so its clip is the one without a cue
    middle = names[1]
    assert cued[middle].keypoints.tobytes() == plain[middle].keypoints.tobytes()
    for name in (names[0], names[2]):
        moved = np.abs(cued[name].keypoints[:d, :, :, :2] - plain[name].keypoints[:d, :, :, :2]).max()
        assert 0.2 < moved < 0.05 * 48, name  # visible, but a small part of the frame
    # the two outer classes lean opposite ways, so they differ more than either does from the middle
    outer = np.abs(cued[names[0]].keypoints[:d] - cued[names[2]].keypoints[:d]).max()
    inner = np.abs(cued[names[0]].keypoints[:d] - cued[middle].keypoints[:d]).max()
    assert outer > inner > 0
