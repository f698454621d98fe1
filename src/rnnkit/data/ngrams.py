"""Hashed character n-grams of words (Bojanowski et al. 2017, fastText's subword features).

A word is wrapped in boundary marks, ``"<" + word + ">"``, and cut into its character n-grams
for ``n_min <= n <= n_max`` (``"good"``, n = 3: ``<go goo ood od>``). Each n-gram is hashed
(CRC-32 of its UTF-8 bytes, the same on every machine and Python run) into one of ``buckets``
ids, ``1 .. buckets``; id 0 is left for padding. A word never seen in training still has
n-grams, so a model that embeds them has something to say about it (``"cliches"`` shares
``<cl cli lic ich che`` with ``"cliche"``).
"""

from __future__ import annotations

import zlib


def char_ngrams(word: str, n_min: int = 3, n_max: int = 5) -> list[str]:
    """The character n-grams of ``"<" + word + ">"`` for ``n_min <= n <= n_max``, shortest
    first, left to right; repeated n-grams are kept (a word's bag of n-grams).

    >>> char_ngrams("not", 3, 4)
    ['<no', 'not', 'ot>', '<not', 'not>']
    """
    marked = f"<{word}>"
    return [marked[i : i + n] for n in range(n_min, n_max + 1) for i in range(len(marked) - n + 1)]


class CharNgramHasher:
    """Word → the tuple of its hashed character n-gram ids, each in ``1 .. buckets``.

    ``buckets``: how many ids the n-grams share (collisions are part of the method);
    ``n_min``, ``n_max``: the n-gram lengths. A word too short for any n-gram (none for the empty
    string; ``"<a>"`` has one 3-gram) gets what it has. Results are cached per word.
    """

    def __init__(self, buckets: int, n_min: int = 3, n_max: int = 5) -> None:
        if buckets < 1:
            raise ValueError(f"buckets: expected an integer >= 1, got {buckets!r}")
        if not 1 <= n_min <= n_max:
            raise ValueError(f"n-gram lengths: expected 1 <= n_min <= n_max, got n_min={n_min!r}, n_max={n_max!r}")
        self.buckets, self.n_min, self.n_max = buckets, n_min, n_max
        self._cache: dict[str, tuple[int, ...]] = {}

    def __call__(self, word: str) -> tuple[int, ...]:
        ids = self._cache.get(word)
        if ids is None:
            grams = char_ngrams(word, self.n_min, self.n_max)
            ids = tuple(1 + zlib.crc32(g.encode("utf-8")) % self.buckets for g in grams)
            self._cache[word] = ids
        return ids
