"""Tests of rnnkit.data.batching.BucketedBatches (length bucketing)."""

from __future__ import annotations

import random

import pytest

from rnnkit.data.batching import BucketedBatches


def lengths_of(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 60) for _ in range(n)]


def test_every_example_once_per_epoch_and_len_counts_the_batches() -> None:
    lengths = lengths_of(1003)
    batches = BucketedBatches(lengths, 16, collate=lambda idx: idx, seed=3, bucket_factor=10)
    for epoch in (0, 1):
        seen = [i for k in range(len(batches)) for i in batches(epoch * len(batches) + k)]
        assert sorted(seen) == list(range(1003))
    assert len(batches) == len(batches.epoch_batches(0))
    assert batches.epoch_batches(0) != batches.epoch_batches(1)  # a fresh order every epoch


def test_bucketing_cuts_padding_and_is_deterministic_per_seed() -> None:
    lengths = lengths_of(2000)
    bucketed = BucketedBatches(lengths, 32, collate=list, seed=0)
    plain = BucketedBatches(lengths, 32, collate=list, seed=0, bucket_factor=0)
    assert bucketed.padding_fraction() < 0.05 < 0.3 < plain.padding_fraction()
    again = BucketedBatches(lengths, 32, collate=list, seed=0)
    assert [bucketed(k) for k in range(5)] == [again(k) for k in range(5)]
    assert bucketed.epoch_batches(0) != BucketedBatches(lengths, 32, collate=list, seed=1).epoch_batches(0)


def test_each_process_takes_its_share_of_a_global_batch() -> None:
    lengths = lengths_of(64)
    ranks = [BucketedBatches(lengths, 8, collate=list, rank=r, world_size=2) for r in (0, 1)]
    whole = BucketedBatches(lengths, 8, collate=list, rank=0, world_size=1)
    assert sorted(ranks[0](0) + ranks[1](0)) == sorted(whole(0))
    with pytest.raises(ValueError, match="not divisible"):
        BucketedBatches(lengths, 7, collate=list, rank=0, world_size=2)


@pytest.mark.parametrize("n, world, dropped", [(65, 2, 1), (66, 2, 0), (67, 4, 3), (69, 4, 0), (65, 1, 0)])
def test_a_last_batch_too_small_to_share_is_dropped(n, world, dropped) -> None:
    lengths = lengths_of(n)
    ranks = [
        BucketedBatches(lengths, 8, collate=list, seed=1, bucket_factor=3, rank=r, world_size=world)
        for r in range(world)
    ]
    for epoch in (0, 1):
        batches = ranks[0].epoch_batches(epoch)
        assert len(ranks[0]) == len(batches)
        assert sum(map(len, batches)) == n - dropped
        for k in range(len(ranks[0])):
            assert all(batches(epoch * len(ranks[0]) + k) for batches in ranks)  # no process gets nothing
