import pytest
import torch

from edgeact.errors import ConfigError
from edgeact.models.temporal_shift import shift_bidirectional, shift_fold, shift_offline, shift_step


def _clip(B=2, T=5, C=16, H=3, W=2):
    return torch.arange(B * T * C * H * W, dtype=torch.float32).reshape(B, T, C, H, W) + 1  # no zeros


def test_offline_shift_moves_first_fold_from_previous_frame():
    x = _clip()
    y = shift_offline(x, fold=2)
    assert torch.equal(y[:, 0, :2], torch.zeros_like(y[:, 0, :2]))  # zero fill at t=0
    assert torch.equal(y[:, 1:, :2], x[:, :-1, :2])
    assert torch.equal(y[:, :, 2:], x[:, :, 2:])


def test_streaming_shift_equals_offline_exactly():
    x = _clip()
    expected = shift_offline(x, fold=2)
    cache = None
    for t in range(x.shape[1]):
        y, cache = shift_step(x[:, t], cache, fold=2)
        assert torch.equal(y, expected[:, t])
        assert torch.equal(cache, x[:, t, :2])  # the current frame's channels become the next cache


def test_streaming_shift_with_zero_cache_equals_no_cache():
    x = _clip()[:, 0]
    with_zeros, _ = shift_step(x, torch.zeros_like(x[:, :2]), fold=2)
    without, _ = shift_step(x, None, fold=2)
    assert torch.equal(with_zeros, without)


def test_bidirectional_shift_follows_original_tsm():
    x = _clip()
    y = shift_bidirectional(x, fold=2)
    assert torch.equal(y[:, :-1, :2], x[:, 1:, :2])  # fold 0 from the next frame
    assert torch.equal(y[:, -1, :2], torch.zeros_like(y[:, -1, :2]))
    assert torch.equal(y[:, 1:, 2:4], x[:, :-1, 2:4])  # fold 1 from the previous frame
    assert torch.equal(y[:, 0, 2:4], torch.zeros_like(y[:, 0, 2:4]))
    assert torch.equal(y[:, :, 4:], x[:, :, 4:])


def test_single_frame_clip():
    x = _clip(T=1)
    assert torch.equal(shift_offline(x, 2)[:, :, :2], torch.zeros_like(x[:, :, :2]))
    assert shift_bidirectional(x, 2).shape == x.shape


def test_fold_too_small_is_a_config_error():
    assert shift_fold(64, 8) == 8
    with pytest.raises(ConfigError) as err:
        shift_fold(4, 8)
    assert str(err.value) == ("Temporal shift with fold_div=8 does not fit a 4-channel layer; "
                              "use a smaller fold_div or a wider encoder.")
