"""Turning examples into batches: padding, lengths, shuffled or length-bucketed batches by index,
TBPTT streams.

Every batcher here is a *batch source* in the sense of :mod:`rnnkit.train`: a callable
``source(k) -> batch k`` with ``len(source)`` batches per epoch. Batch ``k`` depends only on
``k`` and the seed, which is what lets a resumed run see exactly the data it would have seen.
Under torchrun each process gets its own slice of every global batch (``rank``/``world_size``
default to torch.distributed's, or the ``RANK``/``WORLD_SIZE`` variables).

Shape legend: ``B`` batch (or streams), ``T`` time steps, ``*`` feature dimensions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def pad_batch(sequences: Sequence[Tensor], pad_value: float = 0.0) -> tuple[Tensor, Tensor]:
    """Stack variable-length sequences ``(T_i, *)`` into ``(B, T_max, *)`` plus ``lengths: (B,)``.

    Positions past each sequence's end hold ``pad_value``. All sequences must share dtype and
    feature dimensions; a sequence may be empty (length 0).
    """
    if len(sequences) == 0:
        raise ValueError("sequences: expected at least one sequence, got none")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise ValueError(f"sequences[{i}]: expected a Tensor (T, *), got {type(s).__name__}")
    first = sequences[0]
    for i, s in enumerate(sequences):
        if s.dim() < 1 or s.shape[1:] != first.shape[1:] or s.dtype != first.dtype:
            raise ValueError(
                f"sequences[{i}]: expected shape (T, {', '.join(map(str, first.shape[1:])) or ''}) and "
                f"dtype {first.dtype}, got {tuple(s.shape)} {s.dtype}"
            )
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)  # (B,)
    t_max = int(lengths.max())
    out = first.new_full((len(sequences), t_max, *first.shape[1:]), pad_value)  # (B, T, *)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out, lengths


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(B,)`` lengths -> ``(B, T)`` bool mask, True where a position holds data."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths: expected shape (B,), got {tuple(lengths.shape)}")
    t = (int(lengths.max()) if len(lengths) else 0) if max_len is None else max_len
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    import torch.distributed as dist

    if rank is None:
        rank = dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))
    if world_size is None:
        world_size = dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))
    return rank, world_size


def _local_slice(global_size: int, rank: int, world_size: int, what: str) -> slice:
    if global_size % world_size:
        raise ValueError(f"{what}: {global_size} is not divisible by the {world_size} processes")
    per = global_size // world_size
    return slice(rank * per, (rank + 1) * per)


class ShuffledBatches:
    """Batch ``k`` of a dataset of ``n`` examples: a fresh seeded permutation every epoch.

    ``collate(indices: list[int]) -> batch`` builds the batch (e.g. look up and
    :func:`pad_batch`). ``batch_size`` is global: each of ``world_size`` processes collates its
    own ``batch_size // world_size`` of the indices. ``drop_last`` drops the incomplete batch;
    without it, that batch is split as evenly as possible, and dropped only when it has fewer
    examples than there are processes (one would get none).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        collate: Callable[[list[int]], Any],
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"n, batch_size: expected >= 1, got n={n}, batch_size={batch_size}")
        if drop_last and n < batch_size:
            raise ValueError(f"batch_size: {batch_size} is more than the {n} examples (drop_last=True)")
        self.n, self.batch_size, self.collate = n, batch_size, collate
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.rank, self.world_size = _rank_world(rank, world_size)
        self._local = _local_slice(batch_size, self.rank, self.world_size, "batch_size")
        if n < self.world_size:
            raise ValueError(f"n: {n} examples are fewer than the {self.world_size} processes")
        self._epoch, self._order = -1, torch.arange(n)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (not self.drop_last and rest >= self.world_size)

    def indices(self, k: int) -> list[int]:
        """The dataset indices of this process's part of global batch ``k``."""
        epoch, i = divmod(k, len(self))
        if epoch != self._epoch and self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order, self._epoch = torch.randperm(self.n, generator=g), epoch
        chunk = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        full = len(chunk) == self.batch_size  # else: the last, smaller batch, split as evenly as possible
        return (chunk[self._local] if full else chunk[self.rank :: self.world_size]).tolist()

    def __call__(self, k: int) -> Any:
        return self.collate(self.indices(k))


@dataclass
class StreamChunk:
    """One TBPTT chunk: ``inputs: (B, T, *)`` and ``targets: (B, T, *)`` for ``B`` streams.

    ``reset`` is True on the first chunk of an epoch, where every stream starts over: the
    trainer drops the state it carried from the previous chunk.
    """

    inputs: Tensor
    targets: Tensor
    reset: bool

    def to(self, device: torch.device | str) -> StreamChunk:
        return StreamChunk(self.inputs.to(device), self.targets.to(device), self.reset)


class TBPTTStream:
    """Consecutive chunks of ``B`` long streams, for truncated backpropagation through time.

    ``data: (N, *)`` is one long sequence (a text as token ids, a time series): it is cut into
    ``batch_size`` contiguous streams of ``N // batch_size`` steps (the remainder is dropped), or,
    with :meth:`from_streams`, ``data: (B, L, *)`` is already ``B`` streams. Chunk ``k`` holds
    steps ``[t, t + bptt)`` of every stream with ``t = (k mod len) * bptt``; chunk ``k + 1``
    continues exactly where it stopped, so the state at the end of chunk ``k`` is the right
    initial state for chunk ``k + 1``. Every chunk has ``bptt`` steps: the last steps of each
    stream that do not fill one (fewer than ``bptt``; with next-step targets the stream's last
    step is a target only) are in no chunk, so each epoch leaves out at most ``bptt - 1`` steps
    per stream. Targets are the next step (``data[t + 1]``) unless ``targets`` (same leading shape
    as ``data``) is given. Under torchrun each process takes its own ``batch_size // world_size``
    streams.
    """

    def __init__(
        self,
        data: Tensor,
        batch_size: int,
        bptt: int,
        *,
        targets: Tensor | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if data.dim() < 1:
            raise ValueError(f"data: expected shape (N, *), got {tuple(data.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        n = data.shape[0] // batch_size
        streams = data[: n * batch_size].reshape(batch_size, n, *data.shape[1:])  # (B, L, *)
        stream_targets = None
        if targets is not None:
            if targets.shape[0] != data.shape[0]:
                raise ValueError(f"targets: expected {data.shape[0]} steps like data, got {targets.shape[0]}")
            stream_targets = targets[: n * batch_size].reshape(batch_size, n, *targets.shape[1:])
        self._init(streams, stream_targets, bptt, rank, world_size)

    @classmethod
    def from_streams(
        cls,
        streams: Tensor,
        bptt: int,
        *,
        targets: Tensor | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> TBPTTStream:
        """Chunks of ``streams: (B, L, *)``, each row its own stream (``targets: (B, L, *)``)."""
        if streams.dim() < 2:
            raise ValueError(f"streams: expected shape (B, L, *), got {tuple(streams.shape)}")
        if targets is not None and targets.shape[:2] != streams.shape[:2]:
            expected = f"({streams.shape[0]}, {streams.shape[1]}, *)"
            raise ValueError(f"targets: expected shape {expected}, got {tuple(targets.shape)}")
        self = cls.__new__(cls)
        self._init(streams, targets, bptt, rank, world_size)
        return self

    def _init(self, streams: Tensor, targets: Tensor | None, bptt: int, rank: int | None, world: int | None) -> None:
        if bptt < 1:
            raise ValueError(f"bptt: expected >= 1, got {bptt}")
        rank, world = _rank_world(rank, world)
        local = _local_slice(streams.shape[0], rank, world, "batch_size (streams)")
        self.streams = streams[local]  # (B_local, L, *)
        self.targets = None if targets is None else targets[local]
        self.bptt = bptt
        usable = streams.shape[1] - (1 if targets is None else 0)  # next-step targets need one more
        self.chunks = usable // bptt
        if self.chunks < 1:
            raise ValueError(f"bptt: {bptt} is longer than the streams ({usable} usable steps each)")

    def __len__(self) -> int:
        return self.chunks

    def __call__(self, k: int) -> StreamChunk:
        i = k % self.chunks
        t = i * self.bptt
        inputs = self.streams[:, t : t + self.bptt]  # (B, T, *)
        source, shift = (self.streams, 1) if self.targets is None else (self.targets, 0)
        targets = source[:, t + shift : t + shift + self.bptt]  # (B, T, *)
        return StreamChunk(inputs, targets, reset=i == 0)


class BucketedBatches:
    """Batch ``k`` of ``n`` variable-length examples, grouping similar lengths to keep padding small.

    Each epoch: a seeded permutation of the examples is cut into pools of
    ``bucket_factor * batch_size``; each pool is sorted by length and cut into batches; the
    batches are put in a seeded random order. Every example is in exactly one batch per epoch
    (the last pool's last batch may be smaller). ``collate(indices: list[int]) -> batch`` builds a
    batch; ``batch_size`` is global: under torchrun each process collates every ``world_size``-th
    index of each batch, and a last batch with fewer examples than processes is dropped.
    ``padding_fraction()`` is the share of the padded ``(B, T)`` grid that is padding in an epoch
    (the cost bucketing saves: compare ``bucket_factor=0``, no bucketing).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        collate: Callable[[list[int]], Any],
        *,
        seed: int = 0,
        bucket_factor: int = 50,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if len(lengths) < 1 or batch_size < 1 or bucket_factor < 0:
            raise ValueError(
                f"lengths, batch_size, bucket_factor: expected >= 1 example, batch_size >= 1 and "
                f"bucket_factor >= 0, got {len(lengths)} examples, {batch_size}, {bucket_factor}"
            )
        self.lengths = list(lengths)
        self.batch_size, self.collate, self.seed, self.bucket_factor = batch_size, collate, seed, bucket_factor
        self.rank, self.world_size = _rank_world(rank, world_size)
        _local_slice(batch_size, self.rank, self.world_size, "batch_size")
        if len(lengths) < self.world_size:
            raise ValueError(f"lengths: {len(lengths)} examples are fewer than the {self.world_size} processes")
        self._epoch, self._batches = 0, self.epoch_batches(0)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The (global) batches of ``epoch``, as lists of example indices, in training order."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n, size = len(self.lengths), self.batch_size
        order = torch.randperm(n, generator=g).tolist()
        pool = max(1, self.bucket_factor) * size
        batches: list[list[int]] = []
        for start in range(0, n, pool):
            chunk = order[start : start + pool]
            if self.bucket_factor:
                chunk.sort(key=lambda i: self.lengths[i])
            batches.extend(chunk[k : k + size] for k in range(0, len(chunk), size))
        if len(batches[-1]) < self.world_size:
            batches.pop()  # too small to give every process an example
        return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]

    def __len__(self) -> int:
        n, pool = len(self.lengths), max(1, self.bucket_factor) * self.batch_size
        full, rest = divmod(n, pool)
        last = rest % self.batch_size  # examples in the smaller last batch (0: none)
        return full * -(-pool // self.batch_size) + -(-rest // self.batch_size) - (0 < last < self.world_size)

    def indices(self, k: int) -> list[int]:
        """The example indices of this process's part of global batch ``k``."""
        epoch, i = divmod(k, len(self))
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self.epoch_batches(epoch)
        return self._batches[i][self.rank :: self.world_size]

    def __call__(self, k: int) -> Any:
        return self.collate(self.indices(k))

    def padding_fraction(self, epoch: int = 0) -> float:
        """Padding positions / all positions of the padded batches of ``epoch``."""
        real = grid = 0
        for batch in self.epoch_batches(epoch):
            sizes = [self.lengths[i] for i in batch]
            real, grid = real + sum(sizes), grid + len(sizes) * max(sizes)
        return 1.0 - real / grid
