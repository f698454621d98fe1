"""`rnnkit experiment vanishing --quick`: the gradient of a contracting tanh RNN vanishes faster than an
LSTM's; without clipping a large-radius RNN's loss explodes; the run folder is complete."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.experiments.vanishing import VanishingConfig, decay_per_step, gradient_by_lag, make_model, run
from tests.experiments.checks import assert_benchmark, assert_png, assert_report


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vanishing")
    return run(VanishingConfig.quick(out=str(out)), command="rnnkit experiment vanishing --quick"), out


def test_small_radius_rnn_gradient_decays_faster_than_lstm(quick_run):
    results, _ = quick_run
    init = results["decay_per_step_init"]
    assert init["rnn(ρ=0.5)"] < 0.6  # the norm shrinks at least as fast as ρ per step
    assert init["rnn(ρ=0.5)"] < init["lstm"]
    assert init["rnn(ρ=0.5)"] < init["rnn(ρ=1)"] < init["rnn(ρ=1.5)"]
    norms = results["grad_norm_by_lag_init"]["rnn(ρ=0.5)"]
    assert len(norms) == 30 and norms[-1] < 1e-6 * norms[0]


def test_clipping_tames_the_exploding_rnn(quick_run):
    clip = quick_run[0]["clipping"]
    assert clip["without"]["spikes"] > clip["with"]["spikes"]
    assert clip["with"]["max_loss"] < 10
    worst_unclipped = clip["without"]["max_loss"]
    assert worst_unclipped is None or not math.isfinite(worst_unclipped) or worst_unclipped > 100


def test_run_folder_is_complete(quick_run):
    _, out = quick_run
    assert "decay_per_step_init_rnn_0.5" in assert_benchmark(out, "experiment_vanishing")["metrics"]
    text = assert_report(out, "rnnkit experiment vanishing --quick", "rnn(ρ=0.5)", "lstm", "gru", "no clipping")
    assert text.count("![") == 2
    for name in ("gradient_by_lag.png", "clipping.png"):
        assert_png(out / "plots" / name)
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["decay_per_step_trained"]) == {"rnn(ρ=0.5)", "rnn(ρ=1)", "rnn(ρ=1.5)", "lstm", "gru"}
    assert json.loads((out / "config.json").read_text())["length"] == 30


def test_gradient_by_lag_matches_autograd_on_the_last_step():
    torch.manual_seed(0)
    model = make_model("gru", VanishingConfig.quick())
    x, y = torch.rand(4, 6, 2), torch.rand(4)
    norms = gradient_by_lag(model, x, y)
    h_last = model.rnn(x)[0][:, -1].detach().requires_grad_(True)
    loss = torch.nn.functional.mse_loss(model.head(h_last).squeeze(-1), y)
    (grad,) = torch.autograd.grad(loss, h_last)
    assert len(norms) == 6
    assert math.isclose(norms[0], float(grad.norm(dim=1).mean()), rel_tol=1e-4)


def test_decay_per_step_recovers_a_geometric_rate():
    assert math.isclose(decay_per_step([0.5**k for k in range(20)]), 0.5, rel_tol=1e-9)
    assert math.isclose(decay_per_step([3 * 1.1**k for k in range(20)]), 1.1, rel_tol=1e-9)


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError, match="radii"):
        VanishingConfig(radii=())
    with pytest.raises(ConfigError, match="length"):
        VanishingConfig(length=1)


@pytest.mark.parametrize(
    "bad", [{"clip_radius": -1.0}, {"lr": 0.0}, {"clip_lr": -0.1}, {"seed": -1}, {"seed": 2**64 - 1}]
)
def test_out_of_range_settings_raise_config_error(bad):
    """Each would otherwise fail with a traceback from torch (or report a negative radius)."""
    with pytest.raises(ConfigError, match=next(iter(bad))):
        VanishingConfig.quick(**bad)


def test_a_bad_out_fails_before_any_training(monkeypatch, tmp_path):
    from rnnkit.experiments import vanishing

    def no_training(*args):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(vanishing, "profile", no_training)
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        vanishing.run(VanishingConfig.quick(out=str(path)), command="x")


def test_report_says_the_mse_columns_are_training_losses(quick_run):
    """They are means over the last 10% of training steps, not a held-out test figure."""
    text = (quick_run[1] / "report.md").read_text(encoding="utf-8")
    assert "adding training MSE, last 10% of steps" in text
    assert "final MSE (last 10% of steps)" in text
    rows = [line for line in text.splitlines() if line.startswith("| gru |")]
    expected = quick_run[0]["adding_final_loss"]["gru"]
    assert rows and rows[0].rstrip(" |").split("| ")[-1] == f"{expected:.4g}"


def test_gradient_by_lag_matches_backprop_through_time_at_every_lag():
    """For a tanh RNN, dL/dh_t = W_hh^T (diag(1 - h_{t+1}^2) dL/dh_{t+1}): every lag, not just the last."""
    torch.manual_seed(0)
    model = make_model("rnn(ρ=1)", VanishingConfig.quick()).double()
    x, y = torch.rand(4, 9, 2, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    norms = gradient_by_lag(model, x, y)
    with torch.no_grad():
        h = model.rnn(x)[0]  # (B, T, H)
        grad = (2 / 4) * (model.head(h[:, -1]).squeeze(-1) - y).unsqueeze(1) * model.head.weight  # (B, H)
        expected = [float(grad.norm(dim=1).mean())]
        for t in range(8, 0, -1):
            grad = (grad * (1 - h[:, t] ** 2)) @ model.rnn.weight_hh_l0
            expected.append(float(grad.norm(dim=1).mean()))
    assert len(norms) == 9
    for got, want in zip(norms, expected, strict=True):
        assert math.isclose(got, want, rel_tol=1e-9)
