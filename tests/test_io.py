"""rnnkit.io: atomic output never leaves a half-written file or a stray temporary file."""

from __future__ import annotations

import os
import stat

import pytest

from rnnkit.errors import DataError
from rnnkit.io import atomic_path, atomic_write_json, atomic_write_text


def test_write_replaces_whole_file_with_normal_permissions(tmp_path):
    path = tmp_path / "sub" / "out.json"
    atomic_write_json(path, {"a": "é"})
    assert path.read_text(encoding="utf-8") == '{\n  "a": "é"\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


def test_error_midway_keeps_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_writing_over_a_folder_is_one_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=f"^{tmp_path}: is a folder; expected the path of a file"):
        atomic_write_text(tmp_path, "x")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
