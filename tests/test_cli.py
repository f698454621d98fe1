"""The `rnnkit` command as a whole: what building its parser costs, and ``--config`` TOML values."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from rnnkit.cli import _apply_config, _given_options, build_parser, main

# Each takes 0.2-0.6 s to import; a verb that needs one imports it where it is used, so that
# `rnnkit --help` and every other command start without them.
HEAVY_MODULES = ("matplotlib", "matplotlib.pyplot", "scipy", "scipy.stats", "statsmodels")


def test_building_the_parser_imports_no_plotting_or_statistics_library() -> None:
    code = (
        "import json, sys\n"
        "from rnnkit.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == []


def parse_with_config(tmp_path, toml: str, *argv: str):
    path = tmp_path / "run.toml"
    path.write_text(toml)
    root = build_parser()
    args = ["lm", "train", "--config", str(path), *argv]
    return _apply_config(root, root.parse_args(args), args)


def test_config_values_are_converted_as_the_command_line_would(tmp_path) -> None:
    toml = 'data = "a.txt"\nlr = 1\nclip_norm = "none"\ntie_weights = true\ncell = "gru"\nhidden = 8\n'
    args = parse_with_config(tmp_path, toml, "--hidden", "16")
    assert args.data == ["a.txt"]  # one value for a list option
    assert args.lr == 1.0 and isinstance(args.lr, float)
    assert args.clip_norm is None and args.tie_weights is True and args.cell == "gru"
    assert args.hidden == 16  # the command line wins


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("hidden = 3.5", "hidden: expected int, got 3.5"),
        ("steps = true", "steps: expected int, got True"),
        ("lr = [1]", "lr: expected a single value, got [1]"),
        ('tie_weights = "false"', "tie_weights: expected true or false, got 'false'"),
        ('level = "word"', "level: expected one of ['char', 'subword'], got 'word'"),
        ("data = []", "data: expected at least one value, got []"),
        ("data = [[1]]", "data: expected a list of single values, got [1]"),
    ],
)
def test_a_config_value_of_the_wrong_kind_is_one_error_naming_file_and_key(tmp_path, capsys, toml, message) -> None:
    path = tmp_path / "run.toml"
    path.write_text(toml + "\n")
    assert main(["lm", "train", "--config", str(path)]) == 2
    assert capsys.readouterr().err == f"rnnkit: error: {path}: {message}\n"


def test_an_output_path_under_a_file_is_one_error_line_exit_2(tmp_path, capsys) -> None:
    (tmp_path / "text.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    (tmp_path / "file").write_text("not a folder")
    argv = ["lm", "train", "--data", str(tmp_path / "text.txt"), "--steps", "1", "--hidden", "8", "--layers", "1"]
    argv += ["--seq-len", "8", "--batch-size", "2", "--quiet", "--run-dir", str(tmp_path / "file" / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    expected = f"run_dir: {tmp_path / 'file' / 'run'}: a part of this path is a file, not a folder"
    assert err == f"rnnkit: error: {expected}; expected a writable run folder\n"


def test_the_options_given_are_recorded_whatever_their_value(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("lr = 0.001\ntie_weights = false\n")  # both the defaults
    root = build_parser()
    defaults = root.parse_args(["lm", "train", "--data", "x.txt"])
    argv = ["lm", "train", "--config", str(path), "--steps", str(defaults.steps), "--hidden", "64"]
    args = _apply_config(root, root.parse_args(argv), argv)
    given = _given_options(root, args, argv)
    assert {"lr", "tie_weights", "steps", "hidden", "config"} <= given  # --steps at its default counts too
    assert not given & {"epochs", "batch_size", "cell", "seed"}  # left at their defaults, not given
    assert (args.lr, args.steps, args.hidden) == (0.001, defaults.steps, 64)
    again = root.parse_args(["lm", "train", "--data", "x.txt"])  # the defaults are back after the marker parse
    assert (again.steps, again.batch_size, again.cell) == (defaults.steps, defaults.batch_size, defaults.cell)


def _leaf_parsers(parser: argparse.ArgumentParser, name: str = "rnnkit"):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, parser
    for sub in subs:
        for verb, child in sub.choices.items():
            yield from _leaf_parsers(child, f"{name} {verb}")


def test_help_states_each_default_once() -> None:
    """An option whose help text says its default in words gets no second "(default: None)"."""
    seen = 0
    for name, parser in _leaf_parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help in (None, argparse.SUPPRESS):
                continue
            text = formatter._get_help_string(action) % {**vars(action), "prog": parser.prog}
            seen += 1
            assert text.count("(default:") <= 1, f"{name} {action.option_strings}: {text}"
    assert seen > 200  # every verb's options were looked at
