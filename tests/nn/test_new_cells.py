"""LayerNormLSTM/GRU, IndRNN and minGRU/minLSTM as cells and as layers.

Cells against formulas written out here (layer norm by hand, not ``F.layer_norm``); gradcheck
in float64; every new layer with lengths, both directions and two layers against each sequence
run alone at its own length.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit.nn as rnn


def layer_norm(v, gain, shift, eps=1e-5):
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    out = (v - mean) / torch.sqrt(var + eps) * gain
    return out if shift is None else out + shift


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Random values in every parameter, so gains and biases are not their trivial init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) - 0.5)


def test_layer_norm_lstm_cell_matches_formula():
    torch.manual_seed(0)
    cell = rnn.LayerNormLSTMCell(3, 4)
    randomize(cell, 1)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    a = layer_norm(x @ cell.weight_ih.T, cell.ln_ih_weight, cell.bias_ih) + layer_norm(
        h @ cell.weight_hh.T, cell.ln_hh_weight, cell.bias_hh
    )
    i, f, g, o = a[:, :4], a[:, 4:8], a[:, 8:12], a[:, 12:]
    c_expected = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_expected = torch.sigmoid(o) * torch.tanh(layer_norm(c_expected, cell.ln_c_weight, cell.ln_c_bias))
    h_new, c_new = cell(x, (h, c))
    torch.testing.assert_close(c_new, c_expected)
    torch.testing.assert_close(h_new, h_expected)


def test_layer_norm_lstm_forget_bias_initialization():
    cell = rnn.LayerNormLSTMCell(3, 4, forget_bias=2.5)
    assert torch.equal(cell.bias_ih[4:8], torch.full((4,), 2.5))
    assert cell.bias_ih[:4].abs().sum() == 0 and cell.bias_hh.abs().sum() == 0
    assert torch.equal(cell.ln_ih_weight, torch.ones(16))


def test_layer_norm_gru_cell_matches_formula():
    torch.manual_seed(0)
    cell = rnn.LayerNormGRUCell(3, 4)
    randomize(cell, 2)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    a = layer_norm(x @ cell.weight_ih.T, cell.ln_ih_weight, cell.bias_ih)
    b = layer_norm(h @ cell.weight_hh.T, cell.ln_hh_weight, cell.bias_hh)
    r = torch.sigmoid(a[:, :4] + b[:, :4])
    z = torch.sigmoid(a[:, 4:8] + b[:, 4:8])
    n = torch.tanh(a[:, 8:] + r * b[:, 8:])
    torch.testing.assert_close(cell(x, h), (1 - z) * n + z * h)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_indrnn_cell_matches_formula_and_bounds_u(nonlinearity):
    torch.manual_seed(0)
    cell = rnn.IndRNNCell(3, 4, nonlinearity=nonlinearity, recurrent_max=0.5)
    with torch.no_grad():
        cell.weight_hh.copy_(torch.tensor([0.2, -0.3, 2.0, -7.0]))  # the last two exceed the bound
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    u = torch.tensor([0.2, -0.3, 0.5, -0.5])
    pre = x @ cell.weight_ih.T + cell.bias_ih + u * h
    expected = torch.relu(pre) if nonlinearity == "relu" else torch.tanh(pre)
    torch.testing.assert_close(cell(x, h), expected)
    assert cell.weight_hh.shape == (4,) and dict(cell.named_parameters()).keys() == {
        "weight_ih",
        "weight_hh",
        "bias_ih",
    }


def test_min_gru_cell_step_matches_paper():
    torch.manual_seed(0)
    cell = rnn.MinGRUCell(3, 4)
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    k, cand = (x @ cell.weight_ih.T + cell.bias_ih).split(4, dim=1)
    z = torch.sigmoid(k)
    g = torch.where(cand >= 0, cand + 0.5, torch.sigmoid(cand))
    torch.testing.assert_close(cell(x, h), (1 - z) * h + z * g)


def test_min_lstm_cell_step_matches_paper():
    torch.manual_seed(0)
    cell = rnn.MinLSTMCell(3, 4)
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    kf, ki, cand = (x @ cell.weight_ih.T + cell.bias_ih).split(4, dim=1)
    f, i = torch.sigmoid(kf), torch.sigmoid(ki)
    g = torch.where(cand >= 0, cand + 0.5, torch.sigmoid(cand))
    torch.testing.assert_close(cell(x, h), f / (f + i) * h + i / (f + i) * g)


CELLS = {
    "ln_lstm": lambda: rnn.LayerNormLSTMCell(3, 4, dtype=torch.float64),
    "ln_gru": lambda: rnn.LayerNormGRUCell(3, 4, dtype=torch.float64),
    "indrnn": lambda: rnn.IndRNNCell(3, 4, nonlinearity="tanh", dtype=torch.float64),
    "min_gru": lambda: rnn.MinGRUCell(3, 4, dtype=torch.float64),
    "min_lstm": lambda: rnn.MinLSTMCell(3, 4, dtype=torch.float64),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_gradcheck_float64(name):
    torch.manual_seed(0)
    cell = CELLS[name]()
    randomize(cell, 3)
    params = [p for p in cell.parameters()]
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    state = cell.initial_state(2)
    state = (
        tuple(torch.randn_like(s).requires_grad_() for s in state)
        if isinstance(state, tuple)
        else (torch.randn_like(state).requires_grad_(),)
    )

    def fn(x, *inputs):
        states = inputs[: len(state)]
        new = cell(x, states if len(states) > 1 else states[0])
        return new if isinstance(new, tuple) else (new,)

    assert gradcheck(fn, (x, *state, *params), eps=1e-6, atol=1e-5)


LAYERS = {
    "ln_lstm": rnn.LayerNormLSTM,
    "ln_gru": rnn.LayerNormGRU,
    "indrnn": rnn.IndRNN,
    "min_gru": rnn.MinGRU,
    "min_lstm": rnn.MinLSTM,
}


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("impl", ["auto", "loop"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_lengths_bidirectional_stacked_equal_each_sequence_alone(name, impl):
    """A padded batch with lengths gives, per sequence, what that sequence alone gives."""
    torch.manual_seed(0)
    layer = LAYERS[name](3, 4, num_layers=2, bidirectional=True, impl=impl)
    randomize(layer, 4)
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(4, 6, 3)
    state0 = tuple(0.5 * torch.randn(4, 4, 4) for _ in as_tuple(layer.state_sizes))
    out, state = layer(x, state0 if len(state0) > 1 else state0[0], lengths=lengths)
    state = as_tuple(state)
    assert out.shape == (4, 6, 8)
    for b, n in enumerate(lengths.tolist()):
        s0 = tuple(s[:, b : b + 1] for s in state0)
        alone, alone_state = layer(x[b : b + 1, :n], s0 if len(s0) > 1 else s0[0])
        torch.testing.assert_close(out[b, :n], alone[0], atol=1e-5, rtol=1e-5)
        assert torch.all(out[b, n:] == 0)
        for s, a in zip(state, as_tuple(alone_state), strict=True):
            torch.testing.assert_close(s[:, b], a[:, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradcheck_float64_with_lengths(name):
    torch.manual_seed(0)
    layer = LAYERS[name](2, 3, bidirectional=True, dtype=torch.float64)
    randomize(layer, 5)
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    params = list(layer.parameters())

    def fn(x, *_):
        out, state = layer(x, lengths=lengths)
        return (out, *as_tuple(state))

    assert gradcheck(
        fn, (x, *params), eps=1e-6, atol=1e-5, fast_mode=True
    )  # random directions: all parameters, quickly


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_new_layers_have_no_fused_path(name):
    layer = LAYERS[name](3, 4, impl="fused")
    with pytest.raises(ValueError, match=r"impl='fused' is not possible: .*no torch\.nn kernel"):
        layer(torch.randn(2, 5, 3))


def test_layer_norm_lstm_layer_matches_hand_stepped_cell():
    torch.manual_seed(0)
    layer = rnn.LayerNormLSTM(3, 4)
    randomize(layer, 6)
    cell = rnn.LayerNormLSTMCell(3, 4)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(2, 5, 3)
    out, (h_n, c_n) = layer(x)
    h, c = torch.zeros(2, 4), torch.zeros(2, 4)
    for t in range(5):
        h, c = cell(x[:, t], (h, c))
        torch.testing.assert_close(out[:, t], h)
    torch.testing.assert_close(h_n[0], h)
    torch.testing.assert_close(c_n[0], c)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: rnn.IndRNN(3, 4, recurrent_max="1"), r"^recurrent_max: expected a positive number or None, got '1'"),
        (lambda: rnn.IndRNNCell(3, 4, recurrent_max=True), r"^recurrent_max: .*got True"),
        (lambda: rnn.LayerNormLSTM(3, 4, eps=-1e-5), r"^eps: expected a number >= 0, got -1e-05"),
        (lambda: rnn.LayerNormGRUCell(3, 4, eps="1e-5"), r"^eps: expected a number >= 0, got '1e-5'"),
        (lambda: rnn.LayerNormLSTMCell(3, 4, forget_bias="1"), r"^forget_bias: expected a number, got '1'"),
    ],
)
def test_bad_hyperparameters_raise_naming_them(build, message):
    with pytest.raises(ValueError, match=message):
        build()
