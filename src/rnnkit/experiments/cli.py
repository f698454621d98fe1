"""`rnnkit experiment vanishing|memory|rnn-vs-ann`: one leaf command per experiment.

Each experiment module has a config dataclass (with a ``quick()`` preset) and ``run(config)``;
this module turns every field of the dataclass into an option and calls ``run``. No logic lives
here.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib

import torch

from rnnkit.errors import ConfigError

# subcommand -> (module, config class name, help)
EXPERIMENTS: dict[str, tuple[str, str, str]] = {
    "vanishing": (
        "rnnkit.experiments.vanishing",
        "VanishingConfig",
        "gradient norm by lag for tanh RNNs, LSTM and GRU; training with and without clipping",
    ),
    "memory": (
        "rnnkit.experiments.memory",
        "MemoryConfig",
        "adding problem and copy memory at growing lengths, for every recurrent cell",
    ),
    "rnn-vs-ann": (
        "rnnkit.experiments.rnn_vs_ann",
        "RnnVsAnnConfig",
        "RNN vs feed-forward network: variable lengths, order, parameter count",
    ),
}


def add_parser(subparsers) -> None:
    """Register ``experiment`` and its subcommands."""
    from rnnkit.cli import add_config_option

    parser = subparsers.add_parser("experiment", help="runnable demonstrations of why recurrent networks")
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, (module_name, config_name, help_text) in EXPERIMENTS.items():
        leaf = sub.add_parser(name, help=help_text, description=help_text)
        config_cls = getattr(importlib.import_module(module_name), config_name)
        add_dataclass_options(leaf, config_cls)
        leaf.add_argument("--quick", action="store_true", help="a seconds-long preset; options given still apply")
        leaf.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: 0, torch's choice)")
        add_config_option(leaf)
        leaf.set_defaults(func=_runner(module_name, config_cls))


def add_dataclass_options(parser: argparse.ArgumentParser, config_cls) -> None:
    """One ``--field-name`` option per dataclass field, its default shown in the help.

    The parsed default is ``None`` so that :func:`config_from_args` can tell an option given (on
    the command line or in ``--config``) from one left to the preset.
    """
    defaults = config_cls()
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if f.name == "out":
            parser.add_argument(
                flag, default=None, metavar="DIR", help="run folder (default: runs/experiment-…/<time>)"
            )
        elif isinstance(value, tuple):
            kind = type(value[0]) if value else str
            shown = " ".join(str(v) for v in value)
            parser.add_argument(flag, type=kind, nargs="+", default=None, help=f"(default: {shown})")
        else:
            kind = type(value)
            if kind is bool:
                parser.add_argument(flag, type=_boolean, default=None, help=f"true/false (default: {value})")
            else:
                parser.add_argument(flag, type=kind, default=None, help=f"(default: {value})")


def _boolean(text: str) -> bool:
    if str(text).lower() in ("1", "true", "yes"):
        return True
    if str(text).lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def config_from_args(args: argparse.Namespace, config_cls):
    """The preset (``quick()`` with ``--quick``, else the defaults) with every option given applied."""
    given = {}
    for f in dataclasses.fields(config_cls):
        value = getattr(args, f.name, None)
        if value is not None:
            given[f.name] = tuple(value) if isinstance(value, list) else value
    return config_cls.quick(**given) if args.quick else config_cls(**given)


def _runner(module_name: str, config_cls):
    def run(args: argparse.Namespace) -> int:
        if args.threads < 0:
            raise ConfigError(f"threads: expected an integer >= 0 (0: torch's choice), got {args.threads}")
        config = config_from_args(args, config_cls)  # checked before anything changes
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        results = importlib.import_module(module_name).run(config)
        print(f"wrote {results['run_dir']}/report.md")
        return 0

    return run
