"""Tests of rnnkit.tasks.handwriting (the files themselves: tests/data/test_pen.py): padding
invariance, learning toy strokes of any length, exact resume, the CLI and bad input."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks import handwriting
from rnnkit.tasks.handwriting import Config, DataConfig, ModelConfig, PenClassifier, Reader, collate, featurize
from rnnkit.train import TrainConfig

PENDIGITS = Path(__file__).resolve().parents[3] / "shared" / "data" / "pendigits" / "pendigits.tra"


def stroke(kind: str, n: int, rng: random.Random) -> list[list[float]]:
    """A toy stroke of ``n`` points: a straight line, a circle or a zigzag, at a random size and place."""
    size, x0, y0 = rng.uniform(5, 50), rng.uniform(0, 50), rng.uniform(0, 50)
    points = []
    for i in range(n):
        u = i / (n - 1)
        if kind == "line":
            x, y = u, 0.3 * u
        elif kind == "circle":
            x, y = 0.5 + 0.5 * math.cos(2 * math.pi * u), 0.5 + 0.5 * math.sin(2 * math.pi * u)
        else:
            x, y = u, 0.5 * (int(u * 6) % 2) + 0.5 * ((u * 6) % 1) * (1 if int(u * 6) % 2 == 0 else -1)
        points.append([x0 + size * x + rng.gauss(0, 0.2), y0 + size * y + rng.gauss(0, 0.2)])
    return points


def write_strokes(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        kind = rng.choice(["line", "circle", "zigzag"])
        rows.append(json.dumps({"points": stroke(kind, rng.randint(6, 30), rng), "label": kind}))
    path.write_text("\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------- the model
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_trajectory_scores_the_same_alone_or_padded_in_a_batch(cell):
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, hidden_size=8, num_layers=2, dropout=0.0)
    model = PenClassifier(3, config).eval()
    rng = random.Random(0)
    features = featurize([torch.tensor(stroke("circle", n, rng)) for n in (5, 12, 8)], config)
    batch = collate(features, [0, 0, 0], [0, 1, 2])
    with torch.no_grad():
        together = model(batch.features, batch.lengths)
        for i in range(3):
            alone = model(features[i].unsqueeze(0), torch.tensor([len(features[i])]))
            torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- learning
def toy_config(folder: Path, cell: str = "gru", steps: int = 150) -> Config:
    return Config(
        data=DataConfig(
            str(write_strokes(folder / "train.jsonl", 600, 0)), str(write_strokes(folder / "val.jsonl", 90, 1))
        ),
        model=ModelConfig(cell=cell, hidden_size=32, dropout=0.0, mlp_points=12),
        train=TrainConfig(
            steps=steps,
            batch_size=32,
            lr=5e-3,
            eval_every=steps,
            quiet=True,
            monitor="accuracy",
            mode="max",
            run_dir=str(folder / f"run_{cell}"),
        ),
    )


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return handwriting.train(toy_config(tmp_path_factory.mktemp("pen"))).run_dir


def test_the_model_tells_toy_strokes_of_any_length_apart(toy_run):
    report = json.loads((toy_run / "eval_val.json").read_text())
    assert report["accuracy"] > 0.95 and set(report["recall_per_class"]) == {"circle", "line", "zigzag"}
    rng = random.Random(5)
    labels = [label for label, _ in Reader.load(toy_run).predict([torch.tensor(stroke("circle", 40, rng))])]
    assert labels == ["circle"]
    assert "## Handwriting" in (toy_run / "report.md").read_text()


def test_the_mlp_baseline_trains_on_resampled_points(tmp_path):
    result = handwriting.train(toy_config(tmp_path, cell="mlp", steps=100))
    assert json.loads((result.run_dir / "eval_val.json").read_text())["accuracy"] > 0.6


def test_cli_eval_and_predict(toy_run, tmp_path, capsys):
    val = toy_run.parent / "val.jsonl"
    assert main(["handwriting", "eval", "--run", str(toy_run), "--data", str(val), "--out-dir", str(tmp_path)]) == 0
    assert "accuracy" in capsys.readouterr().out and (tmp_path / "report.json").exists()
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text(json.dumps({"points": stroke("line", 9, random.Random(1))}) + "\n")
    assert main(["handwriting", "predict", "--run", str(toy_run), "--input", str(unlabelled)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["line"] == 1 and row["label"] == "line" and abs(sum(row["probabilities"].values()) - 1) < 1e-5


def test_cli_bad_input_is_one_line_and_status_2(toy_run, tmp_path, capsys):
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"points": [[0, 0], [1, 1]], "label": "spiral"}) + "\n")
    assert main(["handwriting", "eval", "--run", str(toy_run), "--data", str(new)]) == 2
    assert "new.jsonl:1: label 'spiral' was never seen in training" in capsys.readouterr().err
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"points": [[0, 0], [1, 1]], "label": "a"}) + "\n")
    assert (
        main(["handwriting", "train", "--train", str(one), "--val-fraction", "0", "--run-dir", str(tmp_path / "r")])
        == 2
    )
    assert "expected at least two" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["handwriting", "predict", "--run", str(toy_run)]) == 2
    assert "--input: required" in capsys.readouterr().err


def train_cli(folder: Path, *options: str) -> list[str]:
    return ["handwriting", "train", "--train", str(folder / "train.jsonl"), "--val", str(folder / "val.jsonl"),
            "--hidden-size", "8", "--batch-size", "16", "--eval-every", "5", "--quiet", *options]  # fmt: skip


def metrics_at(run: Path, step: int) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "per_second" not in k} for r in rows if r.get("step") == step]


def test_resume_with_only_the_run_folder_continues_exactly(tmp_path):
    torch.set_num_threads(1)
    write_strokes(tmp_path / "train.jsonl", 80, 0)
    write_strokes(tmp_path / "val.jsonl", 20, 1)
    assert main(train_cli(tmp_path, "--steps", "10", "--run-dir", str(tmp_path / "whole"))) == 0
    assert main(train_cli(tmp_path, "--steps", "5", "--run-dir", str(tmp_path / "part"))) == 0
    assert main(["handwriting", "train", "--resume", str(tmp_path / "part"), "--steps", "10", "--quiet"]) == 0
    assert metrics_at(tmp_path / "part", 10) == metrics_at(tmp_path / "whole", 10) != []
    saved = json.loads((tmp_path / "part" / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 8 and len(saved["resumed"]) == 1


def test_resume_with_other_model_options_or_another_tasks_run_is_refused_untouched(tmp_path, capsys):
    write_strokes(tmp_path / "train.jsonl", 40, 0)
    write_strokes(tmp_path / "val.jsonl", 10, 1)
    run = tmp_path / "run"
    assert main(train_cli(tmp_path, "--steps", "2", "--run-dir", str(run))) == 0
    before = (run / "config.json").read_text()
    assert main(["handwriting", "train", "--resume", str(run), "--steps", "4", "--cell", "lstm"]) == 2
    assert "resume: " in capsys.readouterr().err and (run / "config.json").read_text() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"task": "video", "train": {}}))
    assert main(["handwriting", "train", "--resume", str(tmp_path / "other")]) == 2
    assert "is a 'video' run; expected a `rnnkit handwriting train` run" in capsys.readouterr().err
    assert Reader.load(run).config.cell == "gru"


def test_a_batch_larger_than_the_training_set_is_one_line(tmp_path, capsys):
    write_strokes(tmp_path / "train.jsonl", 10, 0)
    argv = ["handwriting", "train", "--train", str(tmp_path / "train.jsonl"), "--val-fraction", "0"]
    assert main([*argv, "--run-dir", str(tmp_path / "r")]) == 2
    assert "batch_size: 64 is more than the 10 training trajectories" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_predict_normalizes_like_training(toy_run):
    """A trajectory moved and scaled is the same input: the features are per trajectory."""
    reader = Reader.load(toy_run)
    points = torch.tensor(stroke("zigzag", 17, random.Random(3)))
    (_, a), (_, b) = reader.predict([points, points * 40.0 + 1000.0])
    assert a == pytest.approx(b, abs=1e-5)


# ---------------------------------------------------------------- real data
@pytest.mark.skipif(not PENDIGITS.exists(), reason="needs ../shared/data/pendigits (absent in a user's clone)")
def test_pendigits_train_a_little(tmp_path):
    config = Config(
        data=DataConfig(str(PENDIGITS), val_fraction=0.1),
        model=ModelConfig(hidden_size=16),
        train=TrainConfig(
            steps=60, batch_size=64, lr=1e-2, quiet=True, monitor="accuracy", mode="max", run_dir=str(tmp_path / "run")
        ),
    )
    result = handwriting.train(config)
    report = json.loads((result.run_dir / "eval_val.json").read_text())
    assert report["examples"] == 749 and report["accuracy"] > 0.5
