"""Without autograd (``torch.no_grad()``), the whole-sequence C calls keep one step of saved
activations instead of all ``T``: the same outputs and states, bit for bit (the min-cells, which
save only ``h``, for comparison)."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import native

LAYERS = {
    "lstm": lambda: rnn.LSTM(3, 8, num_layers=2, bidirectional=True, impl="loop"),
    "layer_norm_lstm": lambda: rnn.LayerNormLSTM(3, 8, num_layers=2, bidirectional=True),
    "gru": lambda: rnn.GRU(3, 8, num_layers=2, bidirectional=True, impl="loop"),
    "layer_norm_gru": lambda: rnn.LayerNormGRU(3, 8, num_layers=2, bidirectional=True),
    "zoneout_lstm_eval": lambda: rnn.LSTM(3, 8, zoneout=(0.2, 0.1)).eval(),
    "min_gru": lambda: rnn.MinGRU(3, 8, num_layers=2, bidirectional=True),
    "min_lstm": lambda: rnn.MinLSTM(3, 8),
}


@pytest.mark.skipif(native.library() is None or native.sgemm() is None, reason="no C kernels or sgemm_ here")
@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_forward_without_autograd_gives_the_same_numbers(monkeypatch, kind, context):
    from rnnkit.nn import minrnn

    monkeypatch.setattr(minrnn, "CHUNK_STEPS", 6)  # min-cells: several chunks of 6 steps
    torch.manual_seed(0)
    layer = LAYERS[kind]()
    x, lengths = torch.randn(4, 40, 3), torch.tensor([40, 33, 7, 1])
    out, state = layer(x, lengths=lengths)
    with context():
        out_fast, state_fast = layer(x, lengths=lengths)
    assert out.grad_fn is not None and out_fast.grad_fn is None
    torch.testing.assert_close(out_fast, out.detach(), rtol=0, atol=0)
    for a, b in zip(state_fast if isinstance(state_fast, tuple) else (state_fast,),
                    state if isinstance(state, tuple) else (state,), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)
