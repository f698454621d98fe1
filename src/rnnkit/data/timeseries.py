"""Time series from CSV files: validation, transforms, scalers, windows and walk-forward folds.

A series is read with pandas from a CSV that has one date/time column and numeric columns. The
*target* is column 0 of the values; covariates follow. Every problem in the file (missing or
unparsable dates, unsorted or duplicated dates, non-numeric or missing values, unknown columns)
raises :class:`~rnnkit.errors.DataError` naming the file and line.

Indexing convention used throughout: an *origin* ``o`` is the index of the last observed step of a
context window; its forecast targets are the steps ``o + 1 … o + H``. A walk-forward fold has a
*cut*: the index of the first step it forecasts. Everything a fold trains on (inputs and targets)
lies strictly before its cut, and the scaler is fitted on that same part only.

Shape legend: ``N`` time steps, ``F`` columns (target first), ``K`` windows, ``C`` context
length, ``H`` horizon.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from rnnkit.errors import ConfigError, DataError

FILLS = ("none", "ffill", "interpolate", "drop")
TRANSFORMS = ("none", "diff", "log-return")
MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "n/a"})
HEADER_LINES = 1  # the CSV's first line holds the column names; data row i is on line i + 2
THOUSANDS = r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?"  # 1,234.5: commas between groups of three digits


@dataclass
class Series:
    """A validated series. ``values: (N, F)`` float64 with the target in column 0.

    ``dates: (N,)`` strictly increasing; ``lines: (N,)`` the file line each row came from (for
    error messages); ``source`` the file name.
    """

    dates: pd.DatetimeIndex
    values: np.ndarray
    columns: list[str]
    lines: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.dates)

    @property
    def target(self) -> np.ndarray:
        """The target column, ``(N,)``."""
        return self.values[:, 0]


# --------------------------------------------------------------------------------------- reading
def read_csv_series(
    path: str | os.PathLike,
    date_column: str,
    target: str,
    covariates: Sequence[str] = (),
    fill: str = "none",
    date_format: str | None = None,
) -> Series:
    """Read and validate ``path``: dates parsed, sorted and unique; used columns numeric.

    ``fill`` handles *missing* cells in used columns: ``none`` (error), ``ffill``,
    ``interpolate`` (linear) or ``drop`` (the row). Non-numeric text is always an error; numbers
    may have thousands separators (``"1,234.5"``). ``date_format`` (``strptime`` codes, e.g.
    ``%d.%m.%Y``) defaults to the format guessed from the first date; dates with a UTC offset
    are converted to UTC.
    """
    path = str(path)
    if fill not in FILLS:
        raise ConfigError(f"fill: expected one of {FILLS}, got {fill!r}")
    check_date_format(date_format)
    header, rows, lines = _read_table(path)
    columns = [target, *covariates]
    raw = pd.DataFrame({name: [row[i] for row in rows] for i, name in enumerate(header)}, columns=header, dtype=str)
    _check_columns(raw, path, date_column, columns)
    dates = _parse_dates(raw[date_column], path, lines, date_format)
    values = np.stack([_parse_numbers(raw[c], c, path, lines) for c in columns], axis=1)  # (N, F)
    _check_order(dates, path, lines)
    values, dates, lines = _fill_missing(values, dates, lines, columns, path, fill)
    return Series(pd.DatetimeIndex(dates), values, columns, lines, path)


def check_date_format(date_format: str | None) -> None:
    """A :class:`ConfigError` unless ``date_format`` is None or holds ``strptime`` codes."""
    if date_format is not None and "%" not in date_format:
        raise ConfigError(f"date_format: expected strptime codes such as %Y-%m-%d or %d/%m/%Y, got {date_format!r}")


def _read_table(path: str) -> tuple[list[str], list[list[str]], np.ndarray]:
    """The header (names stripped), the rows (each with the header's field count) and the line
    each row starts on. Blank lines at the end are ignored; anywhere else they are an error."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # strict: an unclosed quote is an error
    header, rows, lines, end = None, [], [], 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if header is None:
                header = _check_header([name.strip() for name in row], path)
            elif row:
                if len(row) != len(header):
                    raise DataError(
                        f"found {len(row)} fields, expected {len(header)} as in the header ({','.join(header)})",
                        path=path,
                        line=start,
                    )
                rows.append(row)
                lines.append(start)
            else:
                lines.append(-start)  # a blank line: an error unless only blank lines follow
    except csv.Error as e:
        raise DataError(f"not a readable CSV file ({e})", path=path, line=reader.line_num) from None
    if header is None:
        raise DataError("empty file; expected a header line with the column names", path=path, line=1)
    if not rows:
        raise DataError(f"no data rows after the header; expected rows of {len(header)} fields", path=path, line=2)
    return header, rows, _check_blank_lines(np.asarray(lines, dtype=np.int64), header, path)


def _read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except IsADirectoryError:
        raise DataError("a folder; expected a CSV file", path=path) from None
    except OSError as e:
        raise DataError(f"cannot read the file ({e.strerror})", path=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            f"byte {e.start} (0x{data[e.start]:02x}) is not UTF-8; expected a UTF-8 text file", path=path, line=line
        ) from None


def _check_header(names: list[str], path: str) -> list[str]:
    if names == [""]:
        raise DataError("empty line; expected the header line with the column names", path=path, line=1)
    seen = set()
    for name in names:
        if name in seen:
            raise DataError(f"column {name!r} appears twice in the header", path=path, line=1)
        seen.add(name)
    return names


def _check_blank_lines(lines: np.ndarray, header: list[str], path: str) -> np.ndarray:
    """The data rows' lines; a blank line (negative entry) before a data row is an error."""
    data = np.flatnonzero(lines > 0)
    blank = np.flatnonzero(lines[: data[-1]] < 0) if len(data) else np.array([], dtype=np.int64)
    if len(blank):
        raise DataError(
            f"empty line; expected {len(header)} fields ({','.join(header)})", path=path, line=int(-lines[blank[0]])
        )
    return lines[data]


def series_from_frame(
    frame: pd.DataFrame, target: str, covariates: Sequence[str] = (), source: str = "<frame>"
) -> Series:
    """A :class:`Series` from a DataFrame indexed by dates (e.g. a statsmodels dataset)."""
    text = frame.reset_index().rename(columns={frame.index.name or "index": "__date__"}).astype(str)
    text["__date__"] = [str(d) for d in frame.index]
    columns = [target, *covariates]
    _check_columns(text, source, "__date__", columns)
    lines = np.arange(len(text)) + HEADER_LINES + 1
    dates = _parse_dates(text["__date__"], source, lines)
    values = np.stack([_parse_numbers(text[c], c, source, lines) for c in columns], axis=1)  # (N, F)
    _check_order(dates, source, lines)
    values, dates, lines = _fill_missing(values, dates, lines, columns, source, "none")
    return Series(pd.DatetimeIndex(dates), values, columns, lines, source)


def _check_columns(raw: pd.DataFrame, path: str, date_column: str, columns: Sequence[str]) -> None:
    found = list(raw.columns)
    for name in [date_column, *columns]:
        if name not in found:
            raise DataError(f"unknown column {name!r}; the header has {found}", path=path, line=1)
    if len(set(columns)) != len(columns):
        raise ConfigError(f"target and covariates name a column twice: {list(columns)}")
    if date_column in columns:
        raise ConfigError(f"column {date_column!r} is the date column and cannot also be a value column")


def _parse_dates(text: pd.Series, path: str, lines: np.ndarray, date_format: str | None = None) -> np.ndarray:
    """Datetimes ``(N,)`` (naive; offsets converted to UTC), every one in the same format."""
    stripped = text.str.strip()
    missing = stripped.str.lower().isin(MISSING_TOKENS).to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(f"missing date in column {text.name!r}", path=path, line=int(lines[i]))
    if not len(stripped):
        return np.array([], dtype="datetime64[ns]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' notes on guessed formats: a date that does not fit is named below
        fmt = date_format or guess_datetime_format(stripped.iloc[0])
        parsed = pd.to_datetime(stripped, format=fmt, errors="coerce", utc=True) if fmt else None
    if parsed is None:
        raise DataError(
            f"column {text.name!r}: cannot tell the date format of {stripped.iloc[0]!r}; "
            "pass --date-format with strptime codes, e.g. %Y-%m-%d",
            path=path,
            line=int(lines[0]),
        )
    parsed = parsed.dt.tz_convert(None)
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        origin = "given by --date-format" if date_format else f"guessed from line {lines[0]}, {stripped.iloc[0]!r}"
        raise DataError(
            f"column {text.name!r}: cannot parse {stripped.iloc[i]!r} as a date in the format {fmt} ({origin}); "
            "pass --date-format with the file's strptime codes, e.g. %d/%m/%Y",
            path=path,
            line=int(lines[i]),
        )
    return parsed.to_numpy(dtype="datetime64[ns]")


def _parse_numbers(text: pd.Series, name: str, path: str, lines: np.ndarray) -> np.ndarray:
    stripped = text.str.strip()
    stripped = stripped.where(~stripped.str.fullmatch(THOUSANDS), stripped.str.replace(",", "", regex=False))
    missing = stripped.str.lower().isin(MISSING_TOKENS).to_numpy()
    numbers = pd.to_numeric(stripped.where(~missing, None), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(numbers) & ~missing | np.isinf(numbers)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"column {name!r}: expected a finite number, found {text.iloc[i].strip()!r}", path=path, line=int(lines[i])
        )
    return numbers  # NaN marks a missing cell


def _check_order(dates: np.ndarray, path: str, lines: np.ndarray) -> None:
    step = np.diff(dates.astype("datetime64[ns]").astype(np.int64))
    if (step == 0).any():
        i = int(np.argmax(step == 0)) + 1
        raise DataError(
            f"duplicated date {pd.Timestamp(dates[i]).date()} (also on line {lines[i - 1]})",
            path=path,
            line=int(lines[i]),
        )
    if (step < 0).any():
        i = int(np.argmax(step < 0)) + 1
        raise DataError(
            f"dates not sorted: {pd.Timestamp(dates[i])} comes after {pd.Timestamp(dates[i - 1])} "
            "(expected increasing dates)",
            path=path,
            line=int(lines[i]),
        )


def _fill_missing(
    values: np.ndarray, dates: np.ndarray, lines: np.ndarray, columns: Sequence[str], path: str, fill: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = np.isnan(values)  # (N, F)
    if not missing.any():
        return values, dates, lines
    row, col = (int(v) for v in np.argwhere(missing)[0])
    where = f"missing value in column {columns[col]!r}"
    if fill == "none":
        raise DataError(f"{where} (pass --fill ffill|interpolate|drop to fill it)", path=path, line=int(lines[row]))
    if fill == "drop":
        keep = ~missing.any(axis=1)
        return values[keep], dates[keep], lines[keep]
    frame = pd.DataFrame(values)
    frame = frame.ffill() if fill == "ffill" else frame.interpolate(method="linear", limit_area="inside")
    still = np.isnan(frame.to_numpy())
    if still.any():
        r, c = (int(v) for v in np.argwhere(still)[0])
        raise DataError(
            f"missing value in column {columns[c]!r} with nothing before it to --fill {fill} from",
            path=path,
            line=int(lines[r]),
        )
    return frame.to_numpy(), dates, lines


# ------------------------------------------------------------------------------------ transforms
def transform_series(series: Series, transform: str) -> Series:
    """Apply ``none``, ``diff`` (x_t - x_{t-1}) or ``log-return`` (log x_t - log x_{t-1}) to every column.

    Differenced series lose their first row; row ``t`` keeps the date of ``x_t``.
    """
    if transform not in TRANSFORMS:
        raise ConfigError(f"transform: expected one of {TRANSFORMS}, got {transform!r}")
    if transform == "none":
        return series
    values = series.values
    if transform == "log-return":
        bad = values <= 0
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise DataError(
                f"column {series.columns[col]!r}: --transform log-return needs positive values, "
                f"found {values[row, col]:g}",
                path=series.source,
                line=int(series.lines[row]),
            )
        values = np.log(values)
    changes = np.diff(values, axis=0)  # (N - 1, F)
    return Series(series.dates[1:], changes, series.columns, series.lines[1:], series.source)


def is_differenced(transform: str) -> bool:
    """Whether the transform turns levels into changes (then a random walk forecasts zero change)."""
    return transform in ("diff", "log-return")


def levels_from_changes(last_level: float, changes: np.ndarray, transform: str) -> np.ndarray:
    """Undo a transform along the last axis: the levels implied by ``changes: (..., H)`` after ``last_level``."""
    if transform == "none":
        return np.asarray(changes, dtype=np.float64)
    path = np.cumsum(changes, axis=-1)
    return last_level * np.exp(path) if transform == "log-return" else last_level + path


# --------------------------------------------------------------------------------------- scaling
@dataclass
class StandardScaler:
    """Per-column standardisation fitted on training rows only; saved with the run as JSON."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        """Fit on ``values: (N, F)`` (the training part only)."""
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse_target(self, scaled: np.ndarray) -> np.ndarray:
        """Target values back in the series' units (column 0's mean and std)."""
        return scaled * self.std[0] + self.mean[0]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> StandardScaler:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


# --------------------------------------------------------------------------------------- windows
def make_windows(values: np.ndarray, origins: np.ndarray, context: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Context windows and their targets: ``X: (K, C, F)`` ends at each origin, ``Y: (K, H)`` follows it.

    ``Y`` holds the target column; rows past the end of the series are NaN (future unknown).
    """
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size and (origins.min() < context - 1 or origins.max() >= len(values)):
        raise ValueError(
            f"origins: expected each in [{context - 1}, {len(values) - 1}], got [{origins.min()}, {origins.max()}]"
        )
    steps = np.arange(-context + 1, 1)
    X = values[origins[:, None] + steps[None, :]]  # (K, C, F)
    padded = np.concatenate([values[:, 0], np.full(horizon, np.nan)])
    Y = padded[origins[:, None] + np.arange(1, horizon + 1)[None, :]]  # (K, H)
    return X, Y


# ---------------------------------------------------------------------------------- walk-forward
@dataclass
class Fold:
    """One walk-forward step: train on origins whose targets end before ``cut``; test on ``test_origins``.

    ``cut`` is the index of the first step this fold forecasts; ``train_start`` the first row the
    fold may see (a rolling window) and fits its scaler on (rows ``train_start … cut - 1``).
    """

    cut: int
    end: int
    train_start: int
    train_origins: np.ndarray
    test_origins: np.ndarray


def fold_cuts(dates: pd.DatetimeIndex, test_start: int, refit_every: str | int) -> list[int]:
    """Indices where a new fold starts: ``test_start``, then every ``refit_every`` steps or calendar period.

    ``refit_every`` is a number of steps or a pandas period alias (``Y`` year, ``Q``, ``M``, ``W``).
    """
    if isinstance(refit_every, int) or str(refit_every).isdigit():
        step = int(refit_every)
        if step < 1:
            raise ConfigError(f"refit_every: expected a positive number of steps, got {step}")
        return list(range(test_start, len(dates), step))
    try:
        periods = dates.to_period(str(refit_every))
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"refit_every: expected a step count or a period alias like Y, Q, M; got {refit_every!r} ({e})"
        ) from None
    new_period = np.r_[True, periods[1:] != periods[:-1]]
    starts = np.flatnonzero(new_period)
    return [test_start, *[int(s) for s in starts if s > test_start]]


def walk_forward_folds(
    dates: pd.DatetimeIndex,
    context: int,
    horizon: int,
    test_start: int,
    refit_every: str | int = "Y",
    train_window: int | None = None,
) -> list[Fold]:
    """Rolling-origin folds over ``dates`` from ``test_start`` on; never a random split.

    A fold forecasts from every origin whose first target lies in ``[cut, next cut)`` and whose
    targets are all observed; it trains on origins ``o`` with ``o + horizon < cut`` (targets end
    before the cut), starting ``train_window`` rows before the cut when given.
    """
    n = len(dates)
    if test_start < context + horizon:
        raise ConfigError(
            f"the test part starts at step {test_start}; training needs at least "
            f"context + horizon = {context + horizon} steps before it"
        )
    cuts = fold_cuts(dates, test_start, refit_every)
    folds = []
    for i, cut in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else n
        start = 0 if train_window is None else max(0, cut - train_window)
        train = np.arange(max(start + context - 1, context - 1), cut - horizon)
        test = np.arange(cut - 1, min(end - 1, n - horizon))
        if len(test):
            folds.append(Fold(cut, end, start, train, test))
    return folds


def check_length(series: Series, context: int, horizon: int) -> None:
    """A series shorter than context + horizon cannot give one training window: say so."""
    if len(series) < context + horizon:
        raise DataError(
            f"series has {len(series)} usable rows, shorter than context + horizon = {context} + {horizon}",
            path=series.source,
        )
