"""The generic loop: equal to a cell stepped by hand, with lengths, reverse and initial state."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn


def step_by_hand(cell, x, lengths, reverse, state):
    """The obvious per-sequence loop: each sequence alone, cut to its length, maybe reversed."""
    outs, finals = torch.zeros(x.shape[0], x.shape[1], cell.output_size), []
    for b in range(x.shape[0]):
        n = int(lengths[b])
        s = tuple(t[b : b + 1] for t in state) if isinstance(state, tuple) else state[b : b + 1]
        steps = range(n - 1, -1, -1) if reverse else range(n)
        for t in steps:
            s = cell(x[b : b + 1, t], s)
            outs[b, t] = (s[0] if isinstance(s, tuple) else s)[0]
        finals.append(s)
    if isinstance(state, tuple):
        return outs, tuple(torch.cat([f[k] for f in finals]) for k in range(len(state)))
    return outs, torch.cat(finals)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell_cls", [rnn.RNNCell, rnn.LSTMCell, rnn.GRUCell])
def test_scan_equals_hand_stepped_cell(cell_cls, reverse):
    torch.manual_seed(0)
    cell = cell_cls(3, 4)
    x = torch.randn(4, 7, 3)
    lengths = torch.tensor([7, 1, 4, 6])
    state = cell.initial_state(4)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    out, final = rnn.scan(cell, x, state, lengths, reverse=reverse)
    want_out, want_final = step_by_hand(cell, x, lengths, reverse, state)
    torch.testing.assert_close(out, want_out, atol=1e-6, rtol=0)
    for a, b in zip(
        final if isinstance(final, tuple) else (final,),
        want_final if isinstance(want_final, tuple) else (want_final,),
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_layer_is_scan_of_its_cells():
    """A 2-layer bidirectional layer equals scans of standalone cells holding its weights."""
    torch.manual_seed(0)
    layer = rnn.GRU(3, 4, num_layers=2, bidirectional=True, impl="loop")
    x, lengths = torch.randn(3, 5, 3), torch.tensor([5, 2, 3])
    params = dict(layer.named_parameters())

    def cell(k, sfx):
        c = rnn.GRUCell(3 if k == 0 else 8, 4)
        c.load_state_dict({n: params[f"{n}_l{k}{sfx}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        return c

    inp = x
    for k in range(2):
        fw, _ = rnn.scan(cell(k, ""), inp, None, lengths)
        bw, _ = rnn.scan(cell(k, "_reverse"), inp, None, lengths, reverse=True)
        inp = torch.cat([fw, bw], -1)
    torch.testing.assert_close(layer(x, lengths=lengths)[0], inp, atol=1e-6, rtol=0)


def test_reverse_padded_reverses_within_length_and_is_its_own_inverse():
    x = torch.arange(8.0).view(2, 4, 1)
    lengths = torch.tensor([4, 2])
    r = rnn.reverse_padded(x, lengths)
    assert r[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    torch.testing.assert_close(rnn.reverse_padded(r, lengths), x)
