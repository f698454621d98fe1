"""Double backward (``create_graph=True``) through the hand-written sequence Functions.

A gradient penalty's gradient (the second derivatives) from each fast path against the generic
loop of the same cell, whose every step autograd records; ``gradgradcheck`` in float64 for the
torch code of the LSTM Function and for the linear recurrence of the min-cells.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradgradcheck

import rnnkit.nn as rnn
from rnnkit.nn import minrnn, native, sequence
from rnnkit.nn.dropout import RecurrentDropoutCell, ZoneoutCell
from rnnkit.nn.minrnn import linear_recurrence

C_PATHS = native.library() is not None and native.sgemm() is not None


def penalty_grads(run, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Grads w.r.t. ``inputs`` of the squared norm of the first grads of a loss on ``run()``'s
    ``(outputs, state)``: what a gradient penalty (WGAN-GP) trains with."""
    out, state = run()
    states = state if isinstance(state, tuple) else (state,)
    loss = (out * out).sum() + sum((s * s.detach().sign()).sum() for s in states)
    first = torch.autograd.grad(loss, inputs, create_graph=True)
    penalty = sum((g * g).sum() for g in first)
    return torch.autograd.grad(penalty, inputs)


def assert_same(fast, reference, tol: float) -> None:
    """Each pair close to ``tol``, relative to the element or to the tensor's largest value."""
    for a, b in zip(fast, reference, strict=True):
        torch.testing.assert_close(a, b, atol=tol * max(1.0, b.abs().max().item()), rtol=tol)


def make_cell(cls, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    cell = cls(3, 4, dtype=dtype, **kwargs)
    with torch.no_grad():
        for p in cell.parameters():
            p.uniform_(-0.6, 0.6)  # gains and biases away from their trivial init
    return cell


def inputs_for(cell, dtype, states: int):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 3, generator=gen, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn(3, 4, generator=gen, dtype=dtype, requires_grad=True) for _ in range(states))
    return x, state


PATHS = ["whole", "per_step", "float64"]  # whole-sequence C call, per-step C kernels, the torch code


def use_path(monkeypatch, path: str) -> torch.dtype:
    if path != "float64" and native.library() is None:
        pytest.skip("no C compiler here: the torch code runs (the float64 case covers it)")
    if path == "whole" and native.sgemm() is None:
        pytest.skip("torch's library exports no sgemm_ here: the per-step kernels run")
    if path == "per_step":
        monkeypatch.setattr(native, "_sgemm", [None])
    return torch.float64 if path == "float64" else torch.float32


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cls", [rnn.LSTMCell, rnn.LayerNormLSTMCell])
@pytest.mark.parametrize(("with_lengths", "reverse", "masked"), [(False, False, False), (True, True, True)])
def test_lstm_fast_path_second_derivatives_equal_the_generic_loop(monkeypatch, path, cls, with_lengths, reverse,
                                                                   masked):  # fmt: skip
    dtype = use_path(monkeypatch, path)
    cell = make_cell(cls, dtype)
    x, state = inputs_for(cell, dtype, 2)
    lengths = torch.tensor([5, 2, 4]) if with_lengths else None
    mask = (torch.rand(3, 4) > 0.3).to(dtype) / 0.7 if masked else None
    reference_cell = cell if mask is None else RecurrentDropoutCell(cell, mask)
    inputs = [x, *state, *cell.parameters()]
    fast = penalty_grads(lambda: sequence.lstm_scan(cell, x, state, lengths, reverse, mask=mask), inputs)
    reference = penalty_grads(lambda: rnn.scan(reference_cell, x, state, lengths, reverse), inputs)
    assert_same(fast, reference, 1e-9 if dtype == torch.float64 else 2e-4)


@pytest.mark.skipif(not C_PATHS, reason="no C compiler or no sgemm_ here: zoneout runs the generic loop only")
@pytest.mark.parametrize("cls", [rnn.LSTMCell, rnn.LayerNormLSTMCell, rnn.GRUCell, rnn.LayerNormGRUCell])
def test_zoneout_fast_path_second_derivatives_equal_the_generic_loop(cls):
    cell = make_cell(cls)
    lstm = cls in (rnn.LSTMCell, rnn.LayerNormLSTMCell)
    x, state = inputs_for(cell, torch.float32, 2 if lstm else 1)
    torch.manual_seed(2)
    weights = tuple((torch.rand(5, 3, 4) < 0.3).float() for _ in state)  # (T, B, H) per state tensor
    scan = sequence.lstm_scan if lstm else sequence.gru_scan
    start = state if lstm else state[0]
    inputs = [x, *state, *cell.parameters()]
    fast = penalty_grads(lambda: scan(cell, x, start, torch.tensor([5, 3, 1]), zoneout=weights), inputs)
    reference = penalty_grads(lambda: rnn.scan(ZoneoutCell(cell, weights), x, start, torch.tensor([5, 3, 1])), inputs)
    assert_same(fast, reference, 2e-4)


@pytest.mark.skipif(not C_PATHS, reason="no C compiler or no sgemm_ here: GRUs run the generic loop")
@pytest.mark.parametrize("cls", [rnn.GRUCell, rnn.LayerNormGRUCell])
@pytest.mark.parametrize(("with_lengths", "reverse", "masked"), [(False, False, False), (True, True, True)])
def test_gru_fast_path_second_derivatives_equal_the_generic_loop(cls, with_lengths, reverse, masked):
    cell = make_cell(cls)
    x, (h0,) = inputs_for(cell, torch.float32, 1)
    lengths = torch.tensor([5, 2, 4]) if with_lengths else None
    mask = (torch.rand(3, 4) > 0.3).float() / 0.7 if masked else None
    reference_cell = cell if mask is None else RecurrentDropoutCell(cell, mask)
    inputs = [x, h0, *cell.parameters()]
    fast = penalty_grads(lambda: sequence.gru_scan(cell, x, h0, lengths, reverse, mask=mask), inputs)
    reference = penalty_grads(lambda: rnn.scan(reference_cell, x, h0, lengths, reverse), inputs)
    assert_same(fast, reference, 2e-4)


@pytest.mark.parametrize("path", ["c", "float32_scan", "float64"])
@pytest.mark.parametrize("cls", [rnn.MinGRUCell, rnn.MinLSTMCell])
def test_min_cells_parallel_second_derivatives_equal_the_generic_loop(monkeypatch, path, cls):
    if path == "c" and not C_PATHS:
        pytest.skip("no C kernels or sgemm_ here: the min-cells run the blocked scan only")
    if path == "float32_scan":
        monkeypatch.setattr(native, "_sgemm", [None])  # MinSequence needs sgemm_: the blocked scan runs
    dtype = torch.float64 if path == "float64" else torch.float32
    cell = make_cell(cls, dtype)
    x, (h0,) = inputs_for(cell, dtype, 1)
    lengths = torch.tensor([5, 2, 4])
    inputs = [x, h0, *cell.parameters()]
    fast = penalty_grads(lambda: minrnn.parallel_scan(cell, x, h0, lengths, reverse=True), inputs)
    reference = penalty_grads(lambda: rnn.scan(cell, x, h0, lengths, reverse=True), inputs)
    assert_same(fast, reference, 1e-9 if dtype == torch.float64 else 2e-4)


@pytest.mark.skipif(native.library() is None, reason="no C compiler here: F.layer_norm runs")
def test_layer_norm_rows_second_derivatives_equal_f_layer_norm():
    gen = torch.Generator().manual_seed(3)
    x_rows = torch.randn(6, 5, generator=gen, requires_grad=True)
    weight = torch.randn(8, 5, generator=gen, requires_grad=True)
    gain = torch.randn(8, generator=gen, requires_grad=True)
    bias = torch.randn(8, generator=gen, requires_grad=True)
    source = (functools.partial(sequence._projection, T=2, B=3), x_rows, weight)  # rebuilds x from what is kept
    results = []
    for ours in (True, False):
        x = sequence._projection(x_rows, weight, 2, 3)  # (2, 3, 8)
        y = sequence.LayerNormRows.apply(x, gain, bias, 1e-5, source) if ours else F.layer_norm(x, (8,), gain, bias)
        first = torch.autograd.grad((y * y * y).sum(), [x_rows, weight, gain, bias], create_graph=True)
        results.append(torch.autograd.grad(sum((g * g).sum() for g in first), [x_rows, weight, gain, bias]))
    assert_same(*results, 1e-4)


def test_lstm_torch_code_gradgradcheck_float64():
    cell = make_cell(rnn.LayerNormLSTMCell, torch.float64)
    x, (h0, c0) = inputs_for(cell, torch.float64, 2)
    mask = (torch.rand(3, 4) > 0.3).double() * 2

    def fn(x, h0, c0, *params):
        out, (h, c) = sequence.lstm_scan(cell, x, (h0, c0), torch.tensor([5, 2, 1]), mask=mask)
        return out, h, c

    assert gradgradcheck(fn, (x, h0, c0, *cell.parameters()), eps=1e-6, atol=1e-5, fast_mode=True)


def test_linear_recurrence_gradgradcheck_float64():
    gen = torch.Generator().manual_seed(4)
    a = torch.rand(2, 7, 3, generator=gen, dtype=torch.float64).requires_grad_()
    b = torch.randn(2, 7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert gradgradcheck(linear_recurrence, (a, b, h0))


@pytest.mark.skipif(not C_PATHS, reason="no C compiler or no sgemm_ here: the fast paths are the torch code")
def test_layers_second_derivatives_match_float64():
    """Whole layers (two layers, both directions, regularizers in eval) in float32 on the C paths
    against the same layers in float64 (the torch code and the generic loop)."""
    for make in (lambda: rnn.LSTM(3, 4, num_layers=2, bidirectional=True, zoneout=0.2, recurrent_dropout=0.3),
                 lambda: rnn.LayerNormGRU(3, 4, num_layers=2, bidirectional=True),
                 lambda: rnn.MinGRU(3, 4, num_layers=2, bidirectional=True)):  # fmt: skip
        torch.manual_seed(0)
        layer = make().eval()
        wide = make().double().eval()
        wide.load_state_dict(layer.state_dict())
        results = []
        for model, dtype in ((layer, torch.float32), (wide, torch.float64)):
            x = torch.randn(3, 5, 3, generator=torch.Generator().manual_seed(5)).to(dtype).requires_grad_()
            inputs = [x, *model.parameters()]
            grads = penalty_grads(lambda m=model, x=x: m(x, lengths=torch.tensor([5, 1, 3])), inputs)
            results.append([g.double() for g in grads])
        assert_same(*results, 1e-3)  # float32 against float64: second derivatives up to ~1e3 here
