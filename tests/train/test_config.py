"""TrainConfig validation and its command-line form."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from rnnkit.errors import ConfigError
from rnnkit.train import TrainConfig, add_train_args, config_from_args


def parse(argv, defaults=None):
    parser = argparse.ArgumentParser()
    add_train_args(parser, defaults)
    return config_from_args(parser.parse_args(argv))


def test_every_common_option_reaches_the_config():
    argv = (
        "--steps 7 --batch-size 4 --lr 0.5 --optimizer sgd --schedule cosine --warmup 2 --clip-norm none "
        "--clip-value 0.1 --accumulate 3 --eval-every 5 --patience 2 --seed 9 --device cpu --precision bf16 "
        "--run-dir r --quiet --log-format json --tensorboard"
    )
    cfg = parse(argv.split())
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.optimizer) == (7, 4, 0.5, "sgd")
    assert (cfg.schedule, cfg.warmup) == ("cosine", 2)
    assert (cfg.clip_norm, cfg.clip_value, cfg.accumulate, cfg.eval_every, cfg.patience) == (None, 0.1, 3, 5, 2)
    assert (cfg.seed, cfg.device, cfg.precision, cfg.run_dir) == (9, "cpu", "bf16", "r")
    assert cfg.quiet and cfg.log_format == "json" and cfg.tensorboard


def test_every_field_is_an_option_and_the_rest_reach_the_config_too():
    parser = argparse.ArgumentParser()
    add_train_args(parser)
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= {a.dest for a in parser._actions}
    argv = (
        "--optimizer sgd --momentum 0.9 --schedule step --step-size 7 --gamma 0.25 --min-lr 1e-5 "
        "--checkpoint-every 3 --monitor accuracy --mode max --max-nonfinite 2 --vanish-threshold 1e-8 "
        "--explode-threshold 50 --grad-warn-steps 4 --no-plots --dist-timeout 60"
    )
    cfg = parse(argv.split())
    assert (cfg.momentum, cfg.step_size, cfg.gamma, cfg.min_lr) == (0.9, 7, 0.25, 1e-5)
    assert (cfg.checkpoint_every, cfg.monitor, cfg.mode, cfg.max_nonfinite) == (3, "accuracy", "max", 2)
    assert (cfg.vanish_threshold, cfg.explode_threshold, cfg.grad_warn_steps) == (1e-8, 50.0, 4)
    assert cfg.plots is False and cfg.dist_timeout == 60.0


def test_task_defaults_and_epochs_replacing_steps():
    defaults = TrainConfig(steps=2000, lr=3e-3)
    assert parse([], defaults).lr == 3e-3
    cfg = parse(["--epochs", "3"], defaults)
    assert (cfg.steps, cfg.epochs) == (None, 3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("optimizer", "lbfgs", "optimizer: expected one of"),
        ("batch_size", 0, "batch_size: expected an integer >= 1"),
        ("lr", -1.0, "lr: expected a finite number > 0"),
        ("lr", float("inf"), "lr: expected a finite number > 0"),
        ("weight_decay", -0.1, "weight_decay: expected a finite number >= 0"),
        ("momentum", 1.0, r"momentum: expected a number in \[0, 1\)"),
        ("min_lr", 1.0, r"min_lr: expected a number in \[0, lr=0.001\]"),
        ("vanish_threshold", float("nan"), "vanish_threshold: expected a finite number >= 0"),
        ("explode_threshold", 1e-7, "explode_threshold: expected a number > vanish_threshold"),
        ("dist_timeout", 0.0, "dist_timeout: expected a number of seconds > 0"),
        ("clip_norm", 0.0, "clip_norm"),
        ("epochs", 2, "steps/epochs: give exactly one"),
    ],
)
def test_invalid_values_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    ("schedule", "gamma", "message"),
    [("step", 0.0, r"\(0, 1\] for schedule 'step'"), ("step", 1.5, "step"), ("plateau", 1.0, r"\(0, 1\) for schedule")],
)
def test_gamma_is_checked_for_the_schedule_that_uses_it(schedule, gamma, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(schedule=schedule, gamma=gamma)
    assert TrainConfig(schedule="cosine", gamma=gamma).gamma == gamma  # not read: not checked


def test_resume_starts_from_the_saved_options(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = TrainConfig(steps=50, lr=0.25, batch_size=4).to_dict()
    (run / "config.json").write_text(json.dumps({"train": saved}))
    cfg = parse(["--resume", str(run), "--steps", "80"])
    assert (cfg.lr, cfg.batch_size, cfg.steps, cfg.resume) == (0.25, 4, 80, str(run))


def test_resume_of_a_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"config.json: not found"):
        parse(["--resume", str(tmp_path)])


def test_a_resumed_run_goes_on_in_its_own_folder_even_after_a_move(tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    saved = TrainConfig(steps=50, run_dir=str(tmp_path / "where-it-was")).to_dict()
    (moved / "config.json").write_text(json.dumps({"train": saved}))
    cfg = parse(["--resume", str(moved)])
    assert cfg.run_dir is None and cfg.resume == str(moved)  # not the saved folder it no longer is in
    assert parse(["--resume", str(moved), "--run-dir", str(moved)]).run_dir == str(moved)
    with pytest.raises(ConfigError, match=r"run_dir: .*a resumed run goes on in its own folder"):
        parse(["--resume", str(moved), "--run-dir", str(tmp_path / "elsewhere")])  # was silently ignored


def test_on_resume_an_option_given_with_its_default_value_replaces_the_saved_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": TrainConfig(steps=50, lr=0.25).to_dict()}))
    parser = argparse.ArgumentParser()
    add_train_args(parser)
    args = parser.parse_args(["--resume", str(run), "--lr", "0.001", "--steps", "1000"])  # both the defaults
    assert (config_from_args(args).lr, config_from_args(args).steps) == (0.25, 50)  # no record: not told apart
    args._given = frozenset({"resume", "lr", "steps"})  # what the rnnkit command records (rnnkit.cli)
    assert (config_from_args(args).lr, config_from_args(args).steps) == (0.001, 1000)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", "0.1", r"lr: expected a number, got '0.1' \(str\)"),
        ("clip_norm", "1", "clip_norm: expected a number or None"),
        ("steps", True, r"steps: expected an integer or None, got True \(bool\)"),
        ("patience", 1.5, "patience: expected an integer or None"),
        ("quiet", "false", "quiet: expected true or false"),  # a non-empty string would have been True
        ("seed", "7", "seed: expected an integer"),
        ("monitor", None, "monitor: expected a string"),
    ],
)
def test_values_of_the_wrong_type_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


def test_paths_and_numbers_of_a_wider_type_are_taken(tmp_path):
    cfg = TrainConfig(run_dir=tmp_path / "run", lr=1, precision=32, dist_timeout=60)
    assert cfg.run_dir == str(tmp_path / "run") and cfg.precision == "32"
    json.dumps(cfg.to_dict())  # the config is saved in config.json and every checkpoint's meta.json
