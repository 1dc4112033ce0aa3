"""The data package is runtime code: it must import and generate without torch."""

from __future__ import annotations

from tests.torchless import run_without_torch


def test_data_modules_import_and_render_without_torch():
    result = run_without_torch(
        """
        import sys
        import edgeact.data
        import edgeact.data.baseline, edgeact.data.sampling, edgeact.data.synth
        from edgeact.data.synth_clip import make_clip
        assert make_clip(0, 0, "clap", 32, (16, 16)).frames.shape == (16, 32, 32, 3)
        """
    )
    assert result.returncode == 0, result.stderr
