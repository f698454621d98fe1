"""A character n-gram language model with interpolated Kneser-Ney smoothing, saved as JSON.

``P(w | h)`` for a character (or the end-of-sentence mark) ``w`` after the ``n - 1`` symbols
``h`` before it (a sentence starts with ``n - 1`` start marks), by interpolated Kneser-Ney
(Kneser & Ney 1995; Chen & Goodman 1998, eq. 26), one discount ``D_k`` per order ``k``::

    P_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h·)  +  D_k * N_k(h·) / c_k(h·) * P_{k-1}(w | h')
    P_0(w)     = 1 / |vocabulary|

where ``h'`` is ``h`` less its oldest symbol, ``c_n`` the n-grams' counts in the text,
``c_k`` (``k < n``) the continuation counts (how many distinct symbols precede the k-gram), ``c_k(h·)``
their sum over ``w``, and ``N_k(h·)`` how many distinct ``w`` follow ``h``. A context ``h`` never seen
(``c_k(h·) = 0``) is ``P_{k-1}(w | h')``. ``D_k = n1 / (n1 + 2 n2)`` (Ney, Essen & Kneser 1994; ``n1``,
``n2``: the k-grams counted once, twice), or 0.5 when none is counted once; it lies in ``(0, 1]``.

The vocabulary is the text's characters, the end-of-sentence mark and one unknown symbol (any
other character, which the model scores by ``P_0`` alone). Every symbol gets a probability
above zero, and each ``P(· | h)`` sums to 1 over the vocabulary, for every context ``h``.

The file (:meth:`CharNgramLM.save`, :meth:`CharNgramLM.load`) is plain JSON, never code::

    {"format": "rnnkit-char-ngram", "version": 1, "smoothing": "interpolated Kneser-Ney",
     "order": 3, "discounts": [0.5, 0.61, 0.72], "characters": [" ", "a", "b"],
     "ngrams": {"\\u0002\\u0002a": 12, "\\u0002ab": 7, ...}}

``ngrams`` holds the text's n-grams of the full order and their counts (everything else is
computed from them): the start mark is U+0002 (ASCII "start of text"), the end mark U+0003 ("end
of text"); text containing either, or U+001A (the unknown symbol), is refused.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rnnkit.data.tabular import read_text_file
from rnnkit.errors import DataError
from rnnkit.io import atomic_write_json

BOS, EOS, UNK = "\x02", "\x03", "\x1a"
RESERVED = (BOS, EOS, UNK)
FORMAT, VERSION, SMOOTHING = "rnnkit-char-ngram", 1, "interpolated Kneser-Ney"
CACHE_SIZE = 200_000  # contexts whose distributions are kept


def check_text(text: str, where: str) -> None:
    """A :class:`DataError` naming ``where`` if ``text`` holds one of the reserved marks."""
    for mark in RESERVED:
        if mark in text:
            raise DataError(
                f"{where}: holds the control character U+{ord(mark):04X}, which the character LM reserves; "
                "expected text without it"
            )


@dataclass
class OrderTable:
    """The counts of one order: per context (a string of ``k - 1`` symbols), the count of each
    symbol after it, their total and how many distinct symbols there are."""

    counts: dict[str, dict[str, int]]
    totals: dict[str, int]

    @classmethod
    def of(cls, ngrams: dict[str, int]) -> OrderTable:
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for gram, c in ngrams.items():
            counts[gram[:-1]][gram[-1]] = c
        return cls(dict(counts), {h: sum(after.values()) for h, after in counts.items()})

    def discount(self) -> float:
        """``n1 / (n1 + 2 n2)`` of this order's counts, or 0.5 without any counted once."""
        seen = Counter(c for after in self.counts.values() for c in after.values())
        return seen[1] / (seen[1] + 2 * seen[2]) if seen[1] else 0.5


class CharNgramLM:
    """An order-``n`` character LM (see the module docstring).

    ``ngrams`` maps each n-gram of the text (a string of ``order`` symbols, start marks first)
    to its count; ``characters`` are the text's characters; ``discounts`` one per order, lowest
    first (default: estimated from the counts). Build with :meth:`train`, read with :meth:`load`.
    """

    def __init__(
        self, order: int, characters: Sequence[str], ngrams: dict[str, int], discounts: Sequence[float] | None = None
    ) -> None:
        self.order = order
        self.characters = sorted(characters)
        self.vocabulary = [*self.characters, EOS, UNK]
        self.index = {s: i for i, s in enumerate(self.vocabulary)}
        self.ngrams = dict(ngrams)
        self.tables = self._order_tables()  # tables[k - 1]: order k
        self.discounts = list(discounts) if discounts is not None else [t.discount() for t in self.tables]
        self._cache: dict[str, list[float]] = {}

    def _order_tables(self) -> list[OrderTable]:
        """Order n's raw counts, then each lower order's continuation counts: a k-gram counts
        the distinct symbols seen before it (the (k + 1)-grams it ends)."""
        grams, tables = self.ngrams, [OrderTable.of(self.ngrams)]
        for _ in range(self.order - 1):
            grams = Counter(gram[1:] for gram in grams)
            tables.append(OrderTable.of(dict(grams)))
        return tables[::-1]

    # ------------------------------------------------------------------ building
    @classmethod
    def train(cls, sentences: Iterable[str], order: int = 4, discount: float | None = None) -> CharNgramLM:
        """Count the n-grams of ``sentences`` (one string each, its characters as they are).
        ``discount``: one ``D`` for every order instead of the estimated ones."""
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ValueError(f"order: expected an integer >= 1, got {order!r}")
        if discount is not None and not 0.0 < discount <= 1.0:
            raise ValueError(f"discount: expected a number in (0, 1], got {discount!r}")
        ngrams: Counter[str] = Counter()
        characters: set[str] = set()
        count = 0
        for count, text in enumerate(sentences, start=1):
            check_text(text, f"sentence {count}")
            characters.update(text)
            padded = BOS * (order - 1) + text + EOS
            ngrams.update(padded[i : i + order] for i in range(len(padded) - order + 1))
        if count == 0:
            raise DataError("no sentences; expected at least one line of text to train the character LM on")
        return cls(order, sorted(characters), dict(ngrams), None if discount is None else [discount] * order)

    # ------------------------------------------------------------------ probabilities
    def context(self, text: str) -> str:
        """The context the next symbol after ``text`` (a sentence's first characters) sees: its
        last ``order - 1`` symbols, start marks first where it is shorter."""
        return (BOS * (self.order - 1) + text)[len(text) :] if self.order > 1 else ""

    def log_probs(self, context: str) -> list[float]:
        """``log P(w | context)`` for each ``w`` of :attr:`vocabulary`: ``(V + 2,)`` as a list.
        ``context`` is a string of ``order - 1`` symbols (:meth:`context`); characters outside
        the vocabulary in it count as the unknown symbol."""
        out = self._cache.get(context)
        if out is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            out = self._cache[context] = [math.log(p) for p in self._probs(len(context) + 1, context)]
        return out

    def _probs(self, k: int, h: str) -> list[float]:
        """``P_k(· | h)`` over the vocabulary (``h``: ``k - 1`` symbols)."""
        lower = self._probs(k - 1, h[1:]) if k > 1 else [1.0 / len(self.vocabulary)] * len(self.vocabulary)
        table = self.tables[k - 1]
        after = table.counts.get(h)
        if after is None:
            return lower
        total, D = table.totals[h], self.discounts[k - 1]
        out = [D * len(after) / total * p for p in lower]
        for w, c in after.items():
            out[self.index[w]] += max(c - D, 0.0) / total
        return out

    def symbol(self, char: str) -> str:
        """``char`` if the LM knows it, else the unknown symbol."""
        return char if char in self.index and char not in (EOS, UNK) else UNK

    def log_prob(self, symbol: str, context: str) -> float:
        """``log P(symbol | context)``; an unknown character is scored as the unknown symbol."""
        return self.log_probs(context)[self.index[symbol if symbol == EOS else self.symbol(symbol)]]

    def sentence_log_prob(self, text: str) -> float:
        """``log P(text)``: each character given the ones before it, then the end of sentence."""
        total, history = 0.0, ""
        for s in [*(self.symbol(c) for c in text), EOS]:
            total += self.log_prob(s, self.context(history))
            history = self.context(history + s) if self.order > 1 else ""
        return total

    # ------------------------------------------------------------------ the file
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "smoothing": SMOOTHING, "order": self.order,
            "discounts": self.discounts, "characters": self.characters, "ngrams": self.ngrams,
        }  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        """Write the LM as JSON (atomically)."""
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharNgramLM:
        """Read an LM written by :meth:`save`; a :class:`DataError` naming the file and the
        field if it is not one."""
        name = str(path)
        try:
            saved = json.loads(read_text_file(path, expected="a character n-gram LM (JSON)"))
        except json.JSONDecodeError as e:
            raise DataError(f"not JSON ({e}); expected a character n-gram LM", path=name) from None
        return cls(*checked_fields(saved, name))


def checked_fields(saved: Any, path: str) -> tuple[int, list[str], dict[str, int], list[float]]:
    """``(order, characters, ngrams, discounts)`` of a saved LM, each checked: a
    :class:`DataError` naming ``path`` and the field otherwise."""

    def bad(field: str, expected: str, found: Any) -> DataError:
        shown = repr(found) if len(repr(found)) <= 80 else repr(found)[:77] + "..."
        return DataError(f"field {field!r}: expected {expected}, found {shown}", path=path)

    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else saved
        raise bad("format", f"{FORMAT!r} (a file of `rnnkit speech lm`)", found)
    if saved.get("version") != VERSION or saved.get("smoothing") != SMOOTHING:
        raise bad(
            "version", f"version {VERSION}, smoothing {SMOOTHING!r}", (saved.get("version"), saved.get("smoothing"))
        )
    order = saved.get("order")
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise bad("order", "an integer >= 1", order)
    characters = saved.get("characters")
    if (
        not isinstance(characters, list)
        or not all(isinstance(c, str) and len(c) == 1 and c not in RESERVED for c in characters)
        or len(set(characters)) != len(characters)
    ):
        raise bad("characters", "a list of distinct single characters (no control marks)", characters)
    discounts = saved.get("discounts")
    if not (
        isinstance(discounts, list)
        and len(discounts) == order
        and all(isinstance(d, (int, float)) and not isinstance(d, bool) and 0.0 < d <= 1.0 for d in discounts)
    ):
        raise bad("discounts", f"a list of {order} numbers in (0, 1]", discounts)
    ngrams = saved.get("ngrams")
    if not isinstance(ngrams, dict) or not ngrams:
        raise bad("ngrams", "an object of n-grams and their counts", ngrams)
    known = set(characters)
    for gram, count in ngrams.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise bad(f"ngrams[{gram!r}]", "a count >= 1", count)
        if not well_formed(gram, order, known):
            raise bad(
                "ngrams",
                f"keys of {order} symbols: start marks (U+0002) first, then the LM's characters, "
                "the end mark (U+0003) last if at all",
                gram,
            )
    return order, characters, ngrams, [float(d) for d in discounts]


def well_formed(gram: str, order: int, characters: set[str]) -> bool:
    """Whether ``gram`` is an n-gram a sentence can hold: ``order`` symbols, start marks only
    before every character, an end mark only last, and at least one symbol that is not a start."""
    body = gram.lstrip(BOS)
    if len(gram) != order or not body:
        return False
    middle = body[:-1] if body.endswith(EOS) else body
    return all(c in characters for c in middle)
