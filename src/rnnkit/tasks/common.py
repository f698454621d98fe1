"""What the task modules share: reading a trained run back, checking config fields, and the
command line's required options. Nothing here knows any one task.
"""

from __future__ import annotations

import argparse
import os
import types
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.train import load_run, read_run_config


def load_task_run(
    run_dir: str | os.PathLike, task: str, which: str = "best", device: str = "cpu"
) -> tuple[Path, dict[str, Any], dict[str, Tensor]]:
    """``(run folder, its config.json, the weights of checkpoint `which`)`` of a run of ``task``
    (``best``, else ``last``); a :class:`CheckpointError` if the folder is missing or is another
    task's run."""
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run folder; expected a `rnnkit {task} train` run")
    found = read_run_config(run).get("task")  # checked before the weights: another task's run may have none
    if found != task:
        raise CheckpointError(f"{run}: a {found!r} run, expected a {task!r} run")
    saved, state_dict = load_run(run, which, device)
    return run, saved, state_dict


def dataclass_from(cls: type, values: Any, where: str) -> Any:
    """``cls(**values)`` for a config section read from a run's ``config.json``; a
    :class:`CheckpointError` naming ``where`` and the field if it is not an object of ``cls``'s
    fields, each of its annotated type (a hand-edited file)."""
    known = {f.name for f in fields(cls)}
    if not isinstance(values, dict) or set(values) - known:
        raise CheckpointError(f"{where}: expected an object with keys from {sorted(known)}, found {values!r}")
    hints = get_type_hints(cls)
    for name, value in values.items():
        if not _has_type(value, hints[name]):
            raise CheckpointError(f"{where}: {name}: expected {_type_name(hints[name])}, got {value!r}")
    return cls(**values)


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (an int fits a float; a list fits a tuple)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_has_type(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin is not None:  # list[str], tuple[int, ...], dict[str, float], Sequence[...]
        return isinstance(value, dict) if origin is dict else isinstance(value, (list, tuple))
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def resumed_run_config(run: str | os.PathLike, task: str) -> dict[str, Any]:
    """The ``config.json`` of the run ``--resume`` continues; a :class:`ConfigError` if it is
    another task's run (read before anything is written)."""
    saved = read_run_config(run)
    if saved.get("task") != task:
        raise ConfigError(f"resume: {run} is a {saved.get('task')!r} run; expected a `rnnkit {task} train` run")
    return saved


def check_resumed_model(saved: dict[str, Any], model: Any, run: str | os.PathLike) -> None:
    """A :class:`ConfigError` unless ``model`` (a config section) is the one the resumed run
    (``saved``: its ``config.json``) trained: its weights fit no other."""
    if saved.get("model") != asdict(model):
        raise ConfigError(
            f"resume: {run} was trained with the model options {saved.get('model')}; a resumed run keeps them, "
            f"got {asdict(model)}"
        )


def resumed_run(config: Any, task: str) -> dict[str, Any] | None:
    """The ``config.json`` of the run a task's ``config`` (with ``train`` and ``model`` sections)
    resumes, ``None`` for a new run; a :class:`ConfigError` if it is another task's run or was
    trained with other model options."""
    if not config.train.resume:
        return None
    saved = resumed_run_config(config.train.resume, task)
    check_resumed_model(saved, config.model, config.train.resume)
    return saved


def resumed_section(
    cls: type,
    saved: dict[str, Any],
    key: str,
    given: Any,
    run: str | os.PathLike,
    args: argparse.Namespace | None = None,
    prefix: str = "",
) -> Any:
    """Section ``key`` (a ``cls``) of the resumed run's ``config.json`` (``saved``), with the fields
    of ``given`` (the section the command line describes) that were given: ``--resume RUN`` alone
    continues the run as it was, and an option given changes it — the options the ``rnnkit``
    command saw (``args._given``; a field's option is ``prefix`` and its name, as in
    :func:`section_from_args`), or without that record, the fields whose value is not ``cls``'s
    default."""
    values = dataclass_from(cls, saved.get(key), f"{Path(run) / 'config.json'}: field {key!r}")
    named = getattr(args, "_given", None)
    default = asdict(cls())
    changed = {
        name: v
        for name, v in asdict(given).items()
        if (prefix + name in named if named is not None else v != default[name])
    }
    return replace(values, **changed)


def refuse_resume_changes(
    task: str,
    run: str | os.PathLike,
    args: argparse.Namespace,
    sections: dict[str, tuple[Any, Any]],
    options: dict[str, str] | None = None,
) -> None:
    """On ``--resume`` of a task that keeps the run's own sections (``{key: (saved, given)}``, the
    run's section and the one the command line describes): a :class:`ConfigError` naming the first
    option given (``args._given``: command line or ``--config``, whatever its value) whose value
    differs from the saved one. ``options`` maps a field to its option's destination where the two
    names differ. Without it the given value would be silently ignored."""
    given, options = getattr(args, "_given", frozenset()), options or {}
    for key, (saved, asked) in sections.items():
        for f in fields(saved):
            dest = options.get(f.name, f.name)
            old, new = getattr(saved, f.name), getattr(asked, f.name)
            if dest in given and old != new:
                raise ConfigError(
                    f"{dest}: {run} was trained with {old!r}, not {new!r}; a resumed {task} run keeps its {key} "
                    f"options: leave --{dest.replace('_', '-')} out, or start a new run"
                )


def checked_sections(run: str | os.PathLike, saved: dict[str, Any], sections: dict[str, type]) -> list[Any]:
    """Each named section (``{key: dataclass}``) of ``run``'s ``config.json`` (read as ``saved``),
    validated: a :class:`CheckpointError` naming the file and the field for a missing section or a
    wrong key, type or value (a hand-edited file)."""
    where = Path(run) / "config.json"
    out = []
    for name, cls in sections.items():
        section = dataclass_from(cls, saved.get(name), f"{where}: field {name!r}")
        try:
            section.validate()
        except ConfigError as e:
            raise CheckpointError(f"{where}: field {name!r}: {e}") from None
        out.append(section)
    return out


def sections_from_cli(args: argparse.Namespace, task: str, sections: dict[str, type]) -> list[Any]:
    """Each named section (``{key: dataclass}``) from the parsed options; with ``--resume RUN``
    the run's own, but for the options given (:func:`resumed_section`)."""
    given = [section_from_args(cls, args) for cls in sections.values()]
    if not args.resume:
        return given
    saved = resumed_run_config(args.resume, task)
    return [
        resumed_section(cls, saved, key, section, args.resume, args)
        for (key, cls), section in zip(sections.items(), given, strict=True)
    ]


def section_from_args(cls: type, args: argparse.Namespace, prefix: str = "") -> Any:
    """The config dataclass ``cls`` filled from the parsed options of the same names (``prefix``
    before each, as ``pretrain_lm_`` for classify's pretraining section)."""
    return cls(**{f.name: getattr(args, prefix + f.name) for f in fields(cls)})


def check_positive(config: Any, *names: str) -> None:
    """A :class:`ConfigError` unless each named field of ``config`` is an integer >= 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(config, name)!r}")


def check_fraction(config: Any, *names: str) -> None:
    """A :class:`ConfigError` unless each named field of ``config`` is in ``[0, 1)`` (a dropout)."""
    for name in names:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ConfigError(f"{name}: expected a number in [0, 1), got {getattr(config, name)!r}")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, as argparse's ArgumentDefaultsHelpFormatter, except
    where the help text already says its default in words (``"(default: the run's)"``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        return text if "(default:" in text else super()._get_help_string(action)


def require(args: argparse.Namespace, *names: str, positional: Sequence[str] = ()) -> None:
    """Options (and the ``positional`` arguments among ``names``) that are required but may come
    from ``--config``, so that argparse cannot insist."""
    for name in names:
        if not getattr(args, name):
            shown = name if name in positional else f"--{name.replace('_', '-')}"
            raise ConfigError(f"{shown}: required (on the command line or in --config)")


def class_ids(labels: Sequence[str], lines: Sequence[int], path: str, classes: Sequence[str]) -> list[int]:
    """The index in ``classes`` of each label (read from ``lines`` of ``path``); a
    :class:`DataError` naming the line of a label training never saw."""
    index = {c: i for i, c in enumerate(classes)}
    for label, line in zip(labels, lines, strict=True):
        if label not in index:
            raise DataError(
                f"label {label!r} was never seen in training; expected one of {list(classes)}", path=path, line=line
            )
    return [index[label] for label in labels]


def classification_scores(probabilities: Tensor, targets: Sequence[int]) -> dict[str, float]:
    """Cross-entropy and accuracy of ``probabilities: (N, C)`` against class ids ``targets``."""
    t = torch.tensor(list(targets))
    return {
        "loss": F.nll_loss(probabilities.clamp(min=1e-12).log(), t).item(),
        "accuracy": (probabilities.argmax(-1) == t).float().mean().item(),
    }
