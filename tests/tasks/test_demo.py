"""Tests of rnnkit.tasks.demo: the whole `rnnkit demo` on a few seconds' budget and a tiny model."""

from __future__ import annotations

import json

import pytest

from rnnkit.cli import main
from rnnkit.tasks.demo import demo_text


def test_demo_text_is_english_from_python_itself() -> None:
    text = demo_text()
    assert len(text) > 400_000 and text.count(" the ") > 1000


def test_demo_trains_writes_the_run_folder_and_prints_a_sample(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--minutes", "0.1", "--hidden", "32", "--layers", "1", "--length", "80", "--quiet"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs" / "demo").glob("2*")
    assert f"run folder: runs/demo/{run_dir.name}" in out
    sample = out.split("sample (temperature 0.7):\n\n", 1)[1].split("\n\nrun folder:")[0]
    assert sample.startswith("The ") and len(sample) >= 80
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert len(losses) >= 2 and losses[-1] < losses[0]  # the loss falls
    assert sum(r["kind"] == "eval" for r in rows) >= 2
    for name in ("report.md", "plots/loss.png", "checkpoints/best", "config.json", "data/train.bin"):
        assert (run_dir / name).exists(), name
    assert (tmp_path / "runs" / "demo" / "pydoc_topics.txt").read_text() == demo_text()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--minutes", "-1"], "minutes: expected a finite number > 0, got -1.0"),
        (["--minutes", "inf"], "minutes: expected a finite number > 0, got inf"),  # was an OverflowError
        # sampling options are checked before training, not after the minutes it takes
        (["--temperature", "-1"], "temperature: expected a number >= 0 (0: greedy), got -1.0"),
        (["--length", "-5"], "max_new: expected an integer >= 0, got -5"),
    ],
)
def test_a_bad_option_is_one_error_line_before_anything_is_printed(tmp_path, monkeypatch, capsys, option, message):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", *option]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"rnnkit: error: {message}\n"
    assert not (tmp_path / "runs").exists()
