import torch

from edgeact.models.netvlad import NetVLAD, NetVLADHead, NetVLADHeadConfig


def test_descriptor_is_soft_assigned_residuals_intra_and_l2_normalised():
    torch.manual_seed(0)
    vlad = NetVLAD(dim=5, clusters=3)
    x = torch.randn(2, 7, 5)
    out = vlad(x)  # [B,K*D]
    a = vlad.assign(x).softmax(-1)  # [B,T,K]
    residuals = x.unsqueeze(2) - vlad.centres  # [B,T,K,D]
    reference = (a.unsqueeze(-1) * residuals).sum(1)
    reference = torch.nn.functional.normalize(reference, dim=-1).flatten(1) / 3**0.5
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))


def test_head_gives_the_clip_answer_at_every_step():
    torch.manual_seed(0)
    head = NetVLADHead(NetVLADHeadConfig(clusters=4), in_dim=6, num_classes=3).eval()
    out = head(torch.randn(2, 5, 6))
    assert out["logits"].shape == (2, 5, 3) and out["features"].shape == (2, 5, 24)
    assert torch.equal(out["logits"][:, 0], out["logits"][:, -1])
