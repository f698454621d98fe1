"""The forecasts any model must beat, computed on exactly the model's forecast points.

Every baseline here sees only what is observed at the origin (``z[: o + 1]``), and the linear AR
model is fitted on the fold's training part only. All work in the modelled space ``z`` (after the
transform): for a differenced series (returns, changes) the random walk of the level forecasts a
zero change; for levels it repeats the last value.

Shape legend: ``N`` steps, ``K`` origins, ``H`` horizon, ``p`` AR order.
"""

from __future__ import annotations

import warnings

import numpy as np


def random_walk(z: np.ndarray, origins: np.ndarray, horizon: int, differenced: bool) -> np.ndarray:
    """Persistence: the level stays where it is. ``(K, H)``: zero change, or the last value."""
    if differenced:
        return np.zeros((len(origins), horizon))
    return np.repeat(z[origins][:, None], horizon, axis=1)


def seasonal_naive(z: np.ndarray, origins: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """The value one season earlier: ``z[o + h - period * ceil(h / period)]``. ``(K, H)``."""
    h = np.arange(1, horizon + 1)
    back = h - period * np.ceil(h / period).astype(np.int64)  # (H,), each <= 0
    if len(origins) and origins.min() + back.min() < 0:
        raise ValueError(
            f"seasonal_naive: origin {origins.min()} has no value one period {period} back; "
            f"expected origins >= {-back.min()}"
        )
    return z[origins[:, None] + back[None, :]]


def historical_mean(z: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The mean of everything observed up to the origin (for returns: the average drift). ``(K, H)``."""
    running = np.cumsum(z) / np.arange(1, len(z) + 1)
    return np.repeat(running[origins][:, None], horizon, axis=1)


def drift(z: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Random walk with drift on levels: last value plus h times the average step so far. ``(K, H)``."""
    slope = (z[origins] - z[0]) / np.maximum(origins, 1)  # (K,)
    return z[origins][:, None] + slope[:, None] * np.arange(1, horizon + 1)[None, :]


def select_ar_order(z_train: np.ndarray, max_order: int) -> int:
    """AR order by AIC on the training part (statsmodels ``ar_select_order``), at least 1."""
    from statsmodels.tsa.ar_model import ar_select_order  # here, not at the top: ~0.2 s to import

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lags = ar_select_order(z_train, maxlag=max_order, ic="aic", trend="c").ar_lags
    return max(int(max(lags)) if lags else 1, 1)


class LinearAR:
    """Direct multi-step linear autoregression fitted by least squares: ``z[o+h] ~ 1 + z[o-p+1 … o]``.

    One linear map per horizon step (no error accumulation); ``coef: (p + 1, H)``.
    """

    def __init__(self, order: int, horizon: int) -> None:
        self.order = order
        self.horizon = horizon
        self.coef: np.ndarray | None = None

    def _design(self, z: np.ndarray, origins: np.ndarray) -> np.ndarray:
        lags = z[origins[:, None] - np.arange(self.order)[None, :]]  # (K, p), most recent first
        return np.concatenate([np.ones((len(origins), 1)), lags], axis=1)  # (K, p + 1)

    def fit(self, z: np.ndarray, start: int, cut: int) -> LinearAR:
        """Fit on rows ``start … cut - 1`` only: origins whose targets all lie before ``cut``."""
        origins = np.arange(start + self.order - 1, cut - self.horizon)
        if len(origins) < self.order + 2:
            raise ValueError(f"LinearAR: {len(origins)} training origins are too few for order {self.order}")
        targets = z[origins[:, None] + np.arange(1, self.horizon + 1)[None, :]]  # (K, H)
        self.coef, *_ = np.linalg.lstsq(self._design(z, origins), targets, rcond=None)
        return self

    def predict(self, z: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """``(K, H)`` forecasts from each origin."""
        assert self.coef is not None, "fit first"
        return self._design(z, origins) @ self.coef
