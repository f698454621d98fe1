"""The fit loop: fetch batch -> forward -> loss -> backward -> clip -> step -> log -> maybe eval/checkpoint.

A task gives :class:`Trainer` a model, a :class:`~rnnkit.train.config.TrainConfig`, a
``train_step`` and (optionally) an ``evaluate``; :meth:`Trainer.fit` runs the loop, reading top
to bottom. See :mod:`rnnkit.train` for the contract of ``train_step``, ``evaluate`` and the data.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.errors import CheckpointError, ConfigError, RnnkitError
from rnnkit.io import atomic_write_bytes, path_error_text
from rnnkit.train import distributed as dist
from rnnkit.train.checkpoint import (
    STATE_FILE,
    load_train_state,
    load_weights,
    read_meta,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rnnkit.train.config import RESUME_OVERRIDABLE, TrainConfig
from rnnkit.train.gradients import GradientWatch, layer_grad_norms
from rnnkit.train.logging import METRICS_FILE, RunLogger, truncate_metrics, write_plots
from rnnkit.train.optim import build_optimizer, build_scheduler
from rnnkit.train.run import new_run_dir, read_run_config, write_report, write_run_config


class NonFiniteError(RnnkitError):
    """Training stopped: too many steps in a row had a non-finite loss or gradient."""


@dataclass
class StepOutput:
    """What ``train_step`` returns (a bare loss tensor is short for ``StepOutput(loss)``).

    ``loss``: scalar tensor to minimize (mean over the micro-batch). ``state``: the recurrent
    state at the end of the chunk, for TBPTT (a tensor or tuple/list/dict of tensors; the trainer
    detaches it and passes it to the next ``train_step``). ``metrics``: extra numbers to log
    (averaged over the log interval). ``items``: examples or tokens in the micro-batch, for the
    items-per-second figure.
    """

    loss: Tensor
    state: Any = None
    metrics: dict[str, float] | None = None
    items: int | None = None


TrainStep = Callable[[nn.Module, Any, Any], "Tensor | StepOutput | tuple"]
Evaluate = Callable[[nn.Module], dict[str, float]]


@dataclass
class FitResult:
    """How :meth:`Trainer.fit` ended."""

    run_dir: Path | None
    steps: int
    stop_reason: str  # "completed" | "early stopping" | "interrupted (SIGINT)" | "interrupted (SIGTERM)"
    train_loss: float | None  # mean over the last log interval
    best_metric: float | None
    best_step: int | None
    last_eval: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0


# ---------------------------------------------------------------- small helpers


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor on ``device`` (tensors, tuples, lists, dicts, objects with ``.to``)."""
    if isinstance(batch, Tensor) or (hasattr(batch, "to") and not isinstance(batch, type)):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [move_to(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def detach_state(state: Any) -> Any:
    """The carried TBPTT state cut from the graph (same structure, tensors detached).

    Only tensors, plain tuples/lists and dicts (which become plain dicts) are accepted: the state
    goes into checkpoints, which load nothing else (a named tuple could not be resumed)."""
    if state is None or isinstance(state, Tensor):
        return None if state is None else state.detach()
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    if type(state) in (list, tuple):
        return type(state)(detach_state(v) for v in state)
    raise TypeError(
        f"train_step state: expected a tensor or a plain tuple/list/dict of tensors (what a checkpoint can "
        f"load back), got {type(state).__name__}"
    )


def as_step_output(result: Any) -> StepOutput:
    """Accept ``loss``, ``(loss, state)``, ``(loss, state, metrics)`` or a :class:`StepOutput`."""
    if isinstance(result, StepOutput):
        return result
    if isinstance(result, Tensor):
        return StepOutput(result)
    if isinstance(result, tuple) and 1 <= len(result) <= 3 and isinstance(result[0], Tensor):
        return StepOutput(*result)
    raise TypeError(
        f"train_step: expected a loss tensor, a (loss, state[, metrics]) tuple or a StepOutput, "
        f"got {type(result).__name__}"
    )


class BatchFeed:
    """The training batches in order, with a position that a checkpoint can restore.

    ``data`` is either a callable ``data(k) -> batch k`` (``len(data)`` batches per epoch when
    defined), or an iterable re-iterated every epoch (a ``DataLoader``; ``set_epoch(epoch)`` is
    called on it or its sampler when they have one). On resume the callable is simply asked for
    batch ``k``; the iterable is replayed from the start of the epoch.
    """

    def __init__(self, data: Callable[[int], Any] | Iterable[Any]) -> None:
        self.data = data
        self.indexed = callable(data) and not hasattr(data, "__iter__")
        self.position = 0  # micro-batches consumed since the start of training
        self.epoch = 0
        self.index = 0  # micro-batches consumed in this epoch
        self._iterator: Iterator[Any] | None = None

    @property
    def per_epoch(self) -> int | None:
        try:
            return len(self.data)  # type: ignore[arg-type]
        except TypeError:
            return None

    def next(self) -> Any:
        if self.indexed:
            batch = self.data(self.position)
            n = self.per_epoch
            self.epoch, self.index = divmod(self.position + 1, n) if n else (0, self.position + 1)
        else:
            batch = self._next_from_iterable()
        self.position += 1
        return batch

    def _next_from_iterable(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start_epoch(self.epoch)
        try:
            batch = next(self._iterator)
        except StopIteration:
            if self.index == 0:
                raise ConfigError("training data: the iterable yielded no batches") from None
            self.epoch, self.index = self.epoch + 1, 0
            self._iterator = self._start_epoch(self.epoch)
            batch = next(self._iterator)
        self.index += 1
        return batch

    def _start_epoch(self, epoch: int) -> Iterator[Any]:
        for obj in (self.data, getattr(self.data, "sampler", None), getattr(self.data, "batch_sampler", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
        return iter(self.data)

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position, "epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position, self.epoch, self.index = state["position"], state["epoch"], state["index"]
        if not self.indexed:
            self._iterator = self._start_epoch(self.epoch)
            for _ in range(self.index):
                next(self._iterator)


class StopSignals:
    """While active, SIGINT and SIGTERM only set :attr:`received` (a second SIGINT interrupts)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------- the trainer


# What `train_state.pt` holds: each top-level key, and the keys of the dicts among them.
TRAIN_STATE_KEYS: dict[str, tuple[str, ...]] = {
    "optimizer": ("state", "param_groups"),
    "scheduler": (),
    "data": ("position", "epoch", "index"),
    "per_rank": (),
    "trainer": (
        "step",
        "best_metric",
        "best_step",
        "bad_evals",
        "nonfinite_streak",
        "last_eval_step",
        "last_eval",
        "interval",
        "watch",
    ),
}


def check_train_state(path: Path, state: Any) -> None:
    """Raise :class:`CheckpointError` naming ``path`` and the field when ``state`` is not what
    :meth:`Trainer.save_checkpoint` writes (a dict with every key of :data:`TRAIN_STATE_KEYS`)."""
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: holds a {type(state).__name__}; expected the dict of training state rnnkit writes"
        )
    for key, inner in TRAIN_STATE_KEYS.items():
        if key not in state:
            raise CheckpointError(f"{path}: field {key!r} is missing; expected the training state rnnkit writes")
        value = state[key]
        if not isinstance(value, list if key == "per_rank" else dict):
            raise CheckpointError(f"{path}: field {key!r} holds a {type(value).__name__}; expected what rnnkit writes")
        missing = [k for k in inner if k not in value]
        if missing:
            raise CheckpointError(
                f"{path}: field '{key}.{missing[0]}' is missing; expected the training state rnnkit writes"
            )


def total_steps(config: TrainConfig, per_epoch: int | None) -> int:
    """Optimizer steps of a run: ``config.steps``, else ``config.epochs`` passes of ``per_epoch``
    batches (``None``: data without ``len()``) at ``config.accumulate`` batches per step."""
    if config.steps is not None:
        return config.steps
    if per_epoch is None:
        raise ConfigError("epochs: the training data has no len(), so give --steps instead of --epochs")
    return math.ceil(config.epochs * per_epoch / config.accumulate)


def _refuse_unloadable_changes(run_dir: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for a resume whose optimizer or schedule could not load the saved state."""
    if "optimizer" in saved and saved["optimizer"] != now["optimizer"]:
        raise ConfigError(
            f"optimizer: {run_dir} was trained with {saved['optimizer']!r}, whose saved state cannot be loaded "
            f"into {now['optimizer']!r}; expected the run's own optimizer when resuming"
        )
    if "schedule" in saved and (saved["schedule"] == "plateau") != (now["schedule"] == "plateau"):
        expected = "plateau" if saved["schedule"] == "plateau" else "a schedule other than plateau"
        raise ConfigError(
            f"schedule: {run_dir} was trained with {saved['schedule']!r}, whose saved state cannot be loaded "
            f"into {now['schedule']!r}; expected {expected}"
        )


class Trainer:
    """Trains ``model`` with ``train_step`` on batches from ``fit(data)``, evaluating with ``evaluate``.

    ``train_step(model, batch, state) -> loss | (loss, state[, metrics]) | StepOutput``: ``model``
    is the model to call (wrapped in DistributedDataParallel under torchrun), ``batch`` is on the
    trainer's device, ``state`` is the carried TBPTT state (None at the start and where a stream
    restarts). ``evaluate(model) -> {"loss": ..., ...}`` runs on rank 0 under ``torch.no_grad()``
    with the model in eval mode. ``task`` names the run folder ``runs/<task>/<time>``;
    ``run_dir`` (or ``config.run_dir``) puts it elsewhere; ``config.resume`` continues a run.
    ``task_config`` (JSON-able dict of the task's own config sections) goes into ``config.json``.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        train_step: TrainStep,
        evaluate: Evaluate | None = None,
        task: str = "run",
        run_dir: str | Path | None = None,
        task_config: dict[str, Any] | None = None,
        runs_root: str | Path = "runs",
    ) -> None:
        config.validate()
        self.config = config
        self.task = task
        self.train_step = train_step
        self.evaluate_fn = evaluate
        self.device = dist.setup(config)
        self.rank, self.world_size, self.is_main = dist.rank(), dist.world_size(), dist.is_main()
        if config.batch_size % self.world_size:
            raise ConfigError(f"batch_size: {config.batch_size} is not divisible by the {self.world_size} processes")
        seed_everything(config.seed + self.rank)
        self.model = model.to(self.device)
        self.ddp_model = dist.wrap_model(self.model, self.device)
        self.optimizer = build_optimizer(self.model.parameters(), config)
        self._trained = [p for p in self.model.parameters() if p.requires_grad]
        self.scheduler = None
        self.run_dir = self._prepare_run_dir(run_dir, runs_root, task_config)
        # Training progress (all saved in checkpoints).
        self.step = 0
        self.carried: Any = None
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.nonfinite_streak = 0
        self.last_eval: dict[str, float] = {}
        self.last_eval_step = -1
        self._interval = {"loss": 0.0, "steps": 0, "items": 0, "metrics": {}}
        self.watch = GradientWatch(config.vanish_threshold, config.explode_threshold, config.grad_warn_steps)
        self.logger: RunLogger | None = None
        self.last_train_loss: float | None = None

    # -------------------------------------------------------- run folder

    def _prepare_run_dir(self, run_dir: str | Path | None, root: str | Path, task_config: dict | None) -> Path:
        cfg = self.config
        chosen = cfg.resume or run_dir or cfg.run_dir
        if self.is_main:
            if cfg.resume:
                self._check_resume_config(Path(cfg.resume))
            path = Path(chosen) if chosen else new_run_dir(self.task, root)
            saved = {**cfg.to_dict(), "resume": None, "run_dir": str(path)}
            if cfg.resume:  # written once the checkpoint has loaded: a failed resume leaves the run as it was
                self._resumed_config = (path, self.task, saved, task_config, True)
            else:
                self._create_run_dir(path, saved, task_config)
        path = Path(dist.broadcast(str(path) if self.is_main else None))
        return path

    def _create_run_dir(self, path: Path, saved: dict[str, Any], task_config: dict | None) -> None:
        """Make the run folder and write its ``config.json``; a folder that cannot be is one ConfigError."""
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._start_afresh(path)
            write_run_config(path, self.task, saved, task_config)
        except OSError as e:
            raise ConfigError(f"run_dir: {path_error_text(e)}; expected a writable run folder") from None

    @staticmethod
    def _start_afresh(path: Path) -> None:
        """A new run in a folder that holds an earlier one: its log would mix with this one's."""
        if (path / "checkpoints").exists() or (path / METRICS_FILE).exists():
            print(
                f"warning: {path} holds an earlier run; starting a new one there (use --resume to continue it)",
                file=sys.stderr,
            )
            (path / METRICS_FILE).unlink(missing_ok=True)

    def _check_resume_config(self, run_dir: Path) -> None:
        saved = read_run_config(run_dir).get("train", {})
        now = self.config.to_dict()
        _refuse_unloadable_changes(run_dir, saved, now)
        changed = sorted(k for k in now if k not in RESUME_OVERRIDABLE and k in saved and saved[k] != now[k])
        if changed:
            details = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
            print(
                f"warning: resuming {run_dir} with changed options ({details}); the result is not the same run",
                file=sys.stderr,
            )

    def write_file(self, name: str, data: str | bytes) -> Path:
        """Save a task's own file (vocab, scaler…) into the run folder, atomically, on rank 0 only."""
        path = self.run_dir / name
        if self.is_main:
            atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
        return path

    # -------------------------------------------------------- the loop

    def fit(self, data: Callable[[int], Any] | Iterable[Any]) -> FitResult:
        """Train until ``config.steps`` optimizer steps (or ``config.epochs`` passes over ``data``),
        early stopping, or SIGINT/SIGTERM (which save ``last`` and return).

        ``data``: ``data(k) -> batch k`` (e.g. :class:`rnnkit.data.batching.ShuffledBatches`,
        :class:`~rnnkit.data.batching.TBPTTStream`) or an iterable of batches per epoch.
        """
        cfg, started = self.config, time.monotonic()
        feed = BatchFeed(data)
        total = total_steps(self.config, feed.per_epoch)
        self.scheduler = build_scheduler(self.optimizer, cfg, total)
        if cfg.resume:
            self._resume(feed)
        self.logger = RunLogger(
            self.run_dir,
            total_steps=total,
            initial_step=self.step,
            enabled=self.is_main,
            quiet=cfg.quiet,
            log_format=cfg.log_format,
            tensorboard=cfg.tensorboard,
        )
        self.logger.message(f"run folder: {self.run_dir}")
        stop_reason = "completed"
        self._interval.setdefault("since", time.monotonic())
        self.ddp_model.train()
        try:
            with StopSignals() as signals:
                while self.step < total:
                    interrupted = self._train_one_step(feed, signals)
                    patience_ran_out = False
                    if self._eval_due(feed, total):
                        patience_ran_out = self._evaluate_and_save(feed)  # saves `last` too
                    elif interrupted or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                        self.save_checkpoint("last", feed)
                    if interrupted or patience_ran_out:
                        stop_reason = f"interrupted ({interrupted})" if interrupted else "early stopping"
                        break
                if stop_reason == "completed" and self.last_eval_step != self.step:
                    self._evaluate_and_save(feed)
        except NonFiniteError:
            self.logger.close()
            self._finish(self._result("diverged (non-finite loss or gradient)", time.monotonic() - started))
            raise
        finally:
            self.logger.close()
        result = self._result(stop_reason, time.monotonic() - started)
        self._finish(result)
        return result

    def _eval_due(self, feed: BatchFeed, total: int) -> bool:
        cfg = self.config
        if self.step == total:
            return True
        if cfg.eval_every:
            return self.step % cfg.eval_every == 0
        epoch_ended = cfg.epochs is not None and feed.per_epoch and feed.position % feed.per_epoch < cfg.accumulate
        return bool(epoch_ended)

    def _train_one_step(self, feed: BatchFeed, signals: StopSignals) -> str | None:
        """One optimizer step over ``accumulate`` micro-batches. Returns the stop signal's name, if any."""
        cfg = self.config
        log_now = (self.step + 1) % cfg.log_every == 0 if cfg.log_every else False
        loss_sum, items, metrics = self._forward_backward(feed)
        layer_norms = layer_grad_norms(self.model) if log_now else {}
        grad_norm = self._clip_gradients()
        lr = self.optimizer.param_groups[0]["lr"]  # the rate of this step's update (logged with it)
        nonfinite = not (math.isfinite(loss_sum) and math.isfinite(grad_norm))
        nonfinite, stop = self._agree(nonfinite, signals.received is not None)
        if nonfinite:
            self._skip_step(loss_sum, grad_norm)
        else:
            self.optimizer.step()
            self.nonfinite_streak = 0
            self._add_to_interval(loss_sum, items, metrics)
        if cfg.schedule != "plateau":  # a skipped step counts too: the schedule follows self.step
            with warnings.catch_warnings():  # torch warns when a first step was skipped: intended here
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)` before")
                self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        warning = None if nonfinite else self.watch.check(self.step, grad_norm)
        if warning:
            self.logger.warn(self.step, warning)
        self.logger.progress(1)
        if log_now:
            self._log_train(grad_norm, layer_norms, lr)
        return (signals.received or "signal from another process") if stop else None

    def _forward_backward(self, feed: BatchFeed) -> tuple[float, int, dict[str, float]]:
        cfg = self.config
        loss_sum, items, metrics = 0.0, 0, {}
        for micro in range(cfg.accumulate):
            batch = move_to(feed.next(), self.device)
            if getattr(batch, "reset", False) is True:
                self.carried = None
            sync = contextlib.nullcontext() if micro == cfg.accumulate - 1 else self._no_sync()
            with sync:
                with self._autocast():
                    out = as_step_output(self.train_step(self.ddp_model, batch, self.carried))
                (out.loss / cfg.accumulate if cfg.accumulate > 1 else out.loss).backward()
            self.carried = detach_state(out.state)
            loss_sum += float(out.loss.detach()) / cfg.accumulate
            items += out.items or 0
            for k, v in (out.metrics or {}).items():
                metrics[k] = metrics.get(k, 0.0) + float(v) / cfg.accumulate
        return loss_sum, items, metrics

    def _no_sync(self):
        return self.ddp_model.no_sync() if hasattr(self.ddp_model, "no_sync") else contextlib.nullcontext()

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _clip_gradients(self) -> float:
        """Clip by value and/or global norm; return the global norm before clipping."""
        cfg = self.config
        params = [p for p in self._trained if p.grad is not None]
        if not params:
            return 0.0
        if cfg.clip_norm is not None and cfg.clip_value is None:
            return float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm))
        norm = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
        if cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, cfg.clip_value)
        if cfg.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        return norm

    def _agree(self, nonfinite: bool, stop: bool) -> tuple[bool, bool]:
        """Every process skips (or stops) when any one must."""
        if self.world_size == 1:
            return nonfinite, stop
        nonfinite, stop = dist.any_across([nonfinite, stop], self.device)
        return nonfinite, stop

    def _skip_step(self, loss: float, grad_norm: float) -> None:
        self.nonfinite_streak += 1
        self.carried = None  # a state computed from non-finite numbers would poison the next chunk
        k = self.config.max_nonfinite
        self.logger.warn(
            self.step + 1,
            f"non-finite loss {loss:.4g} or gradient norm {grad_norm:.4g}: step skipped ({self.nonfinite_streak}/{k})",
        )
        if self.nonfinite_streak >= k:
            raise NonFiniteError(
                f"stopped at step {self.step + 1}: {k} steps in a row had a non-finite loss or gradient; "
                f"weights were not updated by them and no checkpoint was written (try a lower --lr or --clip-norm)"
            )

    def _add_to_interval(self, loss: float, items: int, metrics: dict[str, float]) -> None:
        acc = self._interval
        acc["loss"] += loss
        acc["steps"] += 1
        acc["items"] += items
        for k, v in metrics.items():
            acc["metrics"][k] = acc["metrics"].get(k, 0.0) + v

    def _log_train(self, grad_norm: float, layer_norms: dict[str, float], lr: float) -> None:
        acc, now = self._interval, time.monotonic()
        n = max(acc["steps"], 1)
        loss = dist.mean_across(acc["loss"] / n, self.device) if acc["steps"] else float("nan")
        elapsed = now - acc.get("since", now)
        row = {
            "kind": "train",
            "step": self.step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            **{f"grad_norm/{k}": v for k, v in layer_norms.items()},
            **{k: v / n for k, v in acc["metrics"].items()},
        }
        if acc["items"] and elapsed > 0:
            row["items_per_second"] = acc["items"] * self.world_size / elapsed
        self.logger.record(row)
        rate = {"items/s": f"{row['items_per_second']:.4g}"} if "items_per_second" in row else {}
        self.logger.progress(0, loss=f"{loss:.4f}", lr=f"{row['lr']:.2e}", **rate)
        self.last_train_loss = loss
        self._interval = {"loss": 0.0, "steps": 0, "items": 0, "metrics": {}, "since": now}

    # -------------------------------------------------------- evaluation, early stopping

    def evaluate(self) -> dict[str, float]:
        """Run ``evaluate`` on rank 0 (eval mode, no grad) and share its metrics with every process."""
        metrics: dict[str, float] = {}
        if self.is_main and self.evaluate_fn is not None:
            self.model.eval()
            with torch.no_grad(), self._autocast():
                metrics = {k: float(v) for k, v in self.evaluate_fn(self.model).items()}
            self.model.train()
        return dist.broadcast(metrics)

    def _evaluate_and_save(self, feed: BatchFeed) -> bool:
        """Evaluate, update best/patience, save ``best`` and ``last``. Returns True to stop early."""
        cfg = self.config
        metrics = self.evaluate()
        self.last_eval_step = self.step
        improved = False
        if metrics:
            if cfg.monitor not in metrics:
                raise ConfigError(f"monitor: evaluate() returned {sorted(metrics)}, which has no {cfg.monitor!r}")
            value = metrics[cfg.monitor]
            self.last_eval = metrics
            self.logger.record({"kind": "eval", "step": self.step, **{f"val_{k}": v for k, v in metrics.items()}})
            self.logger.message(f"step {self.step}: " + ", ".join(f"val {k} {v:.4g}" for k, v in metrics.items()))
            improved = self._is_better(value)
            if improved:
                self.best_metric, self.best_step, self.bad_evals = value, self.step, 0
            else:
                self.bad_evals += 1
            if cfg.schedule == "plateau":
                self.scheduler.step(value)
        self.save_checkpoint("last", feed)
        if improved:
            self.save_checkpoint("best", feed, with_train_state=False)
        return cfg.patience is not None and self.bad_evals >= cfg.patience

    def _is_better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_metric is None:
            return True
        return value < self.best_metric if self.config.mode == "min" else value > self.best_metric

    # -------------------------------------------------------- checkpoints and resume

    def save_checkpoint(self, name: str, feed: BatchFeed, *, with_train_state: bool = True) -> None:
        """Write ``checkpoints/<name>`` (rank 0; every process contributes its RNG and carried state)."""
        per_rank = dist.gather({"rng": rng_state(), "carried": move_to(self.carried, torch.device("cpu"))})
        if not self.is_main:
            return
        meta = {
            "step": self.step,
            "epoch": feed.epoch,
            "metrics": self.last_eval,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "monitor": self.config.monitor,
            "train": self.config.to_dict(),
        }
        state = self._train_state(feed, per_rank) if with_train_state else None
        save_checkpoint(self.run_dir / "checkpoints" / name, self.model.state_dict(), meta, state)

    def _train_state(self, feed: BatchFeed, per_rank: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": None,
            "data": feed.state_dict(),
            "per_rank": per_rank,
            "trainer": {
                "step": self.step,
                "best_metric": self.best_metric,
                "best_step": self.best_step,
                "bad_evals": self.bad_evals,
                "nonfinite_streak": self.nonfinite_streak,
                "last_eval_step": self.last_eval_step,
                "last_eval": self.last_eval,
                "interval": {k: v for k, v in self._interval.items() if k != "since"},
                "watch": self.watch.state_dict(),
            },
        }

    def _resume(self, feed: BatchFeed) -> None:
        folder = self.run_dir / "checkpoints" / "last"
        read_meta(folder)
        weights, state = load_weights(folder, self.device), load_train_state(folder)
        check_train_state(resolve_checkpoint(folder) / STATE_FILE, state)
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
            detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
            raise CheckpointError(
                f"{folder}: does not fit this model ({detail[:300]}); expected a checkpoint of the same model options"
            ) from None
        self.scheduler.load_state_dict(state["scheduler"])
        feed.load_state_dict(state["data"])
        t = state["trainer"]
        self.step, self.best_metric, self.best_step = t["step"], t["best_metric"], t["best_step"]
        self.bad_evals, self.nonfinite_streak = t["bad_evals"], t["nonfinite_streak"]
        self.last_eval_step, self.last_eval = t["last_eval_step"], t["last_eval"]
        self._interval = {**t["interval"], "since": time.monotonic()}
        self.watch.load_state_dict(t["watch"])
        per_rank = state["per_rank"]
        mine = per_rank[self.rank] if len(per_rank) == self.world_size else None
        if mine is None:
            print(
                f"warning: checkpoint was written by {len(per_rank)} processes, not {self.world_size}: "
                "random streams and carried state start afresh",
                file=sys.stderr,
            )
        else:
            set_rng_state(mine["rng"])
            self.carried = move_to(mine["carried"], self.device)
        if self.is_main:
            truncate_metrics(self.run_dir, self.step)
            write_run_config(*self._resumed_config)

    # -------------------------------------------------------- the end

    def _result(self, stop_reason: str, wall: float) -> FitResult:
        return FitResult(
            run_dir=self.run_dir,
            steps=self.step,
            stop_reason=stop_reason,
            train_loss=self.last_train_loss,
            best_metric=self.best_metric,
            best_step=self.best_step,
            last_eval=self.last_eval,
            wall_seconds=wall,
        )

    def _finish(self, result: FitResult) -> None:
        if self.is_main:
            self._write_final_files(result)
        # Every process leaves fit together: none exits (tearing down its connections) while
        # rank 0 is still writing.
        dist.barrier()

    def _write_final_files(self, result: FitResult) -> None:
        plots = write_plots(self.run_dir, self.config.monitor) if self.config.plots else []
        figures: dict[str, Any] = {"steps": result.steps, "stopped": result.stop_reason}
        if result.train_loss is not None:
            figures["train loss (last log interval)"] = result.train_loss
        for k, v in result.last_eval.items():
            figures[f"val {k} (last evaluation)"] = v
        if result.best_metric is not None:
            figures[f"best val {self.config.monitor} (step {result.best_step})"] = result.best_metric
        figures["wall seconds (this session)"] = round(result.wall_seconds, 1)
        saved = read_run_config(self.run_dir)
        commands = [saved.get("command", ""), *saved.get("resumed", [])]
        notes = []
        if result.stop_reason.startswith("interrupted"):
            notes.append(f"Interrupted; continue with `--resume {self.run_dir}`.")
        write_report(self.run_dir, f"{self.task}: training report", commands, figures, notes, plots)
