"""Tests of rnnkit.tasks.pooling: every pooling ignores the steps past each sequence's length."""

from __future__ import annotations

import pytest
import torch

from rnnkit.tasks.pooling import POOLINGS, Pooling


def test_max_and_mean_match_a_hand_computation_over_valid_steps() -> None:
    outputs = torch.tensor([[[1.0, -5.0], [3.0, -1.0], [99.0, 99.0]]])  # (1, 3, 2), step 3 is padding
    lengths = torch.tensor([2])
    final = torch.zeros(1, 2)
    assert Pooling("max", 2)(outputs, lengths, final).tolist() == [[3.0, -1.0]]
    assert Pooling("mean", 2)(outputs, lengths, final).tolist() == [[2.0, -3.0]]
    assert Pooling("last", 2)(outputs, lengths, final + 7).tolist() == [[7.0, 7.0]]


@pytest.mark.parametrize("kind", POOLINGS)
def test_padding_values_never_reach_the_result(kind: str) -> None:
    torch.manual_seed(0)
    pool = Pooling(kind, 4, attention_size=3)
    outputs = torch.randn(3, 6, 4)  # (B, T, F)
    lengths = torch.tensor([6, 2, 4])
    final = torch.randn(3, 4)
    changed = outputs.clone()
    for b, n in enumerate(lengths.tolist()):
        changed[b, n:] = 1e3
    assert torch.allclose(pool(outputs, lengths, final), pool(changed, lengths, final))


def test_attention_weights_sum_to_one_over_valid_steps_only() -> None:
    pool = Pooling("attention", 4, attention_size=5)
    pool(torch.randn(2, 5, 4), torch.tensor([5, 3]), torch.zeros(2, 4))
    weights = pool.attention.last_weights  # (B, T)
    assert torch.allclose(weights.sum(1), torch.ones(2))
    assert weights[1, 3:].abs().sum() == 0 and (weights[1, :3] > 0).all()


def test_unknown_pooling_is_refused() -> None:
    with pytest.raises(ValueError, match=r"kind: expected one of \('last', 'max', 'mean', 'attention'\), got 'sum'"):
        Pooling("sum", 4)


@pytest.mark.parametrize("kind", POOLINGS)
def test_one_step_sequences_and_full_lengths_pool_their_valid_steps(kind: str) -> None:
    torch.manual_seed(0)
    pool = Pooling(kind, 3, attention_size=4)
    outputs = torch.randn(2, 4, 3)  # (B, T, F)
    final = torch.randn(2, 3)
    pooled = pool(outputs, torch.tensor([1, 4]), final)
    expected_first = final[0] if kind == "last" else outputs[0, 0]  # one step: max = mean = attention = it
    assert torch.allclose(pooled[0], expected_first)
    if kind == "max":
        assert torch.equal(pooled[1], outputs[1].amax(0))
    if kind == "mean":
        assert torch.allclose(pooled[1], outputs[1].mean(0))


@pytest.mark.parametrize(
    ("outputs", "lengths", "final", "pattern"),
    [
        (
            torch.zeros(2, 3),
            torch.tensor([1, 2]),
            torch.zeros(2, 3),
            r"outputs: expected \(B, T, F\), got shape \(2, 3\)",
        ),
        (torch.zeros(2, 3, 4), torch.tensor([1, 2, 3]), torch.zeros(2, 4), r"lengths: expected \(2,\) integers"),
        (torch.zeros(2, 3, 4), torch.tensor([1.0, 2.0]), torch.zeros(2, 4), r"lengths: expected \(2,\) integers"),
        (torch.zeros(2, 3, 4), torch.tensor([0, 2]), torch.zeros(2, 4), r"lengths: expected values in 1 \.\. 3"),
        (torch.zeros(2, 3, 4), torch.tensor([4, 2]), torch.zeros(2, 4), r"lengths: expected values in 1 \.\. 3"),
        (torch.zeros(2, 3, 4), torch.tensor([3, 2]), torch.zeros(2, 5), r"final: expected shape \(B, F\) = \(2, 4\)"),
    ],
)
@pytest.mark.parametrize("kind", POOLINGS)
def test_bad_shapes_and_lengths_are_refused_naming_the_argument(kind, outputs, lengths, final, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        Pooling(kind, 4, attention_size=3)(outputs, lengths, final)
