"""Polyphonic music as piano rolls: a piece is a list of time steps, a time step the set of MIDI
pitches sounding in it (the layout of the JSB Chorales, Nottingham, MuseData and Piano-midi.de
files of Boulanger-Lewandowski et al. 2012).

* :func:`read_pieces` — a JSON file ``{"train": [piece, ...], "valid": [...], ...}`` (or a bare
  list of pieces), every piece checked: a non-empty list of time steps, each a list of integer
  pitches in 0..127. A :class:`~rnnkit.errors.DataError` names the file, the split, the piece and
  the step of the first thing that is wrong.
* :class:`PitchRange` — the pitches a model covers (``low..high``), and the conversion between a
  piece and its piano roll, a ``(T, P)`` 0/1 tensor (``P = high - low + 1``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.data.tabular import read_text_file
from rnnkit.errors import DataError

Piece = list[list[int]]  # time steps, each the sorted MIDI pitches sounding then (possibly none)


def read_pieces(path: str | os.PathLike, split: str | None = None) -> list[Piece]:
    """The pieces of ``split`` in a JSON file of named splits, or of a file that is a bare list
    of pieces (``split=None``). Each step comes back sorted, without repeats."""
    name = str(path)
    try:
        data = json.loads(read_text_file(path, expected="a JSON list of pieces or an object of splits"))
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg})", path=name, line=e.lineno) from None
    where = name
    if split is not None:
        if not isinstance(data, dict):
            raise DataError(
                f"expected a JSON object of splits (asked for split {split!r}), found a {_kind(data)}", path=name
            )
        if split not in data:
            raise DataError(f"no split {split!r}; the splits found are {sorted(data)}", path=name)
        data, where = data[split], f"{name}: split {split!r}"
    if split is None and isinstance(data, dict):
        raise DataError(
            f"found an object of splits {sorted(data)}; name one (--split) or give a list of pieces", path=name
        )
    if not isinstance(data, list) or not data:
        raise DataError(f"{where}: expected a non-empty list of pieces, found {_kind(data)}")
    return [_check_piece(piece, f"{where}: piece {i}") for i, piece in enumerate(data)]


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _check_piece(piece: object, where: str) -> Piece:
    if not isinstance(piece, list) or not piece:
        raise DataError(f"{where}: expected a non-empty list of time steps, found {_kind(piece)}")
    steps = []
    for t, step in enumerate(piece):
        if not isinstance(step, list):
            raise DataError(f"{where}, step {t}: expected a list of MIDI pitches, found {_kind(step)}")
        for pitch in step:
            if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch <= 127:
                raise DataError(f"{where}, step {t}: expected MIDI pitches (integers 0..127), found {pitch!r}")
        steps.append(sorted(set(step)))
    return steps


@dataclass(frozen=True)
class PitchRange:
    """The pitches ``low..high`` (inclusive) of a piano roll's ``P = high - low + 1`` columns."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 127:
            raise ValueError(f"low, high: expected 0 <= low <= high <= 127, got {self.low}, {self.high}")

    @classmethod
    def of(cls, pieces: Sequence[Piece]) -> PitchRange:
        """The narrowest range holding every pitch of ``pieces`` (60..60 if they are all rests)."""
        pitches = [p for piece in pieces for step in piece for p in step]
        return cls(min(pitches), max(pitches)) if pitches else cls(60, 60)

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def check(self, pieces: Sequence[Piece], where: str) -> None:
        """A :class:`DataError` naming the first pitch of ``pieces`` outside the range."""
        for i, piece in enumerate(pieces):
            for t, step in enumerate(piece):
                for p in step:
                    if not self.low <= p <= self.high:
                        raise DataError(
                            f"{where}: piece {i}, step {t}: pitch {p} is outside the model's range "
                            f"{self.low}..{self.high} (the training pieces' range)"
                        )

    def roll(self, piece: Piece) -> Tensor:
        """``(T, P)`` float tensor: 1 where pitch ``low + j`` sounds at step ``t``. A
        ``ValueError`` for a pitch outside the range (:meth:`check` first for a :class:`DataError`)."""
        roll = torch.zeros(len(piece), self.size)
        for t, step in enumerate(piece):
            outside = [p for p in step if not self.low <= p <= self.high]
            if outside:
                raise ValueError(f"piece: step {t}: pitch {outside[0]} is outside the range {self.low}..{self.high}")
            roll[t, [p - self.low for p in step]] = 1.0
        return roll

    def piece(self, roll: Tensor) -> Piece:
        """The inverse of :meth:`roll`: ``(T, P)`` 0/1 -> the pitches of each step."""
        if roll.dim() != 2 or roll.shape[1] != self.size:
            raise ValueError(f"roll: expected shape (T, {self.size}), got {tuple(roll.shape)}")
        return [[self.low + int(j) for j in row.nonzero().flatten()] for row in roll]
