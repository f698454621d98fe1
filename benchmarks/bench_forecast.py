"""Forecasting against honest baselines: S&P 500 returns (nothing should win) and sunspots (the RNN can).

1. S&P 500 daily log returns of Adj Close (``../shared/data/sp500/sp500_daily.csv``), next day
   (horizon 1) and the next 5 days (horizon 5, also scored as the 5-day log return), walk-forward
   from 2000-01-01 to the end of the file (2020-01-10) with a refit at the start of every year
   (21 folds, expanding window from 1928, warm-started), LSTM and GRU, against the random walk
   (zero return), the historical mean return and a linear AR model (order by AIC, refitted each
   fold), with Diebold–Mariano and binomial direction tests.
2. Yearly sunspot numbers 1700–2008 (``statsmodels.datasets.sunspots``), one year ahead (and six
   years ahead with the GRU), walk-forward from 1909 with a refit every 10 years, GRU and LSTM
   over three seeds (and the average of the three seeds' forecasts), against seasonal naive
   (period 11), linear AR, random walk, mean and drift.

    python -m benchmarks.bench_forecast                 # both parts, writes benchmarks/results/forecast.json
    python -m benchmarks.bench_forecast --quick         # a smoke run: fewer folds and epochs (not a result)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

from benchmarks.results_io import result_name, write_result
from rnnkit.data.timeseries import series_from_frame
from rnnkit.tasks import forecast as fc
from rnnkit.tasks import forecast_metrics as fm
from rnnkit.train import TrainConfig

DATA = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))
SP500 = DATA / "sp500/sp500_daily.csv"
SP500_BASELINES = ("random_walk", "mean", "linear_ar")


def sp500_config(cell: str, horizon: int, run_dir: Path, quick: bool) -> fc.Config:
    return fc.Config(
        data=fc.DataConfig(path=str(SP500), date_column="Date", target="Adj Close", transform="log-return"),
        model=fc.ModelConfig(cell=cell, hidden_size=32, context=60, horizon=horizon),
        walk=fc.WalkForwardConfig(
            test_start="2017-01-01" if quick else "2000-01-01", refit_every="Y", refit_epochs=1, ar_max_order=20
        ),
        train=TrainConfig(steps=None, epochs=1 if quick else 3, batch_size=256, lr=1e-3, quiet=True, log_every=100),
        run_dir=str(run_dir),
        threads=1,
    )


def sunspots() -> fc.Series:
    data = sm.datasets.sunspots.load_pandas().data
    years = pd.to_datetime(data["YEAR"].astype(int).astype(str) + "-12-31")
    frame = pd.DataFrame({"SUNACTIVITY": data["SUNACTIVITY"].to_numpy()}, index=years)
    return series_from_frame(frame, "SUNACTIVITY", source="statsmodels:sunspots")


def sunspots_config(cell: str, horizon: int, seed: int, run_dir: Path, quick: bool) -> fc.Config:
    return fc.Config(
        data=fc.DataConfig(path="statsmodels:sunspots", target="SUNACTIVITY", period=11),
        model=fc.ModelConfig(cell=cell, hidden_size=16, context=20, horizon=horizon),
        walk=fc.WalkForwardConfig(test_start="1909-01-01", refit_every="10", refit_epochs=100, val_fraction=0.2),
        train=TrainConfig(
            steps=None, epochs=30 if quick else 300, batch_size=16, lr=3e-3, patience=30, seed=seed, quiet=True
        ),
        run_dir=str(run_dir),
        threads=1,
    )


def extra_tests(result: fc.WalkForwardResult, differenced: bool) -> dict:
    """DM of the RNN against every baseline, and for returns the H-day total (sum over the horizon)."""
    out = {}
    rnn = result.forecasts["rnn"]
    for name, forecast in result.forecasts.items():
        if name != "rnn":
            out[f"dm_pvalue_rnn_vs_{name}"] = fm.dm_test(result.actual, rnn, forecast)[1]
    H = result.actual.shape[1]
    if differenced and H > 1:
        total = result.actual.sum(axis=1, keepdims=True)  # (K, 1): the H-day log return
        for name, forecast in result.forecasts.items():
            err = forecast.sum(axis=1, keepdims=True) - total
            out[f"total_{H}day_rmse_{name}"] = float(np.sqrt((err**2).mean()))
        rw_total = result.forecasts["random_walk"].sum(axis=1, keepdims=True)
        out[f"total_{H}day_dm_pvalue_rnn_vs_random_walk"] = fm.dm_test(
            total, rnn.sum(axis=1, keepdims=True), rw_total, lags=H - 1
        )[1]
    return out


def run_one(cfg: fc.Config, series: tuple | None = None, keep: list | None = None) -> dict:
    """Train and walk-forward one configuration; its table, tests and verdict (``keep`` gets the run)."""
    began = time.perf_counter()
    run = fc.train(cfg, series)
    if keep is not None:
        keep.append((run, fc.read_run(run.run_dir)[1]["mase_scale"]))
    differenced = cfg.data.transform in ("diff", "log-return")
    folds = [e for e in fc.read_run(run.run_dir)[1]["fit_log"] if isinstance(e.get("fold"), int)]
    return {
        "cell": cfg.model.cell,
        "horizon": cfg.model.horizon,
        "seed": cfg.train.seed,
        "forecast_origins": len(run.result.actual),
        "folds": len(folds),
        "table": run.table,
        "tests": extra_tests(run.result, differenced),
        "verdict": fc.verdict(run.table, differenced),
        "wall_seconds": round(time.perf_counter() - began, 1),
    }


def ensemble(members: list, cell: str, horizon: int) -> dict:
    """The average of the seeds' RNN forecasts (same points), scored like a single run."""
    first, scale = members[0]
    combined = dataclasses.replace(first.result, forecasts=dict(first.result.forecasts))
    combined.forecasts["rnn"] = np.mean([run.result.forecasts["rnn"] for run, _ in members], axis=0)
    table = fc.score_table(combined, scale, differenced=False)
    return {
        "cell": cell,
        "horizon": horizon,
        "seed": "ensemble",
        "members": len(members),
        "forecast_origins": len(combined.actual),
        "table": table,
        "tests": extra_tests(combined, differenced=False),
        "verdict": fc.verdict(table, differenced=False),
    }


def bench_sp500(work: Path, quick: bool, metrics: dict, reference: dict) -> list[dict]:
    runs = []
    for horizon in (1, 5):
        for cell in ("lstm", "gru"):
            print(f"S&P 500: {cell} horizon {horizon}", flush=True)
            out = run_one(sp500_config(cell, horizon, work / f"sp500-{cell}-h{horizon}", quick))
            runs.append(out)
            key = f"sp500_h{horizon}"
            table = out["table"]
            for m in ("rmse", "mae", "mase", "direction_accuracy", "direction_pvalue", "dm_pvalue_vs_random_walk"):
                metrics[f"{key}_{cell}_{m}"] = table["rnn"][m]
            if horizon > 1:
                metrics[f"{key}_{cell}_total_5day_rmse"] = out["tests"]["total_5day_rmse_rnn"]
                metrics[f"{key}_{cell}_total_5day_dm_pvalue"] = out["tests"]["total_5day_dm_pvalue_rnn_vs_random_walk"]
            for name in SP500_BASELINES:  # the same for both cells: the same forecast points
                for m in ("rmse", "mae", "mase", "direction_accuracy", "direction_pvalue"):
                    if table[name][m] is not None:  # a zero forecast calls no direction
                        reference[f"{key}_{name}_{m}"] = table[name][m]
                if horizon > 1:
                    reference[f"{key}_{name}_total_5day_rmse"] = out["tests"][f"total_5day_rmse_{name}"]
    return runs


def bench_sunspots(work: Path, quick: bool, seeds: list[int], metrics: dict, reference: dict) -> list[dict]:
    series = sunspots()
    runs = []
    kept: dict[tuple[str, int], list] = {}
    plan = [(cell, 1, seed) for cell in ("gru", "lstm") for seed in seeds] + [("gru", 6, seeds[0])]
    for cell, horizon, seed in plan:
        print(f"sunspots: {cell} horizon {horizon} seed {seed}", flush=True)
        cfg = sunspots_config(cell, horizon, seed, work / f"sun-{cell}-h{horizon}-{seed}", quick)
        runs.append(run_one(cfg, (series, series), kept.setdefault((cell, horizon), [])))
        metrics[f"sunspots_h{horizon}_{cell}_seed{seed}_mase"] = runs[-1]["table"]["rnn"]["mase"]
        metrics[f"sunspots_h{horizon}_{cell}_seed{seed}_dm_pvalue_vs_linear_ar"] = runs[-1]["tests"][
            "dm_pvalue_rnn_vs_linear_ar"
        ]
    for (cell, horizon), members in kept.items():
        if len(members) > 1:
            runs.append(ensemble(members, cell, horizon))
            metrics[f"sunspots_h{horizon}_{cell}_ensemble_mase"] = runs[-1]["table"]["rnn"]["mase"]
            metrics[f"sunspots_h{horizon}_{cell}_ensemble_dm_pvalue_vs_linear_ar"] = runs[-1]["tests"][
                "dm_pvalue_rnn_vs_linear_ar"
            ]
    for horizon in (1, 6):
        chosen = [r for r in runs if r["horizon"] == horizon and r["seed"] != "ensemble"]
        for cell in sorted({r["cell"] for r in chosen}):
            mase = [r["table"]["rnn"]["mase"] for r in chosen if r["cell"] == cell]
            metrics[f"sunspots_h{horizon}_{cell}_mase_mean"] = float(np.mean(mase))
            metrics[f"sunspots_h{horizon}_{cell}_mase_min"] = float(np.min(mase))
            metrics[f"sunspots_h{horizon}_{cell}_mase_max"] = float(np.max(mase))
            metrics[f"sunspots_h{horizon}_{cell}_rmse_mean"] = float(
                np.mean([r["table"]["rnn"]["rmse"] for r in chosen if r["cell"] == cell])
            )
        for name in ("seasonal_naive", "linear_ar", "random_walk", "mean", "drift"):
            reference[f"sunspots_h{horizon}_{name}_mase"] = chosen[0]["table"][name]["mase"]
            reference[f"sunspots_h{horizon}_{name}_rmse"] = chosen[0]["table"][name]["rmse"]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="sp500,sunspots", help="comma-separated: sp500, sunspots")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the sunspot RNNs")
    parser.add_argument("--quick", action="store_true", help="smoke run (fewer folds and epochs); not a result")
    parser.add_argument("--name", type=result_name, default="forecast", help="results file name")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if "sp500" in parts and not SP500.exists():
        raise SystemExit(f"{SP500} is absent: the S&P 500 part needs ../shared/data")
    began = time.perf_counter()
    metrics: dict = {}
    reference: dict = {}
    extra: dict = {"runs": {}}
    with tempfile.TemporaryDirectory(prefix="bench_forecast_") as tmp:
        work = Path(tmp)
        if "sp500" in parts:
            extra["runs"]["sp500"] = bench_sp500(work, args.quick, metrics, reference)
        if "sunspots" in parts:
            seeds = [int(s) for s in args.seeds.split(",")]
            extra["runs"]["sunspots"] = bench_sunspots(work, args.quick, seeds, metrics, reference)
    wall = time.perf_counter() - began
    path = write_result(
        args.name,
        dataset="S&P 500 daily Adj Close 1927-12-30..2020-01-10 (../shared/data/sp500); statsmodels sunspots 1700-2008",
        split=(
            "walk-forward: S&P 500 test 2000-01-03..2020-01-10 (yearly refits, expanding window); "
            "sunspots test 1909..2008 (refit every 10 years, expanding window)"
        ),
        metrics=metrics,
        reference=reference,
        wall_seconds=wall,
        notes=(
            "Measured on a 2-core CPU shared with other jobs (torch threads = 1). Every model forecasts exactly "
            "the same points. See docs/forecast.md for the tables and what they mean."
            + (" QUICK SMOKE RUN: not a result." if args.quick else "")
        ),
        extra=extra,
    )
    print(f"wrote {path} in {wall:.0f} s")


if __name__ == "__main__":
    main()
