"""The demo: its streaming part (per-clip decisions, accuracy per ratio, the annotated video) and
what it shows while it trains, on a terminal and off one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from edgeact import demo
from edgeact.cli import main


def test_demo_streams_and_draws(tiny_artifacts, synth_dir, tmp_path, capsys):
    video = tmp_path / "demo.avi"
    results = demo.run(tiny_artifacts["fusion"]["onnx"], synth_dir, threshold=0.15, video=video, max_clips=2)
    out = capsys.readouterr().out
    assert len(results) == 2
    assert all(set(r.at_ratio) == set(demo.RATIOS) for r in results)
    assert "top-1 accuracy by observation ratio: 0.1:" in out
    assert results[0].clip_id in out
    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = capture.read()
    capture.release()
    assert ok and frames == sum(r.num_frames for r in results)
    assert frame.shape[1] == 64 * 3 + demo.PANEL


def test_demo_cli_with_a_given_model(tiny_artifacts, synth_dir, tmp_path, capsys):
    code = main(["demo", "--model", str(tiny_artifacts["pose"]["onnx"]), "--data", str(synth_dir),
                 "--out", str(tmp_path), "--max-clips", "1", "--no-video"])
    assert code == 0
    assert "[4/4] streaming test clips" in capsys.readouterr().out
    assert not (tmp_path / "demo.avi").exists()


def test_the_demo_config_is_found_and_a_missing_one_named():
    from edgeact.demo import bundled_config
    from edgeact.errors import ConfigError

    path = bundled_config("synth_pose.yaml")
    assert path.read_text() == (Path(__file__).parent.parent / "configs" / "synth_pose.yaml").read_text()
    with pytest.raises(ConfigError, match=r"^Config 'nope\.yaml' is not installed with edgeact \(looked in .*\); "
                                          r"reinstall edgeact or pass --model\.$"):
        bundled_config("nope.yaml")


# The trainer's lines, as regular expressions (numbers vary). E = epochs of each stage.
def _stage_start(stage: str, epochs: int) -> str:
    projection = r", feature-KD projection \d+ params" if stage == "student" else ""
    return rf"{stage}: pose\+lstm, \d+ params{projection}; {epochs} epochs on \d+ training clips, 1 rank"


def _stage_done(stage: str, epochs: int) -> str:
    return rf"{stage}: done in \d+ s, val AUC \d\.\d{{4}} \(epoch \d+/{epochs}\)"


def _epoch(stage: str, epoch: int, epochs: int) -> str:
    left = r", ~\d+s left" if epoch < epochs else ""
    return (rf"{stage} epoch {epoch}/{epochs}: (\w+=\d+\.\d{{4}} )+train_acc=\d\.\d{{3}} val_auc=\d\.\d{{4}} "
            rf"val_acc@r=\[[\d. ]+\] lr=\S+ \d+\.\ds{left}")


_TEST_RESULT = r"test: student AUC \d\.\d{4}, accuracy \[[\d. ]+\]; teacher \(offline\) AUC \d\.\d{4}"


def _assert_lines(lines: list[str], patterns: list[str]) -> None:
    assert len(lines) == len(patterns), "\n".join(lines)
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}"


def test_demo_off_a_terminal_prints_a_line_per_stage(tmp_path):
    """A CI log of the whole demo: stdout and stderr into one pipe, read in the order written."""
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "edgeact.cli", "demo", "--out", str(out), "--clips", "24", "--epochs", "2",
         "--max-clips", "1", "--no-video"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, timeout=300,
        # stdout to a pipe is block-buffered unless PYTHONUNBUFFERED is set (as it is on some machines)
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-3000:]
    run_dir = out / "run"
    expected = [
        re.escape(f"[1/4] generating 24 synthetic clips into {out / 'data'}"),
        re.escape("rendering clips: 24/24"),
        re.escape(f"[2/4] training teacher (2 epochs) and student (2 epochs), synth_pose.yaml, into {run_dir}"),
        _stage_start("teacher", 2),
        _stage_done("teacher", 2),
        _stage_start("student", 2),
        _stage_done("student", 2),
        _TEST_RESULT,
        r"      trained in \d+ s; metrics in " + re.escape(str(run_dir / "metrics.json")),
        re.escape(f"[3/4] exported {run_dir / 'student.onnx'}: ") + ".+",
        re.escape(f"[4/4] streaming test clips through {run_dir / 'student.onnx'}"),
        r"streamed \d+ frames of 1 clips through onnxruntime in .+",
    ]
    _assert_lines(run.stdout.splitlines()[:len(expected)], expected)
    # the epochs' lines went to the run's log only
    log = (run_dir / "train.log").read_text()
    assert all(f"{stage} epoch {e}/2: " in log for stage in ("teacher", "student") for e in (1, 2))


def test_demo_training_on_a_terminal_shows_every_epoch(synth_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # capsys's stream: a terminal to the trainer
    run_dir = tmp_path / "run"
    assert demo.train_and_export(synth_dir, run_dir, epochs=2) == run_dir / "student.onnx"
    captured = capsys.readouterr()
    # what the terminal keeps: the text after each line's last carriage return (a bar redraws in place)
    shown = [line.split("\r")[-1] for line in captured.err.split("\n")]
    _assert_lines([line for line in shown if line], [
        _stage_start("teacher", 2), _epoch("teacher", 1, 2), _epoch("teacher", 2, 2), _stage_done("teacher", 2),
        _stage_start("student", 2), _epoch("student", 1, 2), _epoch("student", 2, 2), _stage_done("student", 2),
        _TEST_RESULT,
    ])
    bars = {part.split(":")[0] for part in captured.err.split("\r") if re.match(r"\w+ \d/2: +\d+%\|", part)}
    assert bars == {"teacher 1/2", "teacher 2/2", "student 1/2", "student 2/2"}
    _assert_lines(captured.out.splitlines(), [
        re.escape(f"[2/4] training teacher (2 epochs) and student (2 epochs), synth_pose.yaml, into {run_dir}"),
        r"      trained in \d+ s; metrics in " + re.escape(str(run_dir / "metrics.json")),
        re.escape(f"[3/4] exported {run_dir / 'student.onnx'}: ") + ".+",
    ])


def test_demo_quiet_shows_no_progress_even_on_a_terminal(synth_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code = main(["demo", "--data", str(synth_dir), "--out", str(tmp_path), "--epochs", "1", "--max-clips", "1",
                 "--no-video", "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert [line[:5] for line in captured.out.splitlines() if line.startswith("[")] == [
        "[2/4]", "[3/4]", "[4/4]"]
    assert "student epoch 1/1: " in (tmp_path / "run" / "train.log").read_text()


def test_summary_totals_with_and_without_decisions():
    from edgeact.demo import ClipResult, summarise

    undecided = ClipResult("c0", "wave", 40, None, None, "clap", {})
    right = ClipResult("c1", "wave", 40, "wave", 10, "wave", {1.0: True})
    wrong = ClipResult("c2", "clap", 40, "wave", 30, "wave", {1.0: False})
    assert summarise([undecided]).splitlines()[-2] == "0/1 clips decided early"
    assert summarise([undecided, right, wrong]).splitlines()[-2] == (
        "2/3 clips decided early, 1/2 of them right; median decision after 50% of the clip")
