"""Synthetic sequence tasks for the experiments: each draws a fresh batch from a seeded generator.

* :func:`adding_batch`: the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).
* :func:`copy_batch`: the copy-memory task (Arjovsky et al. 2016).
* :func:`majority_batch`: counting — are there more ones than zeros — on sequences of any length.
* :func:`order_batch`: does symbol A come before symbol B — the same items, in another order,
  give the other answer.

Every function returns ``(x, y)`` (and ``lengths`` where lengths vary) as tensors; nothing is
stored, so a test set is a batch drawn from a generator with a different seed.
"""

from __future__ import annotations

import torch
from torch import Tensor

# The mean-squared error of always answering 1 on the adding problem: the sum of two U(0, 1)
# draws has variance 2/12 = 1/6.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_batch(batch_size: int, length: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """The adding problem: add the two values whose marker is 1.

    Each step holds a value drawn from U(0, 1) and a marker; exactly two markers are 1, one in
    the first half of the sequence and one in the second (Le et al. 2015), so the first one lies at
    least ``length / 2`` steps before the answer is due.

    Returns:
        x: ``(B, T, 2)``, features ``(value, marker)``.
        y: ``(B,)``, the sum of the two marked values.
    """
    if length < 2:
        raise ValueError(f"length: expected >= 2, got {length}")
    values = torch.rand(batch_size, length, generator=gen)  # (B, T)
    half = length // 2
    first = torch.randint(0, half, (batch_size,), generator=gen)  # (B,)
    second = torch.randint(half, length, (batch_size,), generator=gen)  # (B,)
    markers = torch.zeros(batch_size, length)  # (B, T)
    rows = torch.arange(batch_size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (B, T, 2)
    y = (values * markers).sum(dim=1)  # (B,)
    return x, y


def copy_batch(
    batch_size: int, delay: int, gen: torch.Generator, num_symbols: int = 8, num_recall: int = 10
) -> tuple[Tensor, Tensor]:
    """The copy-memory task: read ``num_recall`` symbols, wait ``delay`` steps, then repeat them.

    Token ids: ``0`` blank, ``1..num_symbols`` the symbols, ``num_symbols + 1`` the delimiter that
    asks for the recall. The sequence is ``num_recall`` symbols, ``delay - 1`` blanks, the
    delimiter, then ``num_recall`` blanks during which the model answers (total length
    ``T = delay + 2 * num_recall``). The target is blank everywhere except the last ``num_recall``
    steps, where it is the symbols in order. A model without memory scores ``1 / num_symbols`` on
    the recalled symbols.

    Returns:
        x: ``(B, T)`` token ids in ``0..num_symbols + 1``.
        y: ``(B, T)`` target ids in ``0..num_symbols``.
    """
    if delay < 1:
        raise ValueError(f"delay: expected >= 1, got {delay}")
    T = delay + 2 * num_recall
    symbols = torch.randint(1, num_symbols + 1, (batch_size, num_recall), generator=gen)  # (B, K)
    x = torch.zeros(batch_size, T, dtype=torch.long)  # (B, T)
    x[:, :num_recall] = symbols
    x[:, num_recall + delay - 1] = num_symbols + 1
    y = torch.zeros(batch_size, T, dtype=torch.long)  # (B, T)
    y[:, -num_recall:] = symbols
    return x, y


def majority_batch(batch_size: int, lengths: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Counting: label 1 when a bit sequence holds more ones than zeros.

    Each step is one input feature: +1 for a one, -1 for a zero, and 0 past the sequence's end
    (so padding is never mistaken for a bit).

    Args:
        lengths: ``(B,)`` odd lengths (so there is never a tie); sequences are padded to the longest.

    Returns:
        x: ``(B, T, 1)`` in {-1, 0, +1}.
        y: ``(B,)`` long labels.
    """
    if bool((lengths % 2 == 0).any()):
        raise ValueError("lengths: expected odd lengths only (an even one can tie)")
    T = int(lengths.max())
    bits = 2.0 * torch.randint(0, 2, (batch_size, T), generator=gen) - 1.0  # (B, T) in {-1, +1}
    valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    signs = bits * valid
    y = (signs.sum(dim=1) > 0).long()  # (B,)
    return signs.unsqueeze(-1), y


def odd_lengths(batch_size: int, low: int, high: int, gen: torch.Generator) -> Tensor:
    """``(B,)`` odd lengths drawn uniformly from ``low..high`` (both odd)."""
    if low % 2 == 0 or high % 2 == 0 or low > high:
        raise ValueError(f"low, high: expected odd numbers with low <= high, got {low}, {high}")
    half = torch.randint(0, (high - low) // 2 + 1, (batch_size,), generator=gen)  # (B,)
    return low + 2 * half


def order_batch(batch_size: int, length: int, gen: torch.Generator, num_symbols: int = 6) -> tuple[Tensor, Tensor]:
    """Order: does symbol A (id 1) come before symbol B (id 2)?

    Each sequence holds A once, B once, and ``length - 2`` distractors drawn from ids
    ``3..num_symbols``. Both classes hold the same multiset of items, so a model that sees only
    the bag of inputs (counts per symbol) cannot beat 50%.

    Returns:
        x: ``(B, T)`` token ids in ``1..num_symbols``.
        y: ``(B,)`` long labels, 1 when A comes first.
    """
    if length < 2 or num_symbols < 3:
        raise ValueError(f"length >= 2 and num_symbols >= 3 expected, got {length} and {num_symbols}")
    x = torch.randint(3, num_symbols + 1, (batch_size, length), generator=gen)  # (B, T)
    positions = torch.rand(batch_size, length, generator=gen).argsort(dim=1)[:, :2]  # (B, 2) distinct
    rows = torch.arange(batch_size)
    x[rows, positions[:, 0]] = 1
    x[rows, positions[:, 1]] = 2
    y = (positions[:, 0] < positions[:, 1]).long()  # (B,)
    return x, y
