"""Each cell is one step: equal to torch.nn's cell with copied weights and to the written-out formula."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn

ATOL = 1e-6


CELLS = [
    (lambda: rnn.RNNCell(3, 5, nonlinearity="tanh"), lambda: torch.nn.RNNCell(3, 5, nonlinearity="tanh")),
    (lambda: rnn.RNNCell(3, 5, nonlinearity="relu"), lambda: torch.nn.RNNCell(3, 5, nonlinearity="relu")),
    (lambda: rnn.LSTMCell(3, 5), lambda: torch.nn.LSTMCell(3, 5)),
    (lambda: rnn.GRUCell(3, 5), lambda: torch.nn.GRUCell(3, 5)),
    (lambda: rnn.GRUCell(3, 5, bias=False), lambda: torch.nn.GRUCell(3, 5, bias=False)),
]


@pytest.mark.parametrize("make", CELLS, ids=["tanh", "relu", "lstm", "gru", "gru_nobias"])
def test_cell_matches_torch_cell(make):
    torch.manual_seed(0)
    ours, theirs = make[0](), make[1]()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 3)
    state = ours.initial_state(4)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    a, b = ours(x, state), theirs(x, state)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True):
        torch.testing.assert_close(u, v, atol=ATOL, rtol=0)
    # Unbatched input, default (zero) state.
    a, b = ours(x[0]), theirs(x[0])
    torch.testing.assert_close(
        a[0] if isinstance(a, tuple) else a, b[0] if isinstance(b, tuple) else b, atol=ATOL, rtol=0
    )


def test_lstm_cell_against_written_out_formula():
    torch.manual_seed(0)
    cell = rnn.LSTMCell(3, 4).double()
    x, h, c = torch.randn(2, 3).double(), torch.randn(2, 4).double(), torch.randn(2, 4).double()
    W, U = cell.weight_ih, cell.weight_hh
    b = cell.bias_ih + cell.bias_hh
    pre = x @ W.T + h @ U.T + b
    i, f, g, o = (pre[:, k * 4 : (k + 1) * 4] for k in range(4))
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    got_h, got_c = cell(x, (h, c))
    torch.testing.assert_close(got_c, c_new, atol=1e-12, rtol=0)
    torch.testing.assert_close(got_h, h_new, atol=1e-12, rtol=0)


def test_gru_cell_against_written_out_formula():
    torch.manual_seed(0)
    cell = rnn.GRUCell(3, 4).double()
    x, h = torch.randn(2, 3).double(), torch.randn(2, 4).double()
    gx = x @ cell.weight_ih.T + cell.bias_ih
    gh = h @ cell.weight_hh.T + cell.bias_hh
    r = torch.sigmoid(gx[:, :4] + gh[:, :4])
    z = torch.sigmoid(gx[:, 4:8] + gh[:, 4:8])
    n = torch.tanh(gx[:, 8:] + r * gh[:, 8:])
    torch.testing.assert_close(cell(x, h), (1 - z) * n + z * h, atol=1e-12, rtol=0)


def test_projected_lstm_cell_shapes_and_gradcheck():
    torch.manual_seed(0)
    cell = rnn.LSTMCell(3, 6, proj_size=2).double()
    h, c = cell.initial_state(2)
    assert h.shape == (2, 2) and c.shape == (2, 6) and cell.weight_hh.shape == (24, 2)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: cell(x, (h, c))[0], (x,))


@pytest.mark.parametrize("bad", [torch.randn(2, 4), torch.randn(2, 3, 1)])
def test_cell_rejects_wrong_input_shape(bad):
    with pytest.raises(ValueError, match="x_t: expected shape"):
        rnn.GRUCell(3, 5)(bad)


@pytest.mark.parametrize(
    ("make", "state", "message"),
    [
        (
            lambda: rnn.LSTMCell(3, 5),
            torch.zeros(2, 5),
            r"state: expected a tuple of 2 tensors of shape\(s\) \[\(2, 5\), \(2, 5\)\], got \[\(2, 5\)\]",
        ),
        (lambda: rnn.LSTMCell(3, 5, proj_size=2), (torch.zeros(2, 5), torch.zeros(2, 5)), r"\[\(2, 2\), \(2, 5\)\]"),
        (lambda: rnn.GRUCell(3, 5), (torch.zeros(2, 5), torch.zeros(2, 5)), r"one tensor of shape\(s\) \[\(2, 5\)\]"),
        (lambda: rnn.MinGRUCell(3, 5), torch.zeros(3, 5), r"\[\(2, 5\)\], got \[\(3, 5\)\]"),
        (lambda: rnn.LayerNormLSTMCell(3, 5), (torch.zeros(2, 5), "c"), r"got \[\(2, 5\), 'str'\]"),
    ],
)
def test_cell_rejects_a_state_of_the_wrong_structure_or_shape(make, state, message):
    cell = make()
    with pytest.raises(ValueError, match=message):
        cell(torch.randn(2, 3), state)
    good = cell.initial_state(2)
    assert type(cell(torch.randn(2, 3), good)) is type(good)  # the right one still steps
    unbatched = tuple(s[0] for s in good) if isinstance(good, tuple) else good[0]
    cell(torch.randn(3), unbatched)  # and an unbatched step takes the state without B


def test_cell_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn.RNNCell(3, 5, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size"):
        rnn.LSTMCell(3, 5, proj_size=5)


ALL_CELLS = {
    "rnn": lambda: rnn.RNNCell(3, 5),
    "lstm": lambda: rnn.LSTMCell(3, 5),
    "lstm_proj": lambda: rnn.LSTMCell(3, 5, proj_size=2),
    "gru": lambda: rnn.GRUCell(3, 5),
    "ln_lstm": lambda: rnn.LayerNormLSTMCell(3, 5),
    "ln_gru": lambda: rnn.LayerNormGRUCell(3, 5),
    "indrnn": lambda: rnn.IndRNNCell(3, 5),
    "min_gru": lambda: rnn.MinGRUCell(3, 5),
}


@pytest.mark.parametrize("name", ALL_CELLS)
def test_cell_rejects_an_input_or_state_of_another_dtype_or_type(name):
    cell = ALL_CELLS[name]()
    state = cell.initial_state(2)
    with pytest.raises(ValueError, match=r"^x_t: dtype torch.float64 .*parameters \(torch.float32"):
        cell(torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^x_t: expected shape \(B, 3\) or \(3,\), got list"):
        cell([0.0, 1.0, 2.0])
    wrong = tuple(s.double() for s in state) if isinstance(state, tuple) else state.double()
    with pytest.raises(ValueError, match=r"^state: dtype torch.float64"):
        cell(torch.randn(2, 3), wrong)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_cell_takes_a_bf16_input_and_float32_state_under_autocast(name):
    cell = ALL_CELLS[name]()
    state = cell.initial_state(2)
    x = torch.randn(2, 3).bfloat16()  # as an op before it gives it under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        new = cell(x, state)
    reference = cell(x.float(), state)  # the plain step in the parameters' dtype
    for got, expected in zip(rnn.cells.state_parts(new), rnn.cells.state_parts(reference), strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("proj_size", [1.5, "2", None])
def test_lstm_cell_proj_size_must_be_an_integer(proj_size):
    with pytest.raises(ValueError, match=rf"^proj_size: expected an integer.*got {proj_size!r}"):
        rnn.LSTMCell(3, 5, proj_size=proj_size)
