"""The demo: its streaming part (per-clip decisions, accuracy per ratio, the annotated video),
what it shows while it trains, on a terminal and off one, and real footage (--source) through a
pose model with a pose estimator (--pose)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeact import Predictor, demo
from edgeact.cli import main
from edgeact.predictor import DecisionPolicy

from tests.pose.fakes import FakePoseProvider, register_fake

MOVENET = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "movenet_single_pose_lightning_ptq.tflite"


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


# --- real footage: --source VIDEO|CAMERA through a pose model, keypoints from --pose ----------
def _write_video(path: Path, frames, fps: float = 15.0) -> Path:
    from edgeact.data.video import CODECS, write_video

    write_video(path, np.stack(frames), fps=fps, codec=CODECS["mjpg"])
    return path


def _source_video(synth_dir, tmp_path) -> Path:
    """A short video of real (synthetic) footage: two test clips of rendered figures, back to back."""
    from tests.streaming import clips

    return _write_video(tmp_path / "footage.avi", [f for clip in clips(synth_dir, 2) for f in clip.frames()])


def _expected_decisions(model, video: Path, pose, threshold: float) -> list[tuple[int, str]]:
    """What the demo should decide: the decoded frames pushed one by one, the stream reset after
    each decision."""
    from edgeact.data.video import read_video

    decisions = []
    with Predictor(model, pose=pose, policy=DecisionPolicy(threshold=threshold, consecutive=3)) as p:
        for n, frame in enumerate(read_video(video), start=1):
            pred = p.push(frame)
            if pred.decided:
                decisions.append((n, pred.decision_label))
                p.reset()
    return decisions


def test_demo_streams_a_video_through_a_pose_model_with_a_fake_estimator(tiny_artifacts, synth_dir, tmp_path,
                                                                          capsys, monkeypatch):
    video = _source_video(synth_dir, tmp_path)
    frames = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    model = tiny_artifacts["pose"]["onnx"]
    made = register_fake(monkeypatch)
    code = main(["demo", "--model", str(model), "--source", str(video), "--pose", "fake:anywhere",
                 "--out", str(tmp_path / "out"), "--threshold", "0.15"])
    assert code == 0
    (fake,) = made
    assert len(fake.frames) == frames and fake.closes == 1  # every frame, then closed with the Predictor
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"streaming {video} through onnxruntime with pose NamedFake "
                        "(coco17 -> coco18 (neck = mean of l_shoulder, r_shoulder))")
    expected = _expected_decisions(model, video, FakePoseProvider(), 0.15)
    assert expected, "no decision to print: lower the threshold"
    decided = [line for line in lines if line.startswith("frame ")]
    assert len(decided) == len(expected)
    for line, (n, label) in zip(decided, expected):
        assert re.fullmatch(rf"frame {n} \(\d+\.\d s\): {label} \(p=\d\.\d\d\) after \d+ frames of this action",
                            line), line
    summary = lines[len(decided) + 1:]
    assert re.fullmatch(rf"streamed {frames} frames in .+; {len(expected)} decision\(s\)", summary[0])
    assert summary[1] == f"a person seen in {frames}/{frames} frames"
    assert re.fullmatch(r"per frame, median ms: pose [\d.]+, preprocess [\d.]+, inference [\d.]+, "
                        r"postprocess [\d.]+", summary[2])
    assert summary[3] == f"annotated video: {tmp_path / 'out' / 'demo.avi'}"
    written = cv2.VideoCapture(str(tmp_path / "out" / "demo.avi"))
    ok, first = written.read()
    assert ok and int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    assert first.shape == (64 * 5, 64 * 5 + demo.PANEL, 3)  # small footage enlarged to >= 320 px
    written.release()


@pytest.mark.skipif(not MOVENET.is_file(), reason=f"the MoveNet test files are not here ({MOVENET.parent})")
@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason="ai-edge-litert is not installed (pip install 'edgeact[pose]')")
def test_demo_streams_a_video_of_a_real_person_through_movenet(tiny_artifacts, tmp_path, capsys):
    photo = cv2.imread(str(MOVENET.parent / "squat.bmp"))
    # 16 frames of the photo panning slowly: a real person, moving in the frame
    video = _write_video(tmp_path / "squat.avi", [np.ascontiguousarray(photo[5 * t:5 * t + 480, :]) for t in range(16)])
    model = tiny_artifacts["pose"]["onnx"]
    code = main(["demo", "--model", str(model), "--source", str(video), "--pose", f"movenet:{MOVENET}",
                 "--out", str(tmp_path / "out"), "--max-frames", "12", "--threshold", "0.15"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"streaming {video} through onnxruntime with pose MoveNetProvider (coco17 -> coco18 (neck = " \
                       "mean of l_shoulder, r_shoulder))"
    decided = [line for line in lines if line.startswith("frame ")]
    expected = _expected_decisions(model, video, f"movenet:{MOVENET}", 0.15)
    assert [int(line.split()[1]) for line in decided] == [n for n, _ in expected if n <= 12]
    assert re.fullmatch(r"streamed 12 frames in .+", lines[len(decided) + 1])
    assert "a person seen in 12/12 frames" in lines
    written = cv2.VideoCapture(str(tmp_path / "out" / "demo.avi"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, first = written.read()
    written.release()
    assert ok and first.shape == (480, 500 + demo.PANEL, 3)


def test_demo_on_dataset_clips_with_a_pose_estimator(tiny_artifacts, synth_dir, capsys):
    fake = FakePoseProvider()
    results = demo.run(tiny_artifacts["pose"]["onnx"], synth_dir, threshold=0.15, max_clips=2, pose=fake)
    assert len(fake.frames) == sum(r.num_frames for r in results)  # the estimator, not the dataset's keypoints
    assert "top-1 accuracy by observation ratio" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--source", "0"], "--source streams a model you give: add --model MODEL (.onnx, .pt); without --source the "
     "demo trains one on synthetic clips."),
    (["--model", "{pose}", "--source", "{video}"], "{pose} takes keypoints: streaming a --source through it needs a "
     "pose estimator, e.g. --pose movenet:movenet_single_pose_lightning_ptq.tflite (docs/pose.md)."),
    (["--model", "{rgb}", "--source", "no/such.avi"], "--source 'no/such.avi' is neither a camera index (0, 1, ...) "
     "nor a video file."),
    (["--model", "{rgb}", "--source", "{video}", "--max-frames", "0"], "--max-frames must be a positive integer, "
     "got 0."),
    (["--model", "{rgb}", "--source", "{video}", "--pose", "fake:x"], "this model takes no keypoints (frames only), "
     "so pose provider NamedFake has nothing to feed; leave pose= out."),
])
def test_demo_source_errors(args, message, tiny_artifacts, synth_dir, tmp_path, capsys, monkeypatch):
    register_fake(monkeypatch)
    names = {"pose": tiny_artifacts["pose"]["onnx"], "rgb": tiny_artifacts["rgb"]["onnx"],
             "video": _write_video(tmp_path / "v.avi", [np.zeros((32, 32, 3), np.uint8)] * 2)}
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--out", str(tmp_path / "out"), *[a.format(**names) for a in args]])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"edgeact: error: {message.format(**names)}\n"


def test_a_camera_that_cannot_be_opened_is_named():
    from edgeact.errors import DatasetError

    with pytest.raises(DatasetError, match=r"^OpenCV \S+ cannot open camera 97\.$"):
        demo.open_source("97")
