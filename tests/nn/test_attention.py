"""Attention over encoder outputs: each kind against its written-out formula, masking, the one-step
query, precomputed key projections, gradients, and the input checks."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.nn.attention import (
    ATTENTIONS,
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    make_attention,
)

ATOL = 1e-6
B, TQ, S, Q, V, A = 2, 3, 4, 5, 3, 7
KINDS = ["dot", "dot_scaled", "general", "additive"]
# A mask that is not a prefix, so that nothing can rely on the valid keys coming first.
MASK = torch.tensor([[True, True, True, True], [False, True, False, True]])


def make(kind: str):
    """``(attention, key size)``; the key size differs from ``Q`` where the kind allows it."""
    if kind == "dot":
        return DotAttention(Q, Q), Q
    if kind == "dot_scaled":
        return DotAttention(Q, Q, scale=True), Q
    if kind == "general":
        return GeneralAttention(Q, 6), 6
    return AdditiveAttention(Q, 6, attention_size=A), 6


def inputs(K: int, dtype=torch.float32):
    """Seeded ``query: (B, Tq, Q)``, ``keys: (B, S, K)``, ``values: (B, S, V)``."""
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(B, TQ, Q, generator=g, dtype=dtype),
        torch.randn(B, S, K, generator=g, dtype=dtype),
        torch.randn(B, S, V, generator=g, dtype=dtype),
    )


def setup(kind: str, dtype=torch.float32):
    torch.manual_seed(0)
    attn, K = make(kind)
    return attn.to(dtype), *inputs(K, dtype)


def reference(attn, kind: str, query, keys, values, mask):
    """The formula written out, one (b, t, s) at a time, in float64."""
    q, k, v = query.double(), keys.double(), values.double()
    p = {name: w.detach().double() for name, w in attn.named_parameters()}

    def score(qv, kv):
        if kind.startswith("dot"):
            x = sum(float(qv[i] * kv[i]) for i in range(len(qv)))
            return x / math.sqrt(len(kv)) if kind == "dot_scaled" else x
        if kind == "general":
            return float(qv @ (p["key_proj.weight"] @ kv))
        hidden = torch.tanh(p["query_proj.weight"] @ qv + p["key_proj.weight"] @ kv + p["key_proj.bias"])
        return float(p["score.weight"][0] @ hidden)

    context = torch.zeros(B, TQ, v.shape[-1], dtype=torch.float64)
    weights = torch.zeros(B, TQ, S, dtype=torch.float64)
    for b in range(B):
        for t in range(TQ):
            scores = {s: score(q[b, t], k[b, s]) for s in range(S) if mask is None or mask[b, s]}
            top = max(scores.values())
            total = sum(math.exp(x - top) for x in scores.values())
            for s, x in scores.items():
                weights[b, t, s] = math.exp(x - top) / total
                context[b, t] += weights[b, t, s] * v[b, s]
    return context, weights


@pytest.mark.parametrize("masked", [False, True], ids=["all_valid", "masked"])
@pytest.mark.parametrize("kind", KINDS)
def test_against_written_out_formula(kind, masked):
    attn, query, keys, values = setup(kind, torch.float64)
    mask = MASK if masked else None
    context, weights = attn(query, keys, mask, values=values)
    assert context.shape == (B, TQ, V) and weights.shape == (B, TQ, S)
    want_context, want_weights = reference(attn, kind, query, keys, values, mask)
    torch.testing.assert_close(weights, want_weights, atol=ATOL, rtol=0)
    torch.testing.assert_close(context, want_context, atol=ATOL, rtol=0)
    # Without values= the keys are summed.
    context, weights = attn(query, keys, mask)
    want_context, want_weights = reference(attn, kind, query, keys, keys, mask)
    torch.testing.assert_close(weights, want_weights, atol=ATOL, rtol=0)
    torch.testing.assert_close(context, want_context, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_weights_are_a_softmax_over_the_valid_keys_only(kind):
    attn, query, keys, values = setup(kind)
    _, weights = attn(query, keys, MASK, values=values)
    mask = MASK.unsqueeze(1).expand(B, TQ, S)
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, TQ), atol=ATOL, rtol=0)
    _, weights = attn(query, keys, values=values)  # no mask: every key counts
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, TQ), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_masked_keys_and_values_do_not_matter(kind):
    attn, query, keys, values = setup(kind)
    context, weights = attn(query, keys, MASK, values=values)
    other_keys, other_values = keys.clone(), values.clone()
    other_keys[~MASK] = 10 * torch.randn(int((~MASK).sum()), keys.shape[-1])
    other_values[~MASK] = 10 * torch.randn(int((~MASK).sum()), V)
    context2, weights2 = attn(query, other_keys, MASK, values=other_values)
    torch.testing.assert_close(weights2, weights, atol=1e-7, rtol=0)
    torch.testing.assert_close(context2, context, atol=1e-7, rtol=0)
    # ... while the same change without the mask does matter (the check above can fail).
    assert not torch.allclose(attn(query, other_keys, values=other_values)[0], attn(query, keys, values=values)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_equal_the_equivalent_mask(kind):
    attn, query, keys, values = setup(kind)
    lengths = torch.tensor([4, 2])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    want = attn(query, keys, mask, values=values)
    for lens in (lengths, lengths.int()):
        got = attn(query, keys, lengths=lens, values=values)
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert (want[1][1, :, 2:] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_query_is_the_squeezed_sequence_of_one(kind):
    attn, query, keys, values = setup(kind)
    for mask in (None, MASK):
        context, weights = attn(query[:, 0], keys, mask, values=values)
        assert context.shape == (B, V) and weights.shape == (B, S)
        want_context, want_weights = attn(query[:, :1], keys, mask, values=values)
        torch.testing.assert_close(context, want_context.squeeze(1), atol=1e-7, rtol=0)
        torch.testing.assert_close(weights, want_weights.squeeze(1), atol=1e-7, rtol=0)
        # And a step of the sequence is that step alone.
        torch.testing.assert_close(context, attn(query, keys, mask, values=values)[0][:, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_projected_keys_are_used_instead_of_projecting_again(kind, monkeypatch):
    attn, query, keys, values = setup(kind)
    projected = attn.project_keys(keys)
    want = attn(query, keys, MASK, values=values)
    calls = []
    project = attn.project_keys
    monkeypatch.setattr(attn, "project_keys", lambda k: calls.append(1) or project(k))
    for q in (query, query[:, 1]):
        got = attn(q, keys, MASK, values=values, projected_keys=projected)
        assert calls == []
        ref = want if q.dim() == 3 else tuple(w[:, 1] for w in want)
        if q.dim() == 3:
            assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        else:
            torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    # The projection passed in is what is scored (a random change: a constant one cancels in the softmax).
    other = attn(query, keys, MASK, values=values, projected_keys=projected + torch.randn_like(projected))
    assert not torch.allclose(other[1], want[1])
    attn(query, keys, MASK, values=values)
    assert calls == [1]


def test_project_keys_shapes():
    keys = torch.randn(B, S, 6)
    assert torch.equal(DotAttention(6, 6).project_keys(keys), keys)
    general = GeneralAttention(Q, 6)
    torch.testing.assert_close(general.project_keys(keys), keys @ general.key_proj.weight.T)
    assert general.project_keys(keys).shape == (B, S, Q)
    assert AdditiveAttention(Q, 6, attention_size=A).project_keys(keys).shape == (B, S, A)


def test_parameters_are_named_and_shaped_as_documented():
    assert dict(DotAttention(Q, Q).named_parameters()) == {}
    general = {n: tuple(p.shape) for n, p in GeneralAttention(Q, 6).named_parameters()}
    assert general == {"key_proj.weight": (Q, 6)}
    additive = {n: tuple(p.shape) for n, p in AdditiveAttention(Q, 6, attention_size=A).named_parameters()}
    assert additive == {
        "query_proj.weight": (A, Q),
        "key_proj.weight": (A, 6),
        "key_proj.bias": (A,),
        "score.weight": (1, A),
    }


@pytest.mark.parametrize("with_values", [True, False], ids=["values", "keys_as_values"])
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind, with_values):
    attn, query, keys, values = setup(kind, torch.float64)
    names = [n for n, _ in attn.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in attn.named_parameters()]
    query, keys, values = (x.requires_grad_() for x in (query, keys, values))

    def fn(query, keys, values, *params):
        kwargs = {"values": values} if with_values else {}
        return torch.func.functional_call(attn, dict(zip(names, params, strict=True)), (query, keys, MASK), kwargs)

    assert torch.autograd.gradcheck(fn, (query, keys, values, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_do_not_reach_masked_keys(kind):
    attn, query, keys, values = setup(kind)
    keys.requires_grad_()
    values.requires_grad_()
    context, _ = attn(query, keys, MASK, values=values)
    context.sum().backward()
    assert (keys.grad[~MASK] == 0).all() and (values.grad[~MASK] == 0).all()
    assert (keys.grad[MASK] != 0).any() and (values.grad[MASK] != 0).all()


def _bad_cases(K: int):
    """``(id, overrides of forward's arguments, regex the message must match)``."""
    m = MASK
    return [
        ("query_1d", {"query": torch.randn(Q)}, r"^query: .*2-D.*3-D"),
        ("query_4d", {"query": torch.randn(B, TQ, 1, Q)}, r"^query: .*2-D.*3-D"),
        ("keys_2d", {"keys": torch.randn(B, K)}, r"^keys: .*3-D"),
        ("keys_empty", {"keys": torch.randn(B, 0, K), "values": None}, r"^keys: .*at least one key"),
        ("batch", {"query": torch.randn(B + 1, TQ, Q)}, r"^query and keys: .*batch size"),
        ("batch_1step", {"query": torch.randn(B + 1, Q)}, r"^query and keys: .*batch size"),
        ("query_features", {"query": torch.randn(B, TQ, Q + 1)}, rf"^query: expected {Q} features \(query_size\)"),
        ("key_features", {"keys": torch.randn(B, S, K + 1)}, rf"^keys: expected {K} features \(key_size\)"),
        ("values_2d", {"values": torch.randn(B, S)}, r"^values: .*\(B, S\)"),
        ("values_steps", {"values": torch.randn(B, S + 1, V)}, r"^values: .*\(B, S\)"),
        ("values_batch", {"values": torch.randn(B + 1, S, V)}, r"^values: .*\(B, S\)"),
        ("mask_dtype", {"mask": m.float()}, r"^mask: .*bool.*torch.float32"),
        ("mask_shape", {"mask": torch.ones(B, S + 1, dtype=torch.bool)}, r"^mask: .*shape \(2, 4\)"),
        ("mask_3d", {"mask": m.unsqueeze(1)}, r"^mask: .*shape \(2, 4\)"),
        ("mask_empty_row", {"mask": torch.tensor([[True] * S, [False] * S])}, r"^mask: .*valid.* rows 1$"),
        ("mask_and_lengths", {"mask": m, "lengths": torch.tensor([S, S])}, r"^mask and lengths: .*both"),
        ("lengths_float", {"lengths": torch.tensor([4.0, 2.0])}, r"^lengths: .*integer"),
        ("lengths_bool", {"lengths": torch.tensor([True, True])}, r"^lengths: .*integer"),
        ("lengths_list", {"lengths": [4, 2]}, r"^lengths: .*integer.*list"),
        ("lengths_2d", {"lengths": torch.tensor([[4], [2]])}, r"^lengths: .*1-D.*shape \(2,\)"),
        ("lengths_batch", {"lengths": torch.tensor([4, 2, 1])}, r"^lengths: .*shape \(2,\)"),
        ("lengths_zero", {"lengths": torch.tensor([4, 0])}, r"^lengths: .*1\.\.4.*rows 1$"),
        ("lengths_too_long", {"lengths": torch.tensor([5, 2])}, r"^lengths: .*1\.\.4.*\[5\] at rows 0$"),
        ("projected_keys", {"projected_keys": torch.randn(B, S, 1)}, r"^projected_keys: .*project_keys"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases(Q))), ids=[c[0] for c in _bad_cases(Q)])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_raise_naming_the_argument(kind, case):
    attn, query, keys, values = setup(kind)
    _, overrides, pattern = _bad_cases(keys.shape[-1])[case]
    args = {"query": query, "keys": keys, "mask": None, "lengths": None, "values": values} | overrides
    with pytest.raises(ValueError, match=pattern):
        attn(args.pop("query"), args.pop("keys"), args.pop("mask"), **args)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: DotAttention(Q, Q + 1), "query_size and key_size"),
        (lambda: DotAttention(0, 0), "query_size"),
        (lambda: GeneralAttention(Q, -1), "key_size"),
        (lambda: GeneralAttention(2.5, Q), "query_size"),
        (lambda: AdditiveAttention(Q, Q, attention_size=0), "attention_size"),
        (lambda: AdditiveAttention(True, Q), "query_size"),
    ],
    ids=["dot_unequal", "dot_zero", "general_negative", "general_float", "additive_zero", "additive_bool"],
)
def test_bad_sizes_raise_naming_the_argument(build, name):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        build()


def test_make_attention():
    assert ATTENTIONS == ("dot", "general", "additive")
    dot = make_attention("dot", Q, Q)
    assert type(dot) is DotAttention and not dot.scale
    general = make_attention("general", Q, 6)
    assert type(general) is GeneralAttention and general.key_proj.weight.shape == (Q, 6)
    additive = make_attention("additive", Q, 6, attention_size=A)
    assert type(additive) is AdditiveAttention and additive.attention_size == A
    assert additive.key_proj.weight.shape == (A, 6)
    assert make_attention("additive", Q, 6).attention_size == 128
    with pytest.raises(ValueError, match=r"^kind: .*'dot', 'general', 'additive'.*'bahdanau'"):
        make_attention("bahdanau", Q, 6)


@pytest.mark.parametrize(
    "argument, override",
    [
        ("query", lambda q, k, v: {"query": q.double()}),
        ("query", lambda q, k, v: {"query": q.long()}),
        ("query", lambda q, k, v: {"query": q.tolist()}),
        ("keys", lambda q, k, v: {"keys": k.tolist()}),
        ("values", lambda q, k, v: {"values": v.double()}),
        ("projected_keys", lambda q, k, v: {"projected_keys": "keys"}),
    ],
    ids=["query_float64", "query_int", "query_list", "keys_list", "values_float64", "projected_keys_str"],
)
@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
def test_inputs_of_another_dtype_or_type_raise_naming_the_argument(kind, argument, override):
    attn, query, keys, values = setup(kind)
    args = {"query": query, "keys": keys, "values": values} | override(query, keys, values)
    with pytest.raises(ValueError, match=rf"^{argument}: "):
        attn(args.pop("query"), args.pop("keys"), **args)


@pytest.mark.parametrize("kind", ["general", "additive"])
def test_keys_of_another_dtype_than_the_parameters_raise(kind):
    attn, query, keys, _ = setup(kind)
    with pytest.raises(ValueError, match=r"^keys: dtype torch.float64 .*the parameters' \(torch.float32"):
        attn(query.double(), keys.double())


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_dtypes_still_run_under_autocast(kind):
    attn, query, keys, values = setup(kind)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        context, weights = attn(query.bfloat16(), keys, values=values)
    assert context.shape == (B, TQ, V) and weights.shape == (B, TQ, S)
    assert torch.allclose(weights.float().sum(-1), torch.ones(B, TQ), atol=1e-2)
