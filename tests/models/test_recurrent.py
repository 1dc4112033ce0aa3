import pytest
import torch
from torch import nn

from edgeact.errors import ConfigError
from edgeact.models.recurrent import StreamingGRU, StreamingLSTM


@pytest.mark.parametrize("ours, reference, layers", [
    (StreamingLSTM, nn.LSTM, 1), (StreamingLSTM, nn.LSTM, 3), (StreamingGRU, nn.GRU, 2)])
def test_step_math_matches_pytorch_weights_unchanged(ours, reference, layers):
    torch.manual_seed(0)
    rnn = ours(6, 5, layers).eval()
    ref = reference(6, 5, layers, batch_first=True).eval()
    # the weights a C++ kernel or nn.LSTM would load: same names, same layout
    assert list(rnn.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(rnn.state_dict())
    x = torch.randn(3, 7, 6)
    expected, _ = ref(x)  # [B,T,H]
    state = None
    for t in range(x.shape[1]):
        h, state = rnn.step(x[:, t], state)
        torch.testing.assert_close(h, expected[:, t], atol=1e-6, rtol=0)
    names = [f"{s}{k}" for k in range(layers) for s in (("h", "c") if ours is StreamingLSTM else ("h",))]
    assert list(state) == names


def test_lstm_final_state_matches_pytorch():
    torch.manual_seed(0)
    rnn = StreamingLSTM(4, 3, 2).eval()
    x = torch.randn(2, 5, 4)
    _, (h_n, c_n) = rnn(x)
    state = None
    for t in range(5):
        _, state = rnn.step(x[:, t], state)
    torch.testing.assert_close(torch.stack([state["h0"], state["h1"]]), h_n, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.stack([state["c0"], state["c1"]]), c_n, atol=1e-6, rtol=0)


def test_bidirectional_rnn_refuses_to_step():
    rnn = StreamingGRU(4, 3, bidirectional=True)
    with pytest.raises(ConfigError) as err:
        rnn.step(torch.zeros(1, 4), None)
    assert str(err.value) == "A bidirectional GRU reads future steps and cannot run a streaming step."
