"""Parallel text for translation: two files, one sentence a line, line ``i`` of one translating
line ``i`` of the other (the layout of Multi30k, WMT and most MT corpora).

:func:`read_parallel` reads and validates both files completely before anything else happens:
UTF-8 (a byte-order mark is allowed), the same number of lines, no empty sentence, ``\\n`` or
``\\r\\n`` line ends (a ``\\r`` alone, inside a line, is an error). Empty lines at
the very end of a file are ignored (many corpora end with a blank line); anywhere else an empty
line is a :class:`~rnnkit.errors.DataError` naming the file and the line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rnnkit.data.tabular import read_text_file
from rnnkit.errors import DataError


@dataclass
class ParallelText:
    """Aligned sentence pairs: ``sources[i]`` (line ``i + 1`` of ``source_path``) translates to
    ``targets[i]`` (the same line of ``target_path``)."""

    source_path: str
    target_path: str
    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)

    def head(self, n: int) -> ParallelText:
        """The first ``n`` pairs."""
        return ParallelText(self.source_path, self.target_path, self.sources[:n], self.targets[:n])


def read_sentences(path: str | os.PathLike) -> list[str]:
    """The sentences of a UTF-8 text file, one a line (see :func:`split_sentences`)."""
    return split_sentences(read_text_file(path, expected="one sentence per line"), str(path))


def split_sentences(text: str, name: str) -> list[str]:
    """The lines of ``text`` (read from ``name``), stripped, one sentence each: ``\\r\\n`` endings
    and blank lines after the last sentence are allowed; an empty or blank line before it, or a
    ``\\r`` inside a line (old Mac line ends), is a :class:`DataError` naming ``name`` and the line."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()  # the final newline, and blank lines after the last sentence
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError("empty line; expected one sentence per line", path=name, line=number)
        if "\r" in line:  # old Mac line ends: the whole file would be one sentence
            raise DataError(
                "a carriage return (\\r) inside the line; expected \\n or \\r\\n line ends, one sentence a line",
                path=name,
                line=number,
            )
    return [line.strip() for line in lines]


def read_parallel(source_path: str | os.PathLike, target_path: str | os.PathLike) -> ParallelText:
    """Read a source file and its translations (see the module docstring for what is checked).

    >>> pairs = read_parallel("multi30k/train.de", "multi30k/train.en")
    >>> pairs.sources[0]
    'Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.'
    >>> pairs.targets[0]
    'Two young, White males are outside near many bushes.'
    """
    sources, targets = read_sentences(source_path), read_sentences(target_path)
    if len(sources) != len(targets):
        raise DataError(
            f"{len(sources)} sentences, but {target_path} has {len(targets)}; expected the same number of lines "
            "(line i of one file translates line i of the other)",
            path=str(source_path),
        )
    return ParallelText(str(source_path), str(target_path), sources, targets)
