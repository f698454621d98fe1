"""benchmarks/: a missing dataset or a bad results name stops a script with a clear message, before it runs."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks import shared_data

REPO = Path(__file__).resolve().parents[1]


def test_require_names_the_path_and_the_way_out(tmp_path, capsys):
    (tmp_path / "multi30k").mkdir()
    (tmp_path / "multi30k" / "train.de").write_text("x\n")
    assert shared_data.require(tmp_path, "multi30k/train.de", "Multi30k") == tmp_path / "multi30k" / "train.de"
    with pytest.raises(SystemExit) as stop:
        shared_data.require(tmp_path, "fsdd/recordings", "FSDD")
    assert stop.value.code == 2
    message = capsys.readouterr().err
    assert str(tmp_path / "fsdd" / "recordings") in message and "--data" in message and "RNNKIT_DATA" in message


def test_default_root_follows_rnnkit_data(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    assert shared_data.default_root() == tmp_path
    monkeypatch.delenv("RNNKIT_DATA")
    assert shared_data.default_root() == shared_data.BESIDE_THE_CLONE


@pytest.mark.parametrize("script", ["bench_translate", "bench_speech", "bench_music", "bench_handwriting"])
def test_a_benchmark_without_its_data_exits_2_with_one_line(tmp_path, script):
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--data", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "not found" in done.stderr and str(tmp_path) in done.stderr


def test_a_results_name_with_a_folder_in_it_is_refused_before_anything_runs():
    from benchmarks.results_io import result_name

    assert result_name("cells_1thread") == "cells_1thread"
    for bad in ("/tmp/cells", "../cells", "a/b", "", ".hidden"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a results file name"):
            result_name(bad)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_cells", "--name", "/tmp/cells_probe"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "not a results file name" in done.stderr and "Traceback" not in done.stderr
