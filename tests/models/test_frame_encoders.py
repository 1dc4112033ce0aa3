import pytest
import torch

from edgeact.errors import ConfigError
from edgeact.models.frame_encoder import RGBDifference
from edgeact.models.mobilenet_v2 import MobileNetV2Config, TSMMobileNetV2
from edgeact.models.resnet import ResNetConfig, TSMResNet

from .support import calibrate_batchnorm


def _calibrated(encoder):
    frames = torch.randn(2, 3, 3, *encoder.size, generator=torch.Generator().manual_seed(100))
    return calibrate_batchnorm(encoder, lambda: encoder(frames))


def _mobilenet(width=0.35, size=32, shift="online", spatial=False):
    torch.manual_seed(0)
    return _calibrated(TSMMobileNetV2(MobileNetV2Config(width, (size, size), shift), spatial))


def _resnet(depth, size=32, shift="online"):
    torch.manual_seed(0)
    return _calibrated(TSMResNet(ResNetConfig((size, size), shift), depth))


def _stream(encoder, frames):
    state, outputs = None, []
    for t in range(frames.shape[1]):
        y, state = encoder.step(frames[:, t], state)
        outputs.append(y)
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize("make, shift_points, channels", [
    (lambda: _mobilenet(width=1.0), 10, 1280),  # MIT online TSM's ten shift buffers
    (lambda: _mobilenet(width=0.35), 10, 1280),
    (lambda: _resnet(18), 8, 512),
    (lambda: _resnet(50), 16, 2048),
])
def test_streaming_equals_offline_with_a_cache_per_shift_point(make, shift_points, channels):
    encoder = make()
    frames = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        offline = encoder(frames)  # [B,T,C]
        streamed, state = _stream(encoder, frames)
    assert offline.shape == (2, 3, channels) and encoder.out_channels == channels
    assert (streamed - offline).abs().max() <= 1e-5
    assert len(state) == shift_points
    assert all(cache.shape[1] >= 1 for cache in state.values())


def test_shift_makes_features_depend_on_the_previous_frame_only():
    encoder = _mobilenet()
    frames = torch.randn(1, 4, 3, 32, 32)
    changed = frames.clone()
    changed[:, 1] += 1.0
    with torch.no_grad():
        a, b = encoder(frames), encoder(changed)
    assert torch.equal(a[:, 0], b[:, 0])  # causal: the past does not see frame 1
    assert not torch.allclose(a[:, 2], b[:, 2])  # frame 2 reads frame 1 through the shift
    no_shift = _mobilenet(shift="none")
    with torch.no_grad():
        assert torch.equal(no_shift(frames)[:, 2], no_shift(changed)[:, 2])


def test_spatial_output_keeps_the_map():
    encoder = _mobilenet(size=64, spatial=True)
    assert encoder(torch.randn(1, 2, 3, 64, 64)).shape == (1, 2, 1280, 2, 2)


def test_bidirectional_shift_reads_the_future_and_refuses_to_step():
    encoder = _mobilenet(shift="bidirectional")
    frames = torch.randn(1, 3, 3, 32, 32)
    changed = frames.clone()
    changed[:, 2] += 1.0
    with torch.no_grad():
        assert not torch.allclose(encoder(frames)[:, 1], encoder(changed)[:, 1])
    with pytest.raises(ConfigError) as err:
        encoder.step(frames[:, 0], None)
    assert str(err.value) == ("This encoder is offline-only: its tsm_mobilenet_v2 encoder uses the bidirectional "
                              "temporal shift, which reads the next frame.")


def test_rgb_difference_stream():
    diff = RGBDifference(_mobilenet(shift="none")).eval()
    frames = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        offline = diff(frames)
        expected = diff.encoder(torch.cat((torch.zeros_like(frames[:, :1]), frames[:, 1:] - frames[:, :-1]), dim=1))
        streamed, state = _stream(diff, frames)
    assert torch.equal(offline, expected)
    assert (streamed - offline).abs().max() <= 1e-5
    assert torch.equal(state["prev"], frames[:, -1])
    assert torch.equal(state["seen"], torch.ones(2, 1, 1, 1))
