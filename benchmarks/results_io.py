"""Write a benchmark's results file: one JSON object in the schema of design.md.

``benchmarks/results/<name>.json`` holds ``name``, ``dataset``, ``split``, ``command`` (exact,
rerunnable), ``git_commit`` (of the tree when the benchmark started, ``-dirty`` if it had
uncommitted changes), ``machine``, ``wall_seconds``, ``metrics``, ``reference`` and
``notes``. Written to a temporary file, then renamed into place.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def result_name(text: str) -> str:
    """``--name``'s argparse type: a results file's name, ``benchmarks/results/<name>.json`` (letters,
    digits, ``_``, ``-``, ``.``; no folders)."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a results file name (benchmarks/results/<name>.json): letters, digits, _ - . only"
        )
    return text


def machine() -> dict[str, Any]:
    """CPU model and vendor, core count, torch version and threads of this machine, and the BLAS
    ``sgemm_`` rnnkit's C kernels call (:func:`rnnkit.nn.native.sgemm_name`)."""
    from rnnkit.nn import blas, native

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
        "cpu_vendor": blas.cpu_info()[0],
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the vector ISA torch's kernels use
        "python": platform.python_version(),
        "rnnkit_sgemm": native.sgemm_name(),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# The commit of the code that runs, taken when a benchmark imports this module (as it starts): a
# commit made while a long run goes on must not be recorded as the code that produced its figures.
START_COMMIT = git_commit()


def command() -> str:
    """The command line that ran this benchmark, rerunnable from the repository root."""
    script = Path(sys.argv[0])
    head = ["python", "-m", f"benchmarks.{script.stem}"] if script.suffix == ".py" else ["python", sys.argv[0]]
    return " ".join(shlex.quote(a) for a in [*head, *sys.argv[1:]])


def write_result(
    name: str,
    *,
    dataset: str,
    split: str,
    metrics: dict[str, Any],
    reference: dict[str, Any],
    wall_seconds: float,
    notes: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically and return its path."""
    record = {
        "name": name,
        "dataset": dataset,
        "split": split,
        "command": command(),
        "git_commit": START_COMMIT,
        "machine": machine(),
        "wall_seconds": round(wall_seconds, 2),
        "metrics": metrics,
        "reference": reference,
        "notes": notes,
        **(extra or {}),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path
