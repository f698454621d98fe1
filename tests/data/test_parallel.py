"""Tests of rnnkit.data.parallel: sentence-pair files, and each way they can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.data.parallel import read_parallel, read_sentences, split_sentences
from rnnkit.data.vocab import detokenize, word_tokenize
from rnnkit.errors import DataError


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_pairs_line_for_line_with_crlf_bom_and_trailing_blank_lines(tmp_path):
    src = write(tmp_path / "a.de", "\ufeffEin Hund.\r\nZwei Katzen .\r\n")
    tgt = write(tmp_path / "a.en", "A dog.\nTwo cats .\n\n\n")
    pairs = read_parallel(src, tgt)
    assert pairs.sources == ["Ein Hund.", "Zwei Katzen ."]
    assert pairs.targets == ["A dog.", "Two cats ."]
    assert len(pairs) == 2 and pairs.head(1).targets == ["A dog."]


def test_different_line_counts_name_both_files_and_counts(tmp_path):
    src = write(tmp_path / "a.de", "eins\nzwei\ndrei\n")
    tgt = write(tmp_path / "a.en", "one\ntwo\n")
    with pytest.raises(DataError, match=r"a\.de.*3 sentences, but .*a\.en has 2"):
        read_parallel(src, tgt)


def test_an_empty_line_inside_is_named_with_its_line(tmp_path):
    src = write(tmp_path / "a.de", "eins\n   \ndrei\n")
    with pytest.raises(DataError, match=r"a\.de:2: empty line"):
        read_sentences(src)


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty file"), ("\n\n", "empty file"), (b"gut\n\xff\n", r"x\.de:2: not UTF-8")],
)
def test_empty_or_undecodable_files(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        read_sentences(write(tmp_path / "x.de", content))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"nope\.de.*cannot read"):
        read_parallel(tmp_path / "nope.de", tmp_path / "nope.en")


def test_split_sentences_names_the_stream():
    assert split_sentences(" a b \nc\n", "<stdin>") == ["a b", "c"]
    with pytest.raises(DataError, match="<stdin>:1: empty line"):
        split_sentences("\nc\n", "<stdin>")


@pytest.mark.parametrize(
    "text",
    [
        "Two young, White males are outside near many bushes.",
        "A man in a T-shirt (red) isn't here!",
        "A boy's 3/4 view: 50% off; and/or [see] {x}?",
    ],
)
def test_detokenize_undoes_word_tokenize_where_the_text_had_no_space(text):
    assert detokenize(word_tokenize(text, lowercase=False)) == text


def test_detokenize_keeps_spaces_between_words_and_around_a_free_dash():
    assert detokenize(["a", "-", "b"]) == "a-b"
    assert detokenize(["wait", "-", "."]) == "wait -."
    assert detokenize(["a", "b"]) == "a b"


@pytest.mark.parametrize("content", ["eins\rzwei\rdrei\r", "eins\nzwei\rdrei\n"])
def test_a_carriage_return_inside_a_line_is_refused_not_one_merged_sentence(tmp_path, content):
    """A file with old Mac line ends (``\\r`` alone) would read as one long sentence, and the
    pairs of two such files as one pair: refuse it, naming the line."""
    path = write(tmp_path / "mac.de", content)
    line = 1 if content.startswith("eins\r") else 2
    with pytest.raises(DataError, match=rf"mac\.de:{line}: .*carriage return"):
        read_sentences(path)


def test_read_sentences_accepts_any_path_and_keeps_inner_spaces(tmp_path):
    path = write(tmp_path / "s.en", "  A  dog\truns.  \nTwo cats\n")
    assert read_sentences(str(path)) == ["A  dog\truns.", "Two cats"]
