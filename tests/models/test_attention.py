import torch

from edgeact.models.attention import CausalAttentionPool


def _stream(pool, h):
    state, outputs = None, []
    for t in range(h.shape[1]):
        y, state = pool.step(h[:, t], state)
        outputs.append(y)
    return torch.stack(outputs, dim=1), state


def test_offline_is_a_causal_softmax_per_dimension():
    torch.manual_seed(0)
    pool = CausalAttentionPool(4).eval()
    h = torch.randn(2, 5, 4)
    with torch.no_grad():
        out = pool(h)
        s = pool.score(h)
        for t in range(5):
            w = s[:, : t + 1].softmax(dim=1)  # [B,t+1,D]
            torch.testing.assert_close(out[:, t], (w * h[:, : t + 1]).sum(1))
    assert torch.equal(out[:, 0], h[:, 0])  # one step seen: all weight on it


def test_online_softmax_is_stable_with_extreme_scores():
    torch.manual_seed(0)
    pool = CausalAttentionPool(8).eval()
    with torch.no_grad():
        pool.score.weight.mul_(1e3)  # scores of +-1e3: exp overflows without the running max
        pool.score.bias.fill_(-500.0)  # and all-negative scores at the start of the stream
        h = torch.randn(3, 12, 8)
        offline = pool(h)
        streamed, state = _stream(pool, h)
    assert torch.isfinite(streamed).all() and torch.isfinite(offline).all()
    assert (streamed - offline).abs().max() <= 1e-5
    assert (state["den"] >= 1).all()


def test_random_weight_sharing_in_training_only():
    torch.manual_seed(0)
    pool = CausalAttentionPool(6, share_prob=1.0)
    h = torch.randn(2, 4, 6)
    with torch.no_grad():
        shared = pool.train()(h)
        w = pool.score(h)
        mask = torch.ones(4, 4, dtype=torch.bool).tril()
        weights = w.unsqueeze(1).masked_fill(~mask[None, :, :, None], float("-inf")).softmax(dim=2)  # [B,t,tau,D]
        mean = weights.mean(dim=-1, keepdim=True)  # every dimension gets the mean weights
        torch.testing.assert_close(shared, (mean * h.unsqueeze(1)).sum(2))
        assert torch.equal(pool.eval()(h), pool.eval()(h))
        assert not torch.allclose(pool.eval()(h), shared)
