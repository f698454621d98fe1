"""Online handwriting: pen trajectories (sequences of (x, y) points) with their labels.

Two file formats, each validated line by line (a :class:`~rnnkit.errors.DataError` names the file,
the line and what was expected):

* **UCI pendigits** (``.tra``, ``.tes``, ``.csv`` or any other suffix): per line 16 integers
  ``x1,y1,...,x8,y8`` (0..100) and the class, either as an integer or as the 10-character one-hot
  string ``0000000010`` of the copy kept in ``../shared/data``;
* **JSON lines** (``.jsonl``): one object per line, ``{"points": [[x, y], ...], "label": "3"}``
  with at least two points of finite numbers; any number of points, any labels (a non-empty
  string or an integer, kept as text). A trajectory written in several strokes may come as
  ``{"strokes": [[[x, y], ...], ...], "label": ...}`` (no stroke empty): the strokes are joined
  in order, so the pen-up jump from one stroke's end to the next one's start is one step of the
  trajectory, as in pendigits.

:func:`point_features` turns a trajectory into what a model reads: coordinates scaled into the
unit box (aspect kept) and the step from the previous point. :func:`resample` spaces ``n``
points evenly along the pen's path (the fixed-size input of the feed-forward baseline).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.tabular import read_text_file
from rnnkit.errors import DataError


@dataclass
class Trajectories:
    """``points[i]: (N_i, 2)`` float tensors, ``labels[i]`` (text), from ``lines[i]`` of ``path``."""

    path: str
    points: list[Tensor]
    labels: list[str]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, indices: list[int]) -> Trajectories:
        return Trajectories(
            self.path,
            [self.points[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.lines[i] for i in indices],
        )


def read_trajectories(path: str | os.PathLike, with_labels: bool = True) -> Trajectories:
    """Read a pendigits or JSON-lines file (by suffix: ``.jsonl`` is JSON lines); ``with_labels``
    False accepts lines without a label (labels then ``""``)."""
    name = str(path)
    text = read_text_file(path, expected="one pen trajectory per line")
    reader = _json_line if Path(name).suffix.lower() in (".jsonl", ".ndjson") else _pendigits_line
    out = Trajectories(name, [], [], [])
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: "\u2028" may be in a JSON string
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        points, label = reader(line, name, number, with_labels)
        out.points.append(points)
        out.labels.append(label)
        out.lines.append(number)
    if not out.points:
        raise DataError("no trajectories; expected one per line", path=name)
    return out


COORDINATE_NAMES = tuple(f"{axis}{i}" for i in range(1, 9) for axis in "xy")  # x1, y1, ..., x8, y8
FLOAT32_MAX = 3.4028234663852886e38


def _pendigits_line(line: str, path: str, number: int, with_labels: bool) -> tuple[Tensor, str]:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) not in ((16, 17) if not with_labels else (17,)):
        raise DataError(
            f"found {len(fields)} comma-separated fields; expected 16 coordinates x1,y1,...,x8,y8 and a class",
            path=path,
            line=number,
        )
    values = [_pendigits_coordinate(f, i, path, number) for i, f in enumerate(fields[:16])]
    label = ""
    if len(fields) == 17:
        label = _pendigits_class(fields[16], path, number)
    return torch.tensor(values, dtype=torch.float32).view(8, 2), label


def _pendigits_coordinate(field: str, index: int, path: str, number: int) -> int:
    """Field ``index`` (0-based) as an integer 0..100: plain ASCII digits, nothing else."""
    if not (field.isascii() and field.isdigit() and int(field) <= 100):
        raise DataError(
            f"field {index + 1} ({COORDINATE_NAMES[index]}) {field!r}: expected an integer in 0..100",
            path=path,
            line=number,
        )
    return int(field)


def _pendigits_class(field: str, path: str, number: int) -> str:
    if len(field) == 1 and field in "0123456789":
        return field
    if len(field) == 10 and set(field) <= {"0", "1"} and field.count("1") == 1:
        return str(field.index("1"))
    raise DataError(
        f"field 17 (class) {field!r}: expected a digit 0..9 or a one-hot string like 0000000010",
        path=path,
        line=number,
    )


def _json_line(line: str, path: str, number: int, with_labels: bool) -> tuple[Tensor, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg})", path=path, line=number) from None
    if not isinstance(record, dict) or ("points" in record) == ("strokes" in record):
        raise DataError(
            'expected an object {"points": [[x, y], ...], "label": ...} or {"strokes": [[[x, y], ...], ...], '
            '"label": ...} (one of "points" and "strokes")',
            path=path,
            line=number,
        )
    points = _json_points(record, path, number)
    return torch.tensor(points, dtype=torch.float32), _json_label(record, path, number, with_labels)


def _json_points(record: dict, path: str, number: int) -> list[list[float]]:
    """The record's points; strokes are joined in order (the pen-up jump between two strokes is
    the step from the end of one to the start of the next)."""
    if "points" in record:
        points = _point_list(record["points"], "points", path, number)
    else:
        strokes = record["strokes"]
        if not isinstance(strokes, list) or not strokes:
            raise DataError(f"strokes: found {strokes!r}; expected a list of strokes", path=path, line=number)
        points = [p for i, s in enumerate(strokes) for p in _point_list(s, f"strokes[{i}]", path, number)]
    if len(points) < 2:
        raise DataError(
            f"found {len(points)} point; expected at least two (a trajectory is a movement)", path=path, line=number
        )
    return points


def _point_list(value: object, name: str, path: str, number: int) -> list[list[float]]:
    """``value`` checked to be a non-empty list of ``[x, y]`` pairs of finite float32 numbers."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{name}: found {value!r}; expected a non-empty list of [x, y] points", path=path, line=number)
    for j, p in enumerate(value):
        if not (isinstance(p, list) and len(p) == 2 and all(_finite(v) for v in p)):
            hint = (
                ' (a list of strokes goes in "strokes")' if isinstance(p, list) and p and isinstance(p[0], list) else ""
            )
            raise DataError(
                f"{name}[{j}]: found {p!r}; expected an [x, y] pair of finite numbers (|v| < 3.4e38){hint}",
                path=path,
                line=number,
            )
    return value


def _json_label(record: dict, path: str, number: int, with_labels: bool) -> str:
    label = record.get("label")
    if label is None:
        if with_labels:
            raise DataError('no "label"; expected one for training and evaluation', path=path, line=number)
        return ""
    if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
        raise DataError(f"label: found {label!r}; expected a non-empty string or an integer", path=path, line=number)
    return str(label)


def _finite(value: object) -> bool:
    """A JSON number that float32 holds as a finite number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= FLOAT32_MAX


def point_features(points: Tensor) -> Tensor:
    """``points: (N, 2)`` -> ``(N, 4)``: ``(x, y)`` moved to start at the box's corner and scaled by
    the larger side (aspect kept), and ``(dx, dy)`` from the previous point (0 at the first)."""
    low = points.min(0).values
    scale = (points.max(0).values - low).max().clamp(min=1e-6)
    xy = (points - low) / scale  # (N, 2) in [0, 1]
    step = torch.cat([torch.zeros(1, 2), xy[1:] - xy[:-1]])  # (N, 2)
    return torch.cat([xy, step], dim=1)


def resample(points: Tensor, n: int) -> Tensor:
    """``n`` points spaced evenly along the path through ``points: (N, 2)`` (by arc length; the
    first and last points kept). A path of length 0 gives ``n`` copies of its point."""
    seg = (points[1:] - points[:-1]).norm(dim=1)  # (N-1,)
    arc = torch.cat([torch.zeros(1), seg.cumsum(0)])  # (N,)
    if arc[-1] <= 0:
        return points[:1].expand(n, 2).clone()
    targets = torch.linspace(0, float(arc[-1]), n)
    index = torch.searchsorted(arc, targets, right=True).clamp(1, len(points) - 1)  # segment ends
    a, b = arc[index - 1], arc[index]
    w = ((targets - a) / (b - a).clamp(min=1e-12)).clamp(0, 1).unsqueeze(1)
    return points[index - 1] * (1 - w) + points[index] * w
