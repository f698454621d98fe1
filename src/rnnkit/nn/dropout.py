"""Regularizers for recurrent networks: dropout that respects time, and the recurrence's own.

Modules to place around a recurrent layer:

* :class:`LockedDropout` (variational dropout of Gal & Ghahramani 2016, AWD-LSTM's "locked"
  dropout): one mask per sequence, the same at every time step, on ``x: (B, T, F)``;
* :class:`EmbeddingDropout` (Gal & Ghahramani 2016, AWD-LSTM): an ``nn.Embedding`` that drops
  whole words — rows of its weight — for a whole batch.

Pieces the layers use for their ``recurrent_dropout=``, ``zoneout=`` and ``weight_drop=`` options
(see :class:`rnnkit.nn.layers.RecurrentLayer`): each wraps a cell for one forward pass, so the
generic loop :func:`rnnkit.nn.scan.scan` runs the regularized cell unchanged:

* :class:`RecurrentDropoutCell`: ``h_{t-1}`` times one mask per sequence where it meets the
  recurrent weights (Gal & Ghahramani 2016);
* :class:`ZoneoutCell`: each unit of the state keeps its previous value with probability ``p``
  (Krueger et al. 2016); in eval the expectation ``p * old + (1 - p) * new``, as in the paper;
* :func:`dropped_weight`: DropConnect on a cell's recurrent weight for one forward pass
  (Wan et al. 2013, AWD-LSTM's WeightDrop) — a masked copy, so the parameter itself is never
  replaced and torch never warns about non-contiguous RNN weights.

All are identity (or, for zoneout, deterministic) in ``eval()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.cells import RecurrentCell, State


def check_rate(name: str, p: float) -> float:
    """``p`` as a float in ``[0, 1)``, or a ``ValueError`` naming the option."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {p!r}")
    return float(p)


def sequence_mask(batch: int, features: int, p: float, like: Tensor) -> Tensor:
    """One dropout mask per sequence, ``(B, F)``: 0 with probability ``p``, else ``1 / (1 - p)``."""
    keep = torch.empty(batch, features, device=like.device, dtype=like.dtype).bernoulli_(1.0 - p)  # (B, F)
    return keep.div_(1.0 - p)


class LockedDropout(nn.Module):
    """Dropout with the same mask at every time step of a sequence (variational / locked dropout).

    Args:
        p: probability of zeroing a feature (for the whole sequence).
        batch_first: ``x`` is ``(B, T, F)`` (else ``(T, B, F)``).

    Call: ``y = drop(x)``, ``x`` and ``y`` ``(B, T, F)``; identity in ``eval()`` or when ``p == 0``.
    """

    def __init__(self, p: float = 0.5, batch_first: bool = True) -> None:
        super().__init__()
        self.p = check_rate("p", p)
        self.batch_first = batch_first

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(
                f"x: expected a 3-D tensor {'(B, T, F)' if self.batch_first else '(T, B, F)'}, "
                f"got shape {tuple(x.shape)}"
            )
        if not self.training or self.p == 0.0:
            return x
        batch_axis = 0 if self.batch_first else 1
        mask = sequence_mask(x.shape[batch_axis], x.shape[2], self.p, x)  # (B, F)
        return x * mask.unsqueeze(1 if self.batch_first else 0)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.batch_first else ", batch_first=False")


class EmbeddingDropout(nn.Embedding):
    """An ``nn.Embedding`` that, in training, drops whole rows (words) with probability ``p``.

    Every occurrence of a dropped word in the batch gets the zero vector; kept rows are scaled
    by ``1 / (1 - p)``. Same parameters and ``state_dict`` as ``nn.Embedding``.

    Args: as ``nn.Embedding``, plus ``p``, the probability of dropping a row.
    Call: ``ids: (B, T)`` integer -> ``(B, T, E)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, p: float = 0.1, **kwargs) -> None:
        super().__init__(num_embeddings, embedding_dim, **kwargs)
        self.p = check_rate("p", p)

    def forward(self, ids: Tensor) -> Tensor:
        weight = self.weight
        if self.training and self.p > 0.0:
            weight = weight * sequence_mask(self.num_embeddings, 1, self.p, weight)  # (V, E) * (V, 1)
        return F.embedding(
            ids, weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}"


class RecurrentDropoutCell:
    """A cell whose ``h_{t-1}`` is multiplied by ``mask: (B, H_out)`` (fixed for the whole
    sequence) where it meets the recurrent weights, via the cell's ``step_dropped``."""

    def __init__(self, cell: RecurrentCell, mask: Tensor) -> None:
        self.cell = cell
        self.mask = mask

    def project(self, x: Tensor) -> Tensor:
        return self.cell.project(x)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        return self.cell.initial_state(batch_size, device=device, dtype=dtype)

    def step(self, g_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self.cell.step_dropped(g_t, state, self.mask)


def zoneout_weights(
    rates: tuple[float, ...], training: bool, shapes: list[tuple[int, ...]], steps: int, like: Tensor
) -> tuple[Tensor | None, ...]:
    """Zoneout weights for a whole sequence, one tensor ``(T, *shape)`` per state tensor (``None``
    where its rate is 0): in training 1 where a unit keeps its previous value (probability
    ``rate``, a fresh draw per step and unit), else 0; in eval the rate itself everywhere (the
    expectation ``rate * old + (1 - rate) * new``). ``shapes``: each state tensor's ``(B, H_k)``."""
    weights = []
    for p, shape in zip(rates, shapes, strict=True):
        if p == 0.0:
            weights.append(None)
        elif training:
            weights.append((torch.rand(steps, *shape, device=like.device) < p).to(like.dtype))
        else:
            weights.append(torch.full((), p, device=like.device, dtype=like.dtype).expand(steps, *shape))
    return tuple(weights)


class ZoneoutCell:
    """A cell (or wrapped cell) whose state units keep their previous value where its zoneout
    ``weights`` say so: ``new = z * old + (1 - z) * new`` with ``z = weights[k][t]`` for state
    tensor ``k`` (``h``, then ``c``) at step ``t`` of the run (:func:`zoneout_weights`: 0/1 draws
    in training, the rate in eval, Krueger et al. 2016; ``None``: that state is not zoned out).
    The output ``h_t`` is the zoned-out ``h``. One instance serves one run of ``T`` steps.
    """

    def __init__(self, cell, weights: tuple[Tensor | None, ...]) -> None:
        self.cell = cell
        self.weights = weights
        self._step = 0

    def project(self, x: Tensor) -> Tensor:
        return self.cell.project(x)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        return self.cell.initial_state(batch_size, device=device, dtype=dtype)

    def step(self, g_t: Tensor, state: State) -> tuple[Tensor, State]:
        _, new = self.cell.step(g_t, state)
        t, self._step = self._step, self._step + 1
        if not isinstance(new, tuple):
            zoned = zone_out(state, new, self.weights[0], t)
            return zoned, zoned
        zoned = tuple(zone_out(o, n, z, t) for o, n, z in zip(state, new, self.weights, strict=True))
        return zoned[0], zoned


def zone_out(old: Tensor, new: Tensor, weights: Tensor | None, t: int) -> Tensor:
    """``z * old + (1 - z) * new`` with ``z = weights[t]: (B, H)`` (``new`` itself without weights)."""
    if weights is None:
        return new
    z = weights[t]
    return z * old + (1.0 - z) * new


@contextmanager
def dropped_weight(cell: RecurrentCell, name: str, p: float) -> Iterator[None]:
    """While inside, ``cell.<name>`` is ``F.dropout(parameter, p)`` (DropConnect, one mask for
    the whole forward pass); gradients flow to the parameter through the mask. Restored on exit."""
    param = cell._parameters[name]
    cell._parameters[name] = F.dropout(param, p, training=True)
    try:
        yield
    finally:
        cell._parameters[name] = param
