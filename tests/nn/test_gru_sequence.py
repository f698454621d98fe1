"""The GRU's whole-sequence C path (GRUSequence) against the generic loop and torch.nn.GRU."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import native, sequence
from rnnkit.nn.dropout import RecurrentDropoutCell
from rnnkit.nn.sequence import gru_scan, supports_gru
from tests.nn.twins import graph_node_names

needs_c = pytest.mark.skipif(
    native.library() is None or native.sgemm() is None,
    reason="no C compiler or no sgemm_ in torch's library here: GRUs run the generic loop",
)


def make_cell(hidden: int = 4, bias: bool = True, kind: str = "gru") -> rnn.GRUCell | rnn.LayerNormGRUCell:
    torch.manual_seed(0)
    cell = (rnn.GRUCell if kind == "gru" else rnn.LayerNormGRUCell)(3, hidden, bias=bias)
    with torch.no_grad():
        for p in cell.parameters():
            p.uniform_(-0.6, 0.6)
    return cell


@pytest.fixture
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


CASES = [(False, False, False), (True, True, True), (True, False, True), (False, True, False)]  # lengths, reverse, mask


@needs_c
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize(("batch", "hidden", "steps"), [(4, 4, 7), (1, 4, 7), (5, 40, 9), (3, 8, 40)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("with_lengths", "reverse", "masked"), CASES)
@pytest.mark.parametrize("kind", ["gru", "layer_norm_gru"])
def test_gru_fast_path_equals_generic_loop(threads, batch, hidden, steps, bias, with_lengths, reverse, masked, kind):
    """Outputs, final state and every gradient (input, initial state, every parameter: the layer
    norms' gains too) of the C path equal the loop's, with lengths, reverse, a recurrent-dropout
    mask, without biases, with batch 1 on 2 threads and at T = 40 (where W_hh is packed)."""
    cell = make_cell(hidden, bias, kind)
    x = torch.randn(batch, steps, 3, requires_grad=True)
    h0 = torch.randn(batch, hidden, requires_grad=True)
    lengths = torch.randint(1, steps + 1, (batch,)) if with_lengths else None
    if lengths is not None:
        lengths[0] = steps
    mask = (torch.rand(batch, hidden) > 0.3).float() / 0.7 if masked else None
    reference_cell = cell if mask is None else RecurrentDropoutCell(cell, mask)
    weights = torch.randn(batch, steps, hidden)
    results = []
    for run in (lambda: gru_scan(cell, x, h0, lengths, reverse, mask=mask),
                lambda: rnn.scan(reference_cell, x, h0, lengths, reverse)):  # fmt: skip
        out, h = run()
        grads = torch.autograd.grad((out * weights).sum() + (h * h).sum(), [x, h0, *cell.parameters()])
        results.append((out, h, *grads))
    for fast, reference in zip(*results, strict=True):
        # The layer norms' gains and biases get float32 sums over 120 rows of terms up to ~15,
        # taken in another order (and through OpenBLAS's products on AMD CPUs): 1.1e-5 apart on an
        # element of 0.02 on a Zen 5, so the absolute tolerance scales with the tensor.
        scale = max(1.0, float(reference.abs().max()))
        torch.testing.assert_close(fast, reference, atol=1e-5 * scale, rtol=1e-5)
    if lengths is not None:  # outputs past each end are zero
        out = results[0][0]
        for b, n in enumerate(lengths.tolist()):
            assert not out[b, n:].any()


@needs_c
def test_gru_layers_use_the_fast_path_and_match_torch():
    torch.manual_seed(0)
    theirs = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    ours = rnn.GRU(3, 5, num_layers=2, bidirectional=True, impl="loop")
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 3, requires_grad=True)
    out, h = ours(x)
    expected, h_t = theirs(x)
    assert "GRUSequenceBackward" in graph_node_names(out.grad_fn)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_t, atol=1e-5, rtol=1e-5)
    ours_grads = torch.autograd.grad(out.square().sum(), [x, *ours.parameters()])
    theirs_grads = torch.autograd.grad(expected.square().sum(), [x, *theirs.parameters()])
    for a, b in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@needs_c
def test_regularized_gru_layers_take_the_fast_path():
    x = torch.randn(2, 6, 3)
    for layer in (rnn.GRU(3, 5, recurrent_dropout=0.3), rnn.GRU(3, 5, weight_drop=0.3), rnn.GRU(3, 5, zoneout=0.2)):
        out, _ = layer(x)
        assert "GRUSequenceBackward" in graph_node_names(out.grad_fn)


@needs_c
def test_layer_norm_gru_layers_use_the_fast_path_and_match_the_loop():
    torch.manual_seed(0)
    fast = rnn.LayerNormGRU(3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(2, 6, 3, requires_grad=True)
    lengths = torch.tensor([6, 4])
    out, h = fast(x, lengths=lengths)
    assert "GRUSequenceBackward" in graph_node_names(out.grad_fn)
    with pytest.MonkeyPatch.context() as patch:  # the same layer through the generic loop
        patch.setattr(sequence, "supports_gru", lambda cell, x: False)
        expected, h_loop = fast(x, lengths=lengths)
    assert "GRUSequenceBackward" not in graph_node_names(expected.grad_fn)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_loop, atol=1e-5, rtol=1e-5)
    ours = torch.autograd.grad(out.square().sum(), [x, *fast.parameters()])
    loop = torch.autograd.grad(expected.square().sum(), [x, *fast.parameters()])
    for a, b in zip(ours, loop, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_supports_gru_only_for_the_two_gru_cells_in_float32_on_the_cpu():
    x = torch.randn(2, 3, 3)
    assert not supports_gru(rnn.LSTMCell(3, 4), x)
    assert not supports_gru(rnn.GRUCell(3, 4, dtype=torch.float64), x.double())
    here = native.library() is not None and native.sgemm() is not None
    assert supports_gru(rnn.GRUCell(3, 4), x) == here and supports_gru(rnn.LayerNormGRUCell(3, 4), x) == here


@needs_c
@pytest.mark.parametrize("kind", ["gru", "layer_norm_gru"])
def test_gru_backward_twice_gives_the_same_gradients(kind):
    """GRUSequence's backward leaves what it saved untouched (retain_graph)."""
    cell = make_cell(5, kind=kind)
    x = torch.randn(3, 7, 3, requires_grad=True)
    out, _ = sequence.gru_scan(cell, x, None, torch.tensor([7, 2, 5]))
    loss = out.square().sum()
    first = torch.autograd.grad(loss, [x, *cell.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *cell.parameters()])
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@needs_c
@pytest.mark.parametrize("make", [lambda: rnn.GRU(3, 5, num_layers=2, impl="loop"), lambda: rnn.LayerNormLSTM(3, 5)])
def test_single_steps_run_the_generic_loop_and_stream_to_the_same_numbers(make):
    """A one-step call (generation) takes the generic loop; stepping through a sequence one step
    at a time, the state carried, gives the whole-sequence C call's outputs and final state."""
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(2, 6, 3)
    whole, final = layer(x)
    assert "SequenceBackward" in " ".join(graph_node_names(whole.grad_fn))
    state, steps = None, []
    for t in range(6):
        out, state = layer(x[:, t : t + 1], state)
        assert "SequenceBackward" not in " ".join(graph_node_names(out.grad_fn))
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(state if isinstance(state, tuple) else (state,), final if isinstance(final, tuple) else (final,),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
