"""End to end on a tiny generated dataset: every output of a run, resume, eval on two backends."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgeact.backends import load_backend
from edgeact.checkpoint import load_checkpoint
from edgeact.data import open_dataset
from edgeact.data.clip_store import ClipStore
from edgeact.data.sampling import Sampling
from edgeact.errors import ConfigError, ModelFormatError
from edgeact.evaluation import RATIOS, evaluate_stream
from edgeact.export import export_onnx
from edgeact.parity import ParityCheck, float64_twin
from edgeact.train import evaluate_offline, load_config, train
from edgeact.train.trainer import _duration, _time_left

from .conftest import TINY_POSE, edgeact, write_config


def check_metrics_schema(metrics: dict, num_classes: int) -> None:
    assert metrics["ratios"] == list(RATIOS)
    assert len(metrics["accuracy"]) == 10 and all(0.0 <= a <= 1.0 for a in metrics["accuracy"])
    assert metrics["auc"] == pytest.approx(np.mean(metrics["accuracy"]))
    assert metrics["num_clips"] > 0
    assert len(metrics["per_class"]) == num_classes
    counted = sum(c["num_clips"] for c in metrics["per_class"].values())
    assert counted == metrics["num_clips"]


def test_run_writes_every_output(fusion_run, tiny_data):
    classes = open_dataset(tiny_data).classes
    for name in ("student.pt", "teacher.pt", "last.pt", "metrics.json", "train.log", "accuracy.png"):
        assert (fusion_run / name).is_file(), name
    assert (fusion_run / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = (fusion_run / "train.log").read_text()
    assert "teacher epoch 1/1" in log and "student epoch 1/1" in log and "feature_kd=" in log
    assert "feature_kd_stage1=" in log and "cls_stage1=" in log  # both M1 stages are trained

    metrics = json.loads((fusion_run / "metrics.json").read_text())
    check_metrics_schema(metrics, len(classes))
    check_metrics_schema(metrics["teacher"], len(classes))
    assert metrics["backend"] == "torch" and metrics["split"] == "test"
    assert set(metrics["train"]["seconds"]) == {"teacher", "student", "test_eval"}

    student, payload = load_checkpoint(fusion_run / "student.pt")
    assert student.is_streamable and payload["classes"] == classes
    assert payload["spec"]["stride"] == 2  # trained on every 2nd frame: the Predictor steps the same way
    assert tuple(payload["spec"]["frames"]["size"]) == (32, 32)
    assert payload["train"]["config"]["student"]["losses"]["feature_kd"]["weight"] == 1.0
    assert not any(k.startswith("projection") for k in payload["state_dict"])  # KD-only parts stay behind
    teacher, payload = load_checkpoint(fusion_run / "teacher.pt")
    assert not teacher.is_streamable and payload["spec"] is None


def test_eval_torch_equals_onnxruntime(fusion_run, tiny_data, tmp_path):
    onnx_path = export_onnx(fusion_run / "student.pt", tmp_path / "student.onnx").path
    outputs = {}
    for backend, model in (("torch", fusion_run / "student.pt"), ("onnxruntime", onnx_path)):
        out = tmp_path / f"{backend}.json"
        assert edgeact("eval", "--model", model, "--data", tiny_data, "--split", "test", "--out", out,
                       "--backend", backend, "--quiet", "--batch-size", "2") == 0
        outputs[backend] = json.loads(out.read_text())
    torch_metrics, ort_metrics = outputs["torch"], outputs["onnxruntime"]
    check_metrics_schema(torch_metrics, len(open_dataset(tiny_data).classes))
    assert ort_metrics["backend"] == "onnxruntime"
    for key in ("accuracy", "auc", "num_clips", "per_class"):
        assert ort_metrics[key] == torch_metrics[key], key
    # the run's own report used the same streaming path
    assert json.loads((fusion_run / "metrics.json").read_text())["accuracy"] == torch_metrics["accuracy"]

    # and the logits behind them agree closely, not just their argmax
    dataset = open_dataset(tiny_data)
    logits = []
    for model in (fusion_run / "student.pt", onnx_path):
        backend = load_backend(model)
        store = ClipStore(dataset.split("test"), keypoint_spec=backend.spec.keypoints)
        logits.append(evaluate_stream(backend, store, dataset.classes, Sampling(stride=2), batch_size=3).logits)
    check = _against_float64(fusion_run / "student.pt", store, backend.spec, dataset.classes, *logits)
    assert check.ok, check.summary()


def _against_float64(checkpoint, store, spec, classes, reference, candidate) -> ParityCheck:
    """edgeact.parity's rule per observation ratio, the float64 twin's offline forward as the exact result."""
    exact = evaluate_offline(float64_twin(load_checkpoint(checkpoint)[0]), store, spec, classes, Sampling(stride=2),
                             batch_size=4).logits
    check = ParityCheck()
    for r in range(exact.shape[1]):
        check.update(r, "logits", exact[:, r], reference[:, r], candidate[:, r])
    return check


def test_eval_per_clip_lists_every_clip_consistently(fusion_run, tiny_data, tmp_path):
    out = tmp_path / "per_clip.json"
    assert edgeact("eval", "--model", fusion_run / "student.pt", "--data", tiny_data, "--out", out,
                   "--quiet", "--per-clip") == 0
    metrics = json.loads(out.read_text())
    clips = metrics["clips"]
    assert [c["id"] for c in clips] == [c.clip_id for c in open_dataset(tiny_data).split("test")]
    assert len(clips) == metrics["num_clips"]
    correct = np.array([[p == c["label"] for p in c["predictions"]] for c in clips])  # [N,R]
    np.testing.assert_allclose(correct.mean(0), metrics["accuracy"], rtol=0, atol=1e-12)


def test_streaming_evaluation_equals_offline(fusion_run, tiny_data):
    dataset = open_dataset(tiny_data)
    backend = load_backend(fusion_run / "student.pt", backend="torch")
    model, _ = load_checkpoint(fusion_run / "student.pt")
    store = ClipStore(dataset.split("val"), keypoint_spec=backend.spec.keypoints)
    stream = evaluate_stream(backend, store, dataset.classes, Sampling(stride=2), batch_size=2)
    offline = evaluate_offline(model, store, backend.spec, dataset.classes, Sampling(stride=2), batch_size=4)
    check = _against_float64(fusion_run / "student.pt", store, backend.spec, dataset.classes, offline.logits,
                             stream.logits)
    assert check.ok, check.summary()


def test_eval_rejects_a_teacher(fusion_run, tiny_data):
    with pytest.raises(ModelFormatError, match="offline-only"):
        edgeact("eval", "--model", fusion_run / "teacher.pt", "--data", tiny_data, "--quiet")


def test_resume_continues_exactly(tiny_data, tmp_path):
    config = write_config(tmp_path / "pose.yaml", TINY_POSE)
    cfg = load_config(config)
    straight = train(cfg, tiny_data, tmp_path / "straight", quiet=True)

    # stop after the teacher's 2 epochs and the student's first, then resume from the command line
    assert train(cfg, tiny_data, tmp_path / "resumed", quiet=True, stop_after=3) is None
    state = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert (state["stage"], state["epoch"]) == ("student", 1) and "teacher" in state["done"]
    assert not (tmp_path / "resumed" / "student.pt").exists()
    assert edgeact("train", "--data", tiny_data, "--out", tmp_path / "resumed", "--resume", "--quiet") == 0
    assert "resuming student at epoch 2/2" in (tmp_path / "resumed" / "train.log").read_text()

    a, _ = load_checkpoint(tmp_path / "straight" / "student.pt")
    b, _ = load_checkpoint(tmp_path / "resumed" / "student.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert resumed["accuracy"] == straight["accuracy"]
    assert [r["loss_total"] for r in resumed["train"]["student"]["history"]] == [
        r["loss_total"] for r in straight["train"]["student"]["history"]]


def test_progress_stages_shows_each_stage_and_logs_every_epoch(tiny_data, tmp_path, capsys):
    cfg = load_config(write_config(tmp_path / "pose.yaml", TINY_POSE))
    train(cfg, tiny_data, tmp_path / "run", progress="stages")
    shown = [re.sub(r"\d+(\.\d+)?", "N", line) for line in capsys.readouterr().err.splitlines()]
    assert shown == [
        "teacher: pose+gru, N params; N epochs on N training clips, N rank",
        "teacher: done in N s, val AUC N (epoch N/N)",
        "student: pose+gru, N params; N epochs on N training clips, N rank",
        "student: done in N s, val AUC N (epoch N/N)",
        "test: student AUC N, accuracy [N N N N N N N N N N]; teacher (offline) AUC N",
    ]
    log = (tmp_path / "run" / "train.log").read_text()
    assert [line.split(": ")[0].split(" ", 2)[2] for line in log.splitlines()] == [
        "teacher", "teacher epoch 1/2", "teacher epoch 2/2", "teacher",
        "student", "student epoch 1/2", "student epoch 2/2", "student", "test"]
    with pytest.raises(ValueError, match="progress must be one of epochs, stages, got 'bars'"):
        train(cfg, tiny_data, tmp_path / "other", progress="bars")


def test_time_left_is_the_mean_epoch_time_so_far_without_the_frame_warmup():
    assert _time_left({"epoch": 2, "elapsed": 10.0}, 5) == pytest.approx(15.0)
    warmed = {"epoch": 2, "elapsed": 30.0, "frame_warmup": [{"seconds": 5.0}, {"seconds": 20.0}]}
    assert _time_left(warmed, 5) == pytest.approx(15.0)
    assert _time_left({"epoch": 5, "elapsed": 10.0}, 5) is None
    assert [_duration(s) for s in (0.4, 59.4, 61, 3599, 3720)] == ["0s", "59s", "1m01s", "59m59s", "1h02m"]


def test_resume_refuses_a_different_config(tiny_data, tmp_path):
    config = write_config(tmp_path / "pose.yaml", {**TINY_POSE, "teacher": None,
                                                   "student": {**TINY_POSE["student"], "losses": {}}})
    train(load_config(config), tiny_data, tmp_path / "run", quiet=True, stop_after=1)
    with pytest.raises(ConfigError, match="the config differs from the run's at 'student.epochs'"):
        edgeact("train", "--data", tiny_data, "--out", tmp_path / "run", "--resume", "--set", "student.epochs=5")
    with pytest.raises(ModelFormatError, match="does not exist"):
        edgeact("train", "--data", tiny_data, "--out", tmp_path / "nothing", "--resume")


def test_resume_accepts_a_run_saved_before_a_defaulted_field_existed(tiny_data, tmp_path):
    config = write_config(tmp_path / "pose.yaml", {**TINY_POSE, "teacher": None,
                                                   "student": {**TINY_POSE["student"], "losses": {}}})
    train(load_config(config), tiny_data, tmp_path / "run", quiet=True, stop_after=1)
    last = tmp_path / "run" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["config"]["data"]["sampling"]["speed"]  # as written by an edgeact without Sampling.speed
    torch.save(state, last)
    metrics = train(load_config(config), tiny_data, tmp_path / "run", quiet=True, resume=True)
    assert metrics["train"]["student"]["epochs"] == TINY_POSE["student"]["epochs"]
    with pytest.raises(ConfigError, match="the config differs from the run's at 'student.epochs'"):
        edgeact("train", "--config", config, "--data", tiny_data, "--out", tmp_path / "run", "--resume",
                "--set", "student.epochs=7")


def test_num_classes_must_match_the_dataset(tiny_data, tmp_path):
    config = write_config(tmp_path / "pose.yaml", TINY_POSE)
    with pytest.raises(ConfigError, match=r"student.model.num_classes is 5 but the dataset has 12 classes"):
        edgeact("train", "--config", config, "--data", tiny_data, "--out", tmp_path / "run",
                "--set", "student.model.num_classes=5", "--set", "teacher=null", "--set", "student.losses={}")


def test_batch_size_is_global_and_must_divide_among_the_ranks(tiny_data, tmp_path, monkeypatch):
    from edgeact.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module.Dist, "from_env", classmethod(lambda cls: cls(world=3, rank=0)))
    cfg = load_config(write_config(tmp_path / "pose.yaml", TINY_POSE))  # batch_size 4
    with pytest.raises(ConfigError, match=r"teacher.batch_size 4 is the batch over all 3 processes and must divide "
                                          r"among them; use a multiple of 3\."):
        trainer_module.Trainer(cfg, tiny_data, tmp_path / "run", quiet=True)


@pytest.mark.slow
def test_runs_under_torchrun_with_two_ranks(tiny_data, tmp_path):
    """DDP on CPU (gloo): two processes, one shard each, only rank 0 writes."""
    config = write_config(tmp_path / "pose.yaml", TINY_POSE)
    script = tmp_path / "edgeact_train.py"
    script.write_text("import argparse, sys\nfrom edgeact.train.cli import register\n"
                      "p = argparse.ArgumentParser()\nregister(p.add_subparsers(dest='command', required=True))\n"
                      "a = p.parse_args()\nsys.exit(a.func(a))\n")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         str(script), "train", "--config", str(config), "--data", str(tiny_data), "--out", str(tmp_path / "run"),
         "--threads", "1", "--quiet"], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("student epoch 2/2") == 1 and "2 ranks" in log  # one writer
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    check_metrics_schema(metrics, len(open_dataset(tiny_data).classes))
    model, _ = load_checkpoint(tmp_path / "run" / "student.pt")
    assert model.is_streamable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_best_epoch_selection_needs_validation_clips(tmp_path):
    """With no 'val' clips the validation AUC is NaN and epoch 1 used to be kept silently."""
    from edgeact.data.synth import generate

    data = generate(tmp_path / "noval", 12, seed=2, size=32, frame_range=(16, 20), splits=(0.75, 0.0, 0.25), workers=1)
    cfg = load_config(write_config(tmp_path / "pose.yaml", TINY_POSE))
    with pytest.raises(ConfigError, match=re.escape(
            f"{data} has no clips in its 'val' split, so teacher.select: best has nothing to choose the epoch by; "
            "set teacher.select: last, or give the dataset a 'val' split.")):
        train(cfg, data, tmp_path / "run", quiet=True)
