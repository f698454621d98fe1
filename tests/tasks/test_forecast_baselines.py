"""rnnkit.tasks.forecast_baselines: the forecasts every model must beat, from what is observed at the origin."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.tasks import forecast_baselines as fb


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


def test_seasonal_naive_never_reaches_past_the_start_of_the_series():
    z = np.arange(10.0)
    # origin 2 with period 5 would need z[-2]: numpy would silently take z[8], a future value
    with pytest.raises(ValueError, match=r"seasonal_naive: origin 2 .* period 5"):
        fb.seasonal_naive(z, np.array([2, 6]), 1, period=5)
    np.testing.assert_array_equal(fb.seasonal_naive(z, np.array([4, 6]), 1, period=5), [[0], [2]])
