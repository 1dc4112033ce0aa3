"""generate() rejects bad arguments with exact sentences and never leaves a half-written dataset."""

from __future__ import annotations

import json
import os
import re

import pytest

from edgeact.data import open_dataset
from edgeact.data import synth as synth_module
from edgeact.data.synth import CLASS_NAMES, generate
from edgeact.errors import DatasetError, InputError, InputTypeError

FAST = dict(size=32, frame_range=(16, 20), workers=1)
VALID = ", ".join(CLASS_NAMES)


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(classes=["clapp"]), InputError,
         f"Unknown class 'clapp'; did you mean 'clap'? Valid classes: {VALID}."),
        (dict(classes=["xyzzy"]), InputError, f"Unknown class 'xyzzy'. Valid classes: {VALID}."),
        (dict(classes="clap"), InputTypeError,
         "classes must be a list of class names, not one string; use ['clap']."),
        (dict(classes=[]), InputError, "classes must name at least one class; got an empty list."),
        (dict(classes=["clap", "hug", "clap"]), InputError, "classes lists 'clap' more than once."),
        (dict(num_clips=11), InputError,
         "num_clips must be at least the number of classes (12) so every class appears; got 11."),
        (dict(num_clips=12.0), InputTypeError, "num_clips must be an int; got float."),
        (dict(size=31), InputError, "size must be at least 32 pixels; got 31."),
        (dict(size=True), InputTypeError, "size must be an int; got bool."),
        (dict(seed=-1), InputError, "seed must be at least 0; got -1."),
        (dict(progress="bar"), InputTypeError,
         "progress must be a callable progress(done, total) or None; got str."),
        (dict(splits=(0.8, 0.1, 0.2)), InputError,
         "splits must be three fractions (train, val, test) >= 0 that sum to 1; got (0.8, 0.1, 0.2)."),
        (dict(frame_range=(40, 20)), InputError,
         "frame_range must be (min, max) frame counts with 16 <= min <= max; got (40, 20)."),
        (dict(fps=0), InputError, "fps must be a positive number; got 0."),
        (dict(early_cue=1.5), InputError, "early_cue must be a number from 0 to 1; got 1.5."),
        (dict(early_cue=float("nan")), InputError, "early_cue must be a number from 0 to 1; got nan."),
        (dict(early_cue="0.5"), InputError, "early_cue must be a number from 0 to 1; got '0.5'."),
        (dict(codec="mjpeg"), InputError,
         "Unknown codec 'mjpeg'; did you mean 'mjpg'? Valid codecs: mjpg, ffv1."),
        (dict(workers=0), InputError, "workers must be at least 1; got 0."),
    ],
)  # fmt: skip
def test_bad_arguments(tmp_path, kwargs, error, message):
    args = dict(FAST, num_clips=12) | kwargs
    with pytest.raises(error, match=_exact(message)):
        generate(tmp_path / "ds", **args)
    assert os.listdir(tmp_path) == []


def test_a_subset_of_classes_keeps_the_given_order(tmp_path):
    path = generate(tmp_path / "ds", 4, classes=["jump", "clap"], **FAST)
    ds = open_dataset(path)
    assert ds.classes == ["jump", "clap"]
    assert ds.groups == {"raise_arms": ["clap"], "lower_body": ["jump"]}
    assert {c.label_name for s in ("train", "val", "test") for c in ds.split(s)} == {"jump", "clap"}


def test_existing_non_empty_directory_needs_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    exists = f"{out} already exists and is not empty; pass overwrite=True (edgeact data synth --overwrite) to replace it."
    with pytest.raises(DatasetError, match=_exact(exists)):
        generate(out, 12, **FAST)
    refusing = (
        f"Refusing to overwrite {out}: it is not empty and has no manifest.json, "
        "so it is not a dataset this generator wrote."
    )
    with pytest.raises(DatasetError, match=_exact(refusing)):
        generate(out, 12, overwrite=True, **FAST)
    assert sorted(os.listdir(tmp_path)) == ["ds"] and os.listdir(out) == ["notes.txt"]


def test_an_empty_directory_is_filled(tmp_path):
    (tmp_path / "ds").mkdir()
    generate(tmp_path / "ds", 12, **FAST)
    assert (tmp_path / "ds" / "manifest.json").is_file()
    assert os.listdir(tmp_path) == ["ds"]


def test_overwrite_replaces_a_dataset(tmp_path):
    out = generate(tmp_path / "ds", 12, seed=1, **FAST)
    generate(out, 12, seed=2, overwrite=True, **FAST)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    assert os.listdir(tmp_path) == ["ds"]


def test_a_file_where_the_parent_should_be(tmp_path):
    (tmp_path / "file").write_text("")
    message = f"Cannot write to {tmp_path / 'file'}: it is not a directory."
    with pytest.raises(DatasetError, match=_exact(message)):
        generate(tmp_path / "file" / "ds", 12, **FAST)
    assert os.listdir(tmp_path) == ["file"]


def test_out_dir_must_be_a_path(tmp_path):
    with pytest.raises(InputTypeError, match=_exact("out_dir must be a path (str or os.PathLike); got NoneType.")):
        generate(None, 12, **FAST)


def test_the_output_path_is_a_file(tmp_path):
    (tmp_path / "ds").write_text("")
    with pytest.raises(DatasetError, match=_exact(f"{tmp_path / 'ds'} exists and is not a directory.")):
        generate(tmp_path / "ds", 12, **FAST)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only directories")
def test_non_writable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(DatasetError, match=_exact(f"Cannot write to {locked}: Permission denied.")):
            generate(locked / "ds", 12, **FAST)
    finally:
        locked.chmod(0o700)
    assert os.listdir(locked) == []


def test_non_writable_directory_as_the_os_reports_it(tmp_path, monkeypatch):
    # Runs even as root (where chmod cannot lock a directory): the OS error is translated.
    real_mkdir = type(tmp_path).mkdir

    def refuse(self, *args, **kwargs):
        if self.parent == tmp_path and self.name.startswith(".ds.tmp-"):
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    with pytest.raises(DatasetError, match=_exact(f"Cannot write to {tmp_path}: Permission denied.")):
        generate(tmp_path / "ds", 12, **FAST)
    assert os.listdir(tmp_path) == []


def _failing_after(monkeypatch, n: int, error: BaseException) -> None:
    real = synth_module.make_clip
    calls = []

    def make_clip(*args, **kwargs):
        calls.append(1)
        if len(calls) > n:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_module, "make_clip", make_clip)


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch, error):
    _failing_after(monkeypatch, 5, error)
    with pytest.raises(type(error)):
        generate(tmp_path / "a" / "b" / "ds", 12, **FAST)
    assert os.listdir(tmp_path) == []  # the temporary directory and the created parents are gone


def test_failed_overwrite_keeps_the_old_dataset(tmp_path, monkeypatch):
    out = generate(tmp_path / "ds", 12, seed=1, **FAST)
    before = sorted(p.name for p in (out / "train").iterdir())
    _failing_after(monkeypatch, 3, RuntimeError("disk on fire"))
    with pytest.raises(RuntimeError):
        generate(out, 12, seed=2, overwrite=True, **FAST)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert sorted(p.name for p in (out / "train").iterdir()) == before
    assert os.listdir(tmp_path) == ["ds"]


def test_interrupt_while_workers_run_leaves_nothing_behind(tmp_path):
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "ds", 24, size=32, frame_range=(16, 20), workers=2, progress=progress)
    assert seen == [(1, 24), (2, 24), (3, 24)]
    assert os.listdir(tmp_path) == []


def test_progress_reports_every_clip(tmp_path):
    seen = []
    generate(tmp_path / "ds", 12, progress=lambda done, total: seen.append((done, total)), **FAST)
    assert seen == [(i, 12) for i in range(1, 13)]


def test_a_directory_that_appears_meanwhile_is_not_replaced(tmp_path):
    out = tmp_path / "ds"

    def intrude(done, total):
        if done == 1:
            out.mkdir()
            (out / "notes.txt").write_text("mine")

    message = f"Cannot move the finished dataset to {out}: Directory not empty."
    with pytest.raises(DatasetError, match=_exact(message)):
        generate(out, 12, progress=intrude, **FAST)
    assert os.listdir(tmp_path) == ["ds"] and os.listdir(out) == ["notes.txt"]
