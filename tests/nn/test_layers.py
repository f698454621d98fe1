"""rnnkit.nn layers vs torch.nn with copied weights: outputs, final states and gradients.

The sweep covers RNN (tanh, relu), LSTM (with and without proj_size) and GRU × 1–3 layers ×
uni/bidirectional × with/without lengths (unsorted, including 1 and T) × with/without an
initial state × impl loop/fused, on seeded random shapes.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import rnnkit.nn as rnn
from tests.nn.twins import KINDS, as_tuple, assert_func_grad_matches_backward, make_pair, random_lengths, torch_forward

ATOL = 1e-5
SWEEP = list(itertools.product(KINDS, (1, 2, 3), (False, True), (False, True), (False, True), ("loop", "fused")))


def _case_seed(*parts) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(str(parts)))


@pytest.mark.parametrize("kind,num_layers,bidirectional,use_lengths,use_state,impl", SWEEP)
def test_matches_torch_nn(kind, num_layers, bidirectional, use_lengths, use_state, impl):
    seed = _case_seed(kind, num_layers, bidirectional, use_lengths, use_state, impl)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    B, T = int(torch.randint(2, 6, (1,), generator=gen)), int(torch.randint(1, 9, (1,), generator=gen))
    I, H = int(torch.randint(1, 7, (1,), generator=gen)), int(torch.randint(4, 9, (1,), generator=gen))
    ours, theirs = make_pair(kind, I, H, num_layers=num_layers, bidirectional=bidirectional, impl=impl)
    D = 2 if bidirectional else 1
    x = torch.randn(B, T, I, generator=gen)
    lengths = random_lengths(gen, B, T) if use_lengths else None
    state = None
    if use_state:
        sizes = (ours.output_size, H) if kind.startswith("lstm") else (H,)
        state = tuple(torch.randn(num_layers * D, B, s, generator=gen) for s in sizes)
        state = state if len(state) == 2 else state[0]

    results = []
    for layer, forward in ((ours, lambda m, *a: m(a[0], a[1], lengths=a[2])), (theirs, torch_forward)):
        xi = x.clone().requires_grad_(True)
        si = None if state is None else tuple(s.clone().requires_grad_(True) for s in as_tuple(state))
        out, hn = forward(layer, xi, None if si is None else (si if len(si) == 2 else si[0]), lengths)
        # A loss that weighs every output and final-state element differently.
        w = torch.Generator().manual_seed(1)
        loss = (out * torch.randn(out.shape, generator=w)).sum()
        loss = loss + sum((h * torch.randn(h.shape, generator=w)).sum() for h in as_tuple(hn))
        loss.backward()
        grads = {n: p.grad for n, p in layer.named_parameters()}
        results.append((out, as_tuple(hn), xi.grad, None if si is None else [s.grad for s in si], grads))

    (o1, h1, gx1, gs1, gw1), (o2, h2, gx2, gs2, gw2) = results
    assert o1.shape == o2.shape == (B, T, D * ours.output_size)
    torch.testing.assert_close(o1, o2, atol=ATOL, rtol=0)
    for a, b in zip(h1, h2, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(gx1, gx2, atol=ATOL, rtol=0)
    if gs1 is not None:
        for a, b in zip(gs1, gs2, strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    assert gw1.keys() == gw2.keys()
    for name in gw1:
        torch.testing.assert_close(gw1[name], gw2[name], atol=ATOL, rtol=0, msg=name)
    if lengths is not None:  # outputs past each sequence's end are exactly zero
        past_end = torch.arange(T)[None, :] >= lengths[:, None]
        assert (o1[past_end] == 0).all()


@pytest.mark.parametrize("kind", list(KINDS))
def test_parameter_names_and_state_dict_both_ways(kind):
    torch.manual_seed(0)
    ours, theirs = make_pair(kind, 5, 6, num_layers=2, bidirectional=True)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert p.shape == q.shape, n
    # torch -> rnnkit: re-initialise torch's weights, load them into ours, same outputs.
    for p in theirs.parameters():
        torch.nn.init.normal_(p)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 4, 5)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_flatten_parameters_runs_as_torch_nn_code_calls_it_and_changes_nothing(kind):
    torch.manual_seed(0)
    ours, theirs = make_pair(kind, 5, 6, num_layers=2, bidirectional=True)
    x = torch.randn(3, 4, 5)
    before, state = ours(x)[0], {k: v.clone() for k, v in ours.state_dict().items()}
    ours.flatten_parameters()
    theirs.flatten_parameters()
    torch.testing.assert_close(ours(x)[0], before, atol=0, rtol=0)
    assert all(torch.equal(v, state[k]) for k, v in ours.state_dict().items())


@pytest.mark.parametrize("impl", ["loop", "fused"])
def test_time_first_and_unbatched(impl):
    torch.manual_seed(0)
    ours = rnn.LSTM(3, 4, num_layers=2, batch_first=False, impl=impl)
    theirs = torch.nn.LSTM(3, 4, num_layers=2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)  # (T, B, I)
    (o1, (h1, c1)), (o2, (h2, c2)) = ours(x), theirs(x)
    torch.testing.assert_close(o1, o2, atol=ATOL, rtol=0)
    torch.testing.assert_close(c1, c2, atol=ATOL, rtol=0)
    xu = torch.randn(5, 3)  # (T, I), no batch axis
    (o1, (h1, _)), (o2, (h2, _)) = ours(xu), theirs(xu)
    assert o1.shape == (5, 4) and h1.shape == (2, 4)
    torch.testing.assert_close(o1, o2, atol=ATOL, rtol=0)
    torch.testing.assert_close(h1, h2, atol=ATOL, rtol=0)


@pytest.mark.parametrize("impl", ["loop", "fused"])
def test_inter_layer_dropout_on_in_train_off_in_eval(impl):
    torch.manual_seed(0)
    layer = rnn.GRU(4, 8, num_layers=2, dropout=0.5, impl=impl)
    x = torch.randn(3, 6, 4)
    layer.train()
    a, b = layer(x)[0], layer(x)[0]
    assert not torch.allclose(a, b), "two training passes should draw different dropout masks"
    layer.eval()
    c, d = layer(x)[0], layer(x)[0]
    torch.testing.assert_close(c, d, atol=0, rtol=0)
    reference = torch.nn.GRU(4, 8, num_layers=2, dropout=0.5, batch_first=True).eval()
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(c, reference(x)[0], atol=ATOL, rtol=0)


def test_streaming_chunks_equal_whole_sequence():
    torch.manual_seed(0)
    layer = rnn.LSTM(3, 5, num_layers=2, impl="loop")
    x = torch.randn(2, 12, 3)
    whole, (h, c) = layer(x)
    state, parts = None, []
    for chunk in x.split(5, dim=1):
        out, state = layer(chunk, state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=ATOL, rtol=0)
    torch.testing.assert_close(state[0], h, atol=ATOL, rtol=0)
    torch.testing.assert_close(state[1], c, atol=ATOL, rtol=0)


def test_double_precision_and_no_bias():
    torch.manual_seed(0)
    ours, theirs = make_pair("gru", 3, 4, bias=False, impl="loop")
    ours, theirs = ours.double(), theirs.double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], atol=1e-12, rtol=0)
    assert "bias_ih_l0" not in dict(ours.named_parameters())


AUTOCAST_LAYERS = {
    "lstm_fused": lambda: rnn.LSTM(6, 8, num_layers=2, impl="fused"),
    "lstm_loop": lambda: rnn.LSTM(6, 8, num_layers=2, impl="loop"),
    "gru_auto": lambda: rnn.GRU(6, 8, bidirectional=True),
    "layer_norm_lstm": lambda: rnn.LayerNormLSTM(6, 8),
    "min_gru": lambda: rnn.MinGRU(6, 8),
}


@pytest.mark.parametrize("name", list(AUTOCAST_LAYERS))
@pytest.mark.parametrize("training", [True, False])
def test_under_bf16_autocast_a_layer_takes_bf16_inputs_and_its_own_last_state(name, training):
    torch.manual_seed(0)
    layer = AUTOCAST_LAYERS[name]().train(training)
    x = torch.randn(3, 5, 6).bfloat16()  # as an op before it (an nn.Linear) gives it under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.set_grad_enabled(training):
        out, state = layer(x)
        again, _ = layer(x, state)  # the state may be bf16 (torch's kernel) while x is not: streaming
    with torch.set_grad_enabled(training):
        reference, _ = layer(x.float())  # the same input in the parameters' dtype, no autocast
    assert again.shape == out.shape == reference.shape
    if out.dtype == torch.float32:  # a written-here path: float32 throughout, the plain numbers
        torch.testing.assert_close(out, reference, rtol=0, atol=0)
    else:  # torch's kernel under autocast: bf16's precision
        torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)
    with pytest.raises(ValueError, match=r"x: dtype torch\.bfloat16 on cpu does not match"):
        layer(x)  # outside autocast a mismatch is refused, as before


def test_under_autocast_on_a_cpu_without_bf16_rnn_kernels_the_fused_path_runs_in_float32(monkeypatch):
    """torch.nn.LSTM under CPU autocast raises where oneDNN has no bf16 kernel (AVX2-only CPUs):
    the fused path then runs torch's kernel in float32 and gives its plain numbers."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    torch.manual_seed(0)
    layer, x = rnn.LSTM(6, 8, num_layers=2, impl="fused"), torch.randn(3, 5, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = layer(x)
    reference, (h_ref, c_ref) = layer(x)
    assert out.dtype == h.dtype == c.dtype == torch.float32
    for ours, theirs in ((out, reference), (h, h_ref), (c, c_ref)):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("impl", ["loop", "fused"])
def test_an_empty_batch_gives_empty_outputs_and_states_as_torch_nn_does(kind, impl):
    ours, theirs = make_pair(kind, 4, 6, num_layers=2, bidirectional=True, impl=impl)
    x = torch.ones(0, 3, 4)
    out, state = ours(x, lengths=torch.zeros(0, dtype=torch.long))
    ref_out, ref_state = theirs(x)
    assert out.shape == ref_out.shape == (0, 3, ref_out.shape[-1])
    assert [s.shape for s in as_tuple(state)] == [s.shape for s in as_tuple(ref_state)]
    with pytest.raises(ValueError, match=r"lengths: expected shape \(0,\)"):
        ours(x, lengths=torch.ones(2, dtype=torch.long))


@pytest.mark.parametrize("sizes", [(8.5, 8), (0, 8), (True, 8), (8, -1)])
def test_sizes_must_be_positive_integers(sizes):
    with pytest.raises(ValueError, match="input_size and hidden_size: expected positive integers"):
        rnn.LSTM(*sizes)


WRITTEN_HERE_LAYERS = {
    "rnn": lambda: rnn.RNN(6, 4, impl="loop"),
    "lstm": lambda: rnn.LSTM(6, 4, impl="loop"),
    "lstm_proj": lambda: rnn.LSTM(6, 4, proj_size=2, impl="loop"),
    "gru": lambda: rnn.GRU(6, 4, impl="loop"),
    "gru_zoneout": lambda: rnn.GRU(6, 4, zoneout=0.2),
    "layer_norm_lstm": lambda: rnn.LayerNormLSTM(6, 4, num_layers=2),
    "layer_norm_gru": lambda: rnn.LayerNormGRU(6, 4, bidirectional=True),
    "indrnn": lambda: rnn.IndRNN(6, 4),
    "min_gru": lambda: rnn.MinGRU(6, 4, impl="loop"),
}


@pytest.mark.parametrize("name", list(WRITTEN_HERE_LAYERS))
@pytest.mark.parametrize("T", [1, 4])
def test_under_autocast_the_written_here_paths_compute_the_plain_float32_numbers(name, T):
    # A single step (generation) runs the generic loop, longer sequences the C calls: under
    # autocast both must give the numbers of the plain layer, in float32 (GRUs used to crash here).
    torch.manual_seed(0)
    layer = WRITTEN_HERE_LAYERS[name]().eval()
    x = torch.randn(2, T, 6).bfloat16()  # as an op before it gives it under autocast
    reference, state = layer(x.float())
    step_reference, _ = layer(x[:, :1].float(), state)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = layer(x)
        step, _ = layer(x[:, :1], state)
    assert out.dtype == step.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    torch.testing.assert_close(step, step_reference, rtol=0, atol=0)


FUNC_LAYERS = {
    "lstm": lambda: rnn.LSTM(4, 5, num_layers=2, bidirectional=True),
    "gru": lambda: rnn.GRU(4, 5),
    "lstm_proj": lambda: rnn.LSTM(4, 5, proj_size=3),
    "layer_norm_lstm": lambda: rnn.LayerNormLSTM(4, 5),
    "layer_norm_gru": lambda: rnn.LayerNormGRU(4, 5, bidirectional=True),
    "zoneout_lstm": lambda: rnn.LSTM(4, 5, zoneout=0.1),
}


@pytest.mark.parametrize("name", list(FUNC_LAYERS))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_torch_func_grad_gives_the_gradients_of_backward(name, with_lengths):
    # torch.func.grad (MAML, per-example gradients) runs torch.nn's RNNs; the sequence Functions
    # have no functorch rule, and torch's packing cannot be traced there: the generic loop runs.
    torch.manual_seed(0)
    layer = FUNC_LAYERS[name]().eval()
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 2, 4]) if with_lengths else None
    assert_func_grad_matches_backward(layer, x, lengths)


@pytest.mark.parametrize("batch_first", [True, False])
def test_unbatched_input_without_time_steps_is_a_clear_value_error(batch_first):
    layer = rnn.GRU(3, 4, batch_first=batch_first)
    with pytest.raises(ValueError, match=r"^x: expected at least one time step, got shape \(0, 3\)"):
        layer(torch.randn(0, 3))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: rnn.LSTM(3, 4, num_layers=2.0), r"^num_layers: expected an integer >= 1, got 2\.0"),
        (lambda: rnn.GRU(3, 4, num_layers="2"), r"^num_layers: expected an integer >= 1, got '2'"),
        (lambda: rnn.MinGRU(3, 4, num_layers=True), r"^num_layers: expected an integer >= 1, got True"),
        (lambda: rnn.LSTM(3, 4, proj_size=2.0), r"^proj_size: expected an integer.*got 2\.0"),
    ],
)
def test_integer_options_must_be_integers(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_packed_sequence_is_refused_pointing_to_lengths():
    layer = rnn.LSTM(3, 4)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(2, 5, 3), [5, 3], batch_first=True)
    with pytest.raises(ValueError, match=r"^x: expected a padded Tensor, got a PackedSequence; .*lengths="):
        layer(packed)


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU, rnn.RNN])
def test_seeded_dropout_between_layers_draws_the_same_masks_on_every_path(cls) -> None:
    torch.manual_seed(0)
    fused = cls(8, 16, num_layers=3, dropout=0.5, bidirectional=True, impl="fused")
    loop = cls(8, 16, num_layers=3, dropout=0.5, bidirectional=True, impl="loop")
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(4, 40, 8)
    outputs = []
    for layer in (fused, loop):
        torch.manual_seed(1)
        outputs.append(layer(x)[0])
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)  # the loop's output was a strided view
