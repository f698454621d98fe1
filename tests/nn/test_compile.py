"""``torch.compile`` on models built of rnnkit.nn layers: the same numbers as eager.

The fast paths (torch's fused kernels, the C calls) run eagerly inside a compiled model
(:mod:`rnnkit.nn.eager`); before, a compiled LSTM failed in inductor (``mkldnn_rnn_layer``) and a
compiled recurrent-dropout LSTM corrupted the heap.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

import rnnkit.nn as rnn


class Tagger(nn.Module):
    """An embedding-free sequence model: a recurrent layer between two linear maps."""

    def __init__(self, layer: nn.Module, width: int) -> None:
        super().__init__()
        self.inp, self.layer, self.out = nn.Linear(3, 3), layer, nn.Linear(width, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.layer(torch.tanh(self.inp(x)), lengths=lengths)
        return self.out(h)


LAYERS = {
    "lstm_fused": lambda: rnn.LSTM(3, 4, num_layers=2),
    "lstm_zoneout": lambda: rnn.LSTM(3, 4, bidirectional=True, zoneout=0.2, recurrent_dropout=0.3),
    "layer_norm_lstm": lambda: rnn.LayerNormLSTM(3, 4),
    "layer_norm_gru": lambda: rnn.LayerNormGRU(3, 4, bidirectional=True),
    "min_gru": lambda: rnn.MinGRU(3, 4),
}


@pytest.mark.skipif(
    not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")),
    reason="no C++ compiler here: torch.compile's CPU backend (inductor) needs one",
)
@pytest.mark.parametrize("kind", list(LAYERS))
def test_compiled_model_equals_eager(kind):
    torch.manual_seed(0)
    layer = LAYERS[kind]()
    model = Tagger(layer, layer.hidden_size * layer.num_directions).eval()  # eval: no random draws
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    results = []
    for run in (model, torch.compile(model)):
        y = run(x, lengths)
        grads = torch.autograd.grad((y * y).sum(), list(model.parameters()))
        results.append((y, *grads))
    for compiled, eager in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
