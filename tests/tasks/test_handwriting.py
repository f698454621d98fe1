"""Tests of rnnkit.tasks.handwriting and rnnkit.data.pen: both file formats and their errors,
features and resampling against direct formulas, padding invariance, learning toy strokes of any
length, the CLI and bad input."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.pen import point_features, read_trajectories, resample
from rnnkit.errors import DataError
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


# ---------------------------------------------------------------- data
def test_pendigits_lines_with_one_hot_or_integer_classes(tmp_path):
    path = tmp_path / "p.tra"
    path.write_text(
        "47,100,27,81,57,37,26,0,0,23,56,53,100,90,40,98,0000000010\n0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,3\n"
    )
    data = read_trajectories(path)
    assert data.labels == ["8", "3"] and data.points[0].shape == (8, 2)
    assert data.points[0][1].tolist() == [27.0, 81.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2,3\n", r"p\.tra:1: found 3 comma-separated fields"),
        ("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,x,3\n", r"p\.tra:1: coordinates .*expected 16 integers"),
        ("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,101,3\n", r"expected integers in 0\.\.100"),
        ("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,0110000000\n", r"class '0110000000'"),
    ],
)
def test_bad_pendigits_lines_are_named(tmp_path, content, message):
    path = tmp_path / "p.tra"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_trajectories(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "not valid JSON"),
        ('{"label": "a"}', "expected an object"),
        ('{"points": [[1, 2]], "label": "a"}', "at least two"),
        ('{"points": [[1, 2], [3, NaN]], "label": "a"}', "finite numbers"),
        ('{"points": [[1, 2], [3, "4"]], "label": "a"}', "finite numbers"),
        ('{"points": [[1, 2], [3, 4]]}', 'no "label"'),
    ],
)
def test_bad_json_lines_are_named(tmp_path, line, message):
    path = tmp_path / "s.jsonl"
    path.write_text('{"points": [[0, 0], [1, 1]], "label": "a"}\n' + line + "\n")
    with pytest.raises(DataError, match=r"s\.jsonl:2: .*" + message):
        read_trajectories(path)


def test_point_features_and_resampling():
    points = torch.tensor([[10.0, 20.0], [14.0, 20.0], [14.0, 22.0]])
    features = point_features(points)
    torch.testing.assert_close(features[:, :2], torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5]]))
    torch.testing.assert_close(features[:, 2:], torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]]))
    # the path is 4 along x then 2 along y: 4 points at arc lengths 0, 2, 4, 6
    torch.testing.assert_close(
        resample(points, 4), torch.tensor([[10.0, 20.0], [12.0, 20.0], [14.0, 20.0], [14.0, 22.0]])
    )
    assert resample(torch.tensor([[1.0, 1.0], [1.0, 1.0]]), 3).tolist() == [[1.0, 1.0]] * 3


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
