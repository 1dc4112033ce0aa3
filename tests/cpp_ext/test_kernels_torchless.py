"""edgeact.kernels works where torch cannot be imported (a lean Jetson image)."""

from __future__ import annotations

from tests.torchless import run_without_torch


def test_kernels_run_without_torch():
    result = run_without_torch(
        """
        import numpy as np
        from edgeact import kernels
        lstm = kernels.LSTM([np.ones((8, 3))], [np.ones((8, 2))], threads=2)
        h, c = lstm.zero_state(1)
        lstm.step(np.ones((1, 3), np.float32), h, c)
        assert np.isfinite(h).all() and h.any()
        x = np.ones((1, 8, 2, 2), np.float32)
        kernels.temporal_shift_online_(x, kernels.zero_shift_cache(x, 1), 1)
        assert not x[:, 0].any()
        """
    )
    assert result.returncode == 0, result.stderr
