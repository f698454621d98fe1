"""What a run tells you while it trains and after: progress bar, metrics.jsonl, TensorBoard, plots.

``metrics.jsonl`` has one JSON object per line: a training log line
(``{"kind": "train", "step", "loss", "lr", "grad_norm", "grad_norm/<layer>", ...}``), an evaluation
(``{"kind": "eval", "step", "val_<metric>", ...}``) or a warning (``{"kind": "warning", "step",
"message"}``). Only the main process (rank 0) writes anything.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rnnkit.io import atomic_write_text, pyplot, save_figure

METRICS_FILE = "metrics.jsonl"


class RunLogger:
    """Writes ``metrics.jsonl`` (and TensorBoard events), shows a progress bar or JSON lines.

    ``enabled=False`` (processes other than rank 0) makes every method a no-op.
    """

    def __init__(
        self,
        run_dir: Path | None,
        *,
        total_steps: int,
        initial_step: int = 0,
        enabled: bool = True,
        quiet: bool = False,
        log_format: str = "text",
        tensorboard: bool = False,
    ) -> None:
        self.enabled = enabled and run_dir is not None
        self.quiet = quiet
        self.log_format = log_format
        self.path = Path(run_dir) / METRICS_FILE if run_dir is not None else None
        self._file = open(self.path, "a", encoding="utf-8") if self.enabled else None  # noqa: SIM115
        show_bar = self.enabled and not quiet and log_format == "text"
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", disable=not show_bar, dynamic_ncols=True)
        self.tb = open_tensorboard(Path(run_dir) / "tensorboard") if self.enabled and tensorboard else None

    def record(self, row: dict[str, Any]) -> None:
        """Append ``row`` to metrics.jsonl (and TensorBoard); print it with ``--log-format json``."""
        if not self.enabled:
            return
        line = json.dumps(_finite_or_str(row))
        self._file.write(line + "\n")
        self._file.flush()
        if self.log_format == "json" and not self.quiet:
            print(line, flush=True)
        if self.tb is not None and "step" in row:
            prefix = "train" if row.get("kind") == "train" else ""
            for key, value in row.items():
                if key not in ("step", "kind") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"{prefix}/{key}" if prefix else key, value, row["step"])

    def progress(self, steps_done: int, **postfix: Any) -> None:
        """Advance the bar by ``steps_done`` and show ``postfix`` (loss, lr, items/s)."""
        if self.enabled:
            self.bar.update(steps_done)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def message(self, text: str) -> None:
        """A line for the user (stderr, above the bar); silent with ``--quiet`` or JSON output."""
        if self.enabled and not self.quiet:
            if self.log_format == "json":
                print(json.dumps({"kind": "message", "message": text}), flush=True)
            else:
                tqdm.write(text, file=sys.stderr)

    def warn(self, step: int, text: str) -> None:
        """A warning: into metrics.jsonl and to the user, even with ``--quiet``."""
        if self.enabled:
            self.record({"kind": "warning", "step": step, "message": text})
            if self.log_format != "json":
                tqdm.write(f"warning: step {step}: {text}", file=sys.stderr)

    def close(self) -> None:
        if self.enabled and not self._file.closed:
            self.bar.close()
            self._file.close()
            if self.tb is not None:
                self.tb.close()


def open_tensorboard(folder: Path):
    """A TensorBoard ``SummaryWriter``, or None (with a note) when ``tensorboard`` is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("note: --tensorboard needs the `tensorboard` package (pip install tensorboard); skipped", file=sys.stderr)
        return None
    return SummaryWriter(log_dir=str(folder))


def _finite_or_str(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/inf: write them as strings so every line stays valid JSON."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of ``RUN_DIR/metrics.jsonl`` (a torn last line, from a killed process, is ignored)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(run_dir: str | Path, step: int) -> None:
    """Keep only rows up to ``step`` (used on resume: rows after the checkpoint are redone)."""
    path = Path(run_dir) / METRICS_FILE
    if path.exists():
        kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


# ---------------------------------------------------------------- plots


def _series(rows: Iterable[dict[str, Any]], kind: str, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        value = r.get(key)
        if r.get("kind") == kind and isinstance(value, (int, float)) and math.isfinite(value):
            xs.append(r["step"])
            ys.append(value)
    return xs, ys


def write_plots(run_dir: str | Path, monitor: str = "loss") -> list[Path]:
    """Draw ``plots/loss.png`` (train and validation), ``plots/lr.png``, ``plots/grad_norm.png``.

    Returns the files written. Uses matplotlib's Agg backend (no display needed).
    """
    plt = pyplot()

    rows = read_metrics(run_dir)
    folder = Path(run_dir) / "plots"
    folder.mkdir(exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        path = folder / name
        fig.subplots_adjust(left=0.14, right=0.97, bottom=0.14, top=0.9)
        save_figure(fig, path, dpi=100)
        written.append(path)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(*_series(rows, "train", "loss"), label="train loss")
    val_keys = ["val_loss"] + ([f"val_{monitor}"] if monitor != "loss" else [])
    for key in val_keys:
        xs, ys = _series(rows, "eval", key)
        if xs:
            ax.plot(xs, ys, "o-", label=key.replace("_", " "))
    ax.set(xlabel="step", ylabel="loss", title="loss")
    ax.legend()
    save(fig, "loss.png")

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(*_series(rows, "train", "lr"))
    ax.set(xlabel="step", ylabel="learning rate", title="learning rate")
    save(fig, "lr.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    layer_keys = sorted({k for r in rows if r.get("kind") == "train" for k in r if k.startswith("grad_norm/")})
    for key in ["grad_norm", *layer_keys]:
        xs, ys = _series(rows, "train", key)
        if xs:
            ax.plot(xs, ys, label=key, linewidth=2 if key == "grad_norm" else 1)
    ax.set(xlabel="step", ylabel="gradient norm (before clipping)", title="gradient norms", yscale="log")
    if layer_keys or _series(rows, "train", "grad_norm")[0]:
        ax.legend(fontsize="small")
    save(fig, "grad_norm.png")
    return written
