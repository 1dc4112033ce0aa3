"""Training killed mid-run (SIGKILL, no chance to clean up) and resumed with --resume reaches the
same final weights as a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgeact.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _config(tmp_path):
    import yaml

    from tests.train.conftest import TINY_POSE

    config = {**TINY_POSE, "teacher": None,
              "student": {**TINY_POSE["student"], "epochs": 8, "losses": {}}}
    path = tmp_path / "pose.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train(*args):
    return [sys.executable, "-m", "edgeact", "train", *map(str, args), "--quiet", "--threads", "1"]


def test_kill_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    from edgeact.data.synth import generate

    data = generate(tmp_path / "data", 24, seed=5, size=64, frame_range=(16, 24), workers=1)
    config = _config(tmp_path)
    subprocess.run(_train("--config", config, "--data", data, "--out", tmp_path / "straight"), check=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train("--config", config, "--data", data, "--out", killed))
    log = killed / "train.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once the third epoch is under way
        if log.exists() and "student epoch 2/8" in log.read_text():
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "student.pt").exists()
    state = torch.load(killed / "last.pt", weights_only=True)  # the last save is whole
    assert 2 <= state["epoch"] < 8

    subprocess.run(_train("--data", data, "--out", killed, "--resume"), check=True)
    a, _ = load_checkpoint(tmp_path / "straight" / "student.pt")
    b, _ = load_checkpoint(killed / "student.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_a_second_train_into_a_busy_run_directory_is_refused(tmp_path):
    from edgeact.errors import ConfigError
    from edgeact.train.config import load_config
    from edgeact.train.trainer import _lock_run, train

    out = tmp_path / "run"
    out.mkdir()
    held = _lock_run(out)  # what a running `edgeact train` holds
    try:
        with pytest.raises(ConfigError, match=rf"{out} is in use by another edgeact train \(pid {os.getpid()}\)"):
            train(load_config(_config(tmp_path)), tmp_path / "no-data-needed", out, quiet=True)
        assert not (out / "train.log").exists()  # refused before touching the run's files
    finally:
        held.close()
    again = _lock_run(out)  # released: the next run may start
    again.close()
