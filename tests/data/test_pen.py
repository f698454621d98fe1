"""Tests of rnnkit.data.pen: both file formats and every error naming its line and field,
strokes joined in order, features and resampling against direct values."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.pen import point_features, read_trajectories, resample
from rnnkit.errors import DataError

ROW = "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"  # the 16 coordinates of a pendigits line


def test_pendigits_lines_with_one_hot_or_integer_classes(tmp_path):
    path = tmp_path / "p.tra"
    path.write_text(f"47,100,27,81,57,37,26,0,0,23,56,53,100,90,40,98,0000000010\n\n{ROW},3\n")
    data = read_trajectories(path)
    assert data.labels == ["8", "3"] and data.lines == [1, 3] and data.points[0].shape == (8, 2)
    assert data.points[0][1].tolist() == [27.0, 81.0]


def test_pendigits_without_a_class_for_predict(tmp_path):
    path = tmp_path / "p.tra"
    path.write_text(ROW + "\n")
    assert read_trajectories(path, with_labels=False).labels == [""]
    with pytest.raises(DataError, match=r"p\.tra:1: found 16 comma-separated fields"):
        read_trajectories(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2,3\n", r"p\.tra:1: found 3 comma-separated fields"),
        (f"{ROW},3,\n", r"p\.tra:1: found 18 comma-separated fields"),
        ("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,x,3\n", r"p\.tra:1: field 16 \(y8\) 'x': expected an integer in 0\.\.100"),
        ("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,101,3\n", r"field 16 \(y8\) '101': expected an integer in 0\.\.100"),
        ("0,1,2,3,4,5,6,7,8,9,10,11,12,13,-1,1,3\n", r"field 15 \(x8\) '-1'"),
        ("0.5,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,3\n", r"field 1 \(x1\) '0\.5'"),
        ("0,1,2,3,4,5,6,7,8,9,10,11,12,13,1_4,15,3\n", r"field 15 \(x8\) '1_4'"),  # int() would read 14
        (f"{ROW},0110000000\n", r"field 17 \(class\) '0110000000': expected a digit 0\.\.9"),
        (f"{ROW},12\n", r"field 17 \(class\) '12'"),  # pendigits has classes 0..9 only
        (f"{ROW},0003\n", r"field 17 \(class\) '0003'"),
        (f"{ROW},000000000\n", r"field 17 \(class\) '000000000'"),  # a one-hot string one short
        (f"{ROW},\u0663\n", r"field 17 \(class\)"),  # ARABIC-INDIC DIGIT THREE: str.isdigit() says yes
        (f"{ROW},\n", r"field 17 \(class\) ''"),
        ("", r"p\.tra: empty file"),
        (f"{ROW},3\n" + ("\n" * 3) + "1,2\n", r"p\.tra:5: found 2"),
    ],
)
def test_bad_pendigits_lines_are_named(tmp_path, content, message):
    path = tmp_path / "p.tra"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_trajectories(path)


def test_non_utf8_and_missing_files_are_named(tmp_path):
    (tmp_path / "b.tra").write_bytes(f"{ROW},3\n".encode() + b"\xff\n")
    with pytest.raises(DataError, match=r"b\.tra:2: not UTF-8"):
        read_trajectories(tmp_path / "b.tra")
    with pytest.raises(DataError, match=r"nope\.jsonl: cannot read file"):
        read_trajectories(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "not valid JSON"),
        ('{"label": "a"}', 'one of "points" and "strokes"'),
        ("[[0, 0], [1, 1]]", 'one of "points" and "strokes"'),
        ('{"points": [[0, 0], [1, 1]], "strokes": [[[0, 0], [1, 1]]], "label": "a"}', 'one of "points" and "strokes"'),
        ('{"points": [], "label": "a"}', r"points: found \[\]; expected a non-empty list"),
        ('{"points": [[1, 2]], "label": "a"}', "found 1 point; expected at least two"),
        ('{"points": [[1, 2], [3, NaN]], "label": "a"}', r"points\[1\]: found \[3, nan\]; expected an \[x, y\] pair"),
        ('{"points": [[1, 2], [3, Infinity]], "label": "a"}', r"points\[1\]: found \[3, inf\]"),
        ('{"points": [[1, 2], [3, 1e39]], "label": "a"}', r"points\[1\]: .*finite numbers"),  # inf in float32
        ('{"points": [[1, 2], [3, "4"]], "label": "a"}', r"points\[1\]: found \[3, '4'\]"),
        ('{"points": [[1, 2], [true, 4]], "label": "a"}', r"points\[1\]: found \[True, 4\]"),
        ('{"points": [[1, 2], [3, 4, 5]], "label": "a"}', r"points\[1\]: found \[3, 4, 5\]"),
        ('{"points": [[[1, 2], [3, 4]], [[5, 6]]], "label": "a"}', r"points\[0\]: .*goes in \"strokes\""),
        ('{"strokes": [[[1, 2], [3, 4]], []], "label": "a"}', r"strokes\[1\]: found \[\]; expected a non-empty"),
        ('{"strokes": [], "label": "a"}', r"strokes: found \[\]; expected a list of strokes"),
        ('{"strokes": [[[1, 2]]], "label": "a"}', "found 1 point; expected at least two"),
        ('{"strokes": [[[1, 2], [3, NaN]]], "label": "a"}', r"strokes\[0\]\[1\]: found \[3, nan\]"),
        ('{"points": [[1, 2], [3, 4]]}', 'no "label"'),
        ('{"points": [[1, 2], [3, 4]], "label": ""}', r"label: found ''; expected a non-empty string"),
        ('{"points": [[1, 2], [3, 4]], "label": true}', r"label: found True"),
        ('{"points": [[1, 2], [3, 4]], "label": 1.0}', r"label: found 1\.0"),  # else "1.0", another class than 1
        ('{"points": [[1, 2], [3, 4]], "label": ["a"]}', r"label: found \['a'\]"),
    ],
)
def test_bad_json_lines_are_named(tmp_path, line, message):
    path = tmp_path / "s.jsonl"
    path.write_text('{"points": [[0, 0], [1, 1]], "label": "a"}\n' + line + "\n")
    with pytest.raises(DataError, match=r"s\.jsonl:2: .*" + message):
        read_trajectories(path)


def test_json_labels_are_text_and_strokes_are_joined_in_order(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"points": [[0, 0], [1.5, 1]], "label": 3}\n'
        '{"strokes": [[[0, 0], [1, 0]], [[5, 5]], [[6, 6], [7, 7]]], "label": "4"}\n'
        '{"points": [[0, 0], [1, 1]]}\n'
    )
    data = read_trajectories(path, with_labels=False)
    assert data.labels == ["3", "4", ""]
    assert data.points[0].tolist() == [[0.0, 0.0], [1.5, 1.0]]
    assert data.points[1].tolist() == [[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [6.0, 6.0], [7.0, 7.0]]


def test_point_features_and_resampling():
    points = torch.tensor([[10.0, 20.0], [14.0, 20.0], [14.0, 22.0]])
    features = point_features(points)
    torch.testing.assert_close(features[:, :2], torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5]]))
    torch.testing.assert_close(features[:, 2:], torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]]))
    # the path is 4 along x then 2 along y: 4 points at arc lengths 0, 2, 4, 6
    torch.testing.assert_close(
        resample(points, 4), torch.tensor([[10.0, 20.0], [12.0, 20.0], [14.0, 20.0], [14.0, 22.0]])
    )
    assert resample(torch.tensor([[1.0, 1.0], [1.0, 1.0]]), 3).tolist() == [[1.0, 1.0]] * 3


def test_point_features_do_not_depend_on_place_or_size():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 0.0], [6.0, 1.0]])
    torch.testing.assert_close(point_features(points), point_features(points * 7.5 + torch.tensor([40.0, -3.0])))
    assert torch.isfinite(point_features(torch.tensor([[2.0, 2.0], [2.0, 2.0]]))).all()  # no extent: no NaN


def test_resample_skips_repeated_points():
    points = torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    torch.testing.assert_close(resample(points, 3), torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]))


def test_json_lines_split_at_newlines_only(tmp_path):
    path = tmp_path / "s.jsonl"
    line = '{"points": [[0, 0], [1, 1]], "label": "%s"}'
    path.write_text("\n".join([line % "a\u2028b", line % "c\x85d", line % "e"]) + "\r\n", encoding="utf-8")
    data = read_trajectories(path)  # U+2028 and U+0085 may stand unescaped in a JSON string
    assert data.labels == ["a\u2028b", "c\x85d", "e"] and data.lines == [1, 2, 3]
    path.write_text(line % "a\u2028b" + '\n{"points": [[0, 0]], "label": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"s\.jsonl:2: found 1 point"):  # the line an editor shows
        read_trajectories(path)
