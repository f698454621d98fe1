"""Tests of rnnkit.tasks.video and rnnkit.data.video: clip files and their errors, padding
invariance, the direction of motion learned by the RNN and not by the order-blind baseline, the
CLI and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.video import DIRECTIONS, moving_shapes, read_clip
from rnnkit.errors import DataError
from rnnkit.tasks import video
from rnnkit.tasks.video import Config, DataConfig, ModelConfig, VideoClassifier, Watcher, collate
from rnnkit.train import TrainConfig


def write_clips(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    clips, labels = moving_shapes(n, frames=6, size=16, seed=seed)
    rows = ["path\tlabel"]
    for i, (clip, label) in enumerate(zip(clips, labels, strict=True)):
        np.save(folder / f"{i}.npy", (clip[:, 0].numpy() * 255).astype(np.uint8))
        rows.append(f"{i}.npy\t{label}")
    (folder / "manifest.tsv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.tsv"


# ---------------------------------------------------------------- data
def test_read_clip_layouts_and_scaling(tmp_path):
    np.save(tmp_path / "g.npy", np.full((3, 4, 5), 255, dtype=np.uint8))
    assert read_clip(tmp_path / "g.npy").shape == (3, 1, 4, 5) and read_clip(tmp_path / "g.npy").max() == 1.0
    rgb = np.random.default_rng(0).random((2, 4, 5, 3)).astype(np.float32)
    np.save(tmp_path / "c.npy", rgb)
    clip = read_clip(tmp_path / "c.npy")
    assert clip.shape == (2, 3, 4, 5) and torch.equal(clip[1, 2], torch.from_numpy(rgb[1, :, :, 2]))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 5)), r"shape \(4, 5\); expected frames"),
        (np.array([["a"]] * 2).reshape(1, 1, 2), "dtype <U1; expected numbers"),
        (np.full((1, 2, 2), np.nan), "NaN or infinite"),
    ],
)
def test_bad_clips_are_named(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=r"x\.npy: .*" + message):
        read_clip(tmp_path / "x.npy")


def test_a_pickled_object_array_is_refused(tmp_path):
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"p\.npy: not a readable \.npy array"):
        read_clip(tmp_path / "p.npy")


def test_moving_shapes_move_two_pixels_a_frame():
    clips, labels = moving_shapes(20, frames=5, size=16, seed=0)
    assert set(labels) <= set(DIRECTIONS)
    for clip, label in zip(clips, labels, strict=True):
        mass = (clip[:, 0] > 0.5).float()  # (T, H, W)
        ys, xs = torch.arange(16.0)[:, None], torch.arange(16.0)[None, :]
        cx = (mass * xs).sum((1, 2)) / mass.sum((1, 2))
        cy = (mass * ys).sum((1, 2)) / mass.sum((1, 2))
        step = {"left": (-2, 0), "right": (2, 0), "up": (0, -2), "down": (0, 2)}[label]
        torch.testing.assert_close(cx[1:] - cx[:-1], torch.full((4,), float(step[0])))
        torch.testing.assert_close(cy[1:] - cy[:-1], torch.full((4,), float(step[1])))


# ---------------------------------------------------------------- the model
@pytest.mark.parametrize("temporal", ["gru", "lstm", "mean"])
def test_a_clip_scores_the_same_alone_or_padded_in_a_batch(temporal):
    torch.manual_seed(0)
    model = VideoClassifier(1, 4, ModelConfig(temporal=temporal, embed_dim=16, hidden_size=8, dropout=0.0)).eval()
    clips = [torch.rand(n, 1, 12, 12) for n in (3, 6, 4)]
    batch = collate(clips, [0, 0, 0], [0, 1, 2])
    with torch.no_grad():
        together = model(batch.clips, batch.lengths)
        for i, clip in enumerate(clips):
            torch.testing.assert_close(
                model(clip[None], torch.tensor([len(clip)]))[0], together[i], atol=1e-5, rtol=1e-5
            )


# ---------------------------------------------------------------- learning
def toy_config(folder: Path, temporal: str) -> Config:
    return Config(
        data=DataConfig(str(write_clips(folder / "train", 320, 0)), str(write_clips(folder / "val", 80, 1))),
        model=ModelConfig(temporal=temporal, embed_dim=32, hidden_size=32, dropout=0.0),
        train=TrainConfig(
            steps=120,
            batch_size=32,
            lr=3e-3,
            eval_every=120,
            quiet=True,
            monitor="accuracy",
            mode="max",
            run_dir=str(folder / f"run_{temporal}"),
        ),
    )


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory) -> dict[str, Path]:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("video")
    return {t: video.train(toy_config(folder, t)).run_dir for t in ("gru", "mean")}


def test_the_rnn_sees_the_direction_and_the_frame_average_cannot(toy_runs):
    rnn = json.loads((toy_runs["gru"] / "eval_val.json").read_text())["accuracy"]
    mean = json.loads((toy_runs["mean"] / "eval_val.json").read_text())["accuracy"]
    assert rnn > 0.9 and mean < 0.6 and "## Video" in (toy_runs["gru"] / "report.md").read_text()


def test_cli_eval_and_predict(toy_runs, capsys):
    run = toy_runs["gru"]
    val = run.parent / "val" / "manifest.tsv"
    assert main(["video", "eval", "--run", str(run), "--data", str(val)]) == 0
    assert "accuracy" in capsys.readouterr().out and (run / "eval" / "manifest" / "report.json").exists()
    clip = run.parent / "val" / "0.npy"
    assert main(["video", "predict", "--run", str(run), str(clip)]) == 0
    file, label, _ = capsys.readouterr().out.split("\t")
    assert file == str(clip) and label in DIRECTIONS


def test_cli_bad_input_is_one_line_and_status_2(toy_runs, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.zeros((3, 20, 20), dtype=np.uint8))
    np.save(tmp_path / "ok.npy", np.zeros((3, 16, 16), dtype=np.uint8))
    (tmp_path / "m.tsv").write_text("path\tlabel\nok.npy\tleft\nbig.npy\tright\n")
    status = main(["video", "train", "--train", str(tmp_path / "m.tsv"), "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and "m.tsv:3:" in err and "(1, 20, 20)" in err and not (tmp_path / "r").exists()
    (tmp_path / "n.tsv").write_text("path\tlabel\nmissing.npy\tleft\n")
    assert main(["video", "eval", "--run", str(toy_runs["gru"]), "--data", str(tmp_path / "n.tsv")]) == 2
    assert "n.tsv:2:" in capsys.readouterr().err
    assert main(["video", "predict", "--run", str(toy_runs["gru"]), str(tmp_path / "big.npy")]) == 2
    assert "expected (1, 16, 16)" in capsys.readouterr().err
    assert main(["video", "predict", "--run", str(toy_runs["gru"])]) == 2
    assert "--files: required" in capsys.readouterr().err
    assert isinstance(Watcher.load(toy_runs["mean"]), Watcher)
