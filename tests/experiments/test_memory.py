"""`rnnkit experiment memory --quick`: every (task, model, length) is trained and tested; the run folder is complete."""

from __future__ import annotations

import json

import pytest

from rnnkit.errors import ConfigError
from rnnkit.experiments.common import BUILDERS
from rnnkit.experiments.memory import MemoryConfig, default_models, run, solved
from tests.experiments.checks import assert_benchmark, assert_png, assert_report


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("memory")
    return run(MemoryConfig.quick(out=str(out)), command="rnnkit experiment memory --quick"), out


def test_every_task_model_and_length_has_a_test_figure(quick_run):
    results, _ = quick_run
    for task in ("adding", "copy"):
        assert set(results["test"][task]) == {"rnn", "lstm"}
        for by_length in results["test"][task].values():
            assert set(by_length) == {"10", "20"}
            for score in by_length.values():
                assert (score >= 0) if task == "adding" else (0 <= score <= 1)
    # after a few dozen steps nothing has solved the adding problem: the table must not claim it
    assert not any(solved("adding", s, MemoryConfig.quick()) for s in results["test"]["adding"]["rnn"].values())


def test_run_folder_is_complete(quick_run):
    _, out = quick_run
    assert "adding_mse_lstm_20" in assert_benchmark(out, "experiment_memory")["metrics"]
    text = assert_report(out, "rnnkit experiment memory --quick", "## Adding problem", "## Copy memory", "T=20")
    assert "Budget per run: at most 30 Adam steps" in text
    for name in ("memory_by_length.png", "training_loss.png"):
        assert_png(out / "plots" / name)
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["runs"]["copy"]["lstm"]["20"]["losses"]) == 30


def test_default_models_are_torch_cells_plus_those_rnnkit_adds():
    models = default_models()
    assert models[:3] == ("rnn", "lstm", "gru")
    assert set(models) <= set(BUILDERS)


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError, match="models"):
        MemoryConfig(models=("transformer",))
    with pytest.raises(ConfigError, match="tasks"):
        MemoryConfig(tasks=("sorting",))


def test_worker_processes_give_the_same_results_as_one_process(tmp_path):
    """Each run seeds itself, so sharing the runs out to processes changes nothing but the time."""
    tiny = {"lengths": (6, 8), "models": ("rnn",), "tasks": ("adding",), "steps": 5, "test_size": 50}
    serial = run(MemoryConfig.quick(**tiny, out=str(tmp_path / "one")), command="x")
    parallel = run(MemoryConfig.quick(**tiny, workers=2, out=str(tmp_path / "two")), command="x")
    assert serial["test"] == parallel["test"]
    header = (tmp_path / "two" / "report.md").read_text().split("\n\n")[2]
    assert "(2 worker processes of 1 torch thread each)" in header, header


def test_a_run_stops_once_solved_on_validation(monkeypatch, tmp_path):
    """With the criterion met at every check, each run ends at the first check, and says so."""
    from rnnkit.experiments import memory

    monkeypatch.setattr(memory, "solved", lambda task, score, config: True)
    config = MemoryConfig.quick(lengths=(6,), models=("rnn",), steps=30, check_every=4, out=str(tmp_path))
    memory.run(config, command="x")
    saved = json.loads((tmp_path / "results.json").read_text())
    for task in ("adding", "copy"):
        assert saved["runs"][task]["rnn"]["6"]["steps"] == 4
        assert len(saved["runs"][task]["rnn"]["6"]["losses"]) == 4
    assert "(4 steps)" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    "bad",
    [{"num_recall": 0}, {"num_symbols": 0}, {"lr": -1.0}, {"clip": 0.0}, {"seed": -1}, {"seed": 2**64 - 1}],
)
def test_out_of_range_settings_raise_config_error(bad):
    """Each would otherwise fail with a traceback from torch, after training had started."""
    with pytest.raises(ConfigError, match=next(iter(bad))):
        MemoryConfig.quick(**bad)


def test_a_bad_out_fails_before_any_training_and_overwrites_nothing(monkeypatch, tmp_path):
    from rnnkit.experiments import memory

    def no_training(*args):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(memory, "train_and_test", no_training)
    other = tmp_path / "lm-run"
    other.mkdir()
    (other / "config.json").write_text('{"task": "lm"}\n')
    with pytest.raises(ConfigError, match="out:"):
        memory.run(MemoryConfig.quick(out=str(other)), command="x")
    assert [p.name for p in other.iterdir()] == ["config.json"]
    assert (other / "config.json").read_text() == '{"task": "lm"}\n'
