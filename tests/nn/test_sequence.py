"""The LSTM family's fast path (one autograd Function per sequence) against the generic loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import rnnkit.nn as rnn
from rnnkit.nn import sequence
from rnnkit.nn.dropout import RecurrentDropoutCell
from rnnkit.nn.sequence import lstm_scan, supports
from tests.nn.twins import graph_node_names


def make_cell(kind: str, dtype=torch.float32, hidden: int = 4, bias: bool = True):
    torch.manual_seed(0)
    make = rnn.LSTMCell if kind == "lstm" else rnn.LayerNormLSTMCell
    cell = make(3, hidden, bias=bias, dtype=dtype)
    with torch.no_grad():
        for p in cell.parameters():
            p.uniform_(-0.6, 0.6)  # gains and biases away from their trivial init
    return cell


CASES = [
    (lengths, reverse, masked) for lengths in (False, True) for reverse in (False, True) for masked in (False, True)
]


@pytest.mark.parametrize("kind", ["lstm", "layer_norm_lstm"])
@pytest.mark.parametrize(("with_lengths", "reverse", "masked"), CASES)
def test_fast_path_equals_generic_loop(kind, with_lengths, reverse, masked):
    cell = make_cell(kind)
    x = torch.randn(4, 7, 3, requires_grad=True)
    state = (torch.randn(4, 4, requires_grad=True), torch.randn(4, 4, requires_grad=True))
    lengths = torch.tensor([7, 3, 1, 5]) if with_lengths else None
    mask = (torch.rand(4, 4) > 0.3).float() / 0.7 if masked else None
    reference_cell = cell if mask is None else RecurrentDropoutCell(cell, mask)
    results = []
    for run in (lambda: lstm_scan(cell, x, state, lengths, reverse, mask=mask),
                lambda: rnn.scan(reference_cell, x, state, lengths, reverse)):  # fmt: skip
        out, (h, c) = run()
        inputs = [x, *state, *cell.parameters()]
        grads = torch.autograd.grad((out * out).sum() + (h * c).sum(), inputs)
        results.append((out, h, c, *grads))
    for fast, reference in zip(*results, strict=True):
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "layer_norm_lstm"])
def test_fast_path_gradcheck_float64(kind):
    cell = make_cell(kind, torch.float64)
    x = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 1])
    mask = (torch.rand(3, 4) > 0.3).double() * 2

    def fn(x, h0, c0, *params):
        out, (h, c) = lstm_scan(cell, x, (h0, c0), lengths, mask=mask)
        return out, h, c

    assert gradcheck(fn, (x, h0, c0, *cell.parameters()), eps=1e-6, atol=1e-6, fast_mode=True)


def test_fast_path_covers_the_lstm_family_only():
    assert supports(rnn.LSTMCell(3, 4)) and supports(rnn.LayerNormLSTMCell(3, 4))
    assert not supports(rnn.LSTMCell(3, 4, proj_size=2)) and not supports(rnn.GRUCell(3, 4))


def test_layers_use_the_fast_path_and_match_torch():
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    ours = rnn.LSTM(3, 5, num_layers=2, bidirectional=True, impl="loop")
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 3)
    out, (h, c) = ours(x)
    expected, (h_t, c_t) = theirs(x)
    assert "LSTMSequenceBackward" in graph_node_names(out.grad_fn)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, c_t, atol=1e-5, rtol=1e-5)


@pytest.fixture(params=["rows", "columns"])
def product_split(request):
    """Run a test with each step's recurrent product split by batch rows, then by columns (the
    kernels pick by W_hh's size; these tests' weights are small, which alone would mean rows)."""
    from rnnkit.nn import native

    native.set_column_split_min(0 if request.param == "columns" else 2**62)
    yield request.param
    native.set_column_split_min(native.COLUMN_SPLIT_MIN)


@pytest.fixture
def two_threads():
    """torch (and so the C kernels' OpenMP loops) on 2 threads for one test; the suite runs on 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("batch", "bias"), [(5, True), (1, True), (5, False)])
@pytest.mark.parametrize("whole", [True, False], ids=["whole-sequence", "per-step"])
@pytest.mark.parametrize("hidden", [4, 40])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "layer_norm_lstm"])
def test_c_kernels_build_where_a_compiler_exists_and_match_the_torch_code(
    monkeypatch, request, kind, threads, hidden, whole, batch, bias
):
    """The C kernels (rnnkit.nn.native) of each LSTM give the torch code's values and gradients:
    the whole-sequence kernels (recurrent products through torch's own sgemm_; 9 steps, too few
    to pack W_hh: test_packed_weights_... covers that; the layer-norm
    cell's with LN_ih inside) and the per-step ones, on one thread and with the batch rows shared
    out to two (batch 1: one thread has no rows), with and without biases; hidden 40 (4H = 160)
    spans several of the column blocks that the per-step layer-norm gains' gradient sums are
    shared out by, and the weight gradient is summed over blocks of 2 steps (9 steps: the last
    block is short)."""
    if threads == 2:
        request.getfixturevalue("two_threads")
    import shutil

    from rnnkit.nn import native

    has_compiler = shutil.which("cc") is not None or shutil.which("gcc") is not None
    assert (native.library() is not None) == has_compiler  # built here, or the documented fallback
    if whole and native.sgemm() is None:
        pytest.skip("torch's library exports no sgemm_ here: the per-step kernels run")
    monkeypatch.setattr(native, "_sgemm", [native.sgemm() if whole else None])
    monkeypatch.setattr(sequence, "_WEIGHT_GRAD_ROWS", 2 * batch)  # 2 steps per block
    monkeypatch.setattr(sequence, "_MIN_CALL_STEPS", 1)
    cell = make_cell(kind, hidden=hidden, bias=bias)
    x = torch.randn(batch, 9, 3, requires_grad=True)
    lengths = torch.tensor([9, 4, 1, 9, 7][:batch] if batch > 1 else [6])
    mask = ((torch.rand(hidden, batch) > 0.3).float() / 0.7).t()  # not contiguous: any layout works
    results = []
    for lib in ([native.library()], [None]):  # C kernels (when built), then the torch code
        monkeypatch.setattr(native, "_loaded", lib)
        out, (h, c) = lstm_scan(cell, x, None, lengths, reverse=True, mask=mask)
        grads = torch.autograd.grad(out.square().sum() + (h * c).sum(), [x, *cell.parameters()])
        results.append((out, h, c, *grads))
    for fast, reference in zip(*results, strict=True):
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


def test_c_layer_norm_matches_torch():
    """LN_ih's C kernel (LayerNormRows) gives F.layer_norm's values and gradients, with and
    without a shift, on rows of several sizes."""
    from rnnkit.nn import native

    if native.library() is None:
        pytest.skip("no C compiler here: F.layer_norm runs")
    torch.manual_seed(0)
    for n, with_bias in ((5, True), (160, False)):
        x = torch.randn(3, 7, n, requires_grad=True)
        gain = torch.randn(n, requires_grad=True)
        bias = torch.randn(n, requires_grad=True) if with_bias else None
        inputs = [t for t in (x, gain, bias) if t is not None]
        weights = torch.randn(3, 7, n)
        results = []
        for ours in (True, False):
            y = sequence.LayerNormRows.apply(x, gain, bias, 1e-5) if ours else F.layer_norm(x, (n,), gain, bias, 1e-5)
            results.append((y, *torch.autograd.grad((y * weights).sum(), inputs)))
        for ours, theirs in zip(*results, strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layer", ["lstm", "layer_norm_lstm", "min_gru"])
def test_backward_twice_gives_the_same_gradients(monkeypatch, layer):
    """The sequence Functions' backward passes leave what they saved untouched (retain_graph)."""
    from rnnkit.nn import minrnn

    torch.manual_seed(0)
    monkeypatch.setattr(minrnn, "CHUNK_STEPS", 2)  # chunks of 2 steps
    make = {"lstm": lambda: rnn.LSTM(4, 5, impl="loop"), "layer_norm_lstm": lambda: rnn.LayerNormLSTM(4, 5)}
    model = make.get(layer, lambda: rnn.MinGRU(4, 5))()
    x = torch.randn(3, 7, 4, requires_grad=True)
    out, _ = model(x, lengths=torch.tensor([7, 2, 5]))
    loss = out.square().sum()
    first = torch.autograd.grad(loss, [x, *model.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *model.parameters()])
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["lstm", "layer_norm_lstm"])
def test_c_kernels_stay_finite_where_the_activations_saturate(kind):
    """Pre-activations of +30 and -100 (the output gate) and a cell state that grows past 44
    (where exp(2c) overflows float32) give the torch code's finite values, forward and backward."""
    from rnnkit.nn import native

    if native.library() is None:
        pytest.skip("no C compiler here: the torch code runs")
    cell = make_cell(kind, hidden=8)
    with torch.no_grad():
        cell.bias_ih.fill_(30.0)  # i, f -> 1 and g -> 1: c grows by 1 per step, to 70
        cell.bias_ih[24:].fill_(-100.0)  # o -> sigmoid(-100)
    x = torch.randn(2, 70, 3, requires_grad=True)
    results = []
    for lib in ([native.library()], [None]):
        native_lib = native._loaded[:]
        native._loaded[:] = lib
        try:
            out, (h, c) = lstm_scan(cell, x)
            grads = torch.autograd.grad(out.sum() + c.sum(), [x, *cell.parameters()])
        finally:
            native._loaded[:] = native_lib
        results.append((out, h, c, *grads))
    for ours, theirs in zip(*results, strict=True):
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("layer", ["lstm", "layer_norm_lstm", "gru"])
def test_column_split_products_with_fewer_rows_or_columns_than_threads(request, layer, batch, product_split):
    """Each step's recurrent product is shared out by columns in blocks of 16: with H = 2 one of
    two threads has no columns of dh (and at B = 1 no rows either), on calls long enough to pack
    W_hh. The C path's values and gradients are about as close to float64's as the torch code's
    are: within 8 times the torch code's error (layer norms over 2 units amplify float32 rounding:
    over seeds 0-11 the C path's worst tensor error was 0.1-5.1 times the torch code's, with 256-
    and 512-bit vectors alike; a wrong share of the product is off by the tensor's own scale)."""
    from rnnkit.nn import native

    if native.library() is None or native.sgemm() is None:
        pytest.skip("no C kernels or sgemm_ here")
    request.getfixturevalue("two_threads")
    torch.manual_seed(0)
    make = {"lstm": lambda: rnn.LSTM(3, 2, impl="loop"), "layer_norm_lstm": lambda: rnn.LayerNormLSTM(3, 2),
            "gru": lambda: rnn.GRU(3, 2, impl="loop")}[layer]  # fmt: skip
    model, x = make(), torch.randn(batch, 40, 3)
    exact = make().double()
    exact.load_state_dict(model.state_dict())

    def values_and_grads(m, inputs):
        inputs = inputs.clone().requires_grad_()
        out, _ = m(inputs)
        return (out, *torch.autograd.grad(out.square().sum(), [inputs, *m.parameters()]))

    reference = values_and_grads(exact, x.double())  # float64: the torch code
    results = []
    for lib in ([native.library()], [None]):
        saved = native._loaded[:]
        native._loaded[:] = lib
        try:
            results.append(values_and_grads(model, x))
        finally:
            native._loaded[:] = saved
    for ours, torch_code, exact_value in zip(*results, reference, strict=True):
        scale = float(exact_value.abs().max())
        error, torch_error = ((t.double() - exact_value).abs().max() for t in (ours, torch_code))
        assert error <= 8 * torch_error + 1e-6 * scale, (float(error), float(torch_error), scale)


@pytest.mark.parametrize("layer", ["lstm", "layer_norm_lstm", "gru", "min_gru"])
def test_output_grads_are_read_in_any_layout(request, layer):
    """The whole-sequence backward kernels read the grad of the outputs where autograd leaves it
    (native.grad_rows): time-major or batch-major rows, expanded along H (as out.sum() gives), or
    copied first where its last axis is strided. Each layout gives the same gradients, bit for bit,
    as the same numbers in a contiguous tensor."""
    from rnnkit.nn import native

    if native.library() is None or native.sgemm() is None:
        pytest.skip("no C kernels or sgemm_ here")
    request.getfixturevalue("two_threads")
    torch.manual_seed(0)
    B, T, H = 3, 5, 6
    make = {"lstm": lambda: rnn.LSTM(4, H, impl="loop"), "layer_norm_lstm": lambda: rnn.LayerNormLSTM(4, H),
            "gru": lambda: rnn.GRU(4, H, impl="loop"), "min_gru": lambda: rnn.MinGRU(4, H)}[layer]  # fmt: skip
    model, x = make(), torch.randn(B, T, 4)
    layouts = {
        "batch-major": torch.randn(B, T, H),
        "time-major": torch.randn(T, B, H).transpose(0, 1),
        "expanded along H": torch.randn(B, T, 1).expand(B, T, H),
        "all one number": torch.randn(1, 1, 1).expand(B, T, H),
        "strided along H": torch.randn(B, H, T).transpose(1, 2),
    }
    for name, grad in layouts.items():
        out, _ = model(x)
        in_place = torch.autograd.grad(out, list(model.parameters()), grad)
        out, _ = model(x)
        contiguous = torch.autograd.grad(out, list(model.parameters()), grad.contiguous())
        for a, b in zip(in_place, contiguous, strict=True):
            assert torch.equal(a, b), name


@pytest.mark.parametrize("kind", ["lstm", "layer_norm_lstm"])
def test_packed_weights_on_sequences_long_enough_to_pack(request, kind, product_split):
    """The whole-sequence kernels pack W_hh (MKL's sgemm_pack) only for calls of 32 steps or more
    (a generation step uses plain sgemm_): at T = 40 the packed products give the torch code's
    values and gradients, with lengths and a recurrent-dropout mask, on 2 threads."""
    from rnnkit.nn import native

    if native.library() is None or native.sgemm() is None:
        pytest.skip("no C kernels or sgemm_ here")
    packed = native.packed_gemm()  # off where the kernels call OpenBLAS: turned on for this test only
    if not native.use_packed_gemm(True):
        pytest.skip("no sgemm_pack_ here")
    request.addfinalizer(lambda: native.use_packed_gemm(packed))
    request.getfixturevalue("two_threads")
    cell = make_cell(kind, hidden=8)
    x = torch.randn(3, 40, 3, requires_grad=True)
    lengths, mask = torch.tensor([40, 33, 7]), (torch.rand(3, 8) > 0.3).float() / 0.7
    results = []
    for lib in ([native.library()], [None]):
        saved = native._loaded[:]
        native._loaded[:] = lib
        try:
            out, (h, c) = lstm_scan(cell, x, None, lengths, mask=mask)
            grads = torch.autograd.grad(out.square().sum() + (h * c).sum(), [x, *cell.parameters()])
        finally:
            native._loaded[:] = saved
        results.append((out, h, c, *grads))
    for ours, theirs in zip(*results, strict=True):
        # The gains' and biases' gradients are float32 sums over 120 rows taken in another order:
        # up to 2.7e-6 of the tensor's largest value apart on an AVX-512 AMD EPYC (1.7e-5 relative
        # on one element), so the absolute tolerance scales with the tensor.
        scale = max(1.0, float(theirs.abs().max()))
        torch.testing.assert_close(ours, theirs, atol=5e-6 * scale, rtol=1e-5)
