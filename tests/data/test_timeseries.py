"""rnnkit.data.timeseries: CSV validation with file:line errors, fills, transforms, scalers, windows, folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.timeseries import (
    StandardScaler,
    check_length,
    fold_cuts,
    levels_from_changes,
    make_windows,
    read_csv_series,
    transform_series,
    walk_forward_folds,
)
from rnnkit.errors import ConfigError, DataError


def write(tmp_path, text: str, name: str = "s.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "Date,Close,Volume\n2020-01-01,10,5\n2020-01-02,11,6\n2020-01-03,12.5,7\n"


def test_reads_dates_values_and_lines(tmp_path):
    s = read_csv_series(write(tmp_path, GOOD), "Date", "Close", ["Volume"])
    assert list(s.dates) == list(pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]))
    np.testing.assert_array_equal(s.values, [[10, 5], [11, 6], [12.5, 7]])
    assert s.columns == ["Close", "Volume"]
    assert list(s.lines) == [2, 3, 4]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("Date,Close\n2020-01-01,1\n,2\n", 3, "missing date"),
        ("Date,Close\n2020-01-01,1\n2020-13-45,2\n", 3, "cannot parse '2020-13-45'"),
        ("Date,Close\n2020-01-02,1\n2020-01-01,2\n", 3, "not sorted"),
        ("Date,Close\n2020-01-01,1\n2020-01-02,2\n2020-01-02,3\n", 4, "duplicated date 2020-01-02"),
        ("Date,Close\n2020-01-01,1\n2020-01-02,abc\n", 3, "expected a finite number, found 'abc'"),
        ("Date,Close\n2020-01-01,1\n2020-01-02,\n2020-01-03,3\n", 3, "missing value in column 'Close'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        read_csv_series(path, "Date", "Close")
    assert str(e.value).startswith(f"{path}:{line}: ")
    assert words in str(e.value)


def test_unknown_column_and_missing_file(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(DataError, match=r"s\.csv:1: unknown column 'Price'.*'Close'"):
        read_csv_series(path, "Date", "Price")
    with pytest.raises(DataError, match="unknown column 'When'"):
        read_csv_series(path, "When", "Close")
    with pytest.raises(DataError, match="no such file"):
        read_csv_series(str(tmp_path / "absent.csv"), "Date", "Close")


@pytest.mark.parametrize(("fill", "expected"), [("ffill", [1, 1, 3]), ("interpolate", [1, 2, 3]), ("drop", [1, 3])])
def test_fill_options(tmp_path, fill, expected):
    path = write(tmp_path, "Date,Close\n2020-01-01,1\n2020-01-02,NA\n2020-01-03,3\n")
    s = read_csv_series(path, "Date", "Close", fill=fill)
    np.testing.assert_array_equal(s.target, expected)
    assert len(s.dates) == len(expected)


def test_fill_cannot_invent_a_first_value(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-01,\n2020-01-02,2\n")
    with pytest.raises(DataError, match=r":2: missing value .* nothing before it"):
        read_csv_series(path, "Date", "Close", fill="ffill")


def test_log_return_needs_positive_values_and_inverts(tmp_path):
    s = read_csv_series(write(tmp_path, GOOD), "Date", "Close")
    r = transform_series(s, "log-return")
    np.testing.assert_allclose(r.target, np.diff(np.log([10, 11, 12.5])))
    assert r.dates[0] == pd.Timestamp("2020-01-02") and list(r.lines) == [3, 4]
    np.testing.assert_allclose(levels_from_changes(10.0, r.target, "log-return"), [11, 12.5])
    d = transform_series(s, "diff")
    np.testing.assert_allclose(levels_from_changes(10.0, d.target, "diff"), [11, 12.5])
    bad = read_csv_series(write(tmp_path, "Date,Close\n2020-01-01,1\n2020-01-02,0\n", "z.csv"), "Date", "Close")
    with pytest.raises(DataError, match=r"z\.csv:3: .*needs positive values, found 0"):
        transform_series(bad, "log-return")


def test_short_series_is_an_error(tmp_path):
    s = read_csv_series(write(tmp_path, GOOD), "Date", "Close")
    with pytest.raises(DataError, match="3 usable rows, shorter than context \\+ horizon = 3 \\+ 1"):
        check_length(s, 3, 1)


def test_scaler_round_trip_and_json():
    values = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = StandardScaler.fit(values)
    np.testing.assert_allclose(scaler.transform(values), [[-1, 0], [1, 0]])  # a constant column keeps std 1
    back = StandardScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(back.inverse_target(np.array([-1.0, 1.0])), [1.0, 3.0])


def test_windows_end_at_origin_and_targets_follow():
    values = np.arange(10, dtype=float)[:, None] * np.array([1.0, 100.0])  # (10, 2)
    X, Y = make_windows(values, np.array([2, 7]), context=3, horizon=3)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [5, 6, 7]])
    np.testing.assert_array_equal(X[1, :, 1], [500, 600, 700])
    np.testing.assert_array_equal(Y[0], [3, 4, 5])
    assert np.isnan(Y[1, 2])  # step 10 is beyond the series: unknown
    with pytest.raises(ValueError, match="origins"):
        make_windows(values, np.array([1]), context=3, horizon=1)


@pytest.mark.parametrize(
    ("refit_every", "horizon", "window"), [("Y", 1, None), ("Y", 5, 300), ("Q", 3, None), (50, 2, 100)]
)
def test_walk_forward_never_trains_on_or_after_the_forecast_origin(refit_every, horizon, window):
    dates = pd.bdate_range("2001-01-01", periods=1500)
    context = 20
    folds = walk_forward_folds(dates, context, horizon, 600, refit_every, window)
    assert len(folds) > 3
    tested = np.concatenate([f.test_origins for f in folds])
    assert (np.diff(tested) == 1).all()  # every origin once, in order
    for fold in folds:
        first_forecast = dates[fold.cut]  # the forecast origin: the first date this fold forecasts
        seen = fold.train_origins[:, None] + np.arange(-context + 1, horizon + 1)[None, :]  # inputs and targets
        assert dates[seen.max()] < first_forecast
        assert seen.min() >= fold.train_start
        forecast_dates = dates[fold.test_origins + 1]
        assert forecast_dates.min() == first_forecast
        assert forecast_dates.max() < (dates[fold.end] if fold.end < len(dates) else dates[-1] + pd.Timedelta(days=1))
        assert fold.test_origins.max() + horizon < len(dates)


def test_yearly_cuts_fall_on_the_first_day_of_each_year():
    dates = pd.bdate_range("2001-06-01", "2004-12-31")
    cuts = fold_cuts(dates, 100, "Y")
    assert [dates[c].year for c in cuts[1:]] == [2002, 2003, 2004]
    assert all(dates[c - 1].year == dates[c].year - 1 for c in cuts[1:])
    with pytest.raises(ConfigError, match="refit_every"):
        fold_cuts(dates, 100, "fortnightly")


@pytest.mark.filterwarnings("error")  # pandas' date-guessing warnings must not reach the user
@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("Date,Close\n2020-01-01,1,5\n2020-01-02,2\n", 2, "found 3 fields, expected 2"),
        ("Date,Volume,Close\n2020-01-01,1\n2020-01-02,2,3\n", 2, "found 2 fields, expected 3"),
        ("Date,Close,Close\n2020-01-01,1,2\n", 1, "column 'Close' appears twice"),
        ("Date,Close\n2020-01-01,1\n\n2020-01-03,3\n", 3, "empty line"),
        ("Date,Close\n2020-01-01,1\n2020-01-02,\xff\n", 3, "not UTF-8"),
        ("Date,Close\n2020-01-01T00:00:00+01:00,1\n2020-06-01T00:00:00+02:00,2\nx,3\n", 4, "cannot parse 'x'"),
        ("Date,Close\n1577836800,1\n", 2, "cannot tell the date format of '1577836800'"),
        ("Date,Close\n01/02/2020,1\n13/02/2020,2\n", 3, "--date-format"),
        ('Date,Close\n2020-01-01,"1,5"\n', 2, "found '1,5'"),
        ('Date,Note,Close\n2020-01-01,"two\nlines",1\n2020-01-02,one,x\n', 4, "found 'x'"),
        ("", 1, "empty file"),
        ('Date,Close\n2020-01-01,"1\n2020-01-02,2\n', 3, "not a readable CSV file"),
        ("Date,Close\n13/01/2020,1\n14/01/2020,x\n", 3, "found 'x'"),
    ],
)
def test_malformed_files_name_the_line_and_what_was_expected(tmp_path, text, line, words):
    path = tmp_path / "s.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as e:
        read_csv_series(str(path), "Date", "Close")
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert words in str(e.value)


def test_accepts_what_real_exports_look_like(tmp_path):
    # a BOM, CRLF, spaces around names, thousands separators, trailing blank lines
    text = '\ufeffDate , Close\r\n2020-01-02,"1,234.5"\r\n2020-01-03,"-12,345"\r\n2020-01-06,7\r\n\r\n\r\n'
    s = read_csv_series(write(tmp_path, text), "Date", "Close")
    np.testing.assert_array_equal(s.target, [1234.5, -12345, 7])
    assert list(s.lines) == [2, 3, 4]


def test_dates_in_another_format_and_with_offsets(tmp_path):
    text = "Date,Close\n02.01.2020,1\n13.01.2020,2\n"
    s = read_csv_series(write(tmp_path, text), "Date", "Close", date_format="%d.%m.%Y")
    assert list(s.dates) == list(pd.to_datetime(["2020-01-02", "2020-01-13"]))
    with pytest.raises(DataError, match=r":3: .*cannot parse '13.01.2020'.*%m.%d.%Y.*--date-format"):
        read_csv_series(write(tmp_path, text), "Date", "Close")
    text = "Date,Close\n2020-03-28T12:00:00+01:00,1\n2020-03-29T12:00:00+02:00,2\n"
    s = read_csv_series(write(tmp_path, text), "Date", "Close")  # UTC offsets: converted to UTC
    assert list(s.dates) == list(pd.to_datetime(["2020-03-28 11:00", "2020-03-29 10:00"]))
    assert s.dates.tz is None
    with pytest.raises(ConfigError, match="date_format"):
        read_csv_series(write(tmp_path, GOOD), "Date", "Close", date_format="no percent sign")


def test_a_header_without_rows_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"s\.csv:2: no data rows after the header; expected rows of 3 fields"):
        read_csv_series(write(tmp_path, "Date,Close,Volume\n\n"), "Date", "Close")
