"""pad_batch, lengths_to_mask, ShuffledBatches and TBPTTStream."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.batching import ShuffledBatches, TBPTTStream, lengths_to_mask, pad_batch


def test_pad_batch_and_mask():
    seqs = [torch.tensor([1, 2, 3]), torch.tensor([4]), torch.tensor([], dtype=torch.long)]
    padded, lengths = pad_batch(seqs, pad_value=-1)
    assert padded.tolist() == [[1, 2, 3], [4, -1, -1], [-1, -1, -1]]
    assert lengths.tolist() == [3, 1, 0]
    assert lengths_to_mask(lengths).tolist() == [[True] * 3, [True, False, False], [False] * 3]


def test_pad_batch_rejects_mismatched_features():
    with pytest.raises(ValueError, match=r"sequences\[1\]: expected shape \(T, 2\)"):
        pad_batch([torch.zeros(3, 2), torch.zeros(3, 4)])
    with pytest.raises(ValueError, match=r"sequences\[1\]: expected a Tensor \(T, \*\), got list"):
        pad_batch([torch.zeros(3), [1, 2]])


def test_shuffled_batches_cover_each_epoch_once_and_reshuffle():
    batches = ShuffledBatches(10, 3, lambda idx: idx, seed=1)
    assert len(batches) == 3
    epoch0 = [i for k in range(3) for i in batches(k)]
    epoch1 = [i for k in range(3, 6) for i in batches(k)]
    assert len(set(epoch0)) == 9 and len(set(epoch1)) == 9 and epoch0 != epoch1
    assert ShuffledBatches(10, 3, lambda idx: idx, seed=1)(4) == batches(4)  # batch k depends on k only


def test_shuffled_batches_split_a_global_batch_between_processes():
    whole = ShuffledBatches(12, 4, lambda idx: idx, seed=0, rank=0, world_size=1)
    parts = [ShuffledBatches(12, 4, lambda idx: idx, seed=0, rank=r, world_size=2) for r in range(2)]
    for k in range(5):
        assert parts[0](k) + parts[1](k) == whole(k)


def test_tbptt_stream_chunks_continue_each_stream():
    data = torch.arange(26)
    batches = TBPTTStream(data, batch_size=2, bptt=4)  # streams 0..12 and 13..25
    assert len(batches) == 3  # 12 usable steps per stream (one kept for the last target)
    first, second = batches(0), batches(1)
    assert first.inputs.tolist() == [[0, 1, 2, 3], [13, 14, 15, 16]]
    assert first.targets.tolist() == [[1, 2, 3, 4], [14, 15, 16, 17]]
    assert second.inputs[:, 0].tolist() == [4, 17]  # continues where chunk 0 stopped
    assert first.reset and not second.reset and batches(3).reset  # epoch 2 starts over


def test_tbptt_stream_with_targets_and_processes():
    series = torch.arange(20.0).reshape(2, 10, 1)  # (B, L, F)
    whole = TBPTTStream.from_streams(series, bptt=5, targets=-series)
    assert whole(1).inputs[:, :, 0].tolist() == [[5, 6, 7, 8, 9], [15, 16, 17, 18, 19]]
    assert torch.equal(whole(1).targets, -whole(1).inputs)
    rank1 = TBPTTStream.from_streams(series, bptt=5, rank=1, world_size=2)
    assert rank1(0).inputs.shape == (1, 5, 1) and rank1(0).inputs[0, 0, 0] == 10


def test_tbptt_stream_rejects_chunks_longer_than_the_streams():
    with pytest.raises(ValueError, match="bptt: 20 is longer than the streams"):
        TBPTTStream(torch.arange(10), batch_size=2, bptt=20)


def test_tbptt_rejects_a_batch_size_below_one():
    with pytest.raises(ValueError, match="batch_size: expected >= 1, got 0"):
        TBPTTStream(torch.arange(10), 0, 2)


def test_lengths_to_mask_of_an_empty_batch():
    assert lengths_to_mask(torch.zeros(0, dtype=torch.long)).shape == (0, 0)


def test_shuffled_last_batch_never_leaves_a_process_without_examples():
    # 9 examples in batches of 4 on 2 processes: the last batch (1 example) cannot be shared.
    ranks = [ShuffledBatches(9, 4, list, seed=0, drop_last=False, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == 2
    for k in range(4):
        parts = [batches(k) for batches in ranks]
        assert all(parts) and not set(parts[0]) & set(parts[1])
    ten = [ShuffledBatches(10, 4, list, seed=0, drop_last=False, rank=r, world_size=2) for r in (0, 1)]
    assert len(ten[0]) == 3 and [len(b(2)) for b in ten] == [1, 1]  # 2 left over: one each
    assert len(ShuffledBatches(9, 4, list, drop_last=False, rank=0, world_size=1)) == 3
    with pytest.raises(ValueError, match="fewer than the 2 processes"):
        ShuffledBatches(1, 2, list, drop_last=False, rank=0, world_size=2)
