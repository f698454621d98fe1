"""Pooling a recurrent encoder's outputs over time into one vector per sequence.

Every pooling takes the padded outputs ``(B, T, F)`` and ``lengths: (B,)`` and ignores the steps
past each sequence's end, so a sentence pools to the same vector alone or padded in a batch.

* ``last`` — the encoder's final state (for a bidirectional encoder: the forward direction's
  state at the sequence's last word and the backward direction's state at its first word);
* ``max`` — the element-wise maximum over the valid steps;
* ``mean`` — the average over the valid steps;
* ``attention`` — additive attention (Bahdanau et al. 2015; the pooling of Yang et al. 2016):
  ``score_t = v·tanh(W o_t + b)``, a softmax over the valid steps, and the weighted sum of ``o_t``.

Shape legend: ``B`` batch, ``T`` time steps, ``F`` features per step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

POOLINGS = ("last", "max", "mean", "attention")


def valid_mask(lengths: Tensor, T: int) -> Tensor:
    """``(B, T)`` boolean mask, true at the steps ``t < lengths[b]``."""
    return torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def checked_lengths(outputs: Tensor, lengths: Tensor) -> Tensor:
    """``lengths`` on ``outputs``'s device, after checking ``outputs: (B, T, F)`` and that
    ``lengths`` is ``(B,)`` integers in ``1 .. T`` (a length 0 would pool nothing: NaN or -inf);
    else a ``ValueError`` naming the argument."""
    if outputs.dim() != 3:
        raise ValueError(f"outputs: expected (B, T, F), got shape {tuple(outputs.shape)}")
    B, T = outputs.shape[:2]
    if lengths.shape != (B,) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths: expected ({B},) integers, got shape {tuple(lengths.shape)} of {lengths.dtype}")
    if B and not 1 <= int(lengths.min()) <= int(lengths.max()) <= T:
        raise ValueError(f"lengths: expected values in 1 .. {T} (T), got {lengths.tolist()}")
    return lengths.to(outputs.device)


class AdditiveAttentionPooling(nn.Module):
    """Additive attention over time: ``(B, T, F)`` outputs to one ``(B, F)`` vector.

    ``attention_size`` is the size of the hidden layer that scores each step. After a forward
    pass, ``last_weights: (B, T)`` holds the attention weights (zero on padding), for inspection.
    """

    def __init__(self, features: int, attention_size: int = 64) -> None:
        super().__init__()
        self.project = nn.Linear(features, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)
        self.last_weights: Tensor | None = None

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        lengths = checked_lengths(outputs, lengths)
        scores = self.score(torch.tanh(self.project(outputs))).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~valid_mask(lengths, outputs.shape[1]), float("-inf"))
        weights = torch.softmax(scores, dim=1)  # (B, T)
        self.last_weights = weights.detach()
        return torch.einsum("bt,btf->bf", weights, outputs)  # (B, F)


class Pooling(nn.Module):
    """Pool ``outputs: (B, T, F)`` (zero past each length) into ``(B, F)``.

    Args:
        kind: one of :data:`POOLINGS`.
        features: ``F``.
        attention_size: the scoring layer's size for ``kind="attention"``.

    Call: ``pooling(outputs, lengths, final)`` where ``final: (B, F)`` is the encoder's final
    state of the last layer (both directions concatenated), used by ``kind="last"`` only, and
    ``lengths: (B,)`` holds integers in ``1 .. T`` (on any device: it is moved to ``outputs``'s).
    Anything else is a ``ValueError`` naming the argument.
    """

    def __init__(self, kind: str, features: int, attention_size: int = 64) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"kind: expected one of {POOLINGS}, got {kind!r}")
        self.kind = kind
        self.attention = AdditiveAttentionPooling(features, attention_size) if kind == "attention" else None

    def forward(self, outputs: Tensor, lengths: Tensor, final: Tensor) -> Tensor:
        lengths = checked_lengths(outputs, lengths)
        if final.shape != (outputs.shape[0], outputs.shape[2]):
            expected = (outputs.shape[0], outputs.shape[2])
            raise ValueError(f"final: expected shape (B, F) = {expected}, got {tuple(final.shape)}")
        if self.kind == "last":
            return final
        if self.attention is not None:
            return self.attention(outputs, lengths)
        mask = valid_mask(lengths, outputs.shape[1]).unsqueeze(-1)  # (B, T, 1)
        if self.kind == "max":
            return outputs.masked_fill(~mask, float("-inf")).amax(dim=1)  # (B, F)
        return (outputs * mask).sum(dim=1) / lengths.unsqueeze(1).to(outputs.dtype)  # (B, F)

    def extra_repr(self) -> str:
        return repr(self.kind)
