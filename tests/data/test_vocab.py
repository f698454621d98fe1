"""Tests of rnnkit.data.vocab."""

from __future__ import annotations

import pytest

from rnnkit.data.vocab import CharVocab, WordVocab, word_tokenize
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


# ---------------------------------------------------------------- CharVocab / SubwordVocab (rnnkit lm)
def test_char_vocab_is_sorted_round_trips_and_reports_unknown_characters(tmp_path) -> None:
    from rnnkit.data.vocab import CharVocab

    vocab = CharVocab.build(["hello ", "wörld\n"])
    assert vocab.chars == ["\n", " ", "d", "e", "h", "l", "o", "r", "w", "ö"]
    ids = vocab.encode("wörld")
    assert vocab.decode(ids) == "wörld"
    assert vocab.encode_array("wörld").tolist() == ids
    assert vocab.encode("hexo", skip_unknown=True) == vocab.encode("heo")
    assert vocab.unknown("hexzx") == ["x", "z"]
    with pytest.raises(ValueError, match="'x'"):
        vocab.encode("hex")
    with pytest.raises(ValueError, match="'z' at offset 2"):
        vocab.encode_array("hez")
    vocab.save(tmp_path / "vocab.json")
    assert CharVocab.load(tmp_path / "vocab.json").chars == vocab.chars
    (tmp_path / "bad.json").write_text('{"type": "WordVocab", "words": []}')
    with pytest.raises(CheckpointError, match="not a CharVocab"):
        CharVocab.load(tmp_path / "bad.json")


def test_subword_vocab_learns_merges_round_trips_any_text_and_streams(tmp_path) -> None:
    from rnnkit.data.vocab import SubwordVocab

    vocab = SubwordVocab.train(["the cat sat on the mat. " * 50], vocab_size=280)
    assert 256 < len(vocab) <= 280
    assert len(vocab.encode("the cat")) < len("the cat")  # merges were learned
    text = "naïve 日本 the\n"  # characters never seen in training still round-trip (byte level)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    step = vocab.stream_decoder()
    assert "".join(step(i) for i in ids) == text
    vocab.save(tmp_path / "tokenizer.json")
    assert SubwordVocab.load(tmp_path / "tokenizer.json").encode(text) == ids
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a tokenizers JSON"):
        SubwordVocab.load(tmp_path / "bad.json")


def test_subword_vocab_round_trips_arbitrary_unicode_and_streams_invalid_bytes_as_replacements() -> None:
    """Byte-level BPE takes any text (astral planes, combining marks, controls, NUL, odd spaces);
    a generated id sequence that is not UTF-8 decodes to U+FFFD in both ways, never raises."""
    import random

    from rnnkit.data.vocab import SubwordVocab

    vocab = SubwordVocab.train(["the cat sat on the mat.\n" * 50, "naïve café\r\n" * 20], vocab_size=300)
    rng = random.Random(0)
    ranges = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    for _ in range(200):
        text = "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(1, 12)))
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text
        step = vocab.stream_decoder()
        assert "".join(step(i) for i in ids) == text
    continuation = vocab.encode("日")[-1]  # the byte 0xa5 alone (日 is e6 97 a5, never merged here)
    ids = [continuation, *vocab.encode("abc")]
    step = vocab.stream_decoder()
    assert "".join(step(i) for i in ids) == vocab.decode(ids) == "\ufffdabc"


def test_decode_rejects_ids_outside_the_vocabulary() -> None:
    words = WordVocab.build([["a", "b"]])
    chars = CharVocab.build(["ab"])
    assert words.decode([2, 3]) == ["a", "b"] and chars.decode([0, 1]) == "ab"
    for vocab in (words, chars):
        with pytest.raises(ValueError, match=r"ids: expected ids in 0\.\.\d+, got -1"):
            vocab.decode([0, -1])  # a negative id would silently index from the end
        with pytest.raises(ValueError, match=f"got {len(vocab)}"):
            vocab.decode([len(vocab)])


def test_build_rejects_a_negative_max_size() -> None:
    assert WordVocab.build([["a", "b", "b"]], max_size=0).words == ["<pad>", "<unk>"]
    with pytest.raises(ValueError, match="max_size: expected >= 0"):
        WordVocab.build([["a", "b", "b"]], max_size=-1)  # was: the least frequent word silently dropped


@pytest.mark.parametrize("word", ["3", "[1]", "null"])
def test_load_rejects_a_word_that_is_not_a_string(tmp_path, word) -> None:
    path = tmp_path / "vocab.json"
    path.write_text('{"type": "WordVocab", "words": ["<pad>", "<unk>", ' + word + "]}")
    with pytest.raises(CheckpointError, match=r"vocab\.json: not a WordVocab JSON file .*list of strings"):
        WordVocab.load(path)


def test_save_load_keeps_unicode_and_whitespace_tokens_exactly(tmp_path) -> None:
    vocab = WordVocab.build([["é", " ", "\t", "日本", "\u2028", "a\nb", "é"]])
    vocab.save(tmp_path / "v.json")
    loaded = WordVocab.load(tmp_path / "v.json")
    assert loaded.words == vocab.words and loaded.words[2] == "é"
