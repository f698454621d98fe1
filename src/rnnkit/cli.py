"""The `rnnkit` command: registers each verb's parser and runs it. Nothing else lives here.

Each verb is a module with ``add_parser(subparsers)`` (defines every option of the verb, with its
default) and sets ``func`` on its (leaf) parser to the function that runs it. Every option can also
come from a TOML file given with ``--config``; the command line wins over the file.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
from collections.abc import Sequence

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from rnnkit.errors import ConfigError, RnnkitError
from rnnkit.io import path_error_text

# One module per verb, in the order `rnnkit --help` lists them.
VERB_MODULES: tuple[str, ...] = (
    "rnnkit.tasks.demo",
    "rnnkit.tasks.lm",
    "rnnkit.tasks.classify",
    "rnnkit.tasks.translate",
    "rnnkit.tasks.speech",
    "rnnkit.tasks.handwriting",
    "rnnkit.tasks.video",
    "rnnkit.tasks.forecast",
    "rnnkit.tasks.music",
    "rnnkit.experiments.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The root parser with one subcommand per verb module."""
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks for sequence data, end to end."
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Give a (leaf) verb parser ``--config FILE.toml``; its keys are the verb's option names."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE.toml",
        help="read options from a TOML file (keys are option names; the command line wins)",
    )
    parser.set_defaults(_leaf_parser=parser)


def _apply_config(
    root: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Re-parse with the TOML file's values as defaults, so explicit command-line options win."""
    path = getattr(args, "config", None)
    if not path:
        return args
    leaf: argparse.ArgumentParser = args._leaf_parser
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    actions = {a.dest: a for a in leaf._actions if a.dest not in ("help", "config")}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {unknown}; expected some of {sorted(actions)}")
    values = {key: _config_value(actions[key], value, f"{path}: {key}") for key, value in values.items()}
    leaf.set_defaults(**values)  # the leaf parser belongs to `root`, so re-parsing sees these
    args = root.parse_args(argv)
    args._config_keys = set(values)
    return args


def _given_options(root: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None) -> frozenset:
    """The destinations of the leaf verb's options given on the command line or in its ``--config``
    file, whatever their value (a default one included): the leaf's defaults are set to a marker
    for a second parse, and a destination still holding it was not given on the command line."""
    leaf: argparse.ArgumentParser | None = getattr(args, "_leaf_parser", None)
    if leaf is None:
        return frozenset()
    unset, saved = object(), [(a, a.default) for a in leaf._actions]
    try:
        for action, _ in saved:
            action.default = unset
        again = vars(root.parse_args(argv))
    finally:
        for action, default in saved:
            action.default = default
    on_command_line = {a.dest for a, _ in saved if again.get(a.dest, unset) is not unset}
    return frozenset(on_command_line | getattr(args, "_config_keys", set()))


def _config_value(action: argparse.Action, value: object, where: str) -> object:
    """A TOML value converted and checked as the command line would the option's text: a switch
    takes a boolean, a list option a list (or one value), any other a single value of its type,
    within its choices. Raises :class:`ConfigError` naming ``where`` (file and key) otherwise."""
    if action.nargs == 0:  # --flag / --no-flag: only a TOML boolean says which
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if isinstance(value, (list, dict)) and not (many and isinstance(value, list)):
        raise ConfigError(f"{where}: expected a single value, got {value!r}")
    items = [_config_item(action, v, where) for v in (value if isinstance(value, list) else [value])]
    if many and action.nargs == "+" and not items:
        raise ConfigError(f"{where}: expected at least one value, got []")
    return items if many else items[0]


def _config_item(action: argparse.Action, value: object, where: str) -> object:
    if isinstance(value, (list, dict)):
        raise ConfigError(f"{where}: expected a list of single values, got {value!r}")
    kind = action.type or str
    try:  # the command line hands the type text: so does a TOML value (3 -> "3", true -> "True")
        item = kind(value if isinstance(value, str) else str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise ConfigError(f"{where}: expected {getattr(kind, '__name__', 'a valid value')}, got {value!r}") from None
    if action.choices is not None and item not in action.choices:
        raise ConfigError(f"{where}: expected one of {list(action.choices)}, got {value!r}")
    return item


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnnkit` command. Returns the exit status (2 on bad input)."""
    root = build_parser()
    try:
        args = _apply_config(root, root.parse_args(argv), argv)
        args._given = _given_options(root, args, argv)  # what `--resume` lets replace the run's saved options
        status = args.func(args)
        sys.stdout.flush()  # a reader gone away shows here, not in Python's exit
    except RnnkitError as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rnnkit … | head` stopped reading: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + signal.SIGPIPE
    except OSError as e:  # a path given that cannot be made or written: bad input, said in one line
        if e.filename is None or e.errno not in PATH_ERRORS:
            raise
        print(f"rnnkit: error: {path_error_text(e)}", file=sys.stderr)
        return 2
    return int(status or 0)


# What a path the user gave can run into (an output folder under a file, no permission, ...).
PATH_ERRORS = frozenset({errno.ENOTDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR})


if __name__ == "__main__":
    raise SystemExit(main())
