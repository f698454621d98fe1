"""Tests of rnnkit.tasks.video (the clip files themselves: tests/data/test_video.py and
test_video_files.py): padding invariance, the direction of motion learned by the RNN and not by
the order-blind baseline, manifests checked clip by clip, exact resume, the CLI and bad input;
and the same on MP4 files: train, eval and predict with the run's decoding options, resume
keeping them, and every bad video file one line with status 2."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.video import DIRECTIONS, moving_shapes
from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks import video
from rnnkit.tasks.video import Config, DataConfig, ModelConfig, VideoClassifier, Watcher, collate
from rnnkit.train import TrainConfig
from tests.data.video_writer import flat_frames, packet_spans, write_video


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
    err = capsys.readouterr().err
    assert "files: required" in err and "--files" not in err  # a positional, not an option
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


# ---------------------------------------------------------------- video files
def write_video_clips(folder: Path, n: int, seed: int) -> Path:
    """``n`` moving-shapes clips, 8 frames of 24x24, as MP4 files (mpeg4), and their manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    clips, labels = moving_shapes(n, frames=8, size=24, seed=seed)
    rows = ["path\tlabel"]
    for i, (clip, label) in enumerate(zip(clips, labels, strict=True)):
        write_video(folder / f"{i:03d}.mp4", (clip[:, 0].numpy() * 255).astype(np.uint8))
        rows.append(f"{i:03d}.mp4\t{label}")
    (folder / "manifest.tsv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.tsv"


DECODING = ["--frames", "6", "--size", "16", "16", "--color", "gray"]
TINY = ["--embed-dim", "16", "--hidden-size", "16", "--dropout", "0", "--batch-size", "16", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def mp4_run(tmp_path_factory) -> Path:
    """A run trained on 96 MP4 clips (24x24 RGB files read as 6 gray frames of 16x16), 60 steps."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("mp4")
    train, val = write_video_clips(folder / "train", 96, 0), write_video_clips(folder / "val", 40, 1)
    argv = ["video", "train", "--train", str(train), "--val", str(val), *DECODING, *TINY]
    assert (
        main([*argv, "--steps", "60", "--eval-every", "60", "--quiet", "--no-plots", "--run-dir", str(folder / "run")])
        == 0
    )
    return folder / "run"


def test_train_eval_predict_on_mp4_files_with_the_runs_decoding_options(mp4_run, capsys):
    saved = json.loads((mp4_run / "config.json").read_text())
    assert saved["data"] | {"train": "", "val": ""} == {
        "train": "", "val": "", "path_column": "path", "label_column": "label",
        "frames": 6, "size": [16, 16], "color": "gray",
    }  # fmt: skip
    assert saved["frame_shape"] == [1, 16, 16] and saved["clips_uint8"] is True
    trained = json.loads((mp4_run / "eval_val.json").read_text())
    assert trained["accuracy"] > 0.5  # chance: 0.25; the motion survived encoding, sampling and resizing
    val = mp4_run.parent / "val"
    assert main(["video", "eval", "--run", str(mp4_run), "--data", str(val / "manifest.tsv")]) == 0
    assert "(40 clips)" in capsys.readouterr().out
    report = json.loads((mp4_run / "eval" / "manifest" / "report.json").read_text())
    assert report["accuracy"] == trained["accuracy"] and report["loss"] == pytest.approx(trained["loss"])
    assert main(["video", "predict", "--run", str(mp4_run), str(val)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in sorted(val.glob("*.mp4"))] and {r[1] for r in rows} <= set(
        DIRECTIONS
    )
    watcher = Watcher.load(mp4_run)
    assert watcher.read([val / "000.mp4"])[0].shape == (6, 1, 16, 16)  # the run's options, not the file's 8x24x24
    assert [label for label, _ in watcher.predict([val / "000.mp4"])] == [rows[0][1]]


def test_resume_keeps_the_decoding_options(mp4_run, tmp_path):
    run = shutil.copytree(mp4_run, tmp_path / "run")
    before = (run / "config.json").read_text()
    assert main(["video", "train", "--resume", str(run), "--steps", "62", "--frames", "3"]) == 2
    assert (run / "config.json").read_text() == before
    assert main(["video", "train", "--resume", str(run), "--steps", "62", "--quiet", "--no-plots"]) == 0
    assert json.loads((run / "config.json").read_text())["data"]["frames"] == 6
    config = Config(DataConfig(str(mp4_run.parent / "train" / "manifest.tsv")), train=TrainConfig(resume=str(run)))
    config.model = ModelConfig(embed_dim=16, hidden_size=16, dropout=0.0)
    with pytest.raises(ConfigError, match=r"frames: .* was trained with 6, not None; a resumed video run keeps its"):
        video.train(config)


def test_a_changed_decoding_option_on_resume_is_one_line(mp4_run, tmp_path, capsys):
    run = shutil.copytree(mp4_run, tmp_path / "run")
    assert main(["video", "train", "--resume", str(run), "--steps", "62", "--size", "12", "12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "size: " in err and "was trained with (16, 16), not (12, 12)" in err


def test_bad_decoding_options_are_refused_before_any_work(tmp_path, capsys):
    manifest = write_video_clips(tmp_path / "train", 2, 0)
    for options, message in (
        (["--frames", "0"], "frames: expected an integer >= 1"),
        (["--size", "0", "8"], "size: expected two integers >= 1"),
    ):
        assert main(["video", "train", "--train", str(manifest), *options, "--run-dir", str(tmp_path / "r")]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="color: expected one of"):
        DataConfig("m.tsv", color="grey").validate()


def bad_videos(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad video file, and what its error says."""
    import av

    folder.mkdir(exist_ok=True)
    (folder / "text.mp4").write_text("not a video\n" * 20)
    with av.open(str(folder / "sound.mkv"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    blank, damaged = (write_video(folder / n, flat_frames([(90, 90, 90)] * 6, 16, 16)) for n in ("blank.mkv", "d.avi"))
    for path, keep in ((blank, 0), (damaged, 2)):
        data = bytearray(path.read_bytes())
        for pos, size in packet_spans(path)[keep:]:
            data[pos : pos + size] = bytes(size)
        path.write_bytes(bytes(data))
    return {
        "not a video": (folder / "text.mp4", "text.mp4: not a readable video (Invalid data found"),
        "missing": (folder / "gone.webm", "gone.webm: cannot read file (No such file or directory)"),
        "no video stream": (folder / "sound.mkv", "sound.mkv: no video stream (it holds only audio streams)"),
        "no frames": (blank, "blank.mkv: no decodable frames in its video stream"),
        "damaged": (damaged, "d.avi: a damaged video: frame 3 does not decode"),
    }


def test_cli_bad_video_files_are_one_line_and_status_2(mp4_run, tmp_path, capsys):
    for kind, (path, message) in bad_videos(tmp_path).items():
        assert main(["video", "predict", "--run", str(mp4_run), str(path)]) == 2, kind
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and message in err, (kind, err)
        (tmp_path / "m.tsv").write_text(f"path\tlabel\nval/000.mp4\tleft\n{path}\tright\n")
        shutil.copytree(mp4_run.parent / "val", tmp_path / "val", dirs_exist_ok=True)
        assert main(["video", "train", "--train", str(tmp_path / "m.tsv"), "--run-dir", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert "m.tsv:3: " in err and message in err and err.count("\n") == 1, (kind, err)
        assert not (tmp_path / "r").exists()


def test_without_pyav_the_cli_names_the_install(mp4_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)
    assert main(["video", "predict", "--run", str(mp4_run), str(mp4_run.parent / "val" / "000.mp4")]) == 2
    err = capsys.readouterr().err
    assert "000.mp4: reading a video file needs PyAV" in err and "pip install 'rnnkit[video]'" in err


def test_a_manifest_may_mix_npy_and_video_clips_read_to_one_shape(tmp_path, capsys):
    torch.set_num_threads(1)
    clips, labels = moving_shapes(8, frames=8, size=24, seed=3)
    rows = ["path\tlabel"]
    for i, (clip, label) in enumerate(zip(clips, labels, strict=True)):
        frames = (clip[:, 0].numpy() * 255).astype(np.uint8)
        name = f"{i}.npy" if i % 2 else f"{i}.mp4"
        np.save(tmp_path / name, frames) if i % 2 else write_video(tmp_path / name, frames)
        rows.append(f"{name}\t{label}")
    (tmp_path / "m.tsv").write_text("\n".join(rows) + "\n")
    argv = ["video", "train", "--train", str(tmp_path / "m.tsv"), *TINY, "--steps", "1", "--quiet", "--no-plots"]
    assert main([*argv, "--run-dir", str(tmp_path / "r1")]) == 2  # a gray .npy clip, an RGB video
    err = capsys.readouterr().err
    assert "m.tsv:3: " in err and "(1, 24, 24); expected (3, 24, 24) like the others" in err and "--color" in err
    (tmp_path / "run.toml").write_text('frames = 4\nsize = [12, 12]\ncolor = "gray"\n')
    assert main([*argv, "--config", str(tmp_path / "run.toml"), "--run-dir", str(tmp_path / "r2")]) == 0
    saved = json.loads((tmp_path / "r2" / "config.json").read_text())
    assert saved["data"]["size"] == [12, 12] and saved["frame_shape"] == [1, 12, 12]
    assert Watcher.load(tmp_path / "r2").read([tmp_path / "1.npy", tmp_path / "0.mp4"])[1].shape == (4, 1, 12, 12)
    np.save(tmp_path / "f.npy", np.zeros((3, 12, 12), dtype=np.float32))
    assert main(["video", "predict", "--run", str(tmp_path / "r2"), str(tmp_path / "f.npy")]) == 2
    assert "dtype float32; expected uint8 like the training clips" in capsys.readouterr().err


def test_a_run_saved_before_the_decoding_options_reads_clips_as_stored(toy_runs, tmp_path):
    run = shutil.copytree(toy_runs["gru"], tmp_path / "old")
    saved = json.loads((run / "config.json").read_text())
    for key in ("frames", "size", "color"):
        del saved["data"][key]
    (run / "config.json").write_text(json.dumps(saved))
    watcher = Watcher.load(run)
    assert watcher.data.clip_options() == {"frames": None, "size": None, "color": "auto"}
    assert watcher.read([toy_runs["gru"].parent / "val" / "0.npy"])[0].shape == (6, 1, 16, 16)
