"""Tests of rnnkit.data.vocab."""

from __future__ import annotations

import pytest

from rnnkit.data.vocab import WordVocab, word_tokenize
from rnnkit.errors import CheckpointError


def test_word_tokenize_splits_words_and_punctuation() -> None:
    assert word_tokenize("It's NOT good, isn't it?") == ["it's", "not", "good", ",", "isn't", "it", "?"]
    assert word_tokenize("does n't  work\t!") == ["does", "n't", "work", "!"]
    assert word_tokenize("Café Ünïcode", lowercase=False) == ["Café", "Ünïcode"]
    assert word_tokenize("   ") == []


def test_word_vocab_orders_by_frequency_then_alphabet_and_maps_unknown_words() -> None:
    vocab = WordVocab.build([["b", "a", "c"], ["c", "a"], ["c"]])
    assert vocab.words == ["<pad>", "<unk>", "c", "a", "b"]
    assert vocab.encode(["a", "zzz", "c"]) == [3, WordVocab.unk_id, 2]
    assert vocab.decode([2, 3]) == ["c", "a"]
    assert len(WordVocab.build([["b", "a", "c"], ["c", "a"]], min_freq=2)) == 4
    assert WordVocab.build([["b", "a", "c"], ["c", "a"]], max_size=1).words[2:] == ["a"]


def test_word_vocab_save_load_round_trip_and_rejects_other_files(tmp_path) -> None:
    vocab = WordVocab.build([word_tokenize("the film is not good , the end")])
    vocab.save(tmp_path / "vocab.json")
    assert WordVocab.load(tmp_path / "vocab.json").words == vocab.words
    (tmp_path / "bad.json").write_text('{"type": "Other"}', encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"bad\.json"):
        WordVocab.load(tmp_path / "bad.json")
    with pytest.raises(CheckpointError, match=r"missing\.json"):
        WordVocab.load(tmp_path / "missing.json")
