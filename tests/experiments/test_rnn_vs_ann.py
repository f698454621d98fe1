"""`rnnkit experiment rnn-vs-ann --quick`: the RNN takes any length and reads order; the MLPs cannot."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.errors import ConfigError, DataError
from rnnkit.experiments.rnn_vs_ann import (
    RnnVsAnnConfig,
    WindowMLP,
    default_pendigits_path,
    load_pendigits,
    pendigits_part,
    resample,
    run,
)
from tests.experiments.checks import assert_benchmark, assert_png, assert_report


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rnn_vs_ann")
    config = RnnVsAnnConfig.quick(out=str(out), pendigits="none")
    return run(config, command="rnnkit experiment rnn-vs-ann --quick"), out


def test_rnn_generalizes_to_longer_sequences_the_mlp_cannot_take(quick_run):
    counting = quick_run[0]["counting"]["by_length"]
    assert counting["21"]["rnn"] > 0.9 and counting["21"]["mlp"] > 0.9  # both learn the trained lengths
    assert counting["21"]["mlp_full_input_error"] == ""
    assert "shapes cannot be multiplied" in counting["81"]["mlp_full_input_error"]
    assert counting["81"]["rnn"] > counting["81"]["mlp"] + 0.1


def test_bag_of_inputs_cannot_read_order(quick_run):
    order = quick_run[0]["order"]
    assert order["rnn"] > 0.9
    assert order["bag_mlp"] < 0.62


def test_mlp_parameters_grow_with_length_rnn_parameters_do_not(quick_run):
    params = quick_run[0]["parameters"]
    mlp = [params[n]["mlp"] for n in ("10", "100", "1000", "10000")]
    rnn = {params[n]["rnn"] for n in params}
    assert mlp == sorted(mlp) and mlp[-1] > 500 * mlp[0] / 10
    assert len(rnn) == 1


def test_run_folder_is_complete(quick_run):
    _, out = quick_run
    record = assert_benchmark(out, "experiment_rnn_vs_ann")
    assert set(record["metrics"]) == set(record["reference"])
    assert_report(out, "rnnkit experiment rnn-vs-ann --quick", "## (a)", "## (b) Order", "## (c) Shared weights")
    assert "Not run: --pendigits none" in (out / "report.md").read_text()
    for name in ("length_generalization.png", "parameters.png"):
        assert_png(out / "plots" / name)
    assert json.loads((out / "results.json").read_text())["pendigits"] == {"skipped": "--pendigits none"}


def test_window_mlp_input_is_fixed():
    mlp = WindowMLP(5, 2, 8, 3)
    assert mlp(torch.zeros(4, 5, 2)).shape == (4, 3)
    with pytest.raises(RuntimeError):
        mlp(torch.zeros(4, 6, 2))


def test_resample_keeps_the_original_points():
    xy = torch.rand(3, 8, 2)
    torch.testing.assert_close(resample(xy, 8), xy)
    torch.testing.assert_close(resample(xy, 15)[:, ::2], xy)
    assert resample(xy, 64).shape == (3, 64, 2)


def test_load_pendigits_names_the_bad_line(tmp_path):
    good = ",".join(["50"] * 16) + ",0010000000\n"
    path = tmp_path / "pendigits.tra"
    path.write_text(good + ",".join(["50"] * 16) + ",0011000000\n")
    with pytest.raises(DataError, match=r"pendigits.tra:2: ") as info:
        load_pendigits(path)
    assert "one-hot" in str(info.value) and "0011000000" in str(info.value)
    path.write_text(good * 2)
    xy, labels = load_pendigits(path)
    assert xy.shape == (2, 8, 2) and labels.tolist() == [2, 2] and float(xy.max()) == 0.5


PENDIGITS = default_pendigits_path()


@pytest.mark.skipif(not PENDIGITS.is_file(), reason=f"pendigits not found at {PENDIGITS} (../shared/data absent)")
def test_pendigits_rnn_reads_denser_trajectories_better_than_the_window_mlp():
    config = RnnVsAnnConfig.quick(steps=120)
    result = pendigits_part(config, PENDIGITS)
    assert result["train_digits"] + result["test_digits"] == 7494
    at_32 = result["by_points"]["32"]
    assert at_32["rnn"] > at_32["mlp"]


@pytest.mark.parametrize(
    "bad",
    [
        {"order_length": 1},
        {"train_min_length": -1},
        {"test_size": 0},
        {"hidden_size": 0},
        {"steps": 0},
        {"lr": -1.0},
        {"test_lengths": (-3,)},
        {"pen_test_points": (0,)},
        {"param_lengths": ()},
        {"seed": 2**64 - 1},
        {"pendigits": "/nonexistent/pendigits.tra"},
    ],
)
def test_out_of_range_settings_raise_config_error(bad):
    """Each would otherwise fail with a traceback after training had started, or (a missing pendigits
    file named on purpose) be skipped without a word."""
    with pytest.raises(ConfigError, match=next(iter(bad))):
        RnnVsAnnConfig.quick(**bad)


def no_training(*args):
    raise AssertionError("trained before checking the input")


def test_a_bad_out_fails_before_any_training(monkeypatch, tmp_path):
    from rnnkit.experiments import rnn_vs_ann

    monkeypatch.setattr(rnn_vs_ann, "counting_part", no_training)
    other = tmp_path / "lm-run"
    other.mkdir()
    (other / "report.md").write_text("# mine\n")
    with pytest.raises(ConfigError, match="out:"):
        rnn_vs_ann.run(RnnVsAnnConfig.quick(out=str(other), pendigits="none"), command="x")
    assert (other / "report.md").read_text() == "# mine\n"


def test_a_malformed_pendigits_file_fails_before_any_training(monkeypatch, tmp_path):
    from rnnkit.experiments import rnn_vs_ann

    monkeypatch.setattr(rnn_vs_ann, "counting_part", no_training)
    path = tmp_path / "pendigits.tra"
    path.write_text(",".join(["50"] * 15) + ",0010000000\n")
    config = RnnVsAnnConfig.quick(out=str(tmp_path / "run"), pendigits=str(path))
    with pytest.raises(DataError, match=r"pendigits.tra:1: expected 17"):
        rnn_vs_ann.run(config, command="x")
