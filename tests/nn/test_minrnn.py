"""minGRU/minLSTM: the parallel scan agrees with the step-by-step loop, and generation streams."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit.nn as rnn
from rnnkit.nn.minrnn import blocked_scan, linear_recurrence
from tests.nn.twins import assert_func_grad_matches_backward


def sequential_recurrence(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize(("T", "block"), [(1, None), (63, None), (64, None), (200, None), (10, 3), (10, 1), (7, 10)])
def test_blocked_scan_matches_sequential(T, block):
    gen = torch.Generator().manual_seed(T)
    a = torch.rand(3, T, 5, generator=gen)
    b = torch.randn(3, T, 5, generator=gen)
    h0 = torch.randn(3, 5, generator=gen)  # any sign
    torch.testing.assert_close(blocked_scan(a, b, h0, block), sequential_recurrence(a, b, h0), atol=1e-5, rtol=1e-5)


def test_blocked_scan_reverse_matches_sequential():
    gen = torch.Generator().manual_seed(0)
    a, b, h0 = torch.rand(2, 12, 3, generator=gen), torch.randn(2, 12, 3, generator=gen), torch.randn(2, 3)
    expected = sequential_recurrence(a.flip(1), b.flip(1), h0).flip(1)
    torch.testing.assert_close(blocked_scan(a, b, h0, 4, reverse=True), expected)


@pytest.mark.parametrize("T", [1, 7, 17])
def test_linear_recurrence_gradcheck_float64(T):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, T, 3, generator=gen, dtype=torch.float64).requires_grad_()
    b = torch.randn(2, T, 3, generator=gen, dtype=torch.float64).requires_grad_()
    h0 = torch.randn(2, 3, generator=gen, dtype=torch.float64).requires_grad_()
    assert gradcheck(linear_recurrence, (a, b, h0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cls", [rnn.MinGRU, rnn.MinLSTM])
def test_parallel_and_sequential_agree_values_and_gradients(cls, dtype):
    """To 1e-5 in float32; gradients (sums over 150 steps) to 1e-4 in float32, 1e-10 in float64."""
    torch.manual_seed(0)
    parallel = cls(4, 6, num_layers=2, bidirectional=True, dtype=dtype)
    sequential = cls(4, 6, num_layers=2, bidirectional=True, impl="loop", dtype=dtype)
    sequential.load_state_dict(parallel.state_dict())
    x = torch.randn(3, 150, 4, dtype=dtype)
    lengths = torch.tensor([150, 70, 1])
    h0 = torch.randn(4, 3, 6, dtype=dtype)
    outs = []
    for layer in (parallel, sequential):
        out, h_n = layer(x, h0, lengths=lengths)
        (out.square().sum() + h_n.sum()).backward()
        outs.append((out, h_n, [p.grad for p in layer.parameters()]))
    (out_p, h_p, g_p), (out_s, h_s, g_s) = outs
    torch.testing.assert_close(out_p, out_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_p, h_s, atol=1e-5, rtol=1e-5)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for a, b in zip(g_p, g_s, strict=True):
        torch.testing.assert_close(a, b, atol=tol * b.abs().max(), rtol=tol)


@pytest.mark.parametrize("cls", [rnn.MinGRU, rnn.MinLSTM])
def test_generation_one_step_at_a_time_matches_whole_sequence(cls):
    torch.manual_seed(0)
    layer = cls(4, 6, num_layers=2).eval()
    x = torch.randn(2, 20, 4)
    with torch.no_grad():
        whole, h_whole = layer(x)
        state, steps = None, []
        for t in range(20):
            out, state = layer(x[:, t : t + 1], state)  # O(1) state: (L, B, H)
            steps.append(out)
    assert state.shape == (2, 2, 6)
    torch.testing.assert_close(torch.cat(steps, 1), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, h_whole, atol=1e-5, rtol=1e-5)


def test_min_gru_long_sequence_stays_accurate():
    """At T = 2048 the blocked log-space scan still agrees with the loop in float32."""
    torch.manual_seed(0)
    cell = rnn.MinGRUCell(8, 16)
    x = torch.randn(2, 2048, 8)
    parallel, h_p = rnn.parallel_scan(cell, x)
    with torch.no_grad():
        sequential, h_s = rnn.scan(cell, x)
    torch.testing.assert_close(parallel.detach(), sequential, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_p.detach(), h_s, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("chunk_steps", "bias"), [(3, True), (1024, True), (3, False)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cls", [rnn.MinGRU, rnn.MinLSTM])
def test_c_kernel_matches_the_blocked_scan(monkeypatch, cls, threads, chunk_steps, bias):
    """The C pass (rnnkit.nn.native), on one thread and on two, gives the torch scan's values and
    gradients: outputs, final state, input, weights and initial state, with lengths, both
    directions; as chunks of 3 steps (the last chunk of 40 steps is 1 step long, the state and its
    gradient carried across) and as one chunk; with and without biases (the C pass adds the bias
    and sums its gradient per thread)."""
    from rnnkit.nn import minrnn, native

    if native.library() is None:
        pytest.skip("no C compiler here: the min-cells run the blocked scan only")
    monkeypatch.setattr(minrnn, "CHUNK_STEPS", chunk_steps)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        layer = cls(3, 5, num_layers=2, bidirectional=True, bias=bias)
        with torch.no_grad():
            for p in layer.parameters():
                p.mul_(4.0)  # gate pre-activations of both signs and large size
        x = torch.randn(4, 40, 3, requires_grad=True)
        lengths, h0 = torch.tensor([40, 17, 1, 33]), torch.randn(4, 4, 5, requires_grad=True)
        results = []
        for lib in ([native.library()], [None]):  # the C kernel, then the blocked scan
            monkeypatch.setattr(native, "_loaded", lib)
            out, h_n = layer(x, h0, lengths=lengths)
            grads = torch.autograd.grad(out.square().sum() + h_n.sum(), [x, h0, *layer.parameters()])
            results.append((out, h_n, *grads))
    finally:
        torch.set_num_threads(before)
    (out, h_n, *grads), (out_ref, h_ref, *grads_ref) = results
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_n, h_ref, atol=1e-5, rtol=1e-5)
    for fast, reference in zip(grads, grads_ref, strict=True):  # sums over B * T steps: float32 rounding
        torch.testing.assert_close(fast, reference, atol=1e-4 * reference.abs().max(), rtol=1e-4)


def test_c_pass_reads_output_gradients_in_any_layout(monkeypatch):
    """MinSequence's backward reads an output gradient with contiguous hidden units in place
    whatever its batch and time strides (time-major, a slice of a wider tensor), reads an
    expanded one (one value per step, as ``out.sum()`` gives) without materializing it, and copies
    any other: all give the blocked scan's gradients."""
    from rnnkit.nn import minrnn, native

    if native.library() is None:
        pytest.skip("no C compiler here: the min-cells run the blocked scan only")
    monkeypatch.setattr(minrnn, "CHUNK_STEPS", 2)
    torch.manual_seed(0)
    cell = rnn.MinGRUCell(4, 5)
    x, h0 = torch.randn(3, 7, 4, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    grad = torch.randn(3, 7, 5)
    per_step = torch.randn(3, 7, 1)
    wide = torch.zeros(3, 7, 10)
    wide[..., 2:7], spread = grad, torch.zeros(3, 7, 10)
    spread[..., ::2] = grad
    layouts = {
        "contiguous": grad,
        "time-major": grad.transpose(0, 1).contiguous().transpose(0, 1),
        "slice": wide[..., 2:7],
        "expanded": per_step.expand(3, 7, 5),
        "every other": spread[..., ::2],
    }
    assert [layouts[k].stride(-1) for k in layouts] == [1, 1, 1, 0, 2]
    assert not any(layouts[k].is_contiguous() for k in list(layouts)[1:])
    from rnnkit.nn import buffers

    made = []  # shapes of the buffers the backward pass takes
    take = buffers.empty
    monkeypatch.setattr(buffers, "empty", lambda like, *shape: made.append(shape) or take(like, *shape))
    a, b = cell.coefficients(cell.project(x))
    expected = minrnn.linear_recurrence(a, b, h0)
    for name, g in layouts.items():
        h = minrnn.MinSequence.apply(x, cell.weight_ih, cell.bias_ih, h0, cell.kernel)
        made.clear()
        ours = torch.autograd.grad(h, [x, h0, *cell.parameters()], g)
        assert ((3, 7, 5) in made) == (name == "every other"), name  # only that layout is copied
        theirs = torch.autograd.grad(expected, [x, h0, *cell.parameters()], g.contiguous(), retain_graph=True)
        for mine, reference in zip(ours, theirs, strict=True):
            torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [rnn.MinGRUCell, rnn.MinLSTMCell])
def test_c_pass_matches_torch_where_the_gates_saturate(monkeypatch, cls):
    """Gate pre-activations of both signs out to |100| (exp underflows, sigmoid is exactly 0 or 1
    in float32) and exactly 0: the C pass, which keeps the smaller of each gate pair for the
    backward pass, gives the torch formula's values and gradients, all finite."""
    from rnnkit.nn import minrnn, native

    if native.library() is None or native.sgemm() is None:
        pytest.skip("no C kernels or sgemm_ here: the min-cells run the blocked scan only")
    monkeypatch.setattr(minrnn, "CHUNK_STEPS", 4)
    torch.manual_seed(0)
    cell = cls(1, 6)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.linspace(-100.0, 100.0, cell.weight_ih.numel()).view_as(cell.weight_ih))
        cell.bias_ih.zero_()
    x = torch.tensor([1.0, -1.0, 0.0, 0.5, -0.25, 1.0, 0.0, -1.0, 0.75]).view(1, 9, 1).repeat(2, 1, 1)
    x.requires_grad_(True)
    h0 = torch.randn(2, 6, requires_grad=True)
    grad = torch.randn(2, 9, 6)
    ours = minrnn.MinSequence.apply(x, cell.weight_ih, cell.bias_ih, h0, cell.kernel)
    a, b = cell.coefficients(cell.project(x))
    theirs = minrnn.linear_recurrence(a, b, h0)
    inputs = [x, h0, cell.weight_ih, cell.bias_ih]
    for mine, reference in zip(
        [ours, *torch.autograd.grad(ours, inputs, grad)],
        [theirs, *torch.autograd.grad(theirs, inputs, grad)],
        strict=True,
    ):
        assert torch.isfinite(mine).all()
        torch.testing.assert_close(mine, reference, atol=1e-4 * max(1.0, reference.abs().max().item()), rtol=1e-5)


@pytest.mark.parametrize("cls", [rnn.MinGRU, rnn.MinLSTM])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_torch_func_grad_gives_the_gradients_of_backward(cls, with_lengths):
    # The C pass and the parallel scan are autograd Functions without a functorch rule: under
    # torch.func the layer runs the generic step loop, which gives the same numbers.
    torch.manual_seed(0)
    layer = cls(4, 5, num_layers=2, bidirectional=True)
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 2, 4]) if with_lengths else None
    assert_func_grad_matches_backward(layer, x, lengths)
