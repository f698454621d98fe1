"""rnnkit.tasks.forecast_metrics: point metrics, the direction test and Diebold–Mariano."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from rnnkit.tasks import forecast_metrics as fm


def test_point_metrics():
    assert fm.mase_scale(np.array([1.0, 3, 2, 5]), 1) == pytest.approx(2.0)
    assert fm.mase_scale(np.array([1.0, 3, 2, 5]), 2) == pytest.approx(1.5)
    assert fm.smape_percent(np.array([1.0, 0.0]), np.array([3.0, 0.0])) == pytest.approx(50.0)
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    s = fm.score(actual, actual + np.array([[1.0, -1.0], [3.0, -3.0]]), scale=2.0, differenced=False, random_walk=None)
    assert (s.mae, s.rmse, s.mase) == pytest.approx((2.0, np.sqrt(5.0), 1.0))
    assert s.mae_by_horizon == [2.0, 2.0] and s.direction_accuracy is None


def test_direction_uses_scipy_binomial_test_and_skips_zero_forecasts():
    actual = np.array([1.0] * 60 + [-1.0] * 40)
    forecast = np.ones(100)
    hit_rate, p = fm.direction_test(actual, forecast)
    assert hit_rate == 0.6
    assert p == pytest.approx(binomtest(60, 100, 0.5, alternative="greater").pvalue)
    assert fm.direction_test(actual, np.zeros(100)) == (None, None)


def test_diebold_mariano_sign_and_significance():
    rng = np.random.default_rng(1)
    actual = rng.standard_normal((400, 2))
    good = actual + 0.1 * rng.standard_normal((400, 2))
    bad = np.zeros((400, 2))
    stat, p = fm.dm_test(actual, good, bad)
    assert stat < 0 and p < 1e-6
    stat, p = fm.dm_test(actual, bad, good)
    assert stat > 0 and p < 1e-6
    assert fm.dm_test(actual, good, good.copy()) == (0.0, 1.0)
    noisy_a = actual + rng.standard_normal((400, 2))
    noisy_b = actual + rng.standard_normal((400, 2))
    assert fm.dm_test(actual, noisy_a, noisy_b)[1] > 0.01  # equally good forecasts: no significant difference


def test_direction_of_multi_step_totals_counts_only_non_overlapping_origins():
    actual = np.ones((10, 2))  # ten origins, 2-step totals: 5 independent trials
    s = fm.score(actual, actual, scale=1.0, differenced=True, random_walk=None)
    assert s.direction_accuracy == 1.0
    assert s.direction_pvalue == pytest.approx(binomtest(5, 5, 0.5, alternative="greater").pvalue)
    assert s.smape_percent is None


def test_diebold_mariano_does_not_depend_on_the_units():
    rng = np.random.default_rng(2)
    actual = rng.standard_normal((300, 3))
    good = actual + 0.5 * rng.standard_normal((300, 3))
    bad = actual + 0.6 * rng.standard_normal((300, 3))
    reference = fm.dm_test(actual, good, bad)
    assert reference[1] < 0.05
    for units in (1e-6, 1e6):  # e.g. minute returns, or prices in cents: the same comparison
        np.testing.assert_allclose(fm.dm_test(units * actual, units * good, units * bad), reference, rtol=1e-6)


def test_smape_with_zero_actuals_and_mase_scale_needs_data():
    # a zero actual with a non-zero forecast is the maximum error (200%), not a division by zero
    assert fm.smape_percent(np.array([0.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="period=3"):
        fm.mase_scale(np.array([1.0, 2.0, 3.0]), 3)
    assert fm.mase_scale(np.ones(5)) == 1.0  # a constant training part: scale 1, not a division by zero


def test_interval_coverage():
    actual = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert fm.interval_coverage(actual, actual - 1, actual + 1) == 1.0
    assert fm.interval_coverage(actual, actual + 0.5, actual + 1) == 0.0
