"""Tests of rnnkit.data.pianoroll: reading JSON pieces (splits or a bare list; every bad piece,
step and pitch named), and the pitch range's piano rolls (round trip, range checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnkit.data.pianoroll import PitchRange, read_pieces
from rnnkit.errors import DataError


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------- reading pieces
def test_read_pieces_sorts_steps_and_reads_splits(tmp_path):
    path = write_json(tmp_path / "p.json", {"train": [[[67, 60, 60], []]], "valid": [[[1]]]})
    assert read_pieces(path, "train") == [[[60, 67], []]]
    assert read_pieces(write_json(tmp_path / "l.json", [[[3]]])) == [[[3]]]


@pytest.mark.parametrize(
    ("data", "split", "message"),
    [
        ({"train": []}, "train", r"split 'train': expected a non-empty list of pieces"),
        ({"train": [[]]}, "train", r"piece 0: expected a non-empty list of time steps"),
        ({"train": [[[60], 61]]}, "train", r"piece 0, step 1: expected a list of MIDI pitches"),
        ({"train": [[[60, 128]]]}, "train", r"piece 0, step 0: expected MIDI pitches \(integers 0..127\), found 128"),
        ({"train": [[[60.5]]]}, "train", r"found 60\.5"),
        ({"train": [[[True]]]}, "train", r"found True"),
        ({"valid": [[[60]]]}, "train", r"no split 'train'; the splits found are \['valid'\]"),
        ([[[60]]], "train", r"expected a JSON object of splits"),
        ({"train": [[[60]]], "valid": [[[60]]]}, None, r"found an object of splits \['train', 'valid'\]; name one"),
        ("60", None, r"expected a non-empty list of pieces, found a string"),
    ],
)
def test_bad_pieces_are_named(tmp_path, data, split, message):
    with pytest.raises(DataError, match=message):
        read_pieces(write_json(tmp_path / "p.json", data), split)


@pytest.mark.parametrize(("text", "found"), [("[[[60, NaN]]]", "nan"), ("[[[60], [1e400]]]", "inf")])
def test_non_finite_pitches_are_named(tmp_path, text, found):
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(DataError, match=rf"piece 0, step \d: expected MIDI pitches .*found {found}"):
        read_pieces(tmp_path / "p.json")


def test_not_json_names_the_line_and_non_utf8_the_byte(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"train":\n  [oops]}')
    with pytest.raises(DataError, match=r"p\.json:2: not valid JSON"):
        read_pieces(path, "train")
    path.write_bytes(b"\xff\xfe[]")
    with pytest.raises(DataError, match=r"p\.json:1: not UTF-8"):
        read_pieces(path)


# ---------------------------------------------------------------- piano rolls
def test_piano_roll_round_trip_and_range():
    piece = [[60, 64, 67], [], [62, 72]]
    r = PitchRange.of([piece])
    assert (r.low, r.high, r.size) == (60, 72, 13)
    roll = r.roll(piece)
    assert roll.shape == (3, 13) and roll.sum() == 5 and roll[2, 12] == 1
    assert r.piece(roll) == piece
    assert PitchRange.of([[[]]]) == PitchRange(60, 60)
    with pytest.raises(DataError, match=r"x\.json: piece 0, step 1: pitch 59 is outside the model's range 60\.\.72"):
        r.check([[[60], [59]]], "x.json")


def test_a_roll_refuses_pitches_outside_its_range_and_wrong_shapes():
    r = PitchRange(60, 72)
    with pytest.raises(ValueError, match=r"step 1: pitch 59 is outside the range 60\.\.72"):
        r.roll([[60], [59]])  # an index of -1 would silently be pitch 72
    with pytest.raises(ValueError, match=r"step 0: pitch 73"):
        r.roll([[73]])
    with pytest.raises(ValueError, match=r"roll: expected shape \(T, 13\), got \(2, 12\)"):
        r.piece(torch.zeros(2, 12))
    with pytest.raises(ValueError, match="low, high"):
        PitchRange(70, 60)
