"""The synthetic tasks: shapes, targets that follow from the inputs, and the baselines they claim."""

from __future__ import annotations

import pytest
import torch

from rnnkit.experiments.tasks import (
    ADDING_BASELINE_MSE,
    adding_batch,
    copy_batch,
    majority_batch,
    odd_lengths,
    order_batch,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_adding_batch_marks_one_value_in_each_half_and_sums_them():
    x, y = adding_batch(256, 40, gen())
    assert x.shape == (256, 40, 2) and y.shape == (256,)
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((256,), 2.0))
    assert torch.equal(markers[:, :20].sum(1), torch.ones(256))
    torch.testing.assert_close(y, (x[..., 0] * markers).sum(1))
    # answering 1 always scores about 1/6 (the variance of the sum of two uniforms)
    x, y = adding_batch(20000, 10, gen(1))
    assert abs(float(((y - 1) ** 2).mean()) - ADDING_BASELINE_MSE) < 0.01


def test_copy_batch_asks_for_the_first_symbols_after_the_delimiter():
    x, y = copy_batch(8, delay=15, gen=gen(), num_symbols=8, num_recall=5)
    assert x.shape == y.shape == (8, 15 + 10)
    assert torch.equal(y[:, -5:], x[:, :5])
    assert bool(((x[:, :5] >= 1) & (x[:, :5] <= 8)).all())
    assert torch.equal(x[:, 5 + 15 - 1], torch.full((8,), 9))  # the delimiter, once
    assert int((x == 9).sum()) == 8
    assert int(y[:, :-5].abs().sum()) == 0


def test_majority_batch_labels_and_padding():
    lengths = torch.tensor([1, 3, 7, 9])
    x, y = majority_batch(4, lengths, gen())
    assert x.shape == (4, 9, 1)
    for row, n in enumerate(lengths.tolist()):
        assert bool((x[row, n:] == 0).all()) and bool((x[row, :n].abs() == 1).all())
        assert int(y[row]) == int(x[row, :n].sum() > 0)
    with pytest.raises(ValueError, match="odd"):
        majority_batch(2, torch.tensor([3, 4]), gen())


def test_odd_lengths_stay_odd_and_in_range():
    lengths = odd_lengths(500, 5, 21, gen())
    assert bool((lengths % 2 == 1).all()) and int(lengths.min()) == 5 and int(lengths.max()) == 21


def test_order_batch_classes_hold_the_same_bag_of_items():
    x, y = order_batch(2000, 8, gen(), num_symbols=6)
    assert x.shape == (2000, 8)
    assert bool(((x == 1).sum(1) == 1).all()) and bool(((x == 2).sum(1) == 1).all())
    a_first = (x == 1).float().argmax(1) < (x == 2).float().argmax(1)
    assert torch.equal(y, a_first.long())
    assert 0.4 < float(y.float().mean()) < 0.6
    # swapping A and B flips the label without changing the counts per symbol
    swapped = x.clone()
    swapped[x == 1], swapped[x == 2] = 2, 1
    assert torch.equal(torch.bincount(swapped.flatten()), torch.bincount(x.flatten()))
