"""`rnnkit forecast train|eval|predict`: time-series forecasting, always next to honest baselines.

A recurrent encoder reads a context window ``(B, C, F)`` (target first, then covariates) and a
head forecasts the next ``H`` steps of the target, all at once (``direct``) or one step at a time
feeding its own forecasts back (``autoregressive``). Outputs are point forecasts, a Gaussian
(mean and scale) or quantiles; the last two give prediction intervals.

Evaluation is walk-forward only: the model is trained on everything before a cut, forecasts the
next block, the cut moves on (a refit, warm-started, every ``refit_every``). The random walk,
seasonal naive, historical mean, drift and a linear AR model forecast exactly the same points,
and :func:`evaluate` reports them side by side with Diebold–Mariano and binomial tests.

From Python::

    from rnnkit.tasks import forecast
    run = forecast.train(forecast.Config(data=forecast.DataConfig(path="prices.csv", target="Close",
                                                                   transform="log-return")))
    print(run.report_text)

Shape legend: ``B`` batch, ``C`` context length, ``F`` input columns, ``H`` horizon, ``K``
forecast origins, ``Q`` outputs per step (1 point, 2 Gaussian, number of quantiles).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import ShuffledBatches
from rnnkit.data.timeseries import (
    FILLS,
    TRANSFORMS,
    Series,
    StandardScaler,
    check_date_format,
    check_length,
    is_differenced,
    levels_from_changes,
    make_windows,
    read_csv_series,
    transform_series,
    walk_forward_folds,
)
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.io import atomic_write_text, pyplot, save_figure
from rnnkit.nn import GRU, LSTM, RNN
from rnnkit.tasks import forecast_baselines as baselines
from rnnkit.tasks import forecast_metrics as metrics
from rnnkit.tasks.common import HelpFormatter, check_resumed_model, resumed_run_config, resumed_section
from rnnkit.train import FitResult, TrainConfig, Trainer, add_train_args, append_report, load_run, read_run_config
from rnnkit.train import config_from_args as train_config_from_args
from rnnkit.train.run import load_weights_into, write_report, write_run_config

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
DECODERS = ("direct", "autoregressive")
OUTPUTS = ("point", "gaussian", "quantile")
FIT_FILE = "fit.json"  # in each fit's folder once the fit has finished: its log and which weights it ended with


class WalkForwardInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a fit; its checkpoint is saved and ``--resume RUN_DIR`` goes on from there."""

    def __init__(self, reason: str, run_dir: Path | None = None) -> None:
        super().__init__(reason)
        self.reason, self.run_dir = reason, run_dir


# ---------------------------------------------------------------------------------------- config
@dataclass
class DataConfig:
    """Which file and columns, and how the series is prepared."""

    path: str | None = None
    date_column: str = "Date"
    target: str = "Close"
    covariates: list[str] = field(default_factory=list)
    transform: str = "none"  # none | diff | log-return (applied to every used column)
    fill: str = "none"  # none (error) | ffill | interpolate | drop: what to do with missing cells
    period: int | None = None  # seasonal period in steps (seasonal naive baseline, MASE scale)
    date_format: str | None = None  # strptime codes of the date column (None: guessed from its first date)

    def validate(self) -> None:
        check_date_format(self.date_format)
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"transform: expected one of {list(TRANSFORMS)}, got {self.transform!r}")
        if self.fill not in FILLS:
            raise ConfigError(f"fill: expected one of {list(FILLS)}, got {self.fill!r}")
        if self.period is not None and self.period < 2:
            raise ConfigError(f"period: expected an integer >= 2 or None, got {self.period!r}")


@dataclass
class ModelConfig:
    """The recurrent encoder and its forecast head."""

    cell: str = "gru"  # lstm | gru | rnn
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    context: int = 60  # steps the encoder reads
    horizon: int = 1  # steps forecast from each origin
    decoder: str = "direct"  # direct (all H at once) | autoregressive (feeds its forecasts back)
    output: str = "point"  # point (MSE) | gaussian (NLL) | quantile (pinball loss)
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])

    def validate(self, n_features: int | None = None) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell: expected one of {list(CELLS)}, got {self.cell!r}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder: expected one of {list(DECODERS)}, got {self.decoder!r}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"output: expected one of {list(OUTPUTS)}, got {self.output!r}")
        for name in ("hidden_size", "num_layers", "context", "horizon"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")
        qs = list(self.quantiles)
        if self.output == "quantile" and (0.5 not in qs or qs != sorted(set(qs)) or not all(0 < q < 1 for q in qs)):
            raise ConfigError(f"quantiles: expected increasing levels in (0, 1) including 0.5, got {qs}")
        if self.decoder == "autoregressive" and n_features not in (None, 1):
            raise ConfigError(
                "decoder: autoregressive feeds its forecasts back as the next input, so it needs the target "
                f"alone (found {n_features - 1} covariates, whose future is unknown); use --decoder direct"
            )


@dataclass
class WalkForwardConfig:
    """Where the test part starts and how often the model is refitted."""

    test_start: str | None = None  # first date forecast in the test part (default: by test_fraction)
    test_fraction: float = 0.2  # share of forecast points in the test part when test_start is None
    refit_every: str = "Y"  # a step count, or a period alias (Y, Q, M, W): refit at each new period
    train_window: int | None = None  # train on at most this many rows before each cut (None: all)
    refit_epochs: int = 2  # epochs of each warm-started refit after the first fold
    ar_max_order: int = 20  # the linear AR baseline's order is chosen by AIC up to this
    interval: float = 0.8  # nominal coverage of prediction intervals (gaussian, and point via residuals)
    val_fraction: float = 0.0  # hold out the latest share of each fit's windows: keep the best epoch on them

    def validate(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction: expected a number in (0, 1), got {self.test_fraction!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction: expected a number in [0, 1), got {self.val_fraction!r}")
        if not 0 < self.interval < 1:
            raise ConfigError(f"interval: expected a number in (0, 1), got {self.interval!r}")
        if self.refit_epochs < 1 or self.ar_max_order < 1:
            raise ConfigError("refit_epochs and ar_max_order: expected integers >= 1")
        if self.train_window is not None and self.train_window < 2:
            raise ConfigError(f"train_window: expected an integer >= 2 or None, got {self.train_window!r}")


def default_train_config() -> TrainConfig:
    """Forecasting's training defaults: ``epochs`` is the first fit's; refits use ``walk.refit_epochs``."""
    return TrainConfig(steps=None, epochs=10, batch_size=64, lr=3e-3, log_every=50)


@dataclass
class Config:
    """Everything a forecasting run needs; saved as the run's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    walk: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    run_dir: str | None = None
    threads: int | None = None  # torch CPU threads (None: torch's default); 1 suits a busy machine

    def validate(self, n_features: int | None = None) -> None:
        if self.train.resume and self.run_dir and Path(self.run_dir).resolve() != Path(self.train.resume).resolve():
            raise ConfigError(
                f"run_dir: {self.run_dir!r} with resume {self.train.resume!r}; a resumed run goes on in its own "
                "folder: expected one of them, or the same folder"
            )
        if self.train.steps is not None:
            raise ConfigError(
                f"steps: a walk-forward run trains by epochs (--epochs for the first fit, --refit-epochs for each "
                f"refit), not steps; got steps={self.train.steps}"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads: expected an integer >= 1 or None, got {self.threads!r}")
        self.train.validate()
        self.data.validate()
        self.model.validate(n_features)
        self.walk.validate()

    def task_sections(self) -> dict:
        """The sections ``config.json`` holds besides the trainer's ``train``."""
        sections = ("data", "model", "walk")
        return {k: dataclasses.asdict(getattr(self, k)) for k in sections} | {"forecast": {"threads": self.threads}}

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """From a run's ``config.json`` (sections ``data``, ``model``, ``walk``, ``forecast``, ``train``)."""
        return cls(
            data=DataConfig(**d["data"]),
            model=ModelConfig(**d["model"]),
            walk=WalkForwardConfig(**d["walk"]),
            train=TrainConfig.from_dict(d["train"]),
            run_dir=d["train"].get("run_dir"),
            threads=d.get("forecast", {}).get("threads"),
        )


# ----------------------------------------------------------------------------------------- model
class Forecaster(nn.Module):
    """Recurrent encoder → forecast head. ``x: (B, C, F)`` → ``(B, H, Q)`` in scaled units."""

    def __init__(self, n_features: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.outputs_per_step = {"point": 1, "gaussian": 2, "quantile": len(cfg.quantiles)}[cfg.output]
        self.rnn = CELLS[cfg.cell](n_features, cfg.hidden_size, num_layers=cfg.num_layers, dropout=cfg.dropout)
        steps_at_once = cfg.horizon if cfg.decoder == "direct" else 1
        self.head = nn.Linear(cfg.hidden_size, steps_at_once * self.outputs_per_step)

    def forward(self, x: Tensor) -> Tensor:
        out, state = self.rnn(x)  # (B, C, hidden)
        first = self.head(out[:, -1])  # (B, H * Q) or (B, Q)
        if self.cfg.decoder == "direct":
            return first.view(x.shape[0], self.cfg.horizon, self.outputs_per_step)
        return self._decode(first, state)

    def _decode(self, first: Tensor, state) -> Tensor:
        """Autoregressive: feed each step's point forecast back as the next input (target only)."""
        steps = [first]  # each (B, Q)
        for _ in range(self.cfg.horizon - 1):
            fed_back = point_forecast(steps[-1].unsqueeze(1), self.cfg)  # (B, 1)
            out, state = self.rnn(fed_back.unsqueeze(-1), state)  # (B, 1, hidden)
            steps.append(self.head(out[:, -1]))
        return torch.stack(steps, dim=1)  # (B, H, Q)


def point_forecast(output: Tensor, cfg: ModelConfig) -> Tensor:
    """The point forecast in ``output: (B, H, Q)``: the value, the Gaussian mean or the median. ``(B, H)``."""
    if cfg.output == "quantile":
        return output[..., list(cfg.quantiles).index(0.5)]
    return output[..., 0]


def gaussian_scale(output: Tensor) -> Tensor:
    """The Gaussian's standard deviation from ``output: (B, H, 2)``, kept positive. ``(B, H)``."""
    return F.softplus(output[..., 1]) + 1e-3


def forecast_loss(output: Tensor, target: Tensor, cfg: ModelConfig) -> Tensor:
    """MSE, Gaussian negative log-likelihood or pinball loss of ``output: (B, H, Q)`` for ``target: (B, H)``."""
    if cfg.output == "point":
        return F.mse_loss(output[..., 0], target)
    if cfg.output == "gaussian":
        return F.gaussian_nll_loss(output[..., 0], target, gaussian_scale(output) ** 2, full=True)
    levels = torch.tensor(cfg.quantiles, dtype=output.dtype)  # (Q,)
    err = target.unsqueeze(-1) - output  # (B, H, Q)
    return torch.maximum(levels * err, (levels - 1) * err).mean()


@torch.no_grad()
def predict_windows(
    model: Forecaster, X: np.ndarray, interval: float, batch_size: int = 1024
) -> tuple[np.ndarray, ...]:
    """Point forecast and interval bounds for windows ``X: (K, C, F)``, scaled units. Each ``(K, H)``.

    Point models have no interval of their own (NaN bounds); quantile models use their outermost
    quantiles, Gaussian ones ``mean ± z * scale`` for the ``interval`` coverage.
    """
    model.eval()
    device = next(model.parameters()).device
    outs = [
        model(torch.as_tensor(X[i : i + batch_size], dtype=torch.float32, device=device)).cpu()
        for i in range(0, len(X), batch_size)
    ]
    output = torch.cat(outs) if outs else torch.zeros(0, model.cfg.horizon, model.outputs_per_step)  # (K, H, Q)
    point = point_forecast(output, model.cfg)
    if model.cfg.output == "gaussian":
        half = statistics.NormalDist().inv_cdf(0.5 + interval / 2) * gaussian_scale(output)
        lower, upper = point - half, point + half
    elif model.cfg.output == "quantile":
        ordered = output.sort(dim=-1).values  # no crossing quantiles
        lower, upper = ordered[..., 0], ordered[..., -1]
    else:
        lower = upper = torch.full_like(point, float("nan"))
    return point.numpy().astype(np.float64), lower.numpy().astype(np.float64), upper.numpy().astype(np.float64)


# -------------------------------------------------------------------------------------- training
def fit_windows(
    model: Forecaster,
    X: np.ndarray,
    Y: np.ndarray,
    train: TrainConfig,
    run_dir: Path,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    resume: bool = False,
) -> FitResult:
    """Train on windows ``X: (K, C, F)`` → ``Y: (K, H)`` (scaled) with :class:`rnnkit.train.Trainer`.

    ``train`` says how long (``epochs``) and how; the trainer writes its run folder in ``run_dir``
    (``resume``: it goes on from that folder's last checkpoint). With ``validation`` windows the
    loss on them is evaluated after every epoch (``patience`` stops early) and the model ends with
    the weights of the best epoch. A fit stopped by SIGINT/SIGTERM raises
    :class:`WalkForwardInterrupted` (its checkpoint saved).
    """
    Xt = torch.as_tensor(X, dtype=torch.float32)  # (K, C, F)
    Yt = torch.as_tensor(Y, dtype=torch.float32)  # (K, H)
    batch_size = min(train.batch_size, len(Xt))
    evaluate = None
    if validation is not None:
        Xv = torch.as_tensor(validation[0], dtype=torch.float32)  # (V, C, F)
        Yv = torch.as_tensor(validation[1], dtype=torch.float32)  # (V, H)

        def evaluate(net: nn.Module) -> dict[str, float]:
            device = next(net.parameters()).device
            return {"loss": float(forecast_loss(net(Xv.to(device)), Yv.to(device), model.cfg))}

    batches = ShuffledBatches(len(Xt), batch_size, lambda idx: (Xt[idx], Yt[idx]), seed=train.seed, drop_last=False)

    def train_step(net: nn.Module, batch: tuple[Tensor, Tensor], _state) -> Tensor:
        x, y = batch
        return forecast_loss(net(x), y, model.cfg)

    config = dataclasses.replace(
        train, batch_size=batch_size, run_dir=None, resume=str(run_dir) if resume else None, monitor="loss", mode="min"
    )
    trainer = Trainer(model, config, train_step=train_step, evaluate=evaluate, task="forecast", run_dir=run_dir)
    result = trainer.fit(batches)
    if result.stop_reason.startswith("interrupted"):
        raise WalkForwardInterrupted(result.stop_reason)
    if validation is not None and result.best_step is not None:
        _, best = load_run(result.run_dir, which="best")
        model.load_state_dict(best)
    return result


# ---------------------------------------------------------------------------------- walk-forward
@dataclass
class WalkForwardResult:
    """Every forecast of the test part, the RNN's and each baseline's on the same points.

    ``origin_dates: (K,)`` the last observed date of each window; ``target_dates``, ``actual`` and
    each entry of ``forecasts`` are ``(K, H)``; ``lower``/``upper`` the RNN's interval (NaN for
    point models); ``fold: (K,)`` the refit that made each forecast.
    """

    origin_dates: pd.DatetimeIndex
    target_dates: np.ndarray
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    lower: np.ndarray
    upper: np.ndarray
    fold: np.ndarray
    fit_log: list[dict]


def date_text(when: pd.Timestamp) -> str:
    """``2020-01-31`` for a date, the full timestamp when it has a time of day."""
    return str(when.date()) if when == when.normalize() else str(when)


def resolve_test_start(dates: pd.DatetimeIndex, walk: WalkForwardConfig) -> int:
    """The index of the first forecast step: the first date on or after ``test_start``, or by fraction."""
    if walk.test_start is None:
        return round(len(dates) * (1 - walk.test_fraction))
    try:
        when = pd.Timestamp(walk.test_start)
    except ValueError:
        raise ConfigError(f"test_start: expected a date such as 2000-01-01, got {walk.test_start!r}") from None
    if when.tzinfo is not None:  # the series' dates are naive UTC (see read_csv_series)
        when = when.tz_convert(None)
    index = int(dates.searchsorted(when))
    if index >= len(dates):
        raise ConfigError(f"test_start: {walk.test_start} is after the last date of the series ({dates[-1].date()})")
    return index


def baseline_forecasts(z: np.ndarray, origins: np.ndarray, cfg: Config) -> dict[str, np.ndarray]:
    """Random walk, historical mean, drift (levels only) and seasonal naive (with a period): ``(K, H)`` each."""
    H, differenced = cfg.model.horizon, is_differenced(cfg.data.transform)
    out = {
        "random_walk": baselines.random_walk(z, origins, H, differenced),
        "mean": baselines.historical_mean(z, origins, H),
    }
    if not differenced:  # on changes, drift of the level is the historical mean
        out["drift"] = baselines.drift(z, origins, H)
    if cfg.data.period:
        out["seasonal_naive"] = baselines.seasonal_naive(z, origins, H, cfg.data.period)
    return out


def plan_folds(series: Series, cfg: Config) -> tuple[int, list]:
    """The test part's first index and the walk-forward folds, each checked to have training windows.

    Everything here is checked before a file is written.
    """
    C, H = cfg.model.context, cfg.model.horizon
    test_start = resolve_test_start(series.dates, cfg.walk)
    folds = walk_forward_folds(series.dates, C, H, test_start, cfg.walk.refit_every, cfg.walk.train_window)
    if not folds:
        raise ConfigError(f"the test part from step {test_start} has no origin with {H} observed steps after it")
    if cfg.data.period is not None and cfg.data.period >= test_start:
        raise ConfigError(
            f"period: {cfg.data.period} steps, but the part before the test has only {test_start}; "
            "expected a period shorter than that"
        )
    for fold in folds:
        split_validation(fold.train_origins, cfg.walk.val_fraction, H, fold.cut)
    if ar_order_limit(folds, cfg) < 1:
        raise ConfigError(
            f"the first fold trains on {folds[0].cut - folds[0].train_start} steps, too short for the linear AR "
            f"baseline at horizon {H}: move test_start later or give a longer train_window"
        )
    return test_start, folds


def ar_order_limit(folds: list, cfg: Config) -> int:
    """The largest linear AR order every fold's training part can fit (``walk.ar_max_order`` at most).

    Order ``p`` on ``L`` training steps has ``L - H - p + 1`` direct ``H``-step equations for
    ``p + 1`` coefficients; at least one more is asked for, so ``p <= (L - H - 1) / 2``.
    """
    shortest = min(fold.cut - fold.train_start for fold in folds)
    return min(cfg.walk.ar_max_order, (shortest - cfg.model.horizon - 1) // 2)


def split_validation(origins: np.ndarray, val_fraction: float, horizon: int, cut: int) -> tuple[np.ndarray, ...]:
    """``(train, validation)`` origins of one fit: the latest ``val_fraction`` of ``origins`` held out.

    The ``horizon - 1`` training origins just before the held-out ones are dropped: their targets
    would be the first validation targets. A :class:`ConfigError` when no training origin is left.
    """
    n_val = int(len(origins) * val_fraction)
    n_train = len(origins) - n_val - (horizon - 1 if n_val else 0)
    if n_train < 1:
        raise ConfigError(
            f"a fit before step {cut} has {len(origins)} windows, leaving no training window "
            f"(validation {n_val}, horizon {horizon}): lower context/horizon/val_fraction or move test_start later"
        )
    return origins[:n_train], origins[len(origins) - n_val :]


def walk_forward(
    series: Series, cfg: Config, run_dir: Path, folds: list, resume: bool = False
) -> tuple[WalkForwardResult, Forecaster]:
    """Refit (warm-started) at each cut, forecast the block after it; baselines on the same points.

    ``series`` is already transformed; ``folds`` from :func:`plan_folds`. Each fold's scaler is
    fitted on its own training rows (not its validation rows) and forecasts its test block; each
    fold's training run folder is ``run_dir/folds/NN``.
    ``resume``: folds that finished are restored from their folders, an interrupted one goes on.
    """
    C, H = cfg.model.context, cfg.model.horizon
    torch.manual_seed(cfg.train.seed)
    model = Forecaster(series.values.shape[1], cfg.model)
    z = series.target
    order = baselines.select_ar_order(z[folds[0].train_start : folds[0].cut], ar_order_limit(folds, cfg))
    pieces, fit_log = [], []
    for i, fold in enumerate(folds):
        epochs = cfg.train.epochs if i == 0 else cfg.walk.refit_epochs
        plan = FitPlan(
            fold.train_start, fold.cut, fold.train_origins, epochs, cfg.train.seed + i, run_dir / "folds" / f"{i:02d}"
        )
        log = _fit_or_restore(model, series.values, plan, cfg, resume)
        fit_log.append({"fold": i, "cut_date": date_text(series.dates[fold.cut]), **log})
        scaler = StandardScaler.from_dict(log["scaler"])  # the one the fit trained with
        X, _ = make_windows(scaler.transform(series.values), fold.test_origins, C, H)
        point, lower, upper = (scaler.inverse_target(a) for a in predict_windows(model, X, cfg.walk.interval))
        ar = baselines.LinearAR(order, H).fit(z, fold.train_start, fold.cut)
        pieces.append((fold.test_origins, point, lower, upper, ar.predict(z, fold.test_origins), np.full(len(X), i)))
    origins = np.concatenate([p[0] for p in pieces])
    forecasts = {"rnn": np.concatenate([p[1] for p in pieces]), **baseline_forecasts(z, origins, cfg)}
    forecasts["linear_ar"] = np.concatenate([p[4] for p in pieces])
    steps = origins[:, None] + np.arange(1, H + 1)[None, :]  # (K, H)
    result = WalkForwardResult(
        origin_dates=series.dates[origins],
        target_dates=series.dates.to_numpy()[steps],
        actual=z[steps],
        forecasts=forecasts,
        lower=np.concatenate([p[2] for p in pieces]),
        upper=np.concatenate([p[3] for p in pieces]),
        fold=np.concatenate([p[5] for p in pieces]),
        fit_log=[*fit_log, {"ar_order": order}],
    )
    return result, model


@dataclass
class FitPlan:
    """One fit: train on ``origins`` (targets before ``cut``; the latest ``walk.val_fraction`` of
    them held out for validation), the scaler from rows ``start`` up to the last training target."""

    start: int
    cut: int
    origins: np.ndarray
    epochs: int
    seed: int
    run_dir: Path


def _fit_or_restore(model: Forecaster, values: np.ndarray, plan: FitPlan, cfg: Config, resume: bool) -> dict:
    """:func:`_fit_fold`, or on a resumed run: a fit that finished restored from its folder (weights
    and log), one that was interrupted continued from its last checkpoint. Returns the log entry."""
    done = plan.run_dir / FIT_FILE
    if resume and done.exists():
        saved = json.loads(done.read_text())
        if saved.get("cut") == plan.cut and saved.get("origins") == len(plan.origins):
            _, weights = load_run(plan.run_dir, which=saved["weights"])
            load_weights_into(model, weights, plan.run_dir)
            return saved["log"]
    go_on = resume and (plan.run_dir / "checkpoints" / "last").is_dir()
    log, weights = _fit_fold(model, values, plan, cfg, resume=go_on)
    record = {"cut": plan.cut, "origins": len(plan.origins), "weights": weights, "log": log}
    atomic_write_text(done, json.dumps(record, indent=2))
    return log


def _fit_fold(model: Forecaster, values: np.ndarray, plan: FitPlan, cfg: Config, resume: bool) -> tuple[dict, str]:
    """Scale with the plan's training rows only (up to the last training window's last target, so
    not the validation rows), build its windows, train. Returns a log entry (``scaler`` included:
    the forecasts use it) and the checkpoint the model ended with (``best`` with validation
    windows, else ``last``)."""
    C, H = cfg.model.context, cfg.model.horizon
    train_origins, val_origins = split_validation(plan.origins, cfg.walk.val_fraction, H, plan.cut)
    scaler = StandardScaler.fit(values[plan.start : int(train_origins[-1]) + H + 1])  # rows of X and Y only
    X, Y = make_windows(scaler.transform(values), train_origins, C, H)
    validation = make_windows(scaler.transform(values), val_origins, C, H) if len(val_origins) else None
    train = dataclasses.replace(cfg.train, steps=None, epochs=plan.epochs, seed=plan.seed)
    fit = fit_windows(model, X, Y, train, plan.run_dir, validation, resume)
    log = {
        "train_windows": len(train_origins),
        "val_windows": len(val_origins),
        "best_val_loss": fit.best_metric,
        "best_step": fit.best_step,
        "epochs": plan.epochs,
        "steps": fit.steps,
        "train_loss": fit.train_loss,
        "scaler": scaler.to_dict(),
        "seconds": fit.wall_seconds,
    }
    return log, "best" if validation is not None and fit.best_step is not None else "last"


# ------------------------------------------------------------------------------------ evaluation
def score_table(result: WalkForwardResult, scale: float, differenced: bool) -> dict[str, dict]:
    """Every model's figures on the shared forecast points; the RNN's interval coverage when it has one."""
    rw = result.forecasts["random_walk"]
    table = {}
    for name, forecast in result.forecasts.items():
        reference = None if name == "random_walk" else rw
        table[name] = metrics.score(result.actual, forecast, scale, differenced, reference).to_dict()
    if not np.isnan(result.lower).all():
        table["rnn"]["interval_coverage"] = metrics.interval_coverage(result.actual, result.lower, result.upper)
    return table


def verdict(table: dict[str, dict], differenced: bool, alpha: float = 0.05) -> str:
    """In words: did the RNN beat the random walk (and the best baseline), and is it significant?"""
    rnn, rw = table["rnn"], table["random_walk"]
    change = 100 * (rnn["rmse"] / rw["rmse"] - 1)
    p = rnn["dm_pvalue_vs_random_walk"]
    word = "lower" if change < 0 else "higher"
    sig = "significant" if p < alpha else "not significant"
    lines = [
        f"The RNN's RMSE is {abs(change):.2f}% {word} than the random walk's; the Diebold–Mariano test "
        f"gives p = {p:.3g}, {sig} at the {alpha:.0%} level."
    ]
    if change < 0 and p < alpha:
        lines.append("The RNN beats the naive forecast, significantly.")
    elif change < 0:
        lines.append("The RNN does not beat the naive forecast significantly: the difference could be chance.")
    else:
        lines.append("The RNN does not beat the naive forecast.")
    baseline_names = [n for n in table if n != "rnn"]
    best = min(baseline_names, key=lambda n: table[n]["mase"])
    beats = "beats" if rnn["mase"] < table[best]["mase"] else "does not beat"
    lines.append(
        f"By MASE the best baseline is {best} ({table[best]['mase']:.4f}); the RNN ({rnn['mase']:.4f}) {beats} it."
    )
    if differenced and rnn["direction_accuracy"] is not None:
        lines.append(
            f"The RNN calls the direction of the {len(rnn['mae_by_horizon'])}-step change right "
            f"{rnn['direction_accuracy']:.1%} of the time (binomial test vs 50%: p = {rnn['direction_pvalue']:.3g})."
        )
        mean = table["mean"]
        if mean["direction_accuracy"] is not None:
            lines.append(f"Always forecasting the historical mean change does {mean['direction_accuracy']:.1%}.")
    return " ".join(lines)


def format_table(table: dict[str, dict]) -> str:
    """A Markdown table: one row per model, the same columns for all."""
    cols = [
        "mae",
        "rmse",
        "mase",
        "smape_percent",
        "direction_accuracy",
        "direction_pvalue",
        "dm_stat_vs_random_walk",
        "dm_pvalue_vs_random_walk",
    ]
    cols = [c for c in cols if any(row.get(c) is not None for row in table.values())]
    head = "| model | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"

    def cell(v) -> str:
        return "–" if v is None else f"{v:.4g}"

    return head + "".join(
        f"| {name} | " + " | ".join(cell(row.get(c)) for c in cols) + " |\n" for name, row in table.items()
    )


def result_to_frame(result: WalkForwardResult) -> pd.DataFrame:
    """Long format, one row per origin and step: the file ``forecasts.csv``."""
    K, H = result.actual.shape
    frame = pd.DataFrame(
        {
            "origin_date": np.repeat(result.origin_dates.to_numpy(), H),
            "fold": np.repeat(result.fold, H),
            "step": np.tile(np.arange(1, H + 1), K),
            "target_date": result.target_dates.reshape(-1),
            "actual": result.actual.reshape(-1),
            "rnn_lower": result.lower.reshape(-1),
            "rnn_upper": result.upper.reshape(-1),
        }
    )
    for name, forecast in result.forecasts.items():
        frame[name] = forecast.reshape(-1)
    return frame


def result_from_frame(frame: pd.DataFrame, horizon: int) -> WalkForwardResult:
    """Read ``forecasts.csv`` back (the inverse of :func:`result_to_frame`)."""
    fixed = {"origin_date", "fold", "step", "target_date", "actual", "rnn_lower", "rnn_upper"}

    def grid(col: str) -> np.ndarray:
        return frame[col].to_numpy().reshape(-1, horizon)

    return WalkForwardResult(
        origin_dates=pd.DatetimeIndex(pd.to_datetime(frame["origin_date"].to_numpy()[::horizon])),
        target_dates=pd.to_datetime(frame["target_date"]).to_numpy().reshape(-1, horizon),
        actual=grid("actual"),
        forecasts={c: grid(c) for c in frame.columns if c not in fixed},
        lower=grid("rnn_lower"),
        upper=grid("rnn_upper"),
        fold=grid("fold")[:, 0],
        fit_log=[],
    )


# ------------------------------------------------------------------------------------ run folder
@dataclass
class Run:
    """A finished training run: its folder, walk-forward result, score table and report."""

    run_dir: Path
    result: WalkForwardResult
    table: dict[str, dict]
    report_text: str


def load_series(data: DataConfig, path: str | None = None) -> tuple[Series, Series]:
    """Read the CSV named by ``data`` (or ``path``) and apply the transform: ``(levels, transformed)``."""
    source = path or data.path
    if not source:
        raise ConfigError("data.path: no CSV file given (--data FILE)")
    levels = read_csv_series(source, data.date_column, data.target, data.covariates, data.fill, data.date_format)
    return levels, transform_series(levels, data.transform)


def default_run_dir() -> Path:
    """``runs/forecast/<YYYYmmdd-HHMMSS>`` (not created here)."""
    return Path("runs") / "forecast" / time.strftime("%Y%m%d-%H%M%S")


def train(cfg: Config, series: tuple[Series, Series] | None = None) -> Run:
    """Walk-forward train and evaluate, refit on all data, and write the run folder.

    ``series`` (levels, transformed) replaces reading ``cfg.data.path`` (e.g. a statsmodels dataset).
    Everything is validated before any file is written. With ``cfg.train.resume`` (a run folder
    of the same options) the fits that finished are restored and the interrupted one goes on
    from its last checkpoint. SIGINT/SIGTERM raise :class:`WalkForwardInterrupted`.
    """
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.train.resume:
        check_resumed_run(cfg)
    _, z = series or load_series(cfg.data)
    cfg.validate(n_features=z.values.shape[1])
    check_length(z, cfg.model.context, cfg.model.horizon)
    test_start, folds = plan_folds(z, cfg)
    run_dir = Path(cfg.train.resume or cfg.run_dir or cfg.train.run_dir or default_run_dir())
    start_run(run_dir, cfg)
    began = time.perf_counter()
    try:
        result, model = walk_forward(z, cfg, run_dir, folds, resume=bool(cfg.train.resume))
        final = _final_refit(model, z, cfg, run_dir)
    except WalkForwardInterrupted as e:
        raise WalkForwardInterrupted(e.reason, run_dir) from None
    differenced = is_differenced(cfg.data.transform)
    scale = metrics.mase_scale(z.target[:test_start], cfg.data.period or 1)
    table = score_table(result, scale, differenced)
    state = {
        "columns": z.columns,
        "transform": cfg.data.transform,
        "scaler": final["scaler"].to_dict(),
        "last_date": date_text(z.dates[-1]),
        "test_start_date": date_text(z.dates[test_start]),
        "mase_scale": scale,
        "residual_quantiles": _residual_quantiles(result, cfg.walk.interval),
        "fit_log": [*result.fit_log, final["log"]],
        "wall_seconds": time.perf_counter() - began,
    }
    report_text = write_run(run_dir, cfg, result, table, state)
    return Run(run_dir, result, table, report_text)


def check_resumed_run(cfg: Config) -> None:
    """A :class:`ConfigError` unless ``cfg.train.resume`` is a forecast run with the same model,
    walk-forward and data options (the data file may have moved): its finished fits depend on them."""
    run = cfg.train.resume
    saved = resumed_run_config(run, "forecast")
    check_resumed_model(saved, cfg.model, run)
    given = {"walk": dataclasses.asdict(cfg.walk), "data": {**dataclasses.asdict(cfg.data), "path": None}}
    found = {"walk": saved.get("walk"), "data": {**(saved.get("data") or {}), "path": None}}
    for key in ("walk", "data"):
        if found[key] != given[key]:
            raise ConfigError(
                f"resume: {run} was trained with the {key} options {saved.get(key)}; a resumed walk-forward keeps "
                f"them, got {dataclasses.asdict(getattr(cfg, key))}"
            )


def start_run(run_dir: Path, cfg: Config) -> None:
    """Write the run's ``config.json`` (the options as given: what reruns or resumes the run).

    A new run in a folder that holds an earlier forecast run first removes that run's fits and
    config; a folder holding ``folds/`` or ``final/`` of anything else is a :class:`ConfigError`
    (nothing of it is removed).
    """
    held = [name for name in ("config.json", "folds", "final") if (run_dir / name).exists()]
    if not cfg.train.resume and held:
        earlier = (run_dir / "config.json").is_file() and read_run_config(run_dir).get("task") == "forecast"
        if not earlier:
            raise ConfigError(
                f"run_dir: {run_dir} holds {held} of something other than a forecast run; "
                "expected an empty folder, or one of an earlier forecast run (whose fits a new run replaces)"
            )
        print(
            f"warning: {run_dir} holds an earlier run; starting a new one there (use --resume to continue it)",
            file=sys.stderr,
        )
        for name in ("folds", "final"):
            shutil.rmtree(run_dir / name, ignore_errors=True)
        (run_dir / "config.json").unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    train = {**cfg.train.to_dict(), "resume": None, "run_dir": str(run_dir)}
    write_run_config(run_dir, "forecast", train, cfg.task_sections(), resumed=bool(cfg.train.resume))


def _final_refit(model: Forecaster, z: Series, cfg: Config, run_dir: Path) -> dict:
    """Warm-started refit on every complete window, so ``predict`` uses all the data; its scaler.

    This fit's own run folder (``config.json``, ``checkpoints/``, ``report.md``) is ``run_dir/final``.
    """
    n, C, H = len(z), cfg.model.context, cfg.model.horizon
    start = 0 if cfg.walk.train_window is None else max(0, n - cfg.walk.train_window)
    origins = np.arange(start + C - 1, n - H)
    plan = FitPlan(start, n, origins, cfg.walk.refit_epochs, cfg.train.seed + 10_000, run_dir / "final")
    log = _fit_or_restore(model, z.values, plan, cfg, bool(cfg.train.resume))
    return {"scaler": StandardScaler.from_dict(log["scaler"]), "log": {"fold": "final", **log}}


def _residual_quantiles(result: WalkForwardResult, interval: float) -> dict[str, list[float]]:
    """Per-step quantiles of walk-forward errors (actual - forecast): intervals for point models."""
    errors = result.actual - result.forecasts["rnn"]  # (K, H)
    lo, hi = 0.5 - interval / 2, 0.5 + interval / 2
    return {"lower": np.quantile(errors, lo, axis=0).tolist(), "upper": np.quantile(errors, hi, axis=0).tolist()}


def write_run(run_dir: Path, cfg: Config, result: WalkForwardResult, table: dict, state: dict) -> str:
    """Write the task's files into the run folder; returns the report's walk-forward section.

    ``state.json`` (scaler, transform, interval residuals), ``forecasts.csv`` (every walk-forward
    forecast), ``walk_forward.json`` (the table), ``walk_forward.jsonl`` (one line per fit),
    ``plots/forecast.png``, ``plots/error_by_horizon.png`` and ``report.md``.
    """
    atomic_write_text(run_dir / "state.json", json.dumps(state, indent=2))
    atomic_write_text(run_dir / "forecasts.csv", result_to_frame(result).to_csv(index=False))
    atomic_write_text(run_dir / "walk_forward.jsonl", "".join(json.dumps(entry) + "\n" for entry in state["fit_log"]))
    atomic_write_text(run_dir / "walk_forward.json", json.dumps(table, indent=2))
    plot_run(run_dir / "plots", result, cfg)
    text = report(cfg, table, state, run_dir)
    saved = read_run_config(run_dir)
    figures = {"fits": len(state["fit_log"]) - 1, "forecast origins": len(result.actual)}
    figures["wall seconds (this session)"] = round(state["wall_seconds"], 1)
    write_report(run_dir, "forecast: walk-forward report", [saved["command"], *saved.get("resumed", [])], figures, [])
    append_report(
        run_dir, text + "\n![forecast](plots/forecast.png)\n![error by horizon](plots/error_by_horizon.png)\n"
    )
    return text


def report(cfg: Config, table: dict, state: dict, run_dir: Path) -> str:
    """``report.md``: what was forecast, the walk-forward table, and the verdict in words."""
    differenced = is_differenced(cfg.data.transform)
    m = cfg.model
    return (
        f"## Walk-forward evaluation ({run_dir})\n\n"
        f"Data: `{cfg.data.path}`, target `{cfg.data.target}` ({cfg.data.transform}), "
        f"covariates {cfg.data.covariates or 'none'}.\n"
        f"Model: {m.cell.upper()} {m.num_layers}x{m.hidden_size}, context {m.context}, horizon {m.horizon}, "
        f"{m.decoder} decoder, {m.output} output.\n"
        f"Walk-forward: test from {state['test_start_date']}, refit every {cfg.walk.refit_every} "
        f"({cfg.train.epochs} epochs first, {cfg.walk.refit_epochs} per refit, warm-started); "
        f"linear AR order {state['fit_log'][-2].get('ar_order')} (AIC). MASE scale {state['mase_scale']:.4g}.\n\n"
        + format_table(table)
        + "\n"
        + verdict(table, differenced)
        + "\n\nRerun: `rnnkit forecast eval --run "
        + str(run_dir)
        + "`\n"
    )


def plot_run(plots: Path, result: WalkForwardResult, cfg: Config, last: int = 500) -> None:
    """``forecast.png``: one-step forecasts vs actual with the interval (the last ``last`` points);
    ``error_by_horizon.png``: every model's MAE at each horizon step."""
    plt = pyplot()

    plots.mkdir(parents=True, exist_ok=True)
    dates = result.target_dates[-last:, 0]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(dates, result.actual[-last:, 0], color="black", lw=0.8, label="actual")
    ax.plot(dates, result.forecasts["rnn"][-last:, 0], color="tab:blue", lw=0.8, label=f"{cfg.model.cell} (1 step)")
    if not np.isnan(result.lower).all():
        ax.fill_between(
            dates, result.lower[-last:, 0], result.upper[-last:, 0], color="tab:blue", alpha=0.2, label="interval"
        )
    ax.set_title(f"{cfg.data.target} ({cfg.data.transform}): walk-forward one-step forecasts")
    ax.legend()
    save_figure(fig, plots / "forecast.png", dpi=100, bbox_inches="tight")
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = np.arange(1, result.actual.shape[1] + 1)
    for name, forecast in result.forecasts.items():
        ax.plot(steps, np.abs(forecast - result.actual).mean(axis=0), marker="o", label=name)
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MAE")
    ax.legend()
    save_figure(fig, plots / "error_by_horizon.png", dpi=100, bbox_inches="tight")


# ------------------------------------------------------------------------------- eval and predict
def read_run(run_dir: str | os.PathLike) -> tuple[Config, dict]:
    """The config and state of a run folder, or :class:`CheckpointError` saying what is missing."""
    run = Path(run_dir)
    saved = read_run_config(run)
    if saved.get("task") != "forecast":
        raise CheckpointError(f"{run}: a {saved.get('task')!r} run, expected a `rnnkit forecast train` run")
    missing = [key for key in ("data", "model", "walk") if key not in saved]
    if missing:
        raise CheckpointError(
            f"{run}: config.json has no {missing} section; expected the folder of a `rnnkit forecast train` run "
            "(not one of its folds/ or final/)"
        )
    try:
        cfg = Config.from_dict(saved)
        state = json.loads((run / "state.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{run}: state.json missing; the run did not finish (continue it with --resume {run})"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{run}: config.json or state.json is damaged ({e})") from None
    return cfg, state


def evaluate(run_dir: str | os.PathLike) -> tuple[dict[str, dict], str]:
    """The walk-forward table of a run, recomputed from its ``forecasts.csv``, and the verdict."""
    cfg, state = read_run(run_dir)
    path = Path(run_dir) / "forecasts.csv"
    if not path.exists():
        raise CheckpointError(f"{path}: missing; the run did not finish")
    result = result_from_frame(pd.read_csv(path), cfg.model.horizon)
    differenced = is_differenced(cfg.data.transform)
    table = score_table(result, state["mase_scale"], differenced)
    return table, format_table(table) + "\n" + verdict(table, differenced)


def load_model(run_dir: str | os.PathLike, cfg: Config, n_features: int) -> Forecaster:
    """The run's final model: the last weights of its refit on all data, ``final/checkpoints/last``
    (safetensors, no pickle)."""
    final = Path(run_dir) / "final"
    _, weights = load_run(final, which="last")
    model = Forecaster(n_features, cfg.model)
    load_weights_into(model, weights, final)
    return model


def predict(run_dir: str | os.PathLike, data_path: str | None = None) -> pd.DataFrame:
    """The next ``H`` steps after the end of ``data_path`` (default: the training file), with intervals.

    Columns: ``step``, ``date`` (when the dates have a regular frequency), ``forecast``, ``lower``,
    ``upper`` in the modelled units and, for differenced transforms, the implied ``level``.
    """
    cfg, state = read_run(run_dir)
    levels, z = load_series(cfg.data, data_path)
    check_length(z, cfg.model.context, 0)
    model = load_model(run_dir, cfg, z.values.shape[1])
    scaler = StandardScaler.from_dict(state["scaler"])
    X, _ = make_windows(scaler.transform(z.values), np.array([len(z) - 1]), cfg.model.context, cfg.model.horizon)
    point, lower, upper = (scaler.inverse_target(a)[0] for a in predict_windows(model, X, cfg.walk.interval))
    if cfg.model.output == "point":
        lower = point + np.asarray(state["residual_quantiles"]["lower"])
        upper = point + np.asarray(state["residual_quantiles"]["upper"])
    H = cfg.model.horizon
    frame = pd.DataFrame(
        {
            "step": np.arange(1, H + 1),
            "date": _future_dates(z.dates, H),
            "forecast": point,
            "lower": lower,
            "upper": upper,
        }
    )
    if is_differenced(cfg.data.transform):
        frame["level"] = levels_from_changes(levels.target[-1], point, cfg.data.transform)
    return frame


def _future_dates(dates: pd.DatetimeIndex, horizon: int) -> list[str]:
    """The next ``horizon`` dates when the series has a regular frequency, business days for a
    trading calendar (weekdays with holidays missing: the next holidays are not known); empty
    strings otherwise."""
    if len(dates) < 3:
        return [""] * horizon
    tail = dates[-min(len(dates), 50) :]
    with warnings.catch_warnings():  # pandas 3 warns that infer_freq will return an offset
        warnings.simplefilter("ignore", getattr(pd.errors, "Pandas4Warning", FutureWarning))
        freq = pd.infer_freq(tail)
    if freq is None and _trading_days(tail):
        freq = "B"
    if freq is None:
        return [""] * horizon
    return [date_text(d) for d in pd.date_range(dates[-1], periods=horizon + 1, freq=freq)[1:]]


# ------------------------------------------------------------------------------------------- CLI
def _trading_days(dates: pd.DatetimeIndex) -> bool:
    """Midnight dates on weekdays only, at most a week apart: a market's calendar."""
    gaps = np.diff(dates.to_numpy()) / np.timedelta64(1, "D")
    return bool((dates == dates.normalize()).all() and (dates.day_of_week < 5).all() and gaps.max() <= 7)


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` the ``train`` verb's options describe; with ``--resume RUN`` the run's
    own options, but for those given with another value than their default."""

    def names(text: str) -> list[str]:
        return [c.strip() for c in text.split(",") if c.strip()]

    data = DataConfig(
        args.data,
        args.date_column,
        args.target,
        names(args.covariates),
        args.transform,
        args.fill,
        args.period,
        args.date_format,
    )
    cfg = Config(
        data=data,
        model=ModelConfig(
            args.cell,
            args.hidden_size,
            args.layers,
            args.dropout,
            args.context,
            args.horizon,
            args.decoder,
            args.output,
            [float(q) for q in names(args.quantiles)],
        ),
        walk=WalkForwardConfig(
            args.test_start,
            args.test_fraction,
            str(args.refit_every),
            args.train_window,
            args.refit_epochs,
            args.ar_max_order,
            args.interval,
            args.val_fraction,
        ),
        train=train_config_from_args(args),
        run_dir=args.run_dir,
        threads=args.threads,
    )
    if args.resume:
        saved = resumed_run_config(args.resume, "forecast")
        for key, cls in (("data", DataConfig), ("model", ModelConfig), ("walk", WalkForwardConfig)):
            setattr(cfg, key, resumed_section(cls, saved, key, getattr(cfg, key), args.resume))
        if cfg.threads is None:
            cfg.threads = (saved.get("forecast") or {}).get("threads")
    return cfg


def run_train(args: argparse.Namespace) -> int:
    try:
        run = train(config_from_args(args))
    except WalkForwardInterrupted as e:
        print(f"rnnkit: {e.reason}; continue with `rnnkit forecast train --resume {e.run_dir}`", file=sys.stderr)
        return 130
    print(run.report_text)
    print(f"run folder: {run.run_dir}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    _, text = evaluate(args.run)
    print(text)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    frame = predict(args.run, args.data)
    if args.out:
        atomic_write_text(Path(args.out), frame.to_csv(index=False))
        print(f"wrote {len(frame)} forecast steps to {args.out}")
    else:
        print(frame.to_string(index=False))
    return 0


def add_parser(subparsers) -> None:
    """``rnnkit forecast train|eval|predict``."""
    from rnnkit.cli import add_config_option

    fmt = HelpFormatter
    verb = subparsers.add_parser("forecast", help="time-series forecasting, walk-forward, against naive baselines")
    sub = verb.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("train", help="walk-forward train + evaluate, then refit on all data", formatter_class=fmt)
    _add_train_options(p)
    add_config_option(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("eval", help="the walk-forward table of a run: the RNN and every baseline", formatter_class=fmt)
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by `forecast train`")
    add_config_option(p)
    p.set_defaults(func=run_eval)

    p = sub.add_parser(
        "predict", help="forecast the next H steps after the end of a file, with intervals", formatter_class=fmt
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by `forecast train`")
    p.add_argument("--data", default=None, help="CSV to forecast from (default: the run's training file)")
    p.add_argument("--out", default=None, help="write the forecast CSV here (default: print it)")
    add_config_option(p)
    p.set_defaults(func=run_predict)


def _add_train_options(p: argparse.ArgumentParser) -> None:
    d, m, w = DataConfig(), ModelConfig(), WalkForwardConfig()
    g = p.add_argument_group("data")
    g.add_argument("--data", default=d.path, help="CSV file with a date column and numeric columns")
    g.add_argument("--date-column", default=d.date_column, help="name of the date/time column")
    g.add_argument("--target", default=d.target, help="column to forecast")
    g.add_argument("--covariates", default="", help="comma-separated extra input columns")
    g.add_argument(
        "--transform", choices=TRANSFORMS, default=d.transform, help="model levels, differences or log returns"
    )
    g.add_argument("--fill", choices=FILLS, default=d.fill, help="missing cells: error (none) or fill them")
    g.add_argument("--period", type=int, default=d.period, help="seasonal period in steps (seasonal naive, MASE)")
    g.add_argument(
        "--date-format", default=d.date_format, help="strptime codes of the dates, e.g. %%d/%%m/%%Y (default: guessed)"
    )
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=list(CELLS), default=m.cell, help="recurrent cell")
    g.add_argument("--hidden-size", type=int, default=m.hidden_size, help="hidden units")
    g.add_argument("--layers", type=int, default=m.num_layers, help="stacked layers")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout between layers")
    g.add_argument("--context", type=int, default=m.context, help="steps the encoder reads")
    g.add_argument("--horizon", type=int, default=m.horizon, help="steps forecast from each origin")
    g.add_argument("--decoder", choices=DECODERS, default=m.decoder, help="all steps at once or one at a time")
    g.add_argument("--output", choices=OUTPUTS, default=m.output, help="point, Gaussian or quantile forecasts")
    g.add_argument(
        "--quantiles", default=",".join(map(str, m.quantiles)), help="quantile levels (with --output quantile)"
    )
    g = p.add_argument_group("walk-forward")
    g.add_argument("--test-start", default=w.test_start, help="first date of the test part (default: by fraction)")
    g.add_argument("--test-fraction", type=float, default=w.test_fraction, help="share of the series tested")
    g.add_argument("--refit-every", default=w.refit_every, help="refit every N steps or each new period (Y, Q, M, W)")
    g.add_argument("--train-window", type=int, default=w.train_window, help="rows of history per fit (default: all)")
    g.add_argument("--refit-epochs", type=int, default=w.refit_epochs, help="epochs per warm-started refit")
    g.add_argument("--ar-max-order", type=int, default=w.ar_max_order, help="largest order of the linear AR baseline")
    g.add_argument("--interval", type=float, default=w.interval, help="coverage of the prediction intervals")
    g.add_argument(
        "--val-fraction",
        type=float,
        default=w.val_fraction,
        help="latest share of each fit's windows held out to pick the best epoch (0: off)",
    )
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_train_args(p, default_train_config())
