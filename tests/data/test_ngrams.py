"""Tests of rnnkit.data.ngrams: the n-grams of a word, and their hashing (stable, in range)."""

from __future__ import annotations

import subprocess
import sys
import zlib

import pytest

from rnnkit.data.ngrams import CharNgramHasher, char_ngrams


def test_char_ngrams_of_a_marked_word_shortest_first() -> None:
    assert char_ngrams("not", 3, 4) == ["<no", "not", "ot>", "<not", "not>"]
    assert char_ngrams("a", 3, 5) == ["<a>"]  # only one n-gram fits in "<a>"
    assert char_ngrams("aaaa", 3, 3) == ["<aa", "aaa", "aaa", "aa>"]  # repeats kept: a bag
    assert char_ngrams("", 3, 5) == []


def test_hasher_ids_are_crc32_buckets_from_one_and_cached() -> None:
    hasher = CharNgramHasher(buckets=50, n_min=3, n_max=5)
    ids = hasher("cliche")
    assert ids == tuple(1 + zlib.crc32(g.encode()) % 50 for g in char_ngrams("cliche", 3, 5))
    assert len(ids) == 6 + 5 + 4 and all(1 <= i <= 50 for i in ids)
    assert hasher("cliche") is ids  # cached
    shared = set(hasher("cliches")) & set(ids)  # a word and its plural share most n-grams
    assert len(shared) >= 10


def test_hash_does_not_depend_on_the_python_process() -> None:
    """Python's own ``hash`` of a string changes with PYTHONHASHSEED; these ids must not."""
    code = "from rnnkit.data.ngrams import CharNgramHasher; print(CharNgramHasher(1000)('zorblax'))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {str(CharNgramHasher(1000)("zorblax")) + "\n"}


@pytest.mark.parametrize(("args", "pattern"), [((0,), "buckets"), ((10, 4, 3), "n_min <= n_max"), ((10, 0, 3), "1 <=")])
def test_bad_hasher_arguments_are_value_errors(args, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        CharNgramHasher(*args)
