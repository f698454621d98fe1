"""Writing an experiment's run folder: ``report.md``, ``results.json``, ``config.json``, ``plots/*.png``.

Every file is written to a temporary name and renamed into place, so a folder never holds a
half-written file. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rnnkit.errors import ConfigError
from rnnkit.io import atomic_write_text, path_error_text
from rnnkit.io import save_figure as atomic_save_figure
from rnnkit.train.run import create_timestamped_dir

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def run_dir(out: str | os.PathLike | None, name: str) -> Path:
    """The run folder, created and found writable: call it before any work, so bad ``out`` fails at once.

    ``out`` if given: a new or empty folder, or an earlier run folder of this experiment (its
    ``benchmark.json`` names ``experiment_<name>``), whose files are replaced; a folder holding
    anything else is refused, so that no other file is overwritten. Without ``out``:
    ``runs/experiment-<name>/<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``… when that second is taken.

    Raises:
        ConfigError: ``out`` is a file, another folder with files in it, or cannot be written.
    """
    path = create_timestamped_dir(Path("runs") / f"experiment-{name}", "out") if out is None else Path(out)
    if out is not None:
        _check_reusable(path, name)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigError(f"out: {path_error_text(e)}; expected a writable folder") from None
    return path


def _check_reusable(path: Path, name: str) -> None:
    """Refuse ``path`` unless it is absent, an empty folder, or an earlier run folder of ``name``."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out: {path} is a file; expected a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    try:
        owner = json.loads((path / "benchmark.json").read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        owner = None
    if owner != benchmark_name(name):
        raise ConfigError(
            f"out: {path} already holds files and is not a run folder of `rnnkit experiment {name}`; "
            "expected a new or empty folder, or an earlier run of this experiment (nothing was written)"
        )


def benchmark_name(name: str) -> str:
    """The ``name`` in an experiment's ``benchmark.json``: ``rnn-vs-ann`` -> ``experiment_rnn_vs_ann``."""
    return "experiment_" + name.replace("-", "_")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    atomic_write_text(path, text)


def write_json(path: Path, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically. NaN and infinity become ``null``."""
    write_text(path, json.dumps(_finite(obj), indent=2) + "\n")


def _finite(obj: object) -> object:
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def save_figure(fig: Figure, path: Path) -> None:
    """Save ``fig`` as a PNG atomically and close it."""
    atomic_save_figure(fig, path, dpi=110, bbox_inches="tight")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; floats are shown with 4 significant digits."""

    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, as a shell line (``rnnkit experiment …`` under the CLI)."""
    argv = list(sys.argv if argv is None else argv)
    prog = Path(argv[0]).name if argv else "python"
    if prog in ("rnnkit", "__main__.py"):
        argv = ["rnnkit", *argv[1:]]
    return shlex.join(argv)


def git_commit() -> str:
    """The checked-out commit of the source tree, with ``+dirty`` if it has local changes; or ``unknown``."""
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src/rnnkit"], cwd=root, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine() -> dict[str, object]:
    """CPU model, logical cores, torch threads and version, Python, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def config_dict(config: object) -> dict[str, object]:
    """A config dataclass as a JSON-ready dict."""
    return dataclasses.asdict(config)  # type: ignore[call-overload]


def report_header(title: str, command: str, seconds: float, config: object, threads: str | None = None) -> str:
    """The opening of every ``report.md``: title, command, commit, machine, wall time, settings.
    ``threads`` says how the runs used the cores when it was not this process's torch threads
    (``"2 worker processes of 1 torch thread each"``)."""
    m = machine()
    settings = ", ".join(f"`{k}={v}`" for k, v in config_dict(config).items() if k != "out")
    threads = threads or f"{m['torch_threads']} threads"
    return (
        f"# {title}\n\n"
        f"Command: `{command}`\n\n"
        f"Commit `{git_commit()}`; {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
        f"({threads}); wall time {seconds:.0f} s.\n\n"
        f"Settings: {settings}.\n"
    )


def metric_name(*parts: object) -> str:
    """A results key from parts: lower case, runs of other characters as ``_`` (``rnn(ρ=0.5)`` -> ``rnn_0.5``)."""
    return "_".join(re.sub(r"[^a-z0-9.]+", "_", str(p).lower()).strip("_") for p in parts)


def write_benchmark(
    path: Path,
    *,
    name: str,
    dataset: str,
    split: str,
    command: str,
    seconds: float,
    metrics: dict[str, float],
    reference: dict[str, float],
    notes: str = "",
) -> None:
    """Write the run's figures as one results object in the schema of ``benchmarks/results/*.json``.

    ``metrics`` are the figures of the models the experiment is about, ``reference`` the baselines
    measured in the same run (same naming).
    """
    write_json(
        path,
        {
            "name": name,
            "dataset": dataset,
            "split": split,
            "command": command,
            "git_commit": git_commit(),
            "machine": machine(),
            "wall_seconds": round(seconds, 2),
            "metrics": metrics,
            "reference": reference,
            "notes": notes,
        },
    )
