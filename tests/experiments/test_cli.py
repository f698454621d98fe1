"""`rnnkit experiment …`: the subcommands, their options, presets and bad input."""

from __future__ import annotations

import pytest

from rnnkit.cli import build_parser, main
from rnnkit.experiments.cli import config_from_args
from rnnkit.experiments.memory import MemoryConfig
from rnnkit.experiments.vanishing import VanishingConfig


def test_three_subcommands_with_every_config_field(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "--help"])
    text = capsys.readouterr().out
    for name in ("vanishing", "memory", "rnn-vs-ann"):
        assert name in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "memory", "--help"])
    text = capsys.readouterr().out
    for option in ("--lengths", "--models", "--steps", "--quick", "--out", "--config"):
        assert option in text


def test_quick_preset_then_explicit_options():
    args = build_parser().parse_args(["experiment", "memory", "--quick", "--lengths", "7", "9", "--steps", "3"])
    config = config_from_args(args, MemoryConfig)
    assert config.lengths == (7, 9) and config.steps == 3
    assert config.models == MemoryConfig.quick().models
    args = build_parser().parse_args(["experiment", "vanishing", "--radii", "0.9"])
    config = config_from_args(args, VanishingConfig)
    assert config.radii == (0.9,) and config.length == VanishingConfig().length


def test_config_file_fills_the_options(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("lengths = [11, 13]\nsteps = 4\n")
    root = build_parser()
    argv = ["experiment", "memory", "--config", str(path), "--steps", "5"]
    from rnnkit.cli import _apply_config

    args = _apply_config(root, root.parse_args(argv), argv)
    config = config_from_args(args, MemoryConfig)
    assert config.lengths == (11, 13) and config.steps == 5  # the command line wins


def test_bad_option_is_one_line_and_exit_2(capsys):
    assert main(["experiment", "memory", "--models", "transformer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: models:") and err.count("\n") == 1
    assert main(["experiment", "vanishing", "--quick", "--threads", "-1"]) == 2
    assert capsys.readouterr().err == "rnnkit: error: threads: expected an integer >= 0 (0: torch's choice), got -1\n"


def test_out_at_another_jobs_folder_is_refused_in_one_line(capsys, monkeypatch, tmp_path):
    """`--out` at a folder of other files: exit 2 before any training, and no file of it overwritten."""
    from rnnkit.experiments import vanishing

    def no_training(*args):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(vanishing, "profile", no_training)
    other = tmp_path / "lm-run"
    other.mkdir()
    (other / "config.json").write_text('{"task": "lm"}\n')
    assert main(["experiment", "vanishing", "--quick", "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: out:") and err.count("\n") == 1
    assert [p.name for p in other.iterdir()] == ["config.json"]
    assert (other / "config.json").read_text() == '{"task": "lm"}\n'


def test_seed_out_of_range_is_exit_2(capsys):
    assert main(["experiment", "memory", "--quick", "--seed", str(2**64 - 1)]) == 2
    assert capsys.readouterr().err.startswith("rnnkit: error: seed:")
