"""The run folder of an experiment: where it goes, and what it refuses to overwrite."""

from __future__ import annotations

import json

import pytest

import rnnkit.train.run
from rnnkit.errors import ConfigError
from rnnkit.experiments import report


def other_run_folder(path):
    """A folder holding another job's files (a training run's ``config.json`` and ``report.md``)."""
    path.mkdir()
    (path / "config.json").write_text('{"task": "lm"}\n')
    (path / "report.md").write_text("# my language model\n")
    return path


def test_run_dir_refuses_a_folder_holding_other_files(tmp_path):
    other = other_run_folder(tmp_path / "lm-run")
    with pytest.raises(ConfigError, match="not a run folder of `rnnkit experiment memory`"):
        report.run_dir(other, "memory")
    assert (other / "config.json").read_text() == '{"task": "lm"}\n'
    assert sorted(p.name for p in other.iterdir()) == ["config.json", "report.md"]


def test_run_dir_reuses_only_an_earlier_run_of_the_same_experiment(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "benchmark.json").write_text(json.dumps({"name": "experiment_rnn_vs_ann"}))
    assert report.run_dir(earlier, "rnn-vs-ann") == earlier
    with pytest.raises(ConfigError, match="vanishing"):
        report.run_dir(earlier, "vanishing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.run_dir(empty, "vanishing") == empty
    assert report.run_dir(tmp_path / "new" / "deeper", "vanishing").is_dir()


def test_run_dir_that_is_a_file_is_a_config_error(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        report.run_dir(path, "memory")
    assert path.read_text() == "x"


def test_default_run_dirs_started_in_the_same_second_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rnnkit.train.run.time, "strftime", lambda fmt: "20250101-000000")
    first, second = report.run_dir(None, "memory"), report.run_dir(None, "memory")
    assert first != second and first.is_dir() and second.is_dir()
    assert second.name == "20250101-000000-2"
