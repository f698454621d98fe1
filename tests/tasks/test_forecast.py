"""rnnkit.tasks.forecast: the RNN wins where there is something to learn and claims nothing where there is not."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.cli import main
from rnnkit.data.timeseries import read_csv_series, transform_series, walk_forward_folds
from rnnkit.errors import ConfigError
from rnnkit.tasks import forecast as fc
from rnnkit.train import TrainConfig
from rnnkit.train.checkpoint import load_weights

DATA = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[2] / "../shared/data"))


def write_series(path: Path, values: np.ndarray, start: str = "2000-01-03", holidays: tuple[int, ...] = ()) -> str:
    """``values`` on business days from ``start``; the days at the positions ``holidays`` are skipped."""
    dates = pd.bdate_range(start, periods=len(values) + len(holidays)).delete(list(holidays)).strftime("%Y-%m-%d")
    pd.DataFrame({"Date": dates, "y": values}).to_csv(path, index=False)
    return str(path)


def logistic_map(n: int, seed: int = 0) -> np.ndarray:
    """x_t = 3.8 x_{t-1} (1 - x_{t-1}) + noise: a chaotic recurrence no linear model can follow."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = 0.3
    for t in range(1, n):
        x[t] = np.clip(3.8 * x[t - 1] * (1 - x[t - 1]) + 0.01 * rng.standard_normal(), 0.01, 0.99)
    return x


def small_config(path: str, run_dir: Path, **model) -> fc.Config:
    return fc.Config(
        data=fc.DataConfig(path=path, target="y"),
        model=fc.ModelConfig(**{"cell": "gru", "hidden_size": 16, "context": 8, **model}),
        # one fold unless a test asks for more: every fit writes its own run folder and plots
        walk=fc.WalkForwardConfig(test_fraction=0.25, refit_every="1000", refit_epochs=2),
        train=TrainConfig(steps=None, epochs=25, batch_size=32, lr=1e-2, quiet=True, log_every=1000),
        run_dir=str(run_dir),
    )


def test_rnn_beats_persistence_and_linear_ar_on_a_nonlinear_recurrence(tmp_path):
    path = write_series(tmp_path / "logistic.csv", logistic_map(500))
    cfg = small_config(path, tmp_path / "run", horizon=2)
    cfg.walk.refit_every = "100"  # two folds
    run = fc.train(cfg)
    table = run.table
    assert table["rnn"]["rmse"] < 0.3 * table["random_walk"]["rmse"]
    assert table["rnn"]["dm_pvalue_vs_random_walk"] < 1e-3
    assert table["rnn"]["mase"] < 0.5 * table["linear_ar"]["mase"]
    assert "The RNN beats the naive forecast, significantly." in run.report_text
    # the run folder holds what eval and predict need, and eval recomputes the same table
    for name in (
        "config.json",
        "state.json",
        "forecasts.csv",
        "report.md",
        "final/checkpoints/last",
        "plots/forecast.png",
    ):
        assert (run.run_dir / name).exists(), name
    table_again, _ = fc.evaluate(run.run_dir)
    assert table_again["rnn"]["rmse"] == pytest.approx(table["rnn"]["rmse"], rel=1e-9)
    # every forecast point is scored for every model
    frame = pd.read_csv(run.run_dir / "forecasts.csv")
    assert frame[["rnn", "random_walk", "mean", "drift", "linear_ar"]].notna().all().all()


def test_on_a_random_walk_the_rnn_does_not_claim_to_win(tmp_path):
    rng = np.random.default_rng(3)
    prices = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(700)))
    path = write_series(tmp_path / "gbm.csv", prices)
    cfg = small_config(path, tmp_path / "run", horizon=1)
    cfg.data.transform = "log-return"
    cfg.train.epochs = 5
    run = fc.train(cfg)
    rnn = run.table["rnn"]
    assert not (rnn["rmse"] < run.table["random_walk"]["rmse"] and rnn["dm_pvalue_vs_random_walk"] < 0.05)
    assert "significantly." not in run.report_text.replace("not beat the naive forecast significantly", "")
    assert rnn["direction_pvalue"] > 0.05  # no skill at calling the direction either
    assert run.table["random_walk"]["direction_accuracy"] is None  # a zero forecast calls no direction
    assert rnn["smape_percent"] is None  # sMAPE is meaningless on returns


@pytest.mark.parametrize("val_fraction", [0.0, 0.25])
def test_scalers_are_fitted_on_each_folds_training_rows_only(tmp_path, val_fraction):
    """Not on the test block, nor on the rows held out for validation (only their epochs' choice
    would see them): each fold's scaler ends at its last training window's last target."""
    values = logistic_map(400) * np.linspace(1, 3, 400)  # a trend: the scaler must move with the cut
    path = write_series(tmp_path / "trend.csv", values)
    cfg = small_config(path, tmp_path / "run", horizon=3)
    cfg.train.epochs, cfg.walk.refit_epochs, cfg.walk.refit_every = 1, 1, "40"
    cfg.walk.val_fraction = val_fraction
    run_state = fc.read_run(fc.train(cfg).run_dir)[1]
    series = read_csv_series(path, "Date", "y")
    folds = walk_forward_folds(series.dates, 8, 3, fc.resolve_test_start(series.dates, cfg.walk), "40")
    logs = [entry for entry in run_state["fit_log"] if isinstance(entry.get("fold"), int)]
    assert len(logs) == len(folds) > 1
    for fold, log in zip(folds, logs, strict=True):
        assert log["cut_date"] == str(series.dates[fold.cut].date())
        train_origins, val_origins = fc.split_validation(fold.train_origins, val_fraction, 3, fold.cut)
        end = train_origins[-1] + 3 + 1  # one past the last training target
        assert (end == fold.cut) == (val_fraction == 0) and len(val_origins) == log["val_windows"]
        np.testing.assert_allclose(log["scaler"]["mean"], series.values[:end].mean(axis=0))
        np.testing.assert_allclose(log["scaler"]["std"], series.values[:end].std(axis=0))


@pytest.mark.parametrize(
    ("output", "decoder"), [("gaussian", "direct"), ("quantile", "direct"), ("point", "autoregressive")]
)
def test_probabilistic_and_autoregressive_forecasts(tmp_path, output, decoder):
    t = np.arange(300)
    path = write_series(
        tmp_path / "sine.csv", np.sin(2 * np.pi * t / 20) + 0.05 * np.random.default_rng(0).standard_normal(300)
    )
    cfg = small_config(path, tmp_path / "run", horizon=4, output=output, decoder=decoder)
    cfg.train.epochs = 15
    run = fc.train(cfg)
    assert run.table["rnn"]["mase"] < 0.6 * run.table["random_walk"]["mase"]
    frame = fc.predict(run.run_dir)
    assert list(frame["step"]) == [1, 2, 3, 4]
    assert (frame["lower"] <= frame["forecast"]).all() and (frame["forecast"] <= frame["upper"]).all()
    if output != "point":
        assert 0.5 < run.table["rnn"]["interval_coverage"] <= 1.0  # nominal 80%


def test_autoregressive_decoder_refuses_covariates():
    cfg = fc.ModelConfig(decoder="autoregressive")
    with pytest.raises(ConfigError, match=r"autoregressive.*1 covariates"):
        cfg.validate(n_features=2)


def test_cli_train_eval_predict(tmp_path, capsys):
    rng = np.random.default_rng(1)
    prices = 50 * np.exp(np.cumsum(0.01 * rng.standard_normal(400)))
    path = write_series(tmp_path / "p.csv", prices, holidays=(360, 385, 395))  # a trading calendar
    run_dir = tmp_path / "run"
    common = ["--data", path, "--date-column", "Date", "--target", "y", "--transform", "log-return"]
    args = ["forecast", "train", *common, "--horizon", "2", "--context", "10", "--hidden-size", "8", "--epochs", "2"]
    args += ["--refit-every", "Y", "--run-dir", str(run_dir), "--quiet", "--threads", "1"]
    assert main(args) == 0
    assert main(["forecast", "eval", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "| rnn |" in out and "| random_walk |" in out and "| linear_ar |" in out and "Diebold–Mariano" in out
    out_csv = tmp_path / "next.csv"
    assert main(["forecast", "predict", "--run", str(run_dir), "--out", str(out_csv)]) == 0
    frame = pd.read_csv(out_csv)
    assert list(frame.columns) == ["step", "date", "forecast", "lower", "upper", "level"]
    assert len(frame) == 2 and (frame["lower"] < frame["upper"]).all()
    np.testing.assert_allclose(frame["level"].iloc[0], prices[-1] * np.exp(frame["forecast"].iloc[0]))
    last = pd.Timestamp(pd.read_csv(path)["Date"].iloc[-1])
    assert list(frame["date"]) == [str(d.date()) for d in pd.bdate_range(last, periods=3)[1:]]  # the next trading days
    # config.json holds the options as given (not the final refit's), and a fit's folder is not the run
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["task"] == "forecast" and saved["train"]["epochs"] == 2 and saved["model"]["context"] == 10
    capsys.readouterr()
    assert main(["forecast", "eval", "--run", str(run_dir / "folds" / "00")]) == 2
    assert "not one of its folds/ or final/" in capsys.readouterr().err


MONTH = "Date,y\n" + "".join(f"2020-01-{d:02d},{d % 7}\n" for d in range(1, 32))


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("Date,y\n2020-01-02,1\n2020-01-01,2\n", [], "p.csv:3: dates not sorted"),
        ("Date,y\n2020-01-01,1\n2020-01-02,x\n", [], "p.csv:3: column 'y': expected a finite number, found 'x'"),
        ("Date,y\n2020-01-01,1\n2020-01-02,2\n", ["--target", "Close"], "p.csv:1: unknown column 'Close'"),
        ("Date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n", [], "shorter than context + horizon"),
        ("Date,y\n2020-01-01,1\n2020-01-02,\n", [], "p.csv:3: missing value in column 'y' (pass --fill"),
        ("Date,y\n2020-01-01,1\n2020-01-02,2\n", ["--steps", "30"], "steps: a walk-forward run trains by epochs"),
        ("Date,y\n2020-01-01,1\n2020-01-02,2\n", ["--dropout", "1"], "dropout: expected a probability in [0, 1)"),
        ("Date,y\n2020-01-01,1\n", ["--date-format", "dd/mm/yyyy"], "date_format: expected strptime codes"),
        ("Date,y\n01.02.2020,1\n13.02.2020,2\n", [], "p.csv:3: column 'Date': cannot parse '13.02.2020'"),
        ("Date,y\n2020-01-01,1,2\n2020-01-02,2\n", [], "p.csv:2: found 3 fields, expected 2"),
        (MONTH, ["--period", "26"], "period: 26 steps, but the part before the test has only 25"),
        (MONTH, ["--val-fraction", "0.9", "--horizon", "3"], "leaving no training window"),
        (MONTH, ["--context", "2", "--horizon", "3", "--train-window", "5"], "too short for the linear AR baseline"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, extra, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    run_dir = tmp_path / "run"
    args = ["forecast", "train", "--data", str(path), "--target", "y", "--context", "5", "--run-dir", str(run_dir)]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not run_dir.exists()


@pytest.mark.skipif(not (DATA / "sp500/sp500_daily.csv").exists(), reason="../shared/data (S&P 500 CSV) is absent")
def test_reads_the_real_sp500_file():
    prices = read_csv_series(DATA / "sp500/sp500_daily.csv", "Date", "Adj Close")
    assert len(prices) == 23116 and prices.dates.is_monotonic_increasing and prices.dates[0].year == 1927
    returns = transform_series(prices, "log-return")
    assert abs(returns.target.mean()) < 1e-3 and 0.005 < returns.target.std() < 0.02


def test_validation_windows_share_no_target_with_training_windows():
    origins = np.arange(10, 110)
    train, val = fc.split_validation(origins, 0.2, horizon=5, cut=115)
    assert len(val) == 20 and len(train) == 100 - 20 - 4
    assert train.max() + 5 < val.min() + 1  # the last training target comes before the first validation target
    assert len(fc.split_validation(origins, 0.0, horizon=5, cut=115)[0]) == 100  # no validation: every window
    with pytest.raises(ConfigError, match="no training window"):
        fc.split_validation(np.arange(6), 0.5, horizon=4, cut=10)


def test_an_interrupted_run_goes_on_exactly_with_only_resume(tmp_path, monkeypatch, capsys):
    path = write_series(tmp_path / "s.csv", logistic_map(300))
    args = ["forecast", "train", "--data", path, "--target", "y", "--context", "6", "--hidden-size", "8"]
    args += ["--horizon", "2", "--epochs", "3", "--refit-epochs", "2", "--refit-every", "30", "--batch-size", "16"]
    args += ["--seed", "3", "--val-fraction", "0.2", "--quiet", "--threads", "1"]
    assert main([*args, "--run-dir", str(tmp_path / "whole")]) == 0
    loss, calls = fc.forecast_loss, []

    def interrupt_in_the_second_fit(output, target, cfg):
        calls.append(1)
        if len(calls) == 60:  # the first fit calls it 39 times (3 epochs of 12 steps, 3 validations)
            signal.raise_signal(signal.SIGINT)
        return loss(output, target, cfg)

    monkeypatch.setattr(fc, "forecast_loss", interrupt_in_the_second_fit)
    run = tmp_path / "cut"
    assert main([*args, "--run-dir", str(run)]) == 130
    assert f"continue with `rnnkit forecast train --resume {run}`" in capsys.readouterr().err
    assert (run / "folds/00/fit.json").exists() and not (run / "folds/01/fit.json").exists()
    assert (run / "folds/01/checkpoints/last").is_dir()  # the second fit goes on from where it stopped
    assert not (run / "state.json").exists()  # the walk-forward stopped: nothing claims a result
    monkeypatch.setattr(fc, "forecast_loss", loss)
    assert main(["forecast", "train", "--resume", str(run)]) == 0
    assert "resumed" in json.loads((run / "folds/01/config.json").read_text())  # continued, not started again
    pd.testing.assert_frame_equal(pd.read_csv(run / "forecasts.csv"), pd.read_csv(tmp_path / "whole/forecasts.csv"))
    final, whole = load_weights(run / "final/checkpoints/last"), load_weights(tmp_path / "whole/final/checkpoints/last")
    assert all(torch_equal(final[k], whole[k]) for k in whole)
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["epochs"] == 3 and len(saved["resumed"]) == 1
    # a resumed walk-forward keeps its model and folds; another task's run is refused
    assert main(["forecast", "train", "--resume", str(run), "--horizon", "3"]) == 2
    assert "resume:" in capsys.readouterr().err
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm/config.json").write_text(json.dumps({"task": "lm", "train": {}}))
    assert main(["forecast", "train", "--resume", str(tmp_path / "lm")]) == 2
    assert "is a 'lm' run" in capsys.readouterr().err


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_a_new_run_never_removes_folders_that_are_not_an_earlier_forecast_runs(tmp_path):
    path = write_series(tmp_path / "s.csv", logistic_map(160))
    mine = tmp_path / "project"
    (mine / "final").mkdir(parents=True)
    (mine / "final" / "thesis.tex").write_text("the user's own work")
    with pytest.raises(ConfigError, match=r"holds \['final'\] of something other than a forecast run"):
        fc.train(small_config(path, mine))
    assert (mine / "final" / "thesis.tex").read_text() == "the user's own work"
