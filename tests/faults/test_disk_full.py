"""A disk that fills while edgeact writes: the error surfaces, and nothing half-written is left
under the target name (each writer builds in a temporary name and renames when complete)."""

from __future__ import annotations

import errno

import pytest


def test_export_leaves_no_file_when_the_disk_fills(tiny_artifacts, tmp_path, monkeypatch):
    import onnx

    from edgeact.export import export_onnx

    out = tmp_path / "student.onnx"
    real_save = onnx.save

    def save(proto, path, *args, **kwargs):  # the final metadata write runs out of space half-way
        with open(path, "wb") as f:
            f.write(proto.SerializeToString()[:1000])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(onnx, "save", save)
    with pytest.raises(OSError) as caught:
        export_onnx(tiny_artifacts["pose"]["pt"], out, verify_steps=2)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # neither student.onnx nor its .tmp
    monkeypatch.setattr(onnx, "save", real_save)
    assert export_onnx(tiny_artifacts["pose"]["pt"], out, verify_steps=2).path == out  # the next try works


def test_synth_leaves_no_dataset_when_the_disk_fills(tmp_path, monkeypatch):
    import pathlib

    from edgeact.data.synth import generate

    out = tmp_path / "data" / "synth"
    real = pathlib.Path.write_text
    monkeypatch.setattr(pathlib.Path, "write_text", lambda self, *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", str(self))) if self.name == "manifest.json" else real(self, *a, **k))
    with pytest.raises(OSError) as caught:
        generate(out, 12, seed=1, size=32, frame_range=(16, 18), workers=1)
    assert caught.value.errno == errno.ENOSPC
    assert not out.exists() and not (tmp_path / "data").exists()  # the parent it created is gone too
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_save_leaves_the_old_file_when_the_disk_fills(tiny_artifacts, tmp_path, monkeypatch):
    import shutil

    import torch

    from edgeact.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "student.pt"
    shutil.copy(tiny_artifacts["pose"]["pt"], path)
    before = path.read_bytes()
    model, payload = load_checkpoint(path)
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as handle:
            handle.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError):
        save_checkpoint(path, model, payload["classes"])
    assert path.read_bytes() == before  # the old checkpoint is intact
    monkeypatch.undo()
    load_checkpoint(path)
