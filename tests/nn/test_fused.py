"""The fused path and the loop agree, even with dropout in training; impl='fused' explains refusals."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import fused, native


def _twins(cls, **kwargs):
    torch.manual_seed(0)
    loop = cls(4, 6, impl="loop", **kwargs)
    fast = cls(4, 6, impl="fused", **kwargs)
    fast.load_state_dict(loop.state_dict())
    return loop, fast


@pytest.mark.parametrize("cls", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_fused_equals_loop_with_dropout_in_training(cls):
    """Both paths draw the same inter-layer dropout masks from the same generator state."""
    loop, fast = _twins(cls, num_layers=3, dropout=0.3, bidirectional=True)
    x = torch.randn(5, 9, 4)
    lengths = torch.tensor([9, 3, 1, 7, 5])
    outs = []
    for layer in (loop, fast):
        layer.train()
        torch.manual_seed(123)
        xi = x.clone().requires_grad_(True)
        out, _ = layer(xi, lengths=lengths)
        out.pow(2).sum().backward()
        outs.append((out, xi.grad))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-5, rtol=0)


def _takes_fused(monkeypatch, layer, x, lengths=None, grad=True) -> bool:
    """Whether ``layer(x, lengths=lengths)`` runs torch's fused kernel (with autograd on or off)."""
    calls = []
    real = fused.forward
    monkeypatch.setattr(fused, "forward", lambda *a: calls.append(1) or real(*a))
    with torch.set_grad_enabled(grad):
        layer(x, lengths=lengths)
    return calls == [1]


# (layer, x's dtype, steps, lengths given, autograd on) -> torch's fused kernel runs under impl="auto"
AUTO_CHOICES = [
    (lambda: rnn.LSTM(4, 6), torch.float32, 5, False, False, True),  # inference: torch's kernel as fast
    (lambda: rnn.LSTM(4, 6), torch.float32, 5, False, True, False),  # training: the C calls are faster
    (lambda: rnn.LSTM(4, 6), torch.float32, 5, True, False, False),  # lengths: no packing
    (lambda: rnn.LSTM(4, 6), torch.float32, 1, True, True, True),  # one step: no sequence to run
    (lambda: rnn.LSTM(4, 6, bidirectional=True, num_layers=2), torch.float32, 5, False, True, False),
    (lambda: rnn.GRU(4, 6), torch.float32, 5, False, False, False),  # torch's CPU GRU is slow
    (lambda: rnn.RNN(4, 6), torch.float32, 5, False, True, True),  # no C call for the plain RNN
    (lambda: rnn.RNN(4, 6), torch.float32, 5, True, True, False),  # packed backward grows with T^2
    (lambda: rnn.RNN(4, 6), torch.float32, 5, True, False, True),
    (lambda: rnn.LSTM(4, 6, proj_size=3), torch.float32, 5, False, True, True),  # no C call with proj_size
    (lambda: rnn.LSTM(4, 6, proj_size=3), torch.float32, 5, True, True, False),
    (lambda: rnn.LSTM(4, 6, dtype=torch.float64), torch.float64, 5, False, True, True),  # C calls: float32
    (lambda: rnn.LSTM(4, 6, dtype=torch.float64), torch.float64, 5, True, True, False),
]


@pytest.mark.parametrize("make,dtype,T,with_lengths,grad,expected", AUTO_CHOICES)
def test_auto_takes_the_faster_exact_path(monkeypatch, make, dtype, T, with_lengths, grad, expected):
    """The rule of RecurrentLayer.written_here_faster (measured: docs/nn.md), case by case."""
    x = torch.randn(3, T, 4, dtype=dtype)
    lengths = torch.tensor([T, 1, T]) if with_lengths else None
    assert _takes_fused(monkeypatch, make(), x, lengths, grad) is expected


def test_auto_takes_fused_where_the_c_calls_cannot_run(monkeypatch):
    """Without torch's sgemm_ (or the C kernels) the written-here LSTM is torch code: not faster."""
    monkeypatch.setattr(native, "sgemm", lambda: None)
    assert _takes_fused(monkeypatch, rnn.LSTM(4, 6), torch.randn(3, 5, 4))
    assert _takes_fused(monkeypatch, rnn.GRU(4, 6), torch.randn(3, 5, 4), grad=False)


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
def test_auto_layers_export_with_torch_export(cls):
    """torch.export cannot hold the C calls (they read data pointers): auto takes torch's op there."""
    layer = cls(4, 6, bidirectional=True)  # parameters require grad: in eager, the C calls run

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x)[0]

    exported = torch.export.export(Outputs(), (torch.randn(3, 5, 4),)).module()
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(exported(x), layer(x)[0], atol=1e-5, rtol=0)


def test_impl_fused_and_loop_override_auto(monkeypatch):
    x = torch.randn(3, 5, 4)
    assert _takes_fused(monkeypatch, rnn.LSTM(4, 6, impl="fused"), x, torch.tensor([5, 2, 1]))
    assert not _takes_fused(monkeypatch, rnn.LSTM(4, 6, impl="loop"), x, grad=False)


class _NoKernelLSTM(rnn.LSTM):
    """A variant torch has no kernel for (as layer-norm LSTM will be)."""

    def fused_unsupported_reason(self):
        return "this variant changes the cell's math"


def test_impl_fused_raises_with_the_reason_and_auto_falls_back():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="impl='fused' is not possible: this variant changes"):
        _NoKernelLSTM(4, 6, impl="fused")(x)
    out, _ = _NoKernelLSTM(4, 6, impl="auto")(x)
    assert out.shape == (2, 3, 6)
    with pytest.raises(ValueError, match="impl: expected one of"):
        rnn.GRU(4, 6, impl="cudnn")


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda m: m(torch.randn(2, 3, 4, 1)), r"x: expected a 3-D tensor \(B, T, I\)"),
        (lambda m: m(torch.randn(2, 3, 5)), "x: expected 4 features"),
        (lambda m: m(torch.randn(2, 3, 4).double()), "x: dtype torch.float64"),
        (lambda m: m(torch.randn(2, 0, 4)), "at least one time step"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([3])), r"lengths: expected shape \(2,\)"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([[3, 3]])), r"lengths: expected shape \(2,\)"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([3.0, 2.0])), "lengths: expected an integer dtype"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([4, 2])), r"each length must be in 1..T=3"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([0, 2])), r"each length must be in 1..T=3"),
        (
            lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([3, 2], device="meta")),
            "lengths: expected a tensor on the CPU",
        ),
        (lambda m: m(torch.randn(2, 3, 4), [3, 2]), "lengths|state"),
        (lambda m: m(torch.randn(2, 3, 4), torch.zeros(2, 2, 6)), r"state: expected a tuple \(h, c\)"),
        (
            lambda m: m(torch.randn(2, 3, 4), (torch.zeros(1, 2, 6), torch.zeros(2, 2, 6))),
            r"state h: expected shape \(2, 2, 6\)",
        ),
        (
            lambda m: m(torch.randn(2, 3, 4), (torch.zeros(2, 2, 6), torch.zeros(2, 3, 6))),
            r"state c: expected shape \(2, 2, 6\)",
        ),
    ],
)
@pytest.mark.parametrize("impl", ["loop", "fused"])
def test_bad_input_gives_a_clear_value_error(call, message, impl):
    layer = rnn.LSTM(4, 6, num_layers=2, impl=impl)
    with pytest.raises(ValueError, match=message):
        call(layer)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        rnn.RNN(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        rnn.GRU(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn.RNN(3, 4, nonlinearity="gelu")
    with pytest.warns(UserWarning, match="does nothing"):
        rnn.LSTM(3, 4, dropout=0.2)
