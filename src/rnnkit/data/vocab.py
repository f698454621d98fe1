"""Vocabularies: turning text into integer ids and back.

* :func:`word_tokenize` — the simple, documented word tokenizer used by ``rnnkit classify`` and
  ``rnnkit translate``; :func:`detokenize` joins its tokens back into text.
* :class:`WordVocab` — a word-level vocabulary built from a training split, with ``<pad>`` (id 0)
  and ``<unk>`` (id 1); any word not seen in training maps to ``<unk>``. Saved as JSON.
* :class:`CharVocab` — one id per character seen in the training text (``rnnkit lm --level char``).
* :class:`SubwordVocab` — byte-level BPE trained with the ``tokenizers`` library on the training
  text (``rnnkit lm --level subword``); saved as the library's own ``tokenizer.json``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from rnnkit.errors import CheckpointError
from rnnkit.io import atomic_write_json, atomic_write_text

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


# Detokenization: no space before closing punctuation, after an opening bracket, or around a
# hyphen or apostrophe inside a word ("t - shirt" -> "t-shirt").
_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}])")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")
_INNER_MARK = re.compile(r"(?<=\w) ([-'/]) (?=\w)")


def detokenize(tokens: Sequence[str]) -> str:
    """Join :func:`word_tokenize`'s tokens into text: spaces between words, none before ``. , !
    ? ; : % ) ] }``, none after ``( [ { $``, none around a ``-``, ``'`` or ``/`` between two
    words. Undoes the tokenizer wherever the text had no space there.

    >>> detokenize(["a", "man", "in", "a", "t", "-", "shirt", "(", "red", ")", "."])
    'a man in a t-shirt (red).'
    """
    text = " ".join(tokens)
    return _INNER_MARK.sub(r"\1", _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text)))


def _checked_ids(ids: Iterable[int], size: int) -> list[int]:
    """``ids`` as a list, or a ``ValueError`` naming the first one outside ``0 .. size - 1``."""
    ids = list(ids)
    for i in ids:
        if not 0 <= i < size:
            raise ValueError(f"ids: expected ids in 0..{size - 1}, got {i}")
    return ids


class SymbolListVocab:
    """The JSON form shared by vocabularies that are one list of symbols (``field``):
    ``{"type": "<class name>", "<field>": [...]}``, saved atomically, loaded with clear errors."""

    field: str

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, self.field: getattr(self, self.field)}

    @classmethod
    def from_dict(cls, data: dict):
        name = cls.__name__
        if not isinstance(data, dict) or data.get("type") != name or not isinstance(data.get(cls.field), list):
            raise ValueError(f"expected a JSON object {{'type': '{name}', '{cls.field}': [...]}}")
        return cls(data[cls.field])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON, atomically (temp file, then ``os.replace``)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a vocabulary written by :meth:`save`; :class:`CheckpointError` if it is not one."""
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read vocabulary ({e.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            raise CheckpointError(f"{path}: not a {cls.__name__} JSON file ({e})") from None


class WordVocab(SymbolListVocab):
    """A word → id table. Ids 0 and 1 are ``<pad>`` and ``<unk>``; the rest are the training
    words, most frequent first (ties in alphabetical order, so building is deterministic).

    Build with :meth:`build`, save with :meth:`save` (JSON), load with :meth:`load`.
    """

    field = "words"

    PAD = "<pad>"
    UNK = "<unk>"
    pad_id = 0
    unk_id = 1

    def __init__(self, words: Sequence[str]) -> None:
        """``words``: the id → word list, which must start with ``<pad>``, ``<unk>``."""
        if any(not isinstance(w, str) for w in words):
            raise ValueError("words: expected a list of strings, found another type")
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
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size: expected >= 0 or None, got {max_size}")
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
        """Words for ``ids`` (``<pad>`` included; drop id 0 yourself if you need to); an id
        outside ``0 .. len - 1`` raises ``ValueError`` (a negative one would index from the end)."""
        return [self.words[i] for i in _checked_ids(ids, len(self.words))]


class CharVocab(SymbolListVocab):
    """A character → id table: one id per distinct character of the training text, in code point
    order (so building is deterministic). There is no unknown id: a character-level model is
    trained on every character it can meet in its text, and :meth:`encode` reports (or, with
    ``skip_unknown=True``, drops) characters it has never seen, e.g. in a generation prompt.
    """

    field = "chars"

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("chars: expected a non-empty list of single characters")
        if chars != sorted(set(chars)):
            raise ValueError("chars: expected distinct characters in code point order")
        self.chars: list[str] = chars
        self.index: dict[str, int] = {c: i for i, c in enumerate(chars)}
        self._codes = np.array([ord(c) for c in chars], dtype=np.int64)  # (V,) sorted code points

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharVocab:
        """The vocabulary of every character in ``texts`` (any iterable of strings, streamed)."""
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        if not seen:
            raise ValueError("texts: expected at least one character, got none")
        return cls(sorted(seen))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self.index

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def encode(self, text: str, *, skip_unknown: bool = False) -> list[int]:
        """Ids of the characters of ``text``; an unknown character raises ``ValueError`` naming
        it, or is dropped with ``skip_unknown=True``."""
        if skip_unknown:
            return [self.index[c] for c in text if c in self.index]
        missing = self.unknown(text)
        if missing:
            raise ValueError(f"characters not in the vocabulary: {missing[:10]!r}")
        return [self.index[c] for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        """Vectorized :meth:`encode` for long texts: ``(len(text),)`` int64 ids; ``ValueError``
        naming the first unknown character."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # (N,)
        ids = np.searchsorted(self._codes, codes).clip(max=len(self._codes) - 1)  # (N,)
        bad = np.flatnonzero(self._codes[ids] != codes)
        if bad.size:
            raise ValueError(f"character {text[bad[0]]!r} at offset {int(bad[0])} is not in the vocabulary")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; an id outside ``0 .. len - 1`` raises ``ValueError``."""
        return "".join(self.chars[i] for i in _checked_ids(ids, len(self.chars)))

    def stream_decoder(self):
        """A function ``id -> str`` for streaming output one token at a time."""
        return self.chars.__getitem__


class SubwordVocab:
    """Byte-level BPE (as GPT-2's), trained with the ``tokenizers`` library.

    Every text can be encoded (bytes are the base alphabet), so there are no unknown tokens.
    Saved as the library's own ``tokenizer.json``, which ``tokenizers.Tokenizer.from_file`` reads.
    """

    kind = "subword"

    def __init__(self, tokenizer) -> None:
        """``tokenizer``: a ``tokenizers.Tokenizer`` with a byte-level pre-tokenizer and decoder."""
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> SubwordVocab:
        """Learn up to ``vocab_size`` tokens (256 bytes + merges) from ``texts`` (streamed)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise ValueError(f"vocab_size: expected >= 257 (256 bytes + merges), got {vocab_size}")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str, *, skip_unknown: bool = False) -> list[int]:
        """Token ids of ``text`` (``skip_unknown`` is accepted for symmetry: nothing is unknown)."""
        return self.tokenizer.encode(text).ids

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int64)

    def unknown(self, text: str) -> list[str]:
        return []

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def stream_decoder(self):
        """A function ``id -> str`` for streaming output: returns ``""`` while a multi-byte
        character is still incomplete."""
        from tokenizers.decoders import DecodeStream

        stream = DecodeStream(skip_special_tokens=False)
        return lambda token_id: stream.step(self.tokenizer, token_id) or ""

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` atomically."""
        atomic_write_text(path, self.tokenizer.to_str())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SubwordVocab:
        """Read a ``tokenizer.json``; :class:`CheckpointError` if it is not one."""
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as e:  # the library raises a plain Exception for any unreadable file
            raise CheckpointError(f"{path}: not a tokenizers JSON file ({e})") from None
