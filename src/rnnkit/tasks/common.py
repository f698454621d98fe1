"""What the task modules share: reading a trained run back, checking config fields, and the
command line's required options. Nothing here knows any one task.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.train import load_run


def load_task_run(
    run_dir: str | os.PathLike, task: str, which: str = "best", device: str = "cpu"
) -> tuple[Path, dict[str, Any], dict[str, Tensor]]:
    """``(run folder, its config.json, the weights of checkpoint `which`)`` of a run of ``task``
    (``best``, else ``last``); a :class:`CheckpointError` if the folder is missing or is another
    task's run."""
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run folder; expected a `rnnkit {task} train` run")
    saved, state_dict = load_run(run, which, device)
    if saved.get("task") != task:
        raise CheckpointError(f"{run}: a {saved.get('task')!r} run, expected a {task!r} run")
    return run, saved, state_dict


def dataclass_from(cls: type, values: Any, where: str) -> Any:
    """``cls(**values)`` for a config section read from a run's ``config.json``; a
    :class:`CheckpointError` naming ``where`` if it is not an object of ``cls``'s fields."""
    known = {f.name for f in fields(cls)}
    if not isinstance(values, dict) or set(values) - known:
        raise CheckpointError(f"{where}: expected an object with keys from {sorted(known)}, found {values!r}")
    return cls(**values)


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


def require(args: argparse.Namespace, *names: str) -> None:
    """Options that are required but may come from ``--config`` (so argparse cannot insist)."""
    for name in names:
        if not getattr(args, name):
            raise ConfigError(f"--{name.replace('_', '-')}: required (on the command line or in --config)")


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
