"""The run folder: where it goes, what ``config.json`` and ``report.md`` hold, and loading it back.

::

    runs/<task>/<YYYYmmdd-HHMMSS>/
        config.json        {"task", "command", "git_commit", "train": {...}, <the task's sections>}
        metrics.jsonl      one line per log step, evaluation and warning
        checkpoints/last/  checkpoints/best/   (see rnnkit.train.checkpoint)
        plots/*.png        loss, learning rate, gradient norms
        report.md          final figures and the command that reproduces them
        <the task's own files: vocab.json, scaler.json, ...>
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.distributed
from torch import Tensor

import rnnkit
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.io import atomic_write_json, atomic_write_text, path_error_text
from rnnkit.train import distributed as dist
from rnnkit.train.checkpoint import load_weights, read_meta, resolve_checkpoint

CONFIG_FILE = "config.json"
REPORT_FILE = "report.md"
RESERVED_KEYS = frozenset({"task", "command", "git_commit", "rnnkit_version", "created", "train", "resumed"})


def new_run_dir(task: str, root: str | Path = "runs") -> Path:
    """``<root>/<task>/<YYYYmmdd-HHMMSS>``, created; ``-2``, ``-3``… when that second is taken.

    Under torchrun, after :func:`rnnkit.train.distributed.setup`, rank 0 creates it and every
    process gets the same path.
    """
    if dist.world_size() > 1 and torch.distributed.is_initialized():
        return Path(dist.broadcast(str(_create_run_dir(task, root)) if dist.is_main() else None))
    return _create_run_dir(task, root)


def _create_run_dir(task: str, root: str | Path) -> Path:
    return create_timestamped_dir(Path(root) / task, "run_dir")


def create_timestamped_dir(parent: str | Path, option: str) -> Path:
    """A new folder ``parent/<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``… when that second is taken by
    another run), created with its parents; one that cannot be made is a :class:`ConfigError`
    naming ``option`` (the option or field the folder comes from) and the reason."""
    base = Path(parent) / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        except OSError as e:
            raise ConfigError(f"{option}: {path_error_text(e)}; expected a writable folder") from None


def command_line() -> str:
    """The command that started this process, as a shell would take it back."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("rnnkit/__main__.py", "rnnkit\\__main__.py")):
        argv[0:1] = ["python", "-m", "rnnkit"]
    elif argv and Path(argv[0]).name == "rnnkit":
        argv[0] = "rnnkit"
    elif argv and argv[0].endswith(".py"):
        argv.insert(0, "python")
    return shlex.join(argv)


def git_commit() -> str | None:
    """The commit of the source tree rnnkit runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(rnnkit.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_run_config(
    run_dir: str | Path,
    task: str,
    train: dict[str, Any],
    task_config: dict[str, Any] | None = None,
    resumed: bool = False,
) -> dict[str, Any]:
    """Write ``config.json``: everything needed to rerun. On a ``resumed`` run, the original command
    and creation time are kept and this command is added to ``"resumed"``; a new run in a folder
    that held another starts its own record."""
    task_config = task_config or {}
    clash = sorted(set(task_config) & RESERVED_KEYS)
    if clash:
        raise ConfigError(f"task_config: keys {clash} are reserved by the run folder ({sorted(RESERVED_KEYS)})")
    path = Path(run_dir) / CONFIG_FILE
    previous = read_run_config(run_dir) if resumed and path.exists() else None
    config = {
        "task": task,
        "command": previous.get("command", command_line()) if previous else command_line(),
        "git_commit": git_commit(),
        "rnnkit_version": rnnkit.__version__,
        "created": previous.get("created") if previous else time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "train": train,
        **task_config,
    }
    if previous:
        config["resumed"] = [*previous.get("resumed", []), command_line()]
    atomic_write_json(path, config)
    return config


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN_DIR/config.json`` as a dict."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; expected a run folder written by rnnkit") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: a folder; expected a run's config file") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: byte {e.start} is not UTF-8; expected a run's JSON config") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: a JSON {type(saved).__name__}; expected an object (a run's config)")
    return saved


def load_run(run_dir: str | Path, which: str = "best", device: str = "cpu") -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, state_dict)`` of a trained run: its ``config.json`` and the weights of the
    ``best`` checkpoint (``last`` when the run had no evaluation), for predict and eval.

    The task rebuilds its model from its own section of ``config`` and calls
    :func:`load_weights_into` ``(model, state_dict, run_dir)``.
    """
    config = read_run_config(run_dir)
    folder = Path(run_dir) / "checkpoints" / which
    if which == "best":
        try:
            resolve_checkpoint(folder)
        except CheckpointError:
            folder = folder.with_name("last")
    read_meta(folder)
    return config, load_weights(folder, device)


def load_weights_into(model: torch.nn.Module, state_dict: dict[str, Tensor], run_dir: str | Path) -> None:
    """``model.load_state_dict(state_dict)``, strict; weights that do not fit the model the run's
    config describes (a missing, extra or differently shaped tensor) are one
    :class:`CheckpointError` line naming each misfit, not torch's multi-line message."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        lines = [line.strip().rstrip(".") for line in str(e).strip().splitlines()[1:] if line.strip()]
        detail = "; ".join(lines) or " ".join(str(e).split())
        message = f"{run_dir}: the weights do not fit the model of the run's config.json ({detail})"
        raise CheckpointError(message) from None


def write_report(
    run_dir: str | Path,
    title: str,
    commands: Sequence[str],
    figures: dict[str, Any],
    notes: list[str],
    plots: Sequence[Path] = (),
) -> Path:
    """``report.md``: the figures as a table, the commands that reproduce them (a resumed run's
    first command, then each ``--resume``), and ``plots`` (files in ``RUN_DIR/plots``; a task
    appends its own with :func:`append_report`)."""
    lines = [f"# {title}", "", "Reproduce with:", "", "```bash", *commands, "```", ""]
    lines += ["| figure | value |", "|---|---|"]
    for name, value in figures.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {shown} |")
    lines += ["", *notes] if notes else []
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
    path = Path(run_dir) / REPORT_FILE
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def append_report(run_dir: str | Path, markdown: str) -> None:
    """Add a task's own section (e.g. a generated sample, a confusion matrix) to ``report.md``."""
    path = Path(run_dir) / REPORT_FILE
    old = path.read_text() if path.exists() else ""
    atomic_write_text(path, old.rstrip("\n") + "\n\n" + markdown.strip("\n") + "\n")
