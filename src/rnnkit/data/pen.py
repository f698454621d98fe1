"""Online handwriting: pen trajectories (sequences of (x, y) points) with their labels.

Two file formats, each validated line by line (a :class:`~rnnkit.errors.DataError` names the file,
the line and what was expected):

* **UCI pendigits** (``.tra``, ``.tes``, ``.csv`` or any other suffix): per line 16 integers
  ``x1,y1,...,x8,y8`` (0..100) and the class, either as an integer or as the 10-character one-hot
  string ``0000000010`` of the copy kept in ``../shared/data``;
* **JSON lines** (``.jsonl``): one object per line, ``{"points": [[x, y], ...], "label": "3"}``
  with at least two points of finite numbers; any number of points, any labels.

:func:`point_features` turns a trajectory into what a model reads: coordinates scaled into the
unit box (aspect kept) and the step from the previous point. :func:`resample` spaces ``n``
points evenly along the pen's path (the fixed-size input of the feed-forward baseline).
"""

from __future__ import annotations

import json
import math
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
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        points, label = reader(line, name, number, with_labels)
        out.points.append(points)
        out.labels.append(label)
        out.lines.append(number)
    if not out.points:
        raise DataError("no trajectories; expected one per line", path=name)
    return out


def _pendigits_line(line: str, path: str, number: int, with_labels: bool) -> tuple[Tensor, str]:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) not in ((16, 17) if not with_labels else (17,)):
        raise DataError(
            f"found {len(fields)} comma-separated fields; expected 16 coordinates x1,y1,...,x8,y8 and a class",
            path=path,
            line=number,
        )
    try:
        values = [int(f) for f in fields[:16]]
    except ValueError:
        raise DataError(f"coordinates {fields[:16]}: expected 16 integers", path=path, line=number) from None
    if not all(0 <= v <= 100 for v in values):
        raise DataError(f"coordinates {values}: expected integers in 0..100", path=path, line=number)
    label = ""
    if len(fields) == 17:
        label = _pendigits_class(fields[16], path, number)
    return torch.tensor(values, dtype=torch.float32).view(8, 2), label


def _pendigits_class(field: str, path: str, number: int) -> str:
    if field.isdigit() and len(field) < 10:
        return str(int(field))
    if len(field) == 10 and set(field) <= {"0", "1"} and field.count("1") == 1:
        return str(field.index("1"))
    raise DataError(f"class {field!r}: expected a digit or a one-hot string like 0000000010", path=path, line=number)


def _json_line(line: str, path: str, number: int, with_labels: bool) -> tuple[Tensor, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg})", path=path, line=number) from None
    if not isinstance(record, dict) or "points" not in record:
        raise DataError('expected an object {"points": [[x, y], ...], "label": ...}', path=path, line=number)
    points = record["points"]
    ok = (
        isinstance(points, list)
        and len(points) >= 2
        and all(isinstance(p, list) and len(p) == 2 and all(_finite(v) for v in p) for p in points)
    )
    if not ok:
        raise DataError(
            "points: expected a list of at least two [x, y] pairs of finite numbers", path=path, line=number
        )
    label = record.get("label")
    if label is None and with_labels:
        raise DataError('no "label"; expected one for training and evaluation', path=path, line=number)
    if isinstance(label, (dict, list)):
        raise DataError(f"label: expected a string or number, got {label!r}", path=path, line=number)
    return torch.tensor(points, dtype=torch.float32), "" if label is None else str(label)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
