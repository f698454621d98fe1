"""The fit loop: learning, truncated BPTT, early stopping, non-finite steps, accumulation, run folder."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from rnnkit.data.batching import ShuffledBatches
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.train import NonFiniteError, StepOutput, TrainConfig, Trainer, load_run, read_metrics, seed_everything
from rnnkit.train.optim import lr_factor
from tests.train.toy import TinyLM, carried_step, first_position_accuracy, reset_step, sequence_batches, stream


def quiet_config(**kw) -> TrainConfig:
    base = {"batch_size": 8, "lr": 1e-2, "optimizer": "adam", "quiet": True, "log_every": 5, "plots": False}
    return TrainConfig(**{**base, **kw})


def train_stream(tmp_path, step_fn, steps=150):
    seed_everything(0)
    model = TinyLM()
    trainer = Trainer(model, quiet_config(steps=steps), train_step=step_fn, run_dir=tmp_path / "run")
    result = trainer.fit(stream())
    return model, result


def test_tbptt_carried_state_learns_what_reset_state_cannot(tmp_path):
    carried, result = train_stream(tmp_path / "a", carried_step)
    reset, _ = train_stream(tmp_path / "b", reset_step)
    losses = [r["loss"] for r in read_metrics(result.run_dir) if r["kind"] == "train"]
    assert losses[-1] < 0.5 * losses[0]  # the loss falls
    batches = stream()
    assert first_position_accuracy(carried, batches, carry=True) > 0.9
    assert first_position_accuracy(reset, batches, carry=False) < 0.4  # chance is 1/8


def full_bptt_setup(tmp_path, **kw):
    tokens, targets = sequence_batches()
    batches = ShuffledBatches(len(tokens), 16, lambda idx: (tokens[idx], targets[idx]), seed=0)

    def train_step(model, batch, state):
        x, y = batch
        logits, _ = model(x)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    def evaluate(model):
        logits, _ = model(tokens[:64])
        return {"loss": float(F.cross_entropy(logits.flatten(0, 1), targets[:64].flatten()))}

    seed_everything(0)
    model = TinyLM()
    config = quiet_config(batch_size=16, **kw)
    return model, Trainer(model, config, train_step=train_step, evaluate=evaluate, run_dir=tmp_path / "run"), batches


def test_run_folder_has_config_metrics_checkpoints_plots_and_report(tmp_path):
    _, trainer, batches = full_bptt_setup(tmp_path, steps=30, eval_every=10, schedule="cosine", warmup=3, plots=True)
    trainer.write_file("vocab.json", json.dumps(["a", "b"]))
    result = trainer.fit(batches)
    run = result.run_dir
    assert result.stop_reason == "completed" and result.steps == 30
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["schedule"] == "cosine" and config["command"]
    rows = read_metrics(run)
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [10, 20, 30]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert {"loss", "lr", "grad_norm", "grad_norm/rnn.l0", "grad_norm/head"} <= set(train_rows[0])
    assert train_rows[0]["lr"] < train_rows[1]["lr"] or train_rows[0]["step"] >= 3  # warmup, then decay
    assert train_rows[-1]["lr"] < 1e-3  # cosine ends near zero
    for name in ("loss.png", "lr.png", "grad_norm.png"):
        assert (run / "plots" / name).stat().st_size > 1000
    report = (run / "report.md").read_text()
    assert "best val loss" in report and config["command"] in report
    assert json.loads((run / "vocab.json").read_text()) == ["a", "b"]
    saved_config, state_dict = load_run(run)
    assert saved_config["train"]["steps"] == 30
    best = json.loads((run / "checkpoints/best/meta.json").read_text())
    assert best["step"] == result.best_step and math.isclose(best["best_metric"], result.best_metric)
    assert torch.equal(state_dict["head.weight"], load_file(run / "checkpoints/best/model.safetensors")["head.weight"])


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path):
    scores = iter([3.0, 2.0, 2.5, 2.1, 1.0])  # best at the 2nd evaluation, then two worse ones

    _, trainer, batches = full_bptt_setup(tmp_path, steps=100, eval_every=5, patience=2)
    trainer.evaluate_fn = lambda model: {"loss": next(scores)}
    result = trainer.fit(batches)
    assert result.stop_reason == "early stopping"
    assert result.steps == 20 and result.best_step == 10 and result.best_metric == 2.0
    assert json.loads((result.run_dir / "checkpoints/last/meta.json").read_text())["step"] == 20


def test_mode_max_keeps_the_largest_metric(tmp_path):
    scores = iter([0.1, 0.5, 0.3])
    _, trainer, batches = full_bptt_setup(tmp_path, steps=15, eval_every=5, monitor="acc", mode="max")
    trainer.evaluate_fn = lambda model: {"acc": next(scores)}
    result = trainer.fit(batches)
    assert (result.best_metric, result.best_step) == (0.5, 10)


def test_non_finite_steps_are_skipped_then_the_run_stops_and_the_checkpoint_is_unchanged(tmp_path):
    model, trainer, batches = full_bptt_setup(tmp_path, steps=40, eval_every=10, max_nonfinite=3)
    real_step = trainer.train_step
    calls = {"n": 0}

    def poisoned_step(model, batch, state):
        calls["n"] += 1
        loss = real_step(model, batch, state)
        if calls["n"] in (5, 6) or calls["n"] > 12:  # two isolated bad steps, then a run of them
            loss = loss * float("nan")
        return loss

    trainer.train_step = poisoned_step
    last = tmp_path / "run/checkpoints/last/model.safetensors"
    with pytest.raises(NonFiniteError, match="3 steps in a row"):
        trainer.fit(batches)
    assert trainer.step == 14  # steps 13, 14 and 15 were non-finite; 15 raised
    weights = load_file(last)
    assert json.loads((last.parent / "meta.json").read_text())["step"] == 10
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # skipped steps never touched weights
    warnings = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "warning"]
    assert [w["step"] for w in warnings] == [5, 6, 13, 14, 15]
    assert "diverged" in (tmp_path / "run/report.md").read_text()


def test_accumulation_equals_one_big_batch(tmp_path):
    def run(batch_size, accumulate, folder):
        tokens, targets = sequence_batches(n=64)
        batches = ShuffledBatches(64, batch_size, lambda idx: (tokens[idx], targets[idx]), shuffle=False)

        def train_step(model, batch, state):
            logits, _ = model(batch[0])
            return F.cross_entropy(logits.flatten(0, 1), batch[1].flatten())

        seed_everything(0)
        model = TinyLM()
        cfg = quiet_config(steps=4, batch_size=batch_size, accumulate=accumulate, optimizer="sgd", lr=0.5)
        Trainer(model, cfg, train_step=train_step, run_dir=tmp_path / folder).fit(batches)
        return model.head.weight.detach()

    assert torch.allclose(run(16, 1, "a"), run(8, 2, "b"), atol=1e-5)


def test_step_output_metrics_and_items_are_logged(tmp_path):
    _, trainer, batches = full_bptt_setup(tmp_path, steps=10, log_every=5)
    real_step = trainer.train_step
    trainer.train_step = lambda m, b, s: StepOutput(real_step(m, b, s), metrics={"acc": 0.25}, items=96)
    trainer.fit(batches)
    row = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "train"][-1]
    assert row["acc"] == 0.25 and row["items_per_second"] > 0


def test_clip_value_and_norm_bound_the_update(tmp_path):
    _, trainer, batches = full_bptt_setup(tmp_path, steps=1, optimizer="sgd", lr=1.0, clip_value=1e-4, clip_norm=None)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit(batches)
    for old, new in zip(before, trainer.model.parameters(), strict=True):
        assert (new.detach() - old).abs().max() <= 1e-4 + 1e-7


def test_iterable_data_by_epochs_resumes_at_the_same_batch(tmp_path):
    tokens, targets = sequence_batches(n=48)
    batches = [(tokens[i : i + 8], targets[i : i + 8]) for i in range(0, 48, 8)]  # an iterable: 6 batches an epoch

    def train_step(model, batch, state):
        logits, _ = model(batch[0])
        return F.cross_entropy(logits.flatten(0, 1), batch[1].flatten())

    def train(folder, **kw):
        seed_everything(0)
        model = TinyLM(dropout=0.3)  # dropout: the random stream must be restored too
        cfg = quiet_config(log_every=1, **kw)
        result = Trainer(model, cfg, train_step=train_step, run_dir=tmp_path / folder).fit(batches)
        return model, result

    straight, result = train("straight", steps=None, epochs=2)
    assert result.steps == 12
    train("cut", steps=8)  # stops in the middle of the second epoch, with a checkpoint at step 8
    resumed, _ = train("ignored", steps=None, epochs=2, resume=str(tmp_path / "cut"))
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters(), strict=True))
    losses = [
        [(r["step"], r["loss"]) for r in read_metrics(tmp_path / d) if r["kind"] == "train"]
        for d in ("straight", "cut")
    ]
    assert len(losses[0]) == 12 and losses[0] == losses[1]


def test_bf16_autocast_trains(tmp_path):
    _, trainer, batches = full_bptt_setup(tmp_path, steps=20, precision="bf16", eval_every=10)
    result = trainer.fit(batches)
    rows = [r["loss"] for r in read_metrics(result.run_dir) if r["kind"] == "train"]
    assert all(math.isfinite(x) for x in rows) and rows[-1] < rows[0]


def test_json_log_format_prints_json_lines(tmp_path, capsys):
    _, trainer, batches = full_bptt_setup(tmp_path, steps=10, eval_every=5)
    trainer.config.quiet, trainer.config.log_format = False, "json"
    trainer.fit(batches)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [5, 10]
    assert [r["step"] for r in lines if r["kind"] == "train"] == [5, 10]


def test_plateau_schedule_lowers_lr_when_the_metric_stalls(tmp_path):
    scores = iter([1.0, 1.0, 1.0, 1.0])
    _, trainer, batches = full_bptt_setup(tmp_path, steps=20, eval_every=5, schedule="plateau", gamma=0.1)
    trainer.evaluate_fn = lambda model: {"loss": next(scores)}
    trainer.fit(batches)
    assert trainer.optimizer.param_groups[0]["lr"] < 1e-2


def test_vanishing_gradients_are_warned_about(tmp_path):
    _, trainer, batches = full_bptt_setup(tmp_path, steps=12, grad_warn_steps=10, vanish_threshold=1e-3)
    real_step = trainer.train_step
    trainer.train_step = lambda m, b, s: real_step(m, b, s) * 1e-9  # gradients far below the threshold
    trainer.fit(batches)
    warnings = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["step"] == 10 and "vanishing" in warnings[0]["message"]


def test_tensorboard_events_are_written(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    _, trainer, batches = full_bptt_setup(tmp_path, steps=10, eval_every=5, tensorboard=True)
    trainer.fit(batches)
    events = list((tmp_path / "run/tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100


def test_batch_feed_sets_the_epoch_of_a_distributed_sampler_and_replays_on_resume():
    from torch.utils.data import DataLoader, DistributedSampler

    from rnnkit.train.trainer import BatchFeed

    data = list(range(12))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=3)
    loader = DataLoader(data, batch_size=2, sampler=sampler)  # 3 batches per epoch on this rank
    feed = BatchFeed(loader)
    seen = [feed.next().tolist() for _ in range(7)]
    epoch0, epoch1 = (sorted(i for batch in seen[a : a + 3] for i in batch) for a in (0, 3))
    assert len(set(epoch0)) == len(set(epoch1)) == 6  # each epoch: half of the data, on this rank
    assert epoch0 != epoch1  # reshuffled between epochs: set_epoch was called
    assert feed.state_dict() == {"position": 7, "epoch": 2, "index": 1}
    again = BatchFeed(DataLoader(data, batch_size=2, sampler=DistributedSampler(data, 2, 1, shuffle=True, seed=3)))
    again.load_state_dict({"position": 4, "epoch": 1, "index": 1})
    assert [again.next().tolist() for _ in range(3)] == seen[4:7]


def batches_of_8(n: int) -> list:
    """``n`` toy sequences as an iterable of batches of 8 ``(tokens, targets)``."""
    tokens, targets = sequence_batches(n=n)
    return [(tokens[i : i + 8], targets[i : i + 8]) for i in range(0, n, 8)]


def next_token_step(model, batch, state):
    logits, _ = model(batch[0])
    return F.cross_entropy(logits.flatten(0, 1), batch[1].flatten())


def test_a_resume_that_does_not_fit_the_model_is_one_error_and_leaves_the_run_as_it_was(tmp_path):
    batches = batches_of_8(32)

    run = tmp_path / "run"
    Trainer(
        TinyLM(hidden=24), quiet_config(steps=4), train_step=next_token_step, run_dir=run, task_config={"hidden": 24}
    ).fit(batches)
    saved = (run / "config.json").read_bytes()
    again = quiet_config(steps=8, resume=str(run))
    trainer = Trainer(TinyLM(hidden=16), again, train_step=next_token_step, task_config={"hidden": 16})
    with pytest.raises(CheckpointError, match=r"does not fit this model .*size mismatch"):
        trainer.fit(batches)
    assert (run / "config.json").read_bytes() == saved  # still the run's own config: eval on it still loads
    (run / "plots").mkdir(exist_ok=True)
    (run / "plots" / "sample.png").write_bytes(b"a task's own plot, which it lists itself")
    resumed = Trainer(TinyLM(hidden=24), again, train_step=next_token_step, task_config={"hidden": 24})
    assert resumed.fit(batches).steps == 8
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["steps"] == 8  # written once it had loaded
    report = (run / "report.md").read_text()
    assert f"{config['command']}\n{config['resumed'][0]}\n```" in report  # the first session, then the resume
    assert "sample.png" not in report  # only the trainer's own plots (plots=False here: none)


def test_a_new_run_in_an_old_runs_folder_starts_its_own_record(tmp_path):
    batches = batches_of_8(16)

    run = tmp_path / "run"
    Trainer(TinyLM(), quiet_config(steps=2), train_step=next_token_step, run_dir=run).fit(batches)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "command": "rnnkit lm train --the-earlier-run"}))
    Trainer(TinyLM(), quiet_config(steps=2), train_step=next_token_step, run_dir=run).fit(batches)  # not --resume
    config = json.loads((run / "config.json").read_text())
    assert "resumed" not in config and config["command"] != "rnnkit lm train --the-earlier-run"


def test_logged_lr_is_the_rate_the_logged_step_used(tmp_path):
    _, trainer, batches = full_bptt_setup(tmp_path, steps=6, warmup=4, log_every=1)
    trainer.fit(batches)
    logged = [r["lr"] for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    assert logged == pytest.approx([1e-2 * f for f in (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)])  # warmup from 1/4


@pytest.mark.parametrize(
    ("first", "again", "message"),
    [
        ({"optimizer": "adam"}, {"optimizer": "sgd"}, r"optimizer: .* trained with 'adam', .*into 'sgd'"),
        ({"schedule": "cosine"}, {"schedule": "plateau"}, r"schedule: .* trained with 'cosine'"),
        ({"schedule": "plateau"}, {"schedule": "constant"}, r"schedule: .* trained with 'plateau'.*expected plateau"),
    ],
)
def test_a_resume_whose_optimizer_or_schedule_cannot_load_the_saved_state_is_refused_up_front(
    tmp_path, first, again, message
):
    batches, run = batches_of_8(16), tmp_path / "run"
    Trainer(TinyLM(), quiet_config(steps=2, **first), train_step=next_token_step, run_dir=run).fit(batches)
    saved = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=message):
        Trainer(TinyLM(), quiet_config(steps=4, resume=str(run), **again), train_step=next_token_step)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == saved
    resumed = Trainer(TinyLM(), quiet_config(steps=4, resume=str(run), **first), train_step=next_token_step)
    assert resumed.fit(batches).steps == 4  # the run's own options still resume it


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda s: s.pop("scheduler"), "'scheduler' is missing"),
        (lambda s: s["trainer"].pop("bad_evals"), "'trainer.bad_evals' is missing"),
        (lambda s: s["data"].pop("position"), "'data.position' is missing"),
        (lambda s: s.update(per_rank={}), "'per_rank' holds a dict"),
    ],
)
def test_a_training_state_without_a_field_is_one_error_naming_the_file_and_field(tmp_path, damage, field):
    batches, run = batches_of_8(16), tmp_path / "run"
    Trainer(TinyLM(), quiet_config(steps=2), train_step=next_token_step, run_dir=run).fit(batches)
    path = run / "checkpoints/last/train_state.pt"
    state = torch.load(path, weights_only=True)
    damage(state)
    torch.save(state, path)
    trainer = Trainer(TinyLM(), quiet_config(steps=4, resume=str(run)), train_step=next_token_step)
    with pytest.raises(CheckpointError, match=rf"{path}: field {field}"):
        trainer.fit(batches)


def test_a_run_folder_that_cannot_be_made_is_one_config_error_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    reasons = {blocker: "exists and is not a folder", blocker / "run": "a part of this path is a file, not a folder"}
    for run_dir, reason in reasons.items():
        with pytest.raises(ConfigError, match=rf"run_dir: {run_dir}: {reason}"):
            Trainer(TinyLM(), quiet_config(steps=1), train_step=next_token_step, run_dir=run_dir)
    with pytest.raises(ConfigError, match=rf"run_dir: {blocker}/run/.*: a part of this path is a file"):
        Trainer(TinyLM(), quiet_config(steps=1), train_step=next_token_step, task="run", runs_root=blocker)


def test_a_named_tuple_state_is_refused_at_once_not_at_resume():
    from collections import namedtuple

    from rnnkit.train.trainer import detach_state

    State = namedtuple("State", "h c")
    h, c = torch.ones(2, requires_grad=True) * 2, torch.zeros(2)
    detached = detach_state({"lstm": (h, c), "gru": [h]})
    assert not detached["lstm"][0].requires_grad and type(detached["lstm"]) is tuple
    with pytest.raises(TypeError, match=r"train_step state: expected a tensor or a plain tuple.*got State"):
        detach_state(State(h, c))  # a checkpoint holding it could not be loaded back


def test_a_skipped_step_moves_the_schedule_on_so_it_ends_where_planned(tmp_path):
    import warnings

    _, trainer, batches = full_bptt_setup(tmp_path, steps=20, schedule="cosine", min_lr=1e-4, log_every=1)
    real_step = trainer.train_step
    calls = {"n": 0}

    def poisoned_step(model, batch, state):
        calls["n"] += 1
        loss = real_step(model, batch, state)
        return loss * float("nan") if calls["n"] in (1, 7) else loss  # the very first step is skipped too

    trainer.train_step = poisoned_step
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "scheduler before optimizer" warning is not let out
        trainer.fit(batches)
    logged = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "run") if r["kind"] == "train"}
    factor = lr_factor(trainer.config, 20)
    assert all(logged[s] == pytest.approx(trainer.config.lr * factor(s - 1)) for s in range(1, 21))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # the cosine's floor, not above it
