"""Vocabularies: turning text into integer ids and back.

* :func:`word_tokenize` — the simple, documented word tokenizer used by ``rnnkit classify``.
* :class:`WordVocab` — a word-level vocabulary built from a training split, with ``<pad>`` (id 0)
  and ``<unk>`` (id 1); any word not seen in training maps to ``<unk>``. Saved as JSON.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from rnnkit.errors import CheckpointError

# A word is a run of letters/digits (apostrophes inside or in front kept: "don't", "n't", "'s");
# every other non-space character is a token of its own ("!", ",", "-").
_WORD = re.compile(r"\w+(?:'\w+)*|'\w+|[^\w\s]")


def word_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into words and punctuation marks.

    The rules, in full: optionally lower-case the text (``str.lower``); then a token is either a
    maximal run of word characters (Unicode letters, digits, ``_``) that may contain or start with
    apostrophes followed by word characters (``don't``, ``n't``, ``'s``), or any single character
    that is neither a word character nor whitespace (punctuation, symbols). Whitespace separates
    tokens and is dropped.

    >>> word_tokenize("It's NOT good, isn't it?")
    ["it's", 'not', 'good', ',', "isn't", 'it', '?']
    """
    return _WORD.findall(text.lower() if lowercase else text)


class WordVocab:
    """A word → id table. Ids 0 and 1 are ``<pad>`` and ``<unk>``; the rest are the training
    words, most frequent first (ties in alphabetical order, so building is deterministic).

    Build with :meth:`build`, save with :meth:`save` (JSON), load with :meth:`load`.
    """

    PAD = "<pad>"
    UNK = "<unk>"
    pad_id = 0
    unk_id = 1

    def __init__(self, words: Sequence[str]) -> None:
        """``words``: the id → word list, which must start with ``<pad>``, ``<unk>``."""
        if list(words[:2]) != [self.PAD, self.UNK]:
            raise ValueError(f"words: expected to start with {[self.PAD, self.UNK]}, got {list(words[:2])}")
        if len(set(words)) != len(words):
            raise ValueError("words: expected each word once, found duplicates")
        self.words: list[str] = list(words)
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None) -> WordVocab:
        """Count the tokens of every sequence; keep those seen at least ``min_freq`` times, the
        ``max_size`` most frequent at most (``<pad>`` and ``<unk>`` not counted)."""
        if min_freq < 1:
            raise ValueError(f"min_freq: expected >= 1, got {min_freq}")
        counts = Counter(token for tokens in token_lists for token in tokens)
        counts.pop(cls.PAD, None)
        counts.pop(cls.UNK, None)
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[:max_size]
        return cls([cls.PAD, cls.UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token ids; words not in the vocabulary become ``unk_id``."""
        return [self.index.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words for ``ids`` (``<pad>`` included; drop id 0 yourself if you need to)."""
        return [self.words[i] for i in ids]

    def to_dict(self) -> dict:
        return {"type": "WordVocab", "words": self.words}

    @classmethod
    def from_dict(cls, data: dict) -> WordVocab:
        if not isinstance(data, dict) or data.get("type") != "WordVocab" or not isinstance(data.get("words"), list):
            raise ValueError("expected a JSON object {'type': 'WordVocab', 'words': [...]}")
        return cls(data["words"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON, atomically (temp file, then ``os.replace``)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordVocab:
        """Read a vocabulary written by :meth:`save`; :class:`CheckpointError` if it is not one."""
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read vocabulary ({e.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            raise CheckpointError(f"{path}: not a WordVocab JSON file ({e})") from None
