"""Frame-index helpers: TSN segments, strides, observation cut-offs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeact.data.sampling import observation_cutoff, segment_indices, stride_indices
from edgeact.errors import InputError


def test_segment_centres_when_evaluating():
    idx = segment_indices(10, 5, train=False)
    assert idx.dtype == np.int64
    assert idx.tolist() == [1, 3, 5, 7, 9]


def test_segments_repeat_frames_of_a_short_clip_in_order():
    assert segment_indices(3, 6, train=False).tolist() == [0, 0, 1, 1, 2, 2]


@given(st.integers(1, 500), st.integers(1, 32), st.integers(0, 2**32 - 1))
def test_training_draws_one_frame_inside_each_segment(num_frames, num_segments, seed):
    idx = segment_indices(num_frames, num_segments, train=True, rng=np.random.default_rng(seed))
    assert len(idx) == num_segments
    assert idx.min() >= 0 and idx.max() < num_frames
    edges = np.arange(num_segments + 1) * num_frames / num_segments
    assert np.all(idx >= np.floor(edges[:-1])) and np.all(idx < np.maximum(np.ceil(edges[1:]), 1))
    assert np.all(np.diff(idx) >= 0)


def test_training_sampling_is_random_but_seeded():
    a = segment_indices(300, 8, train=True, rng=np.random.default_rng(1))
    b = segment_indices(300, 8, train=True, rng=np.random.default_rng(1))
    c = segment_indices(300, 8, train=True, rng=np.random.default_rng(2))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_training_without_rng_is_an_error():
    message = r"^segment_indices\(train=True\) needs rng, a numpy Generator, to draw frames\.$"
    with pytest.raises(InputError, match=message):
        segment_indices(10, 2, train=True)


def test_stride_indices():
    assert stride_indices(10, 3).tolist() == [0, 3, 6, 9]
    assert stride_indices(10, 3, max_frames=2).tolist() == [0, 3]
    assert stride_indices(2, 5).tolist() == [0]
    assert stride_indices(10, 1).dtype == np.int64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stride_indices(10, 0), "stride must be at least 1; got 0."),
        (lambda: stride_indices(0, 2), "num_frames must be at least 1; got 0."),
        (lambda: stride_indices(10, 2, max_frames=0), "max_frames must be at least 1; got 0."),
        (lambda: segment_indices(10, 0, train=False), "num_segments must be at least 1; got 0."),
        (lambda: observation_cutoff(10, 0.0), "ratio must be in (0, 1]; got 0.0."),
        (lambda: observation_cutoff(10, 1.5), "ratio must be in (0, 1]; got 1.5."),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(InputError) as info:
        call()
    assert str(info.value) == message


def test_observation_cutoff_ignores_float_error():
    ratio = 0.1 * 3  # 0.30000000000000004, as a loop over ratios produces it
    assert ratio * 10 > 3  # the trap: a naive ceil gives 4
    assert observation_cutoff(10, ratio) == 3
    assert observation_cutoff(10, 0.3) == 3
    assert observation_cutoff(10, 0.7) == 7
    assert observation_cutoff(100, 0.29) == 29
    assert observation_cutoff(10, 0.31) == 4
    assert observation_cutoff(10, 1.0) == 10
    assert observation_cutoff(10, 0.01) == 1  # never zero frames
    assert observation_cutoff(1, 0.1) == 1


@given(st.integers(1, 10_000), st.integers(1, 10))
def test_observation_cutoff_of_tenths_is_exact(num_steps, tenths):
    expected = max(1, -(-num_steps * tenths // 10))  # integer ceil
    assert observation_cutoff(num_steps, tenths / 10) == expected
    assert observation_cutoff(num_steps, 0.1 * tenths) == expected


def test_speed_replays_a_clip_at_a_drawn_pace_in_training_only():
    from edgeact.data.sampling import Sampling, sample_indices

    sampling = Sampling(stride=2, speed=(0.5, 2.0))
    assert sample_indices(100, sampling).tolist() == list(range(0, 100, 2))  # evaluation: the plain stride
    paces = []
    for seed in range(40):
        idx = sample_indices(100, sampling, train=True, rng=np.random.default_rng(seed))
        assert idx.dtype == np.int64 and idx.min() >= 0 and idx.max() < 100
        assert np.all(np.diff(idx) >= 0)  # in order; frames repeat when slower
        paces.append(len(idx))
    # steps of 2 * s with s in [0.5, 2]: between 25 and 100 steps, and not always the same
    assert min(paces) >= 25 and max(paces) <= 100 and len(set(paces)) > 10
    assert min(paces) < 40 and max(paces) > 70
    # the draw is seeded
    a = sample_indices(100, sampling, train=True, rng=np.random.default_rng(3))
    b = sample_indices(100, sampling, train=True, rng=np.random.default_rng(3))
    assert a.tolist() == b.tolist()


def test_speed_one_draws_nothing_extra():
    from edgeact.data.sampling import Sampling, sample_indices

    plain, same = Sampling(stride=3), Sampling(stride=3, speed=(1.0, 1.0))
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    assert sample_indices(50, plain, train=True, rng=r1).tolist() == sample_indices(50, same, train=True, rng=r2).tolist()
    assert r1.random() == r2.random()


def test_speed_needs_stride_mode_and_an_ordered_range():
    from edgeact.errors import ConfigError
    from edgeact.train.config import TrainConfig

    base = {"student": {"model": {"inputs": ["keypoints"], "num_classes": 3, "head": {"name": "lstm", "hidden": 8}}}}
    with pytest.raises(ConfigError, match=r"data\.sampling\.speed must be \[low, high\] with low <= high, got \[2\.0, 1\.0\]"):
        TrainConfig.from_dict({**base, "data": {"sampling": {"speed": [2.0, 1.0]}}})
    with pytest.raises(ConfigError, match="mode 'segments' draws its frames per segment"):
        TrainConfig.from_dict({**base, "data": {"sampling": {"mode": "segments", "speed": [0.8, 1.25]}}})
    cfg = TrainConfig.from_dict({**base, "data": {"sampling": {"speed": [0.8, 1.25]}}})
    assert cfg.data.sampling.speed == (0.8, 1.25)
