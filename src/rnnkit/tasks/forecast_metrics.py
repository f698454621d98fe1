"""Forecast accuracy and the tests that say whether a difference is real.

Point metrics (MAE, RMSE, MASE, sMAPE) are averaged over every origin and horizon step. For a
differenced series (returns) the direction of the *H-step total* (the sum over the horizon: the
H-day log return) is scored against a fair coin with scipy's exact binomial test, on every H-th
origin so that the trials do not overlap (overlapping H-day windows are not independent), and sMAPE,
which is meaningless around zero, is left out. Each model is compared with the random walk by
statsmodels' Diebold–Mariano test (Harvey–Leybourne–Newbold small-sample form, Newey–West
variance with H - 1 lags for overlapping multi-step forecasts) on the per-origin mean squared
error over the horizon.

Shape legend: ``K`` forecast origins, ``H`` horizon.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def mase_scale(z_train: np.ndarray, period: int = 1) -> float:
    """The in-sample MAE of the (seasonal) naive forecast on the training part: MASE's denominator."""
    if len(z_train) <= period:
        raise ValueError(f"mase_scale: need more than period={period} training values, got {len(z_train)}")
    scale = float(np.mean(np.abs(z_train[period:] - z_train[:-period])))
    return scale if scale > 0 else 1.0


def smape_percent(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0–200), terms with both values zero counting as 0."""
    denom = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(2 * np.abs(forecast - actual), denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)
    return float(100 * ratio.mean())


def direction_test(actual_total: np.ndarray, forecast_total: np.ndarray) -> tuple[float | None, float | None]:
    """Share of origins whose forecast sign matches the actual sign, and the one-sided binomial p-value vs 50%.

    Origins where the forecast or the actual is exactly zero carry no direction and are skipped;
    a forecast that is always zero (the random walk) gets ``(None, None)``.
    """
    from scipy.stats import binomtest  # here, not at the top: scipy.stats costs every command ~0.6 s

    called = (forecast_total != 0) & (actual_total != 0)
    n = int(called.sum())
    if n == 0:
        return None, None
    hits = int((np.sign(forecast_total[called]) == np.sign(actual_total[called])).sum())
    return hits / n, float(binomtest(hits, n, 0.5, alternative="greater").pvalue)


def dm_test(
    actual: np.ndarray, forecast: np.ndarray, reference: np.ndarray, lags: int | None = None
) -> tuple[float, float]:
    """Diebold–Mariano statistic and two-sided p-value of ``forecast`` against ``reference``, all ``(K, H)``.

    The loss of an origin is its mean squared error over the horizon; a negative statistic means
    ``forecast`` has the smaller loss. ``lags`` (Newey–West) defaults to ``H - 1``; give it when
    the columns are already aggregates of overlapping periods (e.g. ``(K, 1)`` H-day totals).
    """
    from statsmodels.tsa.stattools import diebold_mariano_test  # here: ~0.2 s to import

    K, H = actual.shape
    loss_a = ((actual - forecast) ** 2).mean(axis=1)  # (K,)
    loss_b = ((actual - reference) ** 2).mean(axis=1)  # (K,)
    # identical losses (up to rounding, relative to their size: the test is unit-free) have no difference to test
    if np.all(np.abs(loss_a - loss_b) <= 1e-12 * max(loss_a.max(), loss_b.max())):
        return 0.0, 1.0
    lags = H - 1 if lags is None else lags
    result = diebold_mariano_test(
        np.zeros(K), loss_a, loss_b, criterion=lambda _y, loss: loss, lags=lags, harvey_adj=True, horizon=lags + 1
    )
    return float(result.statistic), float(result.pvalue)


@dataclass
class Scores:
    """One model's figures on the shared forecast points."""

    mae: float
    rmse: float
    mase: float
    smape_percent: float | None
    direction_accuracy: float | None
    direction_pvalue: float | None
    dm_stat_vs_random_walk: float | None
    dm_pvalue_vs_random_walk: float | None
    mae_by_horizon: list[float]

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def score(
    actual: np.ndarray, forecast: np.ndarray, scale: float, differenced: bool, random_walk: np.ndarray | None
) -> Scores:
    """All figures of one ``forecast: (K, H)`` against ``actual: (K, H)``; ``scale`` is MASE's denominator."""
    if actual.shape != forecast.shape:
        raise ValueError(f"forecast: expected shape {actual.shape}, got {forecast.shape}")
    err = forecast - actual
    mae = float(np.abs(err).mean())
    H = actual.shape[1]
    # H-step totals from consecutive origins overlap; every H-th origin gives independent trials
    independent = slice(None, None, H)
    direction = (
        direction_test(actual.sum(axis=1)[independent], forecast.sum(axis=1)[independent])
        if differenced
        else (None, None)
    )
    dm = dm_test(actual, forecast, random_walk) if random_walk is not None else (None, None)
    return Scores(
        mae=mae,
        rmse=float(np.sqrt((err**2).mean())),
        mase=mae / scale,
        smape_percent=None if differenced else smape_percent(actual, forecast),
        direction_accuracy=direction[0],
        direction_pvalue=direction[1],
        dm_stat_vs_random_walk=dm[0],
        dm_pvalue_vs_random_walk=dm[1],
        mae_by_horizon=[float(v) for v in np.abs(err).mean(axis=0)],
    )


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actual values inside ``[lower, upper]``, all ``(K, H)``."""
    return float(((actual >= lower) & (actual <= upper)).mean())
