"""Tests of rnnkit.tasks.video (the clip files themselves: tests/data/test_video.py): padding
invariance, the direction of motion learned by the RNN and not by the order-blind baseline,
manifests checked clip by clip, exact resume, the CLI and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.video import DIRECTIONS, moving_shapes
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


def test_eval_reads_the_manifest_columns_the_run_was_trained_with(tmp_path, capsys):
    torch.set_num_threads(1)
    for name, seed in (("train", 0), ("val", 1)):
        manifest = write_clips(tmp_path / name, 16, seed)
        manifest.write_text(manifest.read_text().replace("path\tlabel", "file\tmove", 1))
    argv = ["video", "train", "--train", str(tmp_path / "train" / "manifest.tsv"), "--path-column", "file"]
    argv += ["--label-column", "move", "--embed-dim", "4", "--hidden-size", "4", "--steps", "2", "--quiet"]
    assert main([*argv, "--batch-size", "8", "--run-dir", str(tmp_path / "run")]) == 0
    val = str(tmp_path / "val" / "manifest.tsv")
    assert main(["video", "eval", "--run", str(tmp_path / "run"), "--data", val]) == 0
    assert "(16 clips)" in capsys.readouterr().out
    assert main(["video", "eval", "--run", str(tmp_path / "run"), "--data", val, "--path-column", "path"]) == 2
    assert "no column 'path'" in capsys.readouterr().err


def test_resume_with_only_the_run_folder_continues_exactly(tmp_path):
    torch.set_num_threads(1)
    train, val = write_clips(tmp_path / "train", 24, 0), write_clips(tmp_path / "val", 8, 1)
    argv = ["video", "train", "--train", str(train), "--val", str(val), "--embed-dim", "4", "--hidden-size", "4"]
    argv += ["--batch-size", "8", "--eval-every", "3", "--quiet"]
    assert main([*argv, "--steps", "6", "--run-dir", str(tmp_path / "whole")]) == 0
    assert main([*argv, "--steps", "3", "--run-dir", str(tmp_path / "part")]) == 0
    assert main(["video", "train", "--resume", str(tmp_path / "part"), "--steps", "6", "--quiet"]) == 0

    def at_step_6(run: Path) -> list[dict]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if "per_second" not in k} for r in rows if r.get("step") == 6]

    assert at_step_6(tmp_path / "part") == at_step_6(tmp_path / "whole") != []
    before = (tmp_path / "part" / "config.json").read_text()
    assert main(["video", "train", "--resume", str(tmp_path / "part"), "--steps", "9", "--temporal", "lstm"]) == 2
    assert (tmp_path / "part" / "config.json").read_text() == before


def test_a_manifest_mixing_uint8_and_float_clips_is_refused(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((3, 8, 8), dtype=np.uint8))
    np.save(tmp_path / "b.npy", np.full((3, 8, 8), 200.0, dtype=np.float32))  # 0..255 but not scaled
    (tmp_path / "m.tsv").write_text("path\tlabel\na.npy\tleft\nb.npy\tright\n")
    assert main(["video", "train", "--train", str(tmp_path / "m.tsv"), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "m.tsv:3:" in err and "dtype float32; expected uint8 like the others" in err
    assert not (tmp_path / "r").exists()


def test_a_clip_path_is_relative_to_the_manifest_folder(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.zeros((3, 8, 8), dtype=np.uint8))
    (tmp_path / "data" / "m.tsv").write_text("path\tlabel\ndata/a.npy\tleft\n")
    assert main(["video", "train", "--train", str(tmp_path / "data" / "m.tsv")]) == 2
    assert "m.tsv:2:" in (err := capsys.readouterr().err) and "relative to the manifest's folder" in err


def test_predict_a_folder_and_refuse_clips_unlike_the_training_ones(toy_runs, tmp_path, capsys):
    run, folder = toy_runs["gru"], toy_runs["gru"].parent / "val"
    assert main(["video", "predict", "--run", str(run), str(folder)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in sorted(folder.glob("*.npy"))] and len(rows) == 80
    watcher = Watcher.load(run)
    assert [label for label, _ in watcher.predict([folder / "0.npy"])] == [rows[0][1]]
    np.save(tmp_path / "f.npy", np.load(folder / "0.npy").astype(np.float32))  # 0..255, unscaled
    assert main(["video", "predict", "--run", str(run), str(tmp_path / "f.npy")]) == 2
    assert "f.npy: dtype float32; expected uint8 like the training clips" in capsys.readouterr().err
    with pytest.raises(DataError, match="expected uint8"):
        watcher.predict([tmp_path / "f.npy"])
