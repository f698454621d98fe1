"""Zoneout on the whole-sequence C calls: the same numbers as the generic loop with the same draws."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import native, sequence
from tests.nn.twins import graph_node_names

pytestmark = pytest.mark.skipif(
    native.library() is None or native.sgemm() is None,
    reason="no C compiler or no sgemm_ in torch's library here: zoneout runs the generic loop only",
)

LAYERS = {
    "lstm": lambda **kw: rnn.LSTM(3, 16, **kw),
    "layer_norm_lstm": lambda **kw: rnn.LayerNormLSTM(3, 16, **kw),
    "gru": lambda **kw: rnn.GRU(3, 16, **kw),
    "layer_norm_gru": lambda **kw: rnn.LayerNormGRU(3, 16, **kw),
}
NODES = {"lstm": "LSTMSequenceBackward", "layer_norm_lstm": "LayerNormLSTMSequenceBackward",
         "gru": "GRUSequenceBackward", "layer_norm_gru": "GRUSequenceBackward"}  # fmt: skip


def run(layer, x, lengths, seed, fast: bool, monkeypatch):
    """Output, final state and every gradient of one forward/backward, the zoneout (and dropout)
    draws made from ``seed``; ``fast=False`` forces the generic loop."""
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(sequence, "runs_whole_sequence", lambda cell, x: False)
        torch.manual_seed(seed)
        out, state = layer(x, lengths=lengths)
    states = state if isinstance(state, tuple) else (state,)
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).square().sum() + sum(s.sum() for s in states)
    grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return out, states, grads


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("steps", "lengths"), [(7, None), (9, [9, 4, 1]), (40, [40, 33, 7])])
def test_zoneout_fast_path_equals_the_generic_loop(monkeypatch, kind, training, steps, lengths):
    """Stacked, bidirectional, with recurrent dropout and lengths, in training (0/1 draws) and in
    eval (the expectation), at T = 40 too (packed W_hh): outputs, states and all gradients agree,
    and the fast run really took the C call."""
    torch.manual_seed(0)
    rates = (0.3, 0.2) if "lstm" in kind else 0.3
    layer = LAYERS[kind](num_layers=2, bidirectional=True, zoneout=rates, recurrent_dropout=0.2)
    layer.train(training)
    x = torch.randn(3, steps, 3, requires_grad=True)
    lengths = None if lengths is None else torch.tensor(lengths)
    fast = run(layer, x, lengths, seed=5, fast=True, monkeypatch=monkeypatch)
    loop = run(layer, x, lengths, seed=5, fast=False, monkeypatch=monkeypatch)
    torch.manual_seed(5)
    assert NODES[kind] in graph_node_names(layer(x, lengths=lengths)[0].grad_fn)
    # Errors relative to each tensor's largest entry: float32 layer norms over long stacked runs
    # leave both paths ~1e-5 of that away from a float64 run (measured), the others ~1e-6.
    tol = 1e-4 if kind.startswith("layer_norm") else 1e-5
    for a, b in zip(fast[0:1] + fast[1] + fast[2], loop[0:1] + loop[1] + loop[2], strict=True):
        assert (a - b).abs().max() <= tol * b.abs().max()


def test_zoneout_on_h_only_and_on_c_only(monkeypatch):
    for rates in ((0.4, 0.0), (0.0, 0.4)):
        torch.manual_seed(0)
        layer = rnn.LSTM(3, 6, zoneout=rates)
        x = torch.randn(2, 8, 3, requires_grad=True)
        fast = run(layer, x, None, seed=1, fast=True, monkeypatch=monkeypatch)
        loop = run(layer, x, None, seed=1, fast=False, monkeypatch=monkeypatch)
        for a, b in zip(fast[0:1] + fast[1] + fast[2], loop[0:1] + loop[1] + loop[2], strict=True):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=2e-5)


def test_zoneout_keeps_about_the_rate_of_units_on_the_fast_path():
    """With the input and the recurrence switched off after step 0 (zero weights, a big bias), a
    unit changes at a step only where it is not zoned out: the kept fraction is the rate."""
    torch.manual_seed(0)
    layer = rnn.GRU(1, 64, zoneout=0.3)
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        layer.bias_ih_l0[64:128] = -30.0  # z = 0: without zoneout h_t = n_t = tanh(b_in) every step
        layer.bias_ih_l0[128:] = 1.0
    h0 = torch.zeros(1, 32, 64)
    out, _ = layer(torch.zeros(32, 50, 1), h0)
    assert "GRUSequenceBackward" in graph_node_names(out.grad_fn)
    still_zero = (out == 0).float()  # a unit stays 0 until its first step without zoneout
    assert abs(still_zero[:, 0].mean().item() - 0.3) < 0.05
    assert abs(still_zero[:, 1].mean().item() - 0.09) < 0.03
