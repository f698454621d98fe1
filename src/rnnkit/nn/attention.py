r"""Attention of a decoder over an encoder's outputs (Bahdanau et al. 2015; Luong et al. 2015).

Each query ``q_t`` (a decoder state) scores every key ``k_s`` (an encoder output), the scores of
the valid keys go through a softmax, and the context is the weighted sum of the values ``v_s``
(by default the keys themselves):

.. math::
    a_{ts} = \frac{\exp \mathrm{score}(q_t, k_s)}{\sum_{s' \text{ valid}} \exp \mathrm{score}(q_t, k_{s'})}
    \text{ for valid } s \text{ (0 otherwise)}, \qquad c_t = \sum_s a_{ts} v_s

* ``dot`` — :class:`DotAttention`, :math:`q \cdot k` (Luong's "dot"), optionally over :math:`\sqrt{K}`;
* ``general`` — :class:`GeneralAttention`, :math:`q \cdot (W k)` (Luong's "general", multiplicative);
* ``additive`` — :class:`AdditiveAttention`, :math:`v \cdot \tanh(W_q q + W_k k + b)` (Bahdanau's).

All three share one call, ``attn(query, keys, mask=None, *, lengths=None, values=None,
projected_keys=None) -> (context, weights)`` (see :meth:`DotAttention.forward`). The part of the
score that depends on the keys only is :meth:`project_keys`; a decoder that attends once per step
computes it once per source sequence and passes it as ``projected_keys=``.

Shape legend: ``B`` batch, ``Tq`` query (decoder) steps, ``S`` key (source) steps, ``Q`` query
features, ``K`` key features, ``V`` value features, ``A`` the additive attention's hidden size.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

ATTENTIONS = ("dot", "general", "additive")


def _check_sizes(**sizes: int) -> None:
    """A ``ValueError`` unless every size is a positive integer."""
    for name, n in sizes.items():
        if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0):
            raise ValueError(f"{name}: expected a positive integer, got {n!r}")


def _rows(flags: Tensor, limit: int = 8) -> str:
    """The indices of the true entries of a 1-D ``flags`` tensor, as text (at most ``limit`` of them)."""
    rows = flags.nonzero().flatten().tolist()
    return ", ".join(map(str, rows[:limit])) + (f", ... ({len(rows)} rows)" if len(rows) > limit else "")


class _Attention(nn.Module):
    """The shared call of the attentions: the input checks, the masked softmax and the weighted sum.

    Subclasses set ``query_size``, ``key_size`` and ``projected_size`` (the last size of
    :meth:`project_keys`'s output) and implement :meth:`project_keys` and :meth:`_scores`.
    """

    query_size: int
    key_size: int
    projected_size: int

    def project_keys(self, keys: Tensor) -> Tensor:
        """What the scores need of the keys, once per source sequence: ``keys: (B, S, K) -> (B, S, *)``."""
        raise NotImplementedError

    def _scores(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """Unmasked scores: ``query: (B, Tq, Q)``, ``projected_keys: (B, S, *)`` -> ``(B, Tq, S)``."""
        raise NotImplementedError

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
        values: Tensor | None = None,
        projected_keys: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Attend from each query over the valid keys.

        Args:
            query: ``(B, Tq, Q)``, or ``(B, Q)`` for one decoder step.
            keys: ``(B, S, K)``, the encoder's outputs.
            mask: ``(B, S)`` bool, true where a key may be attended (every row needs one).
            lengths: ``(B,)`` integer, in ``1..S``: the keys ``s < lengths[b]`` are valid (the
                encoder's lengths; moved to ``keys``' device). At most one of ``mask`` and
                ``lengths``; with neither, every key is valid.
            values: ``(B, S, V)``, what the weights sum; default ``keys`` (``V = K``).
            projected_keys: ``project_keys(keys)``, passed by a decoder that calls ``forward`` once
                per step so that the keys are not projected again at every step.

        Returns:
            ``(context, weights)``: ``context: (B, Tq, V)`` (``(B, V)`` for a 2-D query), the sum
            of ``weights * values`` over the keys; ``weights: (B, Tq, S)`` (``(B, S)``), a softmax
            over the valid keys, exactly 0 at the others.

        Raises:
            ValueError: on a shape, dtype or size that does not fit (naming the argument), on both
                ``mask`` and ``lengths``, on lengths outside ``1..S`` and on a mask row with no
                valid key (whose softmax would silently be NaN).
        """
        mask = self._check(query, keys, mask, lengths, values, projected_keys)
        one_step = query.dim() == 2
        if one_step:
            query = query.unsqueeze(1)  # (B, 1, Q)
        if projected_keys is None:
            projected_keys = self.project_keys(keys)  # (B, S, *)
        scores = self._scores(query, projected_keys)  # (B, Tq, S)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, Tq, S)
        context = torch.bmm(weights, keys if values is None else values)  # (B, Tq, V)
        if one_step:
            return context.squeeze(1), weights.squeeze(1)  # (B, V), (B, S)
        return context, weights

    def _check(
        self,
        query: Tensor,
        keys: Tensor,
        mask: Tensor | None,
        lengths: Tensor | None,
        values: Tensor | None,
        projected_keys: Tensor | None,
    ) -> Tensor | None:
        """The checks of :meth:`forward`'s inputs; returns the ``(B, S)`` mask (from ``lengths``
        if given), or None when every key is valid."""
        self._check_dtypes(keys=keys, query=query, values=values, projected_keys=projected_keys)
        if query.dim() not in (2, 3):
            raise ValueError(f"query: expected a 2-D (B, Q) or 3-D (B, Tq, Q) tensor, got shape {tuple(query.shape)}")
        if keys.dim() != 3:
            raise ValueError(f"keys: expected a 3-D (B, S, K) tensor, got shape {tuple(keys.shape)}")
        B, S, K = keys.shape
        if query.shape[0] != B:
            raise ValueError(f"query and keys: expected the same batch size B, got {query.shape[0]} and {B}")
        if query.shape[-1] != self.query_size:
            raise ValueError(
                f"query: expected {self.query_size} features (query_size) in the last dimension, "
                f"got shape {tuple(query.shape)}"
            )
        if self.key_size != K:
            raise ValueError(
                f"keys: expected {self.key_size} features (key_size) in the last dimension, "
                f"got shape {tuple(keys.shape)}"
            )
        if S == 0:
            raise ValueError(f"keys: expected at least one key (S >= 1), got shape {tuple(keys.shape)}")
        if values is not None and (values.dim() != 3 or values.shape[:2] != keys.shape[:2]):
            raise ValueError(f"values: expected shape ({B}, {S}, V) to match keys' (B, S), got {tuple(values.shape)}")
        if projected_keys is not None and projected_keys.shape != (B, S, self.projected_size):
            raise ValueError(
                f"projected_keys: expected project_keys(keys)'s shape ({B}, {S}, {self.projected_size}), "
                f"got {tuple(projected_keys.shape)}"
            )
        if mask is not None and lengths is not None:
            raise ValueError("mask and lengths: expected at most one of them, got both")
        if lengths is not None:
            integer = isinstance(lengths, Tensor) and not (
                lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool
            )
            if not integer or lengths.shape != (B,):
                raise ValueError(f"lengths: expected a 1-D integer tensor of shape ({B},), got {_describe(lengths)}")
            lengths = lengths.to(keys.device)
            bad = (lengths < 1) | (lengths > S)  # (B,)
            if bad.any():
                raise ValueError(
                    f"lengths: expected values in 1..{S} (S), got {lengths[bad].tolist()[:8]} at rows {_rows(bad)}"
                )
            return torch.arange(S, device=keys.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, S)
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (B, S):
                raise ValueError(f"mask: expected a bool tensor of shape ({B}, {S}) (B, S), got {_describe(mask)}")
            empty = ~mask.any(dim=1)  # (B,)
            if empty.any():
                raise ValueError(
                    f"mask: expected at least one valid (True) key in every row, got none at rows {_rows(empty)}"
                )
        return mask

    def _check_dtypes(self, **tensors: Tensor | None) -> None:
        """A ``ValueError`` unless each given argument is a floating-point tensor with the dtype
        and device of the parameters (of ``keys`` for :class:`DotAttention`; any floating dtype
        under ``torch.autocast``, whose matrix products cast them)."""
        for name, t in tensors.items():
            if t is not None and not (isinstance(t, Tensor) and t.is_floating_point()):
                raise ValueError(f"{name}: expected a floating-point tensor, got {_describe(t)}")
        weight = next(self.parameters(), None)
        reference, what = (tensors["keys"], "keys'") if weight is None else (weight, "the parameters'")
        autocast = torch.is_autocast_enabled(reference.device.type)
        for name, t in tensors.items():
            if t is not None and (t.device != reference.device or not (autocast or t.dtype == reference.dtype)):
                raise ValueError(
                    f"{name}: dtype {t.dtype} on {t.device} does not match {what} ({reference.dtype} on "
                    f"{reference.device}); move one of them with .to()"
                )


def _describe(x: object) -> str:
    """``dtype`` and shape of a tensor, or the type of anything else, for error messages."""
    if isinstance(x, Tensor):
        return f"{x.dtype} of shape {tuple(x.shape)}"
    return type(x).__name__


class DotAttention(_Attention):
    r"""Dot-product attention (Luong et al. 2015, "dot").

    .. math::
        \mathrm{score}(q, k) = q \cdot k \quad \big(\text{or } q \cdot k / \sqrt{K} \text{ if scale}\big)

    Args:
        query_size: ``Q``, features of a query.
        key_size: ``K``, features of a key; must equal ``query_size``.
        scale: divide the scores by :math:`\sqrt{K}` (the scaled dot product of Vaswani et al. 2017).

    No parameters. Call: see :meth:`forward`.
    """

    def __init__(self, query_size: int, key_size: int, scale: bool = False) -> None:
        super().__init__()
        _check_sizes(query_size=query_size, key_size=key_size)
        if query_size != key_size:
            raise ValueError(
                f"query_size and key_size: expected equal sizes for dot attention, got {query_size} and {key_size}"
            )
        self.query_size = self.key_size = self.projected_size = int(key_size)
        self.scale = bool(scale)

    def project_keys(self, keys: Tensor) -> Tensor:
        """The keys themselves: ``keys: (B, S, K) -> (B, S, K)``."""
        return keys

    def _scores(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        scores = torch.bmm(query, projected_keys.transpose(1, 2))  # (B, Tq, S)
        return scores / math.sqrt(self.key_size) if self.scale else scores

    def extra_repr(self) -> str:
        return f"{self.query_size}, {self.key_size}" + (", scale=True" if self.scale else "")


class GeneralAttention(_Attention):
    r"""Multiplicative attention (Luong et al. 2015, "general").

    .. math::
        \mathrm{score}(q, k) = q \cdot (W k)

    Args:
        query_size: ``Q``, features of a query.
        key_size: ``K``, features of a key.

    Parameters: ``key_proj.weight: (Q, K)`` (:math:`W`, no bias). Call: see :meth:`forward`.
    """

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        _check_sizes(query_size=query_size, key_size=key_size)
        self.query_size, self.key_size = int(query_size), int(key_size)
        self.projected_size = self.query_size
        self.key_proj = nn.Linear(self.key_size, self.query_size, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """:math:`W k`: ``keys: (B, S, K) -> (B, S, Q)``."""
        return self.key_proj(keys)  # (B, S, Q)

    def _scores(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        return torch.bmm(query, projected_keys.transpose(1, 2))  # (B, Tq, S)

    def extra_repr(self) -> str:
        return f"{self.query_size}, {self.key_size}"


class AdditiveAttention(_Attention):
    r"""Additive attention (Bahdanau et al. 2015).

    .. math::
        \mathrm{score}(q, k) = v \cdot \tanh(W_q q + W_k k + b)

    Args:
        query_size: ``Q``, features of a query.
        key_size: ``K``, features of a key.
        attention_size: ``A``, the size of the hidden layer that scores each (query, key) pair.

    Parameters: ``query_proj.weight: (A, Q)`` (:math:`W_q`), ``key_proj.weight: (A, K)`` and
    ``key_proj.bias: (A,)`` (:math:`W_k`, :math:`b`), ``score.weight: (1, A)`` (:math:`v`).
    The hidden layer is ``(B, Tq, S, A)``. Call: see :meth:`forward`.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int = 128) -> None:
        super().__init__()
        _check_sizes(query_size=query_size, key_size=key_size, attention_size=attention_size)
        self.query_size, self.key_size = int(query_size), int(key_size)
        self.attention_size = self.projected_size = int(attention_size)
        self.query_proj = nn.Linear(self.query_size, self.attention_size, bias=False)
        self.key_proj = nn.Linear(self.key_size, self.attention_size)
        self.score = nn.Linear(self.attention_size, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """:math:`W_k k + b`: ``keys: (B, S, K) -> (B, S, A)``."""
        return self.key_proj(keys)  # (B, S, A)

    def _scores(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + projected_keys.unsqueeze(1))  # (B, Tq, S, A)
        return self.score(hidden).squeeze(-1)  # (B, Tq, S)

    def extra_repr(self) -> str:
        return f"{self.query_size}, {self.key_size}, attention_size={self.attention_size}"


def make_attention(kind: str, query_size: int, key_size: int, attention_size: int = 128) -> nn.Module:
    """The attention named ``kind`` (one of :data:`ATTENTIONS`).

    Args:
        kind: ``"dot"`` (:class:`DotAttention`, unscaled; needs ``query_size == key_size``),
            ``"general"`` (:class:`GeneralAttention`) or ``"additive"`` (:class:`AdditiveAttention`).
        query_size: ``Q``. key_size: ``K``.
        attention_size: ``A``, for ``kind="additive"`` only (ignored by the others).
    """
    if kind == "dot":
        return DotAttention(query_size, key_size)
    if kind == "general":
        return GeneralAttention(query_size, key_size)
    if kind == "additive":
        return AdditiveAttention(query_size, key_size, attention_size)
    raise ValueError(f"kind: expected one of {ATTENTIONS}, got {kind!r}")
