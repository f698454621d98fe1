"""Tests of rnnkit.tasks.char_ngram: interpolated Kneser-Ney by hand, every conditional
distribution summing to 1, the JSON file round trip, and bad files."""

from __future__ import annotations

import json
import math
import random

import pytest

from rnnkit.errors import DataError
from rnnkit.tasks.char_ngram import BOS, EOS, UNK, CharNgramLM

TEXT = ["the cat sat", "the hat", "a cat", "that is that", "sat on a mat"]


def test_kneser_ney_by_hand():
    """ab, b with D = 0.5. Bigrams: <s>a 1, ab 1, b</s> 2, <s>b 1. Continuation counts of the
    unigrams: a 1 (after <s>), b 2 (after a, <s>), </s> 1 (after b); 4 in all, 3 types, vocabulary
    a b </s> <unk>."""
    lm = CharNgramLM.train(["ab", "b"], order=2, discount=0.5)
    assert lm.vocabulary == ["a", "b", EOS, UNK]
    uniform = 0.5 * 3 / 4 * (1 / 4)  # D * types / total * P_0
    unigram = [0.5 / 4 + uniform, 1.5 / 4 + uniform, 0.5 / 4 + uniform, uniform]
    assert [math.exp(x) for x in lm.log_probs("")] == pytest.approx(unigram)  # order 1 inside order 2
    assert math.exp(lm.log_prob("b", "a")) == pytest.approx(0.5 / 1 + 0.5 * 1 / 1 * unigram[1])  # 0.734375
    assert math.exp(lm.log_prob("a", BOS)) == pytest.approx(0.5 / 2 + 0.5 * 2 / 2 * unigram[0])  # 0.359375
    assert math.exp(lm.log_prob(EOS, "b")) == pytest.approx(1.5 / 2 + 0.5 * 1 / 2 * unigram[2])  # 0.8046875
    assert math.exp(lm.log_prob("z", "z")) == pytest.approx(unigram[3])  # unseen context and character
    assert lm.sentence_log_prob("ab") == pytest.approx(math.log(0.359375) + math.log(0.734375) + math.log(0.8046875))


def test_the_discounts_are_estimated_from_counts_of_counts():
    lm = CharNgramLM.train(["ab", "b"], order=2)
    assert lm.discounts == [pytest.approx(2 / (2 + 2 * 1)), pytest.approx(3 / (3 + 2 * 1))]  # n1 / (n1 + 2 n2)
    assert CharNgramLM.train(["aa", "aa"], order=1).discounts == [0.5]  # nothing counted once


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_context_gives_a_distribution_over_the_vocabulary(order):
    lm = CharNgramLM.train(TEXT, order=order)
    rng = random.Random(order)
    contexts = {gram[:-1] for gram in lm.ngrams}  # every context seen
    symbols = [*lm.characters, "q", UNK]  # q: never seen
    contexts |= {"".join(rng.choice(symbols) for _ in range(order - 1)) for _ in range(50)}
    contexts |= {lm.context(text) for text in ("", "t", "qq", "the c")}
    for context in contexts:
        probs = [math.exp(x) for x in lm.log_probs(context)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-12) and min(probs) > 0.0, context


def test_the_json_file_gives_the_same_probabilities(tmp_path):
    lm = CharNgramLM.train(TEXT, order=4)
    lm.save(tmp_path / "lm.json")
    again = CharNgramLM.load(tmp_path / "lm.json")
    assert again.to_json() == lm.to_json() and json.loads((tmp_path / "lm.json").read_text())["order"] == 4
    for text in ("the cat", "a mat", "zzz", ""):
        assert again.sentence_log_prob(text) == lm.sentence_log_prob(text)
        assert again.log_probs(again.context(text)) == lm.log_probs(lm.context(text))


def test_text_with_a_reserved_mark_or_no_text_is_refused():
    with pytest.raises(DataError, match=r"sentence 2: holds the control character U\+0003"):
        CharNgramLM.train(["ok", "bad\x03"], order=2)
    with pytest.raises(DataError, match="no sentences"):
        CharNgramLM.train([], order=2)
    with pytest.raises(ValueError, match="order: expected an integer >= 1"):
        CharNgramLM.train(["a"], order=0)
    with pytest.raises(ValueError, match=r"discount: expected a number in \(0, 1\]"):
        CharNgramLM.train(["a"], order=2, discount=0.0)


def saved(**changes) -> dict:
    return {**CharNgramLM.train(["ab", "b"], order=2).to_json(), **changes}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ("", "empty file; expected a character n-gram LM"),
        (json.dumps([1, 2]), "field 'format': expected 'rnnkit-char-ngram'"),
        (json.dumps(saved(format="other")), "field 'format'"),
        (json.dumps(saved(version=2)), "field 'version'"),
        (json.dumps(saved(order=0)), "field 'order': expected an integer >= 1"),
        (json.dumps(saved(characters=["ab"])), "field 'characters'"),
        (json.dumps(saved(discounts=[0.5])), r"field 'discounts': expected a list of 2 numbers in \(0, 1\]"),
        (json.dumps(saved(discounts=[0.5, 1.5])), "field 'discounts'"),
        (json.dumps(saved(ngrams={"ab": 0})), r"field \"ngrams\['ab'\]\": expected a count >= 1"),
        (json.dumps(saved(ngrams={"abc": 1})), "field 'ngrams': expected keys of 2 symbols"),
        (json.dumps(saved(ngrams={"az": 1})), "field 'ngrams'"),  # z: not one of its characters
        (json.dumps(saved(ngrams={"\x03a": 1})), "field 'ngrams'"),  # the end mark first
        (json.dumps(saved(ngrams={})), "field 'ngrams': expected an object"),
    ],
)
def test_a_bad_lm_file_is_one_error_naming_the_file_and_field(tmp_path, content, message):
    (tmp_path / "lm.json").write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        CharNgramLM.load(tmp_path / "lm.json")
    assert str(caught.value).startswith(str(tmp_path / "lm.json")) and "\n" not in str(caught.value)


def test_a_missing_lm_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"none\.json: cannot read file"):
        CharNgramLM.load(tmp_path / "none.json")
