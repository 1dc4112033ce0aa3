"""Small generated datasets shared by the data tests (generated once per session)."""

from __future__ import annotations

import pytest

from edgeact.data.synth import generate

SMALL = dict(num_clips=24, size=64, frame_range=(32, 48))


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """24 clips of 32-48 frames at 64x64, seed 7, rendered by two worker processes."""
    return generate(tmp_path_factory.mktemp("synth") / "w2", seed=7, workers=2, **SMALL)


@pytest.fixture(scope="session")
def small_dataset_one_worker(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "w1", seed=7, workers=1, **SMALL)


@pytest.fixture(scope="session")
def small_dataset_other_seed(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "s8", seed=8, workers=2, **SMALL)
