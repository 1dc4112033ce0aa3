import pytest
import torch

from edgeact.models.convlstm import ConvLSTM, SpatialAttention


def test_offline_equals_steps_and_keeps_the_map():
    torch.manual_seed(0)
    cell = ConvLSTM(6, 4, 3)
    x = torch.randn(2, 5, 6, 3, 3)
    with torch.no_grad():
        offline = cell(x)
        state = None
        for t in range(5):
            h, state = cell.step(x[:, t], state)
            assert (h - offline[:, t]).abs().max() <= 1e-6
    assert offline.shape == (2, 5, 4, 3, 3) and state["c"].shape == (2, 4, 3, 3)


@pytest.mark.parametrize("kind", ["average", "channel", "linear"])
def test_attention_variants_pool_space(kind):
    torch.manual_seed(0)
    h = torch.randn(3, 8, 4, 4)
    pooled = SpatialAttention(kind, 8)(h)
    assert pooled.shape == (3, 8)
    if kind == "average":
        torch.testing.assert_close(pooled, h.mean(dim=(2, 3)))
    if kind == "channel":  # a convex combination of positions: within each channel's range
        flat = h.flatten(2)
        assert (pooled <= flat.max(-1).values + 1e-6).all() and (pooled >= flat.min(-1).values - 1e-6).all()
