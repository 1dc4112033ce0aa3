"""Temporal shift kernels against a numpy reference: in place, one pass, streaming == offline."""

from __future__ import annotations

import numpy as np
import pytest

from edgeact import kernels

SHAPES = [(1, 8, 4, 4), (3, 24, 7, 5), (2, 5, 1, 1), (4, 16, 3, 3)]


def _online_reference(x: np.ndarray, cache: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    out = x.copy()
    out[:, :fold] = cache
    return out, x[:, :fold].copy()


def _offline_reference(clip: np.ndarray, fold: int) -> np.ndarray:
    out = clip.copy()
    out[:, 0, :fold] = 0.0
    out[:, 1:, :fold] = clip[:, :-1, :fold]
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_online_swaps_in_place_for_every_fold(shape):
    rng = np.random.default_rng(0)
    for fold in range(1, shape[1] + 1):
        x = rng.standard_normal(shape, dtype=np.float32)
        cache = rng.standard_normal((shape[0], fold, *shape[2:]), dtype=np.float32)
        want_x, want_cache = _online_reference(x, cache, fold)
        x_address, cache_address = x.ctypes.data, cache.ctypes.data

        assert kernels.temporal_shift_online_(x, cache, fold) is None

        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(cache, want_cache)
        assert (x.ctypes.data, cache.ctypes.data) == (x_address, cache_address)


def test_online_works_on_a_contiguous_slice_of_a_larger_buffer():
    # x may be a view (here the second half of a frame ring buffer): only its own bytes change.
    rng = np.random.default_rng(1)
    ring = rng.standard_normal((2, 3, 8, 4, 4), dtype=np.float32)
    before = ring.copy()
    cache = np.zeros((3, 2, 4, 4), np.float32)
    kernels.temporal_shift_online_(ring[1], cache, 2)
    np.testing.assert_array_equal(ring[0], before[0])
    np.testing.assert_array_equal(ring[1, :, :2], 0.0)
    np.testing.assert_array_equal(ring[1, :, 2:], before[1, :, 2:])
    np.testing.assert_array_equal(cache, before[1, :, :2])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fold_divisor", [1, 2, 8])
def test_online_over_a_clip_equals_offline(shape, fold_divisor):
    batch, channels, height, width = shape
    fold = max(1, channels // fold_divisor)
    clip = np.random.default_rng(2).standard_normal((batch, 6, channels, height, width), dtype=np.float32)
    cache = kernels.zero_shift_cache(clip[:, 0], fold)
    streamed = np.empty_like(clip)
    for t in range(clip.shape[1]):
        frame = clip[:, t].copy()
        kernels.temporal_shift_online_(frame, cache, fold)
        streamed[:, t] = frame

    offline = kernels.temporal_shift_offline(clip, fold)

    np.testing.assert_array_equal(offline, _offline_reference(clip, fold))
    np.testing.assert_array_equal(streamed, offline)


def test_offline_leaves_its_input_alone_and_returns_a_new_array():
    clip = np.random.default_rng(3).standard_normal((2, 4, 8, 3, 3), dtype=np.float32)
    before = clip.copy()
    out = kernels.temporal_shift_offline(clip, 3)
    np.testing.assert_array_equal(clip, before)
    assert out.dtype == np.float32 and out.shape == clip.shape
    assert not np.shares_memory(out, clip)


def test_zero_shift_cache_shape():
    cache = kernels.zero_shift_cache(np.zeros((2, 24, 56, 56), np.float32), 3)
    assert cache.shape == (2, 3, 56, 56) and cache.dtype == np.float32 and not cache.any()
