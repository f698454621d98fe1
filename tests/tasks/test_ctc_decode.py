"""Tests of rnnkit.tasks.ctc_decode: prefix beam search against brute force over every alignment,
never below the best path, and shallow fusion with a character n-gram LM."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
import torch

from rnnkit.tasks.char_ngram import CharNgramLM
from rnnkit.tasks.ctc_decode import (
    Hypothesis,
    LMFusion,
    beam_search,
    best_path,
    ctc_log_likelihoods,
    prefix_beam_search,
)

BLANK = 0


def random_log_probs(T: int, V: int, seed: int, sharpness: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (sharpness * torch.randn(T, V, generator=g, dtype=torch.float64)).log_softmax(-1)  # (T, V)


def brute_force(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """``log p(labels)`` of every label sequence with an alignment: every one of the ``V ** T``
    alignments enumerated, collapsed, and their probabilities summed."""
    T, V = log_probs.shape
    lp = log_probs.tolist()
    paths: dict[tuple[int, ...], list[float]] = defaultdict(list)
    for alignment in itertools.product(range(V), repeat=T):
        labels = tuple(s for i, s in enumerate(alignment) if s != BLANK and (i == 0 or alignment[i - 1] != s))
        paths[labels].append(sum(lp[t][s] for t, s in enumerate(alignment)))
    return {labels: math.log(sum(math.exp(x) for x in scores)) for labels, scores in paths.items()}


@pytest.mark.parametrize(("T", "V", "seed"), [(4, 3, 0), (5, 3, 1), (6, 3, 2), (5, 4, 3), (6, 4, 4)])
def test_a_beam_holding_every_prefix_scores_each_exactly_as_brute_force(T, V, seed):
    log_probs = random_log_probs(T, V, seed)
    exact = brute_force(log_probs)
    found = prefix_beam_search(log_probs, BLANK, beam=len(exact), max_symbols=V, min_log_prob=-math.inf)
    assert {h.labels for h in found} == set(exact)
    for h in found:
        assert h.acoustic == pytest.approx(exact[h.labels], abs=1e-9) and h.score == h.acoustic and h.lm == 0.0
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
    best = max(exact, key=exact.get)
    assert found[0].labels == best


@pytest.mark.parametrize("max_symbols", [1, 2, 16])
def test_beam_search_returns_the_best_strings_each_scored_over_all_its_alignments(max_symbols):
    log_probs = random_log_probs(6, 4, seed=5)
    exact = brute_force(log_probs)
    for h in beam_search(log_probs, BLANK, beam=5, max_symbols=max_symbols):  # pruned: the scores stay exact
        assert h.acoustic == pytest.approx(exact[h.labels], abs=1e-9)
    ranked = sorted(exact, key=exact.get, reverse=True)
    assert [h.labels for h in beam_search(log_probs, BLANK, beam=64)] == ranked[:64]


def test_ctc_log_likelihoods_sum_every_alignment_and_refuse_too_long_strings():
    log_probs = random_log_probs(5, 3, seed=6)
    exact = brute_force(log_probs)
    labels = [(), (1,), (2, 1), (1, 1), (1, 2, 1, 2, 1)]
    for y, value in zip(labels, ctc_log_likelihoods(log_probs, labels, BLANK), strict=True):
        assert value == pytest.approx(exact[y], abs=1e-9)
    assert ctc_log_likelihoods(log_probs, [(1, 1, 1)], BLANK)[0] == pytest.approx(exact[(1, 1, 1)])  # 5 steps: a-a-a
    assert ctc_log_likelihoods(log_probs, [(1, 1, 1, 1)], BLANK) == [-math.inf]  # would need 7


def test_best_path_merges_repeats_then_drops_blanks():
    ids = torch.tensor([0, 1, 1, 0, 1, 2, 2, 0])
    log_probs = torch.nn.functional.one_hot(ids, 3).double().mul(5).log_softmax(-1)
    assert best_path(log_probs, BLANK) == (1, 1, 2)
    with pytest.raises(ValueError, match=r"log_probs: expected a float tensor \(T, V\)"):
        best_path(torch.zeros(3), BLANK)
    with pytest.raises(ValueError, match=r"blank: expected an id in \[0, 3\)"):
        best_path(log_probs, 3)
    assert beam_search(log_probs[:0], BLANK, 4) == [Hypothesis((), 0.0, 0.0, 0.0)]  # no steps: the empty string


@pytest.mark.parametrize("seed", range(6))
def test_beam_search_is_never_below_the_best_path(seed):
    log_probs = random_log_probs(30, 5, seed, sharpness=1.0)
    greedy = ctc_log_likelihoods(log_probs, [best_path(log_probs, BLANK)], BLANK)[0]
    for beam in (1, 2, 4, 8):
        found = beam_search(log_probs, BLANK, beam)
        assert len(found) <= beam and found[0].acoustic >= greedy - 1e-9


def test_on_peaked_outputs_beam_search_returns_the_best_path():
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        alignment = torch.randint(0, 6, (40,), generator=g)
        logits = 6.0 * torch.nn.functional.one_hot(alignment, 6) + torch.randn(40, 6, generator=g)
        log_probs = logits.log_softmax(-1)  # float32, as the model's
        found = beam_search(log_probs, BLANK, beam=8)
        assert found[0].labels == best_path(log_probs, BLANK)


# ---------------------------------------------------------------- shallow fusion
def ambiguous_log_probs() -> torch.Tensor:
    """``a``, then ``b`` or ``c`` equally: "ab" and "ac" have the same acoustic score."""
    p = torch.tensor([[0.02, 0.94, 0.02, 0.02], [0.02, 0.02, 0.48, 0.48]], dtype=torch.float64)
    return p.log()  # (2, 4): blank, a, b, c


@pytest.mark.parametrize(("text", "expected"), [("ab", (1, 2)), ("ac", (1, 3))])
def test_the_lm_breaks_an_acoustic_tie_toward_its_text(text, expected):
    log_probs = ambiguous_log_probs()
    plain = beam_search(log_probs, BLANK, beam=4)
    scores = {h.labels: h.acoustic for h in plain}
    assert scores[(1, 2)] == pytest.approx(scores[(1, 3)], abs=1e-12) and plain[0].labels in {(1, 2), (1, 3)}
    lm = CharNgramLM.train([text, "cab", "bac"], order=2)
    fusion = LMFusion(lm, [None, "a", "b", "c"], weight=1.0, bonus=0.0)
    fused = beam_search(log_probs, BLANK, beam=4, fusion=fusion)
    assert fused[0].labels == expected
    assert fused[0].acoustic == pytest.approx(scores[expected], abs=1e-12)  # the LM leaves the acoustic score
    chars = "".join("abc"[i - 1] for i in expected)
    assert fused[0].lm == pytest.approx(lm.sentence_log_prob(chars), abs=1e-12)
    assert fused[0].score == pytest.approx(fused[0].acoustic + fused[0].lm, abs=1e-12)


def test_zero_lm_weight_and_bonus_decode_as_without_an_lm():
    log_probs = random_log_probs(12, 4, seed=8, sharpness=1.0)
    lm = CharNgramLM.train(["abc", "cab", "bb"], order=3)
    fusion = LMFusion(lm, [None, "a", "b", "c"], weight=0.0, bonus=0.0)
    plain, fused = beam_search(log_probs, BLANK, 6), beam_search(log_probs, BLANK, 6, fusion=fusion)
    assert [(h.labels, h.acoustic, h.score) for h in fused] == [(h.labels, h.acoustic, h.score) for h in plain]
    assert all(h.lm < 0 for h in fused)  # the LM was scored, with weight 0
    searched = prefix_beam_search(log_probs, BLANK, 6, fusion)
    assert [h.labels for h in searched] == [h.labels for h in prefix_beam_search(log_probs, BLANK, 6)]


def test_the_insertion_bonus_favours_longer_strings():
    p = torch.tensor([[0.02, 0.96, 0.02], [0.6, 0.02, 0.38]], dtype=torch.float64)  # "a", or "ab" less likely
    lm = CharNgramLM.train(["ab", "a"], order=1)
    assert beam_search(p.log(), BLANK, 4)[0].labels == (1,)
    fusion = LMFusion(lm, [None, "a", "b"], weight=0.0, bonus=1.0)
    best = beam_search(p.log(), BLANK, 4, fusion=fusion)[0]
    assert best.labels == (1, 2) and best.score == pytest.approx(best.acoustic + 2.0)


def test_a_character_the_lm_never_saw_is_scored_as_its_unknown_symbol():
    lm = CharNgramLM.train(["ab"], order=2, discount=0.5)
    fusion = LMFusion(lm, [None, "a", "b", "z"], weight=1.0, bonus=0.0)
    assert fusion.unknown == ["z"]
    state = fusion.advance(fusion.start(), 1)
    unknown = fusion.next_log_probs(state)[3]
    assert math.isfinite(unknown) and unknown == lm.log_prob("\x1a", state)
    assert unknown < fusion.next_log_probs(state)[2]  # below the b it saw after a
    assert math.isfinite(fusion.sequence_log_prob((1, 3, 2)))
