"""rnnkit.tasks.forecast_baselines and forecast_metrics: the baselines and the statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from rnnkit.tasks import forecast_baselines as fb
from rnnkit.tasks import forecast_metrics as fm


def test_random_walk_seasonal_mean_drift():
    z = np.array([1.0, 2, 4, 7, 11, 16])
    origins = np.array([3, 4])
    np.testing.assert_array_equal(fb.random_walk(z, origins, 2, differenced=False), [[7, 7], [11, 11]])
    np.testing.assert_array_equal(fb.random_walk(z, origins, 2, differenced=True), np.zeros((2, 2)))
    # period 2: step 1 -> z[o - 1], step 2 -> z[o], step 3 -> z[o - 1]
    np.testing.assert_array_equal(fb.seasonal_naive(z, origins, 3, period=2), [[4, 7, 4], [7, 11, 7]])
    np.testing.assert_allclose(fb.historical_mean(z, origins, 1)[:, 0], [z[:4].mean(), z[:5].mean()])
    line = 3.0 + 0.5 * np.arange(20)
    expected = [[line[10], line[11], line[12]], [line[16], line[17], line[18]]]
    np.testing.assert_allclose(fb.drift(line, np.array([9, 15]), 3), expected)


def test_linear_ar_recovers_coefficients_and_sees_only_the_training_part():
    rng = np.random.default_rng(0)
    z = np.zeros(3000)
    for t in range(2, len(z)):
        z[t] = 0.2 + 0.6 * z[t - 1] - 0.3 * z[t - 2] + 0.1 * rng.standard_normal()
    ar = fb.LinearAR(order=2, horizon=1).fit(z, 0, 2000)
    np.testing.assert_allclose(ar.coef[:, 0], [0.2, 0.6, -0.3], atol=0.02)
    assert fb.select_ar_order(z[:2000], 10) >= 2
    changed = z.copy()
    changed[2000:] = 1e6  # the future must not move a fit that stops at the cut
    again = fb.LinearAR(order=2, horizon=1).fit(changed, 0, 2000)
    np.testing.assert_array_equal(ar.coef, again.coef)
    assert ar.predict(z, np.array([2500, 2600])).shape == (2, 1)


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
