"""Decoding CTC outputs: the best path, prefix beam search, and shallow fusion with a character LM.

One utterance's ``log_probs: (T, V)`` (log-softmax outputs, the blank one of the ``V`` symbols)
in, label sequences out (blanks and repeats already collapsed: ``(3, 3)`` is two 3s):

* :func:`best_path`: the most probable symbol at each step, repeats merged, blanks dropped.
* :func:`prefix_beam_search`: CTC prefix beam search (Graves 2012, ch. 7.5; Hannun et al. 2014,
  "First-Pass Large Vocabulary Continuous Speech Recognition using Bi-Directional Recurrent
  DNNs", algorithm 1). Each prefix ``y`` in the beam carries, in log space, ``p_b`` and ``p_nb``:
  the probability of the first ``t`` steps' alignments that collapse to ``y`` and end in a blank
  or in ``y``'s last symbol. At step ``t`` (``p(s)``: the step's probability of symbol ``s``)::

      y      <- (p_b + p_nb)(y) * p(blank)  [blank]      +  p_nb(y) * p(y_last)  [repeat]
      y + s  <- (p_b + p_nb)(y) * p(s)      (s != y_last),   p_b(y) * p(s)   (s == y_last)

  and the ``K`` best prefixes by their score stay. A prefix's score is its acoustic
  ``log(p_b + p_nb)``, or with an LM (shallow fusion, :class:`LMFusion`)
  ``acoustic + alpha * log P_LM(y) + beta * len(y)``, the LM term added as each character is, the
  end-of-sentence probability at the end. Pruning: at each step only the ``max_symbols`` most
  probable symbols with ``log p(s) >= min_log_prob`` extend a prefix (the blank and repeat terms
  are always kept). With a beam holding every prefix and no pruning, the scores are exact.
* :func:`beam_search`: the search, then the survivors and the best-path string rescored by CTC's
  forward algorithm over every alignment (``F.ctc_loss``), so each score is exact (pruning only
  decides which strings are considered), and without an LM the best is never less probable than
  the best path's string.

Shape legend: ``T`` steps, ``V`` symbols (the blank included), ``K`` beam width.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.tasks.char_ngram import CACHE_SIZE, EOS, CharNgramLM

NEG_INF = float("-inf")
MAX_SYMBOLS = 16  # symbols that may extend a prefix at one step
MIN_LOG_PROB = -12.0  # nor one less probable than this (e^-12 ≈ 6e-6) at that step


@dataclass(frozen=True)
class Hypothesis:
    """A label sequence (collapsed: no blanks, a repeat is a repeated symbol), its acoustic
    ``log p(labels | x)`` summed over its alignments, its LM ``log P`` (with the end of sentence;
    0.0 without an LM) and the fused ``score`` the search ranks by."""

    labels: tuple[int, ...]
    acoustic: float
    lm: float
    score: float


def logaddexp(a: float, b: float) -> float:
    """``log(e^a + e^b)`` of two floats (``-inf`` allowed)."""
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


def check_log_probs(log_probs: Tensor, blank: int) -> None:
    if log_probs.dim() != 2 or log_probs.shape[1] < 2 or not log_probs.is_floating_point():
        raise ValueError(f"log_probs: expected a float tensor (T, V) with V >= 2, got {tuple(log_probs.shape)}")
    if not 0 <= blank < log_probs.shape[1]:
        raise ValueError(f"blank: expected an id in [0, {log_probs.shape[1]}), got {blank!r}")


def best_path(log_probs: Tensor, blank: int) -> tuple[int, ...]:
    """The labels of ``log_probs: (T, V)``'s most probable alignment: argmax per step, repeats
    merged, blanks dropped."""
    check_log_probs(log_probs, blank)
    out, previous = [], blank
    for s in log_probs.argmax(-1).tolist():
        if s != previous and s != blank:
            out.append(s)
        previous = s
    return tuple(out)


def ctc_log_likelihoods(log_probs: Tensor, labels: Sequence[Sequence[int]], blank: int) -> list[float]:
    """``log p(labels_i | x)`` of each label sequence under ``log_probs: (T, V)``, summed over all
    its alignments (CTC's forward algorithm, ``F.ctc_loss``, in ``log_probs``' dtype); ``-inf`` for
    one that ``T`` steps cannot emit."""
    check_log_probs(log_probs, blank)
    if not labels:
        return []
    N, T = len(labels), log_probs.shape[0]
    if T == 0:  # no steps: only the empty string, with probability 1
        return [0.0 if len(y) == 0 else NEG_INF for y in labels]
    lengths = torch.tensor([len(y) for y in labels])  # (N,)
    targets = torch.full((N, max(1, int(lengths.max()))), blank, dtype=torch.long)  # (N, S), padded
    for i, y in enumerate(labels):
        targets[i, : len(y)] = torch.tensor(y, dtype=torch.long)
    nll = F.ctc_loss(
        log_probs.unsqueeze(1).expand(T, N, -1), targets, torch.full((N,), T), lengths,
        blank=blank, reduction="none",
    )  # fmt: skip
    return (-nll).tolist()


class LMFusion:
    """Shallow fusion of a :class:`CharNgramLM`: ``score = acoustic + weight * log P_LM + bonus *
    length``. ``symbols`` is the character of each label id (``None`` for the blank); a character
    the LM never saw is scored as its unknown symbol (:meth:`CharNgramLM.symbol`). An LM state is
    the context string of the next character (:meth:`CharNgramLM.context`)."""

    def __init__(self, lm: CharNgramLM, symbols: Sequence[str | None], weight: float, bonus: float) -> None:
        if not (math.isfinite(weight) and math.isfinite(bonus)):
            raise ValueError(f"weight, bonus: expected finite numbers, got {weight!r}, {bonus!r}")
        self.lm, self.weight, self.bonus = lm, weight, bonus
        self.symbols = [lm.symbol(c) if c is not None else None for c in symbols]
        self.rows = [lm.index[s] if s is not None else 0 for s in self.symbols]  # label id -> LM vocabulary row
        self.unknown = sorted({c for c in symbols if c is not None and lm.symbol(c) != c})
        self.eos_row = lm.index[EOS]
        self._rows: dict[str, list[float]] = {}

    def start(self) -> str:
        return self.lm.context("")

    def next_log_probs(self, state: str) -> list[float]:
        """``log P_LM(id | state)`` for each label id (the blank's entry is meaningless)."""
        out = self._rows.get(state)
        if out is None:
            if len(self._rows) >= CACHE_SIZE:
                self._rows.clear()
            row = self.lm.log_probs(state)
            out = self._rows[state] = [row[r] for r in self.rows]
        return out

    def advance(self, state: str, label: int) -> str:
        return (state + self.symbols[label])[1:] if state else ""

    def end_log_prob(self, state: str) -> float:
        return self.lm.log_probs(state)[self.eos_row]

    def sequence_log_prob(self, labels: Sequence[int]) -> float:
        """``log P_LM`` of a whole label sequence, its end of sentence included."""
        state, total = self.start(), 0.0
        for label in labels:
            total += self.next_log_probs(state)[label]
            state = self.advance(state, label)
        return total + self.end_log_prob(state)


class PrefixTree:
    """Every prefix the search has made, each once, as a node id: node 0 is the empty prefix, any
    other is its ``parent``'s plus the label ``last``. A node also holds its LM state and
    (unweighted) LM log-prob, which depend on the prefix alone."""

    def __init__(self, lm_state: str) -> None:
        self.parent, self.last, self.length = [-1], [-1], [0]
        self.lm_state, self.lm = [lm_state], [0.0]
        self.children: dict[tuple[int, int], int] = {}

    def child(self, node: int, label: int, fusion: LMFusion | None, lm_next: list[float] | None) -> int:
        """The node of ``node``'s prefix plus ``label`` (made if new; ``lm_next``: the LM's
        log-probs after ``node``)."""
        key = (node, label)
        found = self.children.get(key)
        if found is not None:
            return found
        self.children[key] = len(self.parent)
        self.parent.append(node)
        self.last.append(label)
        self.length.append(self.length[node] + 1)
        self.lm_state.append(fusion.advance(self.lm_state[node], label) if fusion is not None else "")
        self.lm.append(self.lm[node] + lm_next[label] if lm_next is not None else 0.0)
        return len(self.parent) - 1

    def labels(self, node: int) -> tuple[int, ...]:
        out = []
        while node > 0:
            out.append(self.last[node])
            node = self.parent[node]
        return tuple(out[::-1])


def step_candidates(log_probs: Tensor, blank: int, max_symbols: int, min_log_prob: float) -> list[list[int]]:
    """Per step, the symbols that may extend a prefix: the ``max_symbols`` most probable non-blank
    ones with a log-probability of at least ``min_log_prob``. ``(T,)`` lists."""
    masked = log_probs.clone()
    masked[:, blank] = NEG_INF
    values, ids = masked.topk(min(max_symbols, log_probs.shape[1] - 1), dim=1)  # (T, k)
    return [[s for s, v in zip(row_ids, row_values, strict=True) if v >= min_log_prob]
            for row_ids, row_values in zip(ids.tolist(), values.tolist(), strict=True)]  # fmt: skip


def prefix_beam_search(
    log_probs: Tensor,
    blank: int,
    beam: int,
    fusion: LMFusion | None = None,
    max_symbols: int = MAX_SYMBOLS,
    min_log_prob: float = MIN_LOG_PROB,
) -> list[Hypothesis]:
    """The ``beam`` best prefixes of ``log_probs: (T, V)`` by CTC prefix beam search (the module
    docstring), best first. Their ``acoustic`` is summed over the alignments the search kept:
    exact when no prefix or symbol was pruned, a lower bound otherwise (:func:`beam_search`
    rescores it)."""
    check_log_probs(log_probs, blank)
    if beam < 1 or max_symbols < 1:
        raise ValueError(f"beam, max_symbols: expected integers >= 1, got {beam!r}, {max_symbols!r}")
    if fusion is not None and len(fusion.rows) != log_probs.shape[1]:
        raise ValueError(f"fusion: has characters for {len(fusion.rows)} symbols, log_probs {log_probs.shape[1]}")
    weight, bonus = (fusion.weight, fusion.bonus) if fusion is not None else (0.0, 0.0)
    tree = PrefixTree(fusion.start() if fusion is not None else "")
    beams = {0: (0.0, NEG_INF)}  # node -> (log p_b, log p_nb)
    for lp, candidates in zip(
        log_probs.tolist(), step_candidates(log_probs, blank, max_symbols, min_log_prob), strict=True
    ):
        grown: dict[int, list[float]] = {}
        for node, (p_b, p_nb) in beams.items():
            total, last = logaddexp(p_b, p_nb), tree.last[node]
            stay = grown.setdefault(node, [NEG_INF, NEG_INF])
            stay[0] = logaddexp(stay[0], total + lp[blank])
            if last >= 0:
                stay[1] = logaddexp(stay[1], p_nb + lp[last])
            lm_next = fusion.next_log_probs(tree.lm_state[node]) if fusion is not None and candidates else None
            for s in candidates:
                child = grown.setdefault(tree.child(node, s, fusion, lm_next), [NEG_INF, NEG_INF])
                child[1] = logaddexp(child[1], (p_b if s == last else total) + lp[s])
        beams = {
            node: (p_b, p_nb)
            for node, (p_b, p_nb) in heapq.nlargest(
                beam, grown.items(),
                key=lambda item: logaddexp(*item[1]) + weight * tree.lm[item[0]] + bonus * tree.length[item[0]],
            )
        }  # fmt: skip
    end = [fusion.end_log_prob(tree.lm_state[node]) if fusion is not None else 0.0 for node in beams]
    return ranked(
        [
            (tree.labels(node), logaddexp(p_b, p_nb), tree.lm[node] + e)
            for (node, (p_b, p_nb)), e in zip(beams.items(), end, strict=True)
        ],
        fusion,
    )[:beam]


def ranked(scored: Sequence[tuple[tuple[int, ...], float, float]], fusion: LMFusion | None) -> list[Hypothesis]:
    """Hypotheses of ``(labels, acoustic, lm)`` triples with their fused scores, best first."""
    weight, bonus = (fusion.weight, fusion.bonus) if fusion is not None else (0.0, 0.0)
    out = [Hypothesis(y, a, lm, a + weight * lm + bonus * len(y)) for y, a, lm in scored]
    return sorted(out, key=lambda h: h.score, reverse=True)


def beam_search(
    log_probs: Tensor,
    blank: int,
    beam: int,
    fusion: LMFusion | None = None,
    max_symbols: int = MAX_SYMBOLS,
    min_log_prob: float = MIN_LOG_PROB,
) -> list[Hypothesis]:
    """The ``beam`` best label sequences of ``log_probs: (T, V)``, best first: the survivors of
    :func:`prefix_beam_search` and the best path, each rescored exactly (acoustic over all its
    alignments, LM over the whole sequence) and ranked by the fused score. Without an LM the
    first's acoustic score is never below the best path's."""
    found = prefix_beam_search(log_probs, blank, beam, fusion, max_symbols, min_log_prob)
    labels = list(dict.fromkeys([h.labels for h in found] + [best_path(log_probs, blank)]))
    acoustic = ctc_log_likelihoods(log_probs, labels, blank)
    lm = [fusion.sequence_log_prob(y) if fusion is not None else 0.0 for y in labels]
    return ranked(list(zip(labels, acoustic, lm, strict=True)), fusion)[:beam]
