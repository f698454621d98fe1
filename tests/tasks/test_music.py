"""Tests of rnnkit.tasks.music: the NLL against a direct formula, padding invariance, the
baselines, learning a toy style, generation, exact resume, MIDI folders, the CLI and bad input
(the data modules have their own tests: tests/data/test_pianoroll.py, tests/data/test_midi.py)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rnnkit.cli import main
from rnnkit.data.midi import read_midi, write_midi
from rnnkit.data.pianoroll import PitchRange
from rnnkit.errors import DataError
from rnnkit.tasks import music
from rnnkit.tasks.music import Composer, Config, DataConfig, ModelConfig, PianoRollRNN, collate, mean_nll, step_nll
from rnnkit.train import TrainConfig

JSB = Path(__file__).resolve().parents[3] / "shared" / "data" / "jsb_chorales" / "jsb_chorales.json"
CHORDS = [[60, 64, 67], [62, 65, 69], [64, 67, 71], [65, 69, 72]]  # the toy style: these four chords in turn


def toy_pieces(n: int, seed: int) -> list[list[list[int]]]:
    rng = random.Random(seed)
    pieces = []
    for _ in range(n):
        start, length = rng.randrange(4), rng.randint(8, 20)
        pieces.append([CHORDS[(start + t) % 4] for t in range(length)])
    return pieces


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------- the model
def test_step_nll_is_the_bernoulli_log_likelihood_per_valid_step():
    logits = torch.tensor([[[0.0, 2.0], [1.0, -1.0]], [[3.0, 0.5], [9.0, 9.0]]])  # (B=2, T=2, P=2)
    rolls = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    total, steps = step_nll(logits, rolls, torch.tensor([2, 1]))
    expected = 0.0
    for b, t in [(0, 0), (0, 1), (1, 0)]:
        for p in range(2):
            q = 1 / (1 + math.exp(-logits[b, t, p].item()))
            expected -= math.log(q if rolls[b, t, p] else 1 - q)
    assert steps == 3 and total.item() == pytest.approx(expected, rel=1e-6)


def test_a_piece_scores_the_same_alone_or_padded_in_a_batch():
    torch.manual_seed(0)
    model = PianoRollRNN(13, ModelConfig(hidden_size=16, num_layers=2, dropout=0.0)).eval()
    r = PitchRange(60, 72)
    rolls = [r.roll(p) for p in toy_pieces(4, 1)]
    batch = collate(rolls, range(4))
    with torch.no_grad():
        logits, _ = model(batch.rolls, batch.lengths)
        for b, roll in enumerate(rolls):
            alone, _ = model(roll.unsqueeze(0))
            torch.testing.assert_close(alone[0], logits[b, : len(roll)], atol=1e-5, rtol=1e-5)


def test_the_first_step_is_predicted_from_silence_and_step_matches_forward():
    torch.manual_seed(0)
    model = PianoRollRNN(5, ModelConfig(cell="gru", hidden_size=8, num_layers=1, dropout=0.0)).eval()
    roll = (torch.rand(1, 6, 5) > 0.5).float()
    with torch.no_grad():
        logits, _ = model(roll)
        previous, state = torch.zeros(1, 5), None
        for t in range(6):
            step, state = model.step(previous, state)
            torch.testing.assert_close(step, logits[:, t], atol=1e-5, rtol=1e-5)
            previous = roll[:, t]


def test_baselines_on_data_they_fit():
    r = PitchRange(60, 72)
    rolls = [r.roll(p) for p in toy_pieces(20, 2)]
    # each pitch is on in some chords: the per-pitch Markov chain knows held notes, so it is better
    assert music.per_pitch_markov_nll(rolls, rolls) < music.marginal_nll(rolls, rolls)
    constant = [torch.ones(5, 3)]
    assert music.marginal_nll(constant, constant) == pytest.approx(-3 * math.log(6 / 7), rel=1e-6)


def test_mean_nll_is_per_step_over_all_pieces_whatever_the_batches():
    torch.manual_seed(0)
    model = PianoRollRNN(13, ModelConfig(hidden_size=8, num_layers=1, dropout=0.5))  # eval mode: no dropout
    r = PitchRange(60, 72)
    rolls = [r.roll(p) for p in toy_pieces(5, 3)]  # of different lengths
    model.eval()
    with torch.no_grad():
        sums = [F.binary_cross_entropy_with_logits(model(x[None])[0][0], x, reduction="sum").item() for x in rolls]
    expected = sum(sums) / sum(len(x) for x in rolls)  # not the mean of each batch's or piece's mean
    for batch_size in (1, 2, 5):
        assert mean_nll(model, rolls, batch_size) == pytest.approx(expected, rel=1e-5)


def test_the_per_pitch_markov_baseline_against_its_formula():
    train = [torch.tensor([[1.0], [1.0], [0.0], [1.0]])]  # on after on once in 2, on after off 2 in 2
    p_on, p_off = (1 + 1) / (2 + 2), (2 + 1) / (2 + 2)  # add-one smoothed
    scored = [torch.tensor([[1.0], [0.0]])]  # on after the silent start, then off after on
    expected = -(math.log(p_off) + math.log(1 - p_on)) / 2
    assert music.per_pitch_markov_nll(train, scored) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- learning and generating
def toy_config(folder: Path, steps: int = 150) -> Config:
    data = write_json(folder / "toy.json", {"train": toy_pieces(64, 0), "valid": toy_pieces(8, 1)})
    return Config(
        data=DataConfig(str(data)),
        model=ModelConfig(hidden_size=32, num_layers=1, dropout=0.0),
        train=TrainConfig(
            steps=steps, batch_size=16, lr=1e-2, eval_every=steps, quiet=True, run_dir=str(folder / "run")
        ),
    )


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return music.train(toy_config(tmp_path_factory.mktemp("music"))).run_dir


def test_the_model_learns_the_toy_style_far_beyond_the_baselines(toy_run):
    figures = json.loads((toy_run / "eval_nll.json").read_text())
    assert figures["model"] < 0.25 * figures["per_pitch_markov"]
    assert figures["per_pitch_markov"] < figures["marginal"]
    report = (toy_run / "report.md").read_text()
    assert "| per_pitch_markov |" in report and (toy_run / "sample.mid").exists()
    assert (toy_run / "plots" / "sample.png").stat().st_size > 1000


def test_generation_continues_the_style_and_is_seeded(toy_run):
    composer = Composer.load(toy_run)
    piece = composer.generate(12, seed=3, temperature=0.5, prime=[CHORDS[0], CHORDS[1]])
    assert piece[:2] == [CHORDS[0], CHORDS[1]] and len(piece) == 14
    assert piece[2:6] == [CHORDS[2], CHORDS[3], CHORDS[0], CHORDS[1]]
    assert composer.generate(8, seed=5) == composer.generate(8, seed=5)
    with pytest.raises(ValueError, match="temperature"):
        composer.generate(8, temperature=0.0)
    with pytest.raises(DataError, match="outside the model's range"):
        composer.generate(4, prime=[[20]])


def test_cli_eval_and_generate(toy_run, tmp_path, capsys):
    data = toy_run.parent / "toy.json"
    assert main(["music", "eval", "--run", str(toy_run), "--data", str(data), "--split", "valid"]) == 0
    figures = json.loads((toy_run / "eval_nll.json").read_text())
    assert f"NLL per time step {figures['model']:.4f}" in capsys.readouterr().out
    out, steps = tmp_path / "g.mid", tmp_path / "g.json"
    argv = ["music", "generate", "--run", str(toy_run), "--steps", "10", "--seed", "1", "--out", str(out)]
    assert main([*argv, "--json", str(steps)]) == 0
    sampled = json.loads(steps.read_text())
    assert len(sampled) == 10 and read_midi(out) == sampled  # rests at the end included
    assert main(["music", "generate", "--run", str(toy_run), "--steps", "4", "--prime", str(out),
                 "--out", str(tmp_path / "h.mid")]) == 0  # fmt: skip


def test_cli_bad_input_is_one_line_and_status_2(toy_run, tmp_path, capsys):
    bad = write_json(tmp_path / "bad.json", {"train": [[[60], [200]]], "valid": [[[60]]]})
    status = main(["music", "train", "--data", str(bad), "--steps", "1", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and "piece 0, step 1" in err and "200" in err and not (tmp_path / "r").exists()
    wide = write_json(tmp_path / "wide.json", [[[20]]])
    assert main(["music", "eval", "--run", str(toy_run), "--data", str(wide)]) == 2
    assert "outside the model's range" in capsys.readouterr().err
    assert main(["music", "generate", "--run", str(toy_run), "--temperature", "0"]) == 2
    assert "--temperature" in capsys.readouterr().err
    assert main(["music", "generate", "--run", str(tmp_path / "none")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["music", "generate", "--run", str(toy_run), "--out", str(tmp_path)]) == 2
    assert f"--out: {tmp_path} is a folder" in capsys.readouterr().err
    assert main(["music", "eval", "--run", str(toy_run), "--data", str(toy_run.parent / "toy.json")]) == 2
    assert "found an object of splits ['train', 'valid']; name one (--split)" in capsys.readouterr().err
    write_midi([[60], [40]], tmp_path / "low.mid")
    assert main(["music", "eval", "--run", str(toy_run), "--data", str(tmp_path / "low.mid")]) == 2
    assert "step 1: pitch 40 is outside the model's range 60..72" in capsys.readouterr().err
    (tmp_path / "midi").mkdir()
    status = main(
        ["music", "train", "--data", str(tmp_path / "midi"), "--steps", "1", "--run-dir", str(tmp_path / "r")]
    )
    assert status == 2 and "no MIDI files" in capsys.readouterr().err


def test_training_from_a_folder_of_midi_files(tmp_path):
    folder = tmp_path / "midi"
    for i, piece in enumerate(toy_pieces(10, 4)):
        write_midi(piece, folder / f"{i:02d}.mid")
    config = Config(
        data=DataConfig(str(folder), val_fraction=0.2),
        model=ModelConfig(hidden_size=8, num_layers=1),
        train=TrainConfig(steps=3, batch_size=4, quiet=True, run_dir=str(tmp_path / "run")),
    )
    result = music.train(config)
    assert json.loads((result.run_dir / "eval_nll.json").read_text())["model"] > 0
    assert music.load_split(config.data, "valid") == [read_midi(folder / "08.mid"), read_midi(folder / "09.mid")]


# ---------------------------------------------------------------- real data
@pytest.mark.skipif(not JSB.exists(), reason="needs ../shared/data/jsb_chorales (absent in a user's clone)")
def test_jsb_chorales_train_and_score(tmp_path):
    config = Config(
        data=DataConfig(str(JSB)),
        model=ModelConfig(hidden_size=32, num_layers=1, dropout=0.0),
        train=TrainConfig(steps=30, batch_size=16, lr=1e-2, quiet=True, run_dir=str(tmp_path / "run")),
    )
    result = music.train(config)
    figures = json.loads((result.run_dir / "eval_nll.json").read_text())
    assert figures["marginal"] > figures["per_pitch_markov"] > 5.0
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if row.get("kind") == "train"]
    assert losses[-1] < losses[0] - 5.0


def test_midi_folder_without_validation_trains_on_every_file(tmp_path):
    folder = tmp_path / "midi"
    for i, piece in enumerate(toy_pieces(5, 5)):
        write_midi(piece, folder / f"{i}.mid")
    everything = [read_midi(folder / f"{i}.mid") for i in range(5)]
    for data in (DataConfig(str(folder), val_fraction=0.0), DataConfig(str(folder), val_split=None)):
        assert not music.has_validation(data) and music.load_split(data, "train") == everything
    with pytest.raises(DataError, match="no files held out for validation"):
        music.load_split(DataConfig(str(folder), val_fraction=0.0), "valid")
    config = Config(
        data=DataConfig(str(folder), val_fraction=0.0),
        model=ModelConfig(hidden_size=4, num_layers=1),
        train=TrainConfig(steps=2, batch_size=4, quiet=True, run_dir=str(tmp_path / "run")),
    )
    result = music.train(config)
    assert result.best_metric is None and not (result.run_dir / "eval_nll.json").exists()


# ---------------------------------------------------------------- resume
def small_run(data: Path, run: Path, steps: int) -> list[str]:
    model = ["--hidden-size", "8", "--num-layers", "1", "--dropout", "0.2"]
    train = ["--batch-size", "4", "--eval-every", "2", "--steps", str(steps), "--quiet", "--run-dir", str(run)]
    return ["music", "train", "--data", str(data), *model, *train]


def test_cli_resume_continues_exactly_with_the_runs_own_options(tmp_path, capsys):
    torch.set_num_threads(1)
    data = write_json(tmp_path / "toy.json", {"train": toy_pieces(16, 0), "valid": toy_pieces(4, 1)})
    assert main(small_run(data, tmp_path / "whole", 6)) == 0
    assert main(small_run(data, tmp_path / "halves", 3)) == 0
    assert main(["music", "train", "--resume", str(tmp_path / "halves"), "--steps", "6", "--quiet"]) == 0
    whole = Composer.load(tmp_path / "whole", "last").model.state_dict()
    halves = Composer.load(tmp_path / "halves", "last").model.state_dict()
    assert whole.keys() == halves.keys()
    for name in whole:
        torch.testing.assert_close(halves[name], whole[name], rtol=0, atol=0)
    saved = json.loads((tmp_path / "halves" / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 8 and saved["data"]["data"] == str(data)


def test_resume_refuses_other_runs_models_and_pitches(toy_run, tmp_path, capsys):
    data = toy_run.parent / "toy.json"
    saved = (toy_run / "config.json").read_text()
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(saved.replace('"task": "music"', '"task": "lm"'))
    assert main(["music", "train", "--data", str(data), "--resume", str(other), "--steps", "1"]) == 2
    assert "is a 'lm' run; expected a `rnnkit music train` run" in capsys.readouterr().err
    wide = write_json(tmp_path / "wide.json", {"train": [[[59, 60]]], "valid": [[[60]]]})  # 59: index -1 of 60..72
    assert main(["music", "train", "--data", str(wide), "--resume", str(toy_run), "--steps", "999"]) == 2
    assert "piece 0, step 0: pitch 59 is outside the model's range 60..72" in capsys.readouterr().err
    assert main(["music", "train", "--resume", str(toy_run), "--hidden-size", "64", "--steps", "999"]) == 2
    assert "a resumed run keeps them" in capsys.readouterr().err
    assert (toy_run / "config.json").read_text() == saved  # nothing rewritten
