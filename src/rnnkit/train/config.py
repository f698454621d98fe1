"""The training options every task shares: one typed dataclass, and its command-line form.

A task composes :class:`TrainConfig` with its own model and data configs. The CLI fills it with
:func:`add_train_args` and :func:`config_from_args`; a TOML file given with ``--config`` fills the
same options (see :mod:`rnnkit.cli`). Every field is saved in the run folder's ``config.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rnnkit.errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "step", "plateau")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("32", "bf16")
LOG_FORMATS = ("text", "json")
MODES = ("min", "max")


@dataclass
class TrainConfig:
    """How to train: length, batch, optimizer, schedule, clipping, evaluation, logging, device.

    ``batch_size`` is the global number of examples (or streams) per micro-step, summed over all
    processes; each of ``N`` processes gets ``batch_size // N``. One optimizer step sees
    ``batch_size * accumulate`` examples. Give ``steps`` (optimizer steps) or ``epochs``.
    """

    steps: int | None = 1000  # optimizer steps; None -> use `epochs`
    epochs: int | None = None  # passes over the training data (when `steps` is None)
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"  # adamw | adam | sgd
    weight_decay: float = 0.0
    momentum: float = 0.0  # sgd only
    schedule: str = "constant"  # constant | cosine | linear | step | plateau
    warmup: int = 0  # linear warmup steps (all schedules but plateau)
    min_lr: float = 0.0  # floor of cosine / linear decay
    step_size: int = 1000  # schedule "step": multiply lr by `gamma` every `step_size` steps
    gamma: float = 0.5  # schedule "step" and "plateau" decay factor
    clip_norm: float | None = 1.0  # clip the global gradient norm (None: off)
    clip_value: float | None = None  # clip each gradient element to [-v, v] (None: off)
    accumulate: int = 1  # micro-steps per optimizer step
    eval_every: int = 0  # evaluate (and checkpoint) every N steps; 0: only at the end
    checkpoint_every: int = 0  # save `last` every N steps besides evaluations; 0: only at evaluations
    log_every: int = 10  # write a metrics.jsonl line every N steps
    monitor: str = "loss"  # key of evaluate()'s dict that picks `best` and drives early stopping
    mode: str = "min"  # min | max: is a smaller or a larger `monitor` better
    patience: int | None = None  # stop after this many evaluations without improvement (None: never)
    max_nonfinite: int = 5  # stop after this many non-finite steps in a row
    vanish_threshold: float = 1e-6  # warn when the global gradient norm stays below this ...
    explode_threshold: float = 1e3  # ... or goes above this
    grad_warn_steps: int = 20  # ... for this many steps in a row (vanishing)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "32"  # 32 | bf16 (autocast)
    run_dir: str | None = None  # default runs/<task>/<YYYYmmdd-HHMMSS>/
    resume: str | None = None  # a run folder to continue from its last checkpoint
    quiet: bool = False
    log_format: str = "text"  # text (progress bar) | json (JSON lines on stdout)
    tensorboard: bool = False
    plots: bool = True  # draw plots/*.png at the end of fit
    dist_timeout: float = 1800.0  # seconds a process waits for the others (e.g. during rank 0's evaluation)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        for name in ("run_dir", "resume"):  # a Path is welcome; the config holds (and saves) its text
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        _check_types(self)
        if self.resume and self.run_dir and Path(self.run_dir).resolve() != Path(self.resume).resolve():
            raise ConfigError(
                f"run_dir: {self.run_dir!r} with resume {self.resume!r}; a resumed run goes on in its own folder: "
                "expected one of them, or the same folder"
            )
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("device", self.device, DEVICES)
        _choice("precision", str(self.precision), PRECISIONS)
        _choice("log_format", self.log_format, LOG_FORMATS)
        _choice("mode", self.mode, MODES)
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError(f"steps/epochs: give exactly one (found steps={self.steps}, epochs={self.epochs})")
        for name in ("steps", "epochs", "batch_size", "accumulate", "max_nonfinite", "step_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
        for name in ("warmup", "eval_every", "checkpoint_every", "log_every", "grad_warn_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {value!r}")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"lr: expected a finite number > 0, got {self.lr!r}")
        for name in ("weight_decay", "vanish_threshold"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ConfigError(f"{name}: expected a finite number >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr: expected a number in [0, lr={self.lr!r}], got {self.min_lr!r}")
        if self.schedule == "step" and not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma: expected a number in (0, 1] for schedule 'step', got {self.gamma!r}")
        if self.schedule == "plateau" and not 0 < self.gamma < 1:
            raise ConfigError(f"gamma: expected a number in (0, 1) for schedule 'plateau', got {self.gamma!r}")
        if not self.explode_threshold > self.vanish_threshold:
            raise ConfigError(
                f"explode_threshold: expected a number > vanish_threshold={self.vanish_threshold!r}, "
                f"got {self.explode_threshold!r}"
            )
        if not self.dist_timeout > 0:
            raise ConfigError(f"dist_timeout: expected a number of seconds > 0, got {self.dist_timeout!r}")
        for name in ("clip_norm", "clip_value"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name}: expected a number > 0 or None, got {value!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience: expected an integer >= 1 or None, got {self.patience!r}")
        if self.schedule == "plateau" and self.warmup:
            raise ConfigError(f"warmup: not supported with schedule 'plateau' (found warmup={self.warmup})")
        self.precision = str(self.precision)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "config") -> TrainConfig:
        """Build from a dict (e.g. ``config.json``'s ``"train"``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown training option(s) {unknown}; expected some of {sorted(known)}")
        return cls(**values)


# The Python types each annotation of TrainConfig accepts (a bool is not a number here).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


def _check_types(config: TrainConfig) -> None:
    """Raise :class:`ConfigError` naming the first field whose value is not of its annotated type."""
    for f in fields(config):
        value = getattr(config, f.name)
        kind, _, optional = str(f.type).partition(" | ")
        if value is None and optional == "None":
            continue
        accepted = _TYPES[kind] + ((int,) if f.name == "precision" else ())  # precision=32 means "32"
        if isinstance(value, bool) != (kind == "bool") or not isinstance(value, accepted):
            expected = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}[kind]
            expected += " or None" if optional == "None" else ""
            raise ConfigError(f"{f.name}: expected {expected}, got {value!r} ({type(value).__name__})")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {list(choices)}, got {value!r}")


def _optional(kind: type):
    """argparse type accepting ``none`` for None."""

    def parse(text: str):
        return None if text.lower() in ("none", "off", "") else kind(text)

    parse.__name__ = kind.__name__
    return parse


# Options a user may change when resuming without it being a different run.
RESUME_OVERRIDABLE = frozenset(
    {"steps", "epochs", "patience", "quiet", "log_format", "tensorboard", "resume", "run_dir", "device"}
    | {"eval_every", "checkpoint_every", "log_every", "plots", "dist_timeout"}
)


def add_train_args(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None) -> None:
    """Add the common training options to ``parser`` (a task's ``train`` verb).

    ``defaults`` gives the task's own defaults (e.g. ``TrainConfig(lr=3e-3, steps=2000)``); they
    show in ``--help``. Read them back with :func:`config_from_args`.
    """
    d = defaults or TrainConfig()
    g = parser.add_argument_group("training")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=d.steps, help="optimizer steps")
    length.add_argument("--epochs", type=int, default=d.epochs, help="passes over the data (instead of --steps)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="examples per micro-step, all processes")
    g.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="torch.optim optimizer")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="weight decay")
    g.add_argument("--momentum", type=float, default=d.momentum, help="--optimizer sgd: momentum")
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="learning-rate schedule")
    g.add_argument("--warmup", type=int, default=d.warmup, help="linear warmup steps")
    g.add_argument("--min-lr", type=float, default=d.min_lr, help="floor of the cosine / linear decay")
    g.add_argument("--step-size", type=int, default=d.step_size, help="--schedule step: steps between lr drops")
    g.add_argument("--gamma", type=float, default=d.gamma, help="--schedule step / plateau: lr factor at a drop")
    g.add_argument("--clip-norm", type=_optional(float), default=d.clip_norm, help="clip global grad norm (none: off)")
    g.add_argument("--clip-value", type=_optional(float), default=d.clip_value, help="clip each gradient (none: off)")
    g.add_argument("--accumulate", type=int, default=d.accumulate, help="micro-steps per optimizer step")
    g.add_argument("--eval-every", type=int, default=d.eval_every, help="evaluate + checkpoint every N steps (0: end)")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="also save `last` every N steps")
    g.add_argument("--log-every", type=int, default=d.log_every, help="log metrics every N steps")
    g.add_argument("--monitor", default=d.monitor, help="evaluation metric that picks `best` and early stopping")
    g.add_argument("--mode", choices=MODES, default=d.mode, help="is a smaller or a larger --monitor better")
    g.add_argument("--patience", type=_optional(int), default=d.patience, help="early-stopping patience in evals")
    g.add_argument("--max-nonfinite", type=int, default=d.max_nonfinite, help="stop after N non-finite steps in a row")
    g.add_argument("--vanish-threshold", type=float, default=d.vanish_threshold, help="warn below this grad norm")
    g.add_argument("--explode-threshold", type=float, default=d.explode_threshold, help="warn above this grad norm")
    g.add_argument("--grad-warn-steps", type=int, default=d.grad_warn_steps, help="vanishing: for N steps in a row")
    g.add_argument("--seed", type=int, default=d.seed, help="random seed")
    g.add_argument("--device", choices=DEVICES, default=d.device, help="where to train")
    g.add_argument("--precision", choices=PRECISIONS, default=d.precision, help="32-bit or bf16 autocast")
    g.add_argument("--run-dir", default=d.run_dir, help="run folder (default runs/<task>/<YYYYmmdd-HHMMSS>)")
    g.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    g.add_argument("--quiet", action="store_true", default=d.quiet, help="no progress bar or log lines")
    g.add_argument("--log-format", choices=LOG_FORMATS, default=d.log_format, help="progress bar or JSON lines")
    g.add_argument("--tensorboard", action="store_true", default=d.tensorboard, help="also write TensorBoard events")
    plots = argparse.BooleanOptionalAction
    g.add_argument("--plots", action=plots, default=d.plots, help="draw plots/*.png at the end of fit")
    g.add_argument("--dist-timeout", type=float, default=d.dist_timeout, help="seconds a torchrun process waits")
    parser.set_defaults(_train_defaults=d)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` given on the command line (after :func:`add_train_args`).

    With ``--resume RUN_DIR`` the run's saved options are the starting point, and only the options
    given replace them: those the ``rnnkit`` command saw (``args._given``, on the command line or
    in ``--config``), or, for a namespace made without it, those whose value is not the default.
    """
    defaults: TrainConfig = getattr(args, "_train_defaults", None) or TrainConfig()
    base = defaults.to_dict()
    given = {k: getattr(args, k) for k in base if hasattr(args, k)}
    named = getattr(args, "_given", None)

    def was_given(k: str) -> bool:
        return k in named if named is not None else given[k] != base[k]

    if given.get("steps") is not None and was_given("steps"):
        given["epochs"] = None  # --steps was given: it replaces a default --epochs
    elif given.get("epochs") is not None and was_given("epochs"):
        given["steps"] = None  # --epochs was given: it replaces a default --steps
    if getattr(args, "resume", None):
        saved = read_saved_train_config(args.resume)
        changed = {k: v for k, v in given.items() if was_given(k)}
        values = {**base, **saved, **changed, "resume": args.resume}
        values["run_dir"] = changed.get("run_dir")  # the saved one may be where the run was before a move
        if "steps" in changed:
            values["epochs"] = None
        elif "epochs" in changed:
            values["steps"] = None
    else:
        values = {**base, **given}
    return TrainConfig.from_dict(values, where="command line")


def read_saved_train_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``"train"`` section of ``RUN_DIR/config.json``."""
    path = Path(run_dir) / "config.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; --resume expects a run folder written by rnnkit") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    train = saved.get("train") if isinstance(saved, dict) else None
    if not isinstance(train, dict):
        found = type(train).__name__
        raise ConfigError(f"{path}: field 'train': expected an object of training options, found {found}")
    return train
