"""The demo's streaming part: per-clip decisions, accuracy per ratio, the annotated video."""

from __future__ import annotations

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
