"""Reading labelled text tables: TSV, CSV or JSON lines, with a text column and a label column.

:func:`read_table` validates every row and raises :class:`rnnkit.errors.DataError` naming the file
(and line) on: an empty file, a file that is not UTF-8 (the line of the first bad byte), a
missing column (with the columns the file has), a row with the wrong number of fields, an empty
text or label, a JSON line that is not a JSON object, a text or label column named twice in the header.

Formats, chosen from the file name (or ``fmt=``):

* ``.tsv`` — tab-separated, first line a header, no quoting (GLUE's layout: ``label<TAB>sentence``);
* ``.csv`` — comma-separated, first line a header, ``"``-quoting as in RFC 4180;
* ``.jsonl`` / ``.ndjson`` / ``.json`` — one JSON object per line; labels may be strings or
  integers.

Blank lines are skipped. Labels are kept as strings (``1`` and ``"1"`` are the same label), without
the spaces around them (``pos`` and ``pos `` are the same label too).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rnnkit.errors import DataError

FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass
class TextTable:
    """The rows of a table: ``texts[i]`` with ``labels[i]`` (``None`` when no label column was
    asked for), read from ``path`` at line ``lines[i]`` (1-based, for error messages)."""

    path: str
    texts: list[str]
    labels: list[str] | None
    lines: list[int]

    def __len__(self) -> int:
        return len(self.texts)


def table_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``"tsv"``, ``"csv"`` or ``"jsonl"``: ``fmt`` if given, else from the file's suffix."""
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            raise DataError(f"unknown format {fmt!r}; expected one of tsv, csv, jsonl", path=str(path))
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"cannot tell the format from the suffix {suffix!r}; expected one of {sorted(FORMATS)} "
            "(or give the format explicitly)",
            path=str(path),
        )
    return FORMATS[suffix]


def read_text_file(path: str | os.PathLike, expected: str = "a header line and at least one row") -> str:
    """The whole file as text (see :func:`decode_text`); ``expected`` says what an empty file lacks."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror})", path=str(path)) from None
    return decode_text(raw, str(path), expected)


def decode_text(raw: bytes, name: str, expected: str) -> str:
    """``raw`` as UTF-8 text (a byte-order mark is allowed), else a :class:`DataError` naming
    ``name`` and the line of the first byte that is not UTF-8. Empty (or blank) text is an error
    too, saying it expected ``expected``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start} ({e.reason}); "
            "expected a UTF-8 encoded file",
            path=name,
            line=line,
        ) from None
    if not text.strip():
        raise DataError(f"empty file; expected {expected}", path=name)
    return text


def read_table(
    path: str | os.PathLike, text_column: str = "sentence", label_column: str | None = "label", fmt: str | None = None
) -> TextTable:
    """Read and validate a labelled text table.

    Args:
        path: a ``.tsv``, ``.csv`` or ``.jsonl`` file (see the module docstring).
        text_column: the name of the column (JSON key) holding the text.
        label_column: the column holding the label, or ``None`` to read texts only.
        fmt: ``"tsv"``, ``"csv"`` or ``"jsonl"`` to override the suffix.
    """
    name = str(path)
    kind = table_format(path, fmt)
    text = read_text_file(path)
    wanted = [text_column] if label_column is None else [text_column, label_column]
    records = _json_records(text, name, wanted) if kind == "jsonl" else _delimited_records(text, name, wanted, kind)
    table = TextTable(name, [], None if label_column is None else [], [])
    for line, values in records:
        table.texts.append(_non_empty(values[0], text_column, name, line))
        if table.labels is not None:
            table.labels.append(_non_empty(values[1], label_column, name, line).strip())
        table.lines.append(line)
    if not table.texts:
        raise DataError("no rows after the header; expected at least one", path=name)
    return table


def _non_empty(value: str, column: str | None, path: str, line: int) -> str:
    if not value.strip():
        raise DataError(f"empty {column!r} field; expected some text", path=path, line=line)
    return value


def _delimited_records(text: str, path: str, wanted: list[str], kind: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, [value of each wanted column])`` for each row of a TSV or CSV text."""
    if kind == "tsv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        positions = _column_positions(header, wanted, path)
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != len(header):
                raise DataError(
                    f"found {len(row)} fields, expected {len(header)} (the header's {header})",
                    path=path,
                    line=reader.line_num,
                )
            yield reader.line_num, [row[i] for i in positions]
    except csv.Error as e:
        raise DataError(f"malformed {kind.upper()} ({e})", path=path, line=reader.line_num) from None


def _column_positions(header: list[str], wanted: list[str], path: str) -> list[int]:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"no column {missing[0]!r}; the columns found are {header}", path=path, line=1)
    twice = [c for c in wanted if header.count(c) > 1]
    if twice:
        raise DataError(
            f"column {twice[0]!r} appears twice in the header {header}; expected it once", path=path, line=1
        )
    return [header.index(c) for c in wanted]


def _json_records(text: str, path: str, wanted: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line, [value of each wanted key])`` for each JSON object line."""
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg} at column {e.colno})", path=path, line=line) from None
        if not isinstance(record, dict):
            raise DataError(f"found a JSON {type(record).__name__}, expected an object", path=path, line=line)
        missing = [k for k in wanted if k not in record]
        if missing:
            raise DataError(f"no key {missing[0]!r}; the keys found are {sorted(record)}", path=path, line=line)
        yield line, [_scalar(record[k], k, path, line) for k in wanted]


def _scalar(value: object, key: str, path: str, line: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(
            f"{key!r} is a JSON {type(value).__name__}, expected a string or an integer", path=path, line=line
        )
    return str(value)
