"""Tests of rnnkit.tasks.speech: CTC decoding and length checks, padding invariance, learning a
toy "language" of tones, exact resume, the CLI and bad input (features: tests/data/test_audio.py)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import soundfile
import torch

from rnnkit.cli import main
from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks import speech
from rnnkit.tasks.speech import AcousticModel, CharSet, Config, DataConfig, ModelConfig, Recognizer
from rnnkit.train import TrainConfig, load_run

RATE = 8000
TONES = {"a": 500.0, "b": 1500.0, "c": 2800.0}  # the toy language: each letter a 120 ms tone


def tone_wave(text: str, rng: random.Random) -> torch.Tensor:
    parts = [torch.zeros(400)]
    for ch in text:
        n = int(RATE * rng.uniform(0.10, 0.14))
        t = torch.arange(n) / RATE
        parts += [0.5 * torch.sin(2 * math.pi * TONES[ch] * t), torch.zeros(int(RATE * rng.uniform(0.04, 0.08)))]
    wave = torch.cat(parts)
    return wave + 0.01 * torch.randn(len(wave), generator=torch.Generator().manual_seed(rng.randrange(10**6)))


def write_manifest(folder: Path, name: str, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    (folder / name).mkdir(parents=True, exist_ok=True)
    rows = ["path\ttranscript"]
    for i in range(n):
        text = "".join(rng.choice("abc") for _ in range(rng.randint(1, 4)))
        soundfile.write(str(folder / name / f"{i}.wav"), tone_wave(text, rng).numpy(), RATE, subtype="PCM_16")
        rows.append(f"{name}/{i}.wav\t{' '.join(text)}")
    path = folder / f"{name}.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------- model and decoding
def test_best_path_decoding_merges_repeats_then_drops_blanks():
    chars = CharSet.build(["ab c"])
    a, b = chars.index["a"], chars.index["b"]
    assert chars.decode_best_path([0, a, a, 0, a, b, b, 0, 0]) == "aab"
    assert chars.encode("ba", "x") == [b, a]
    with pytest.raises(DataError, match=r"t\.tsv:3: characters \['z'\]"):
        chars.encode("za", "t.tsv:3")
    assert chars.decode_best_path([a, 0, a, a, b, 0, b]) == "aabb"  # a blank between repeats keeps both
    assert chars.decode_best_path([0, 0, 0]) == "" and chars.decode_best_path([]) == ""
    assert chars.decode_best_path([b, b, b]) == "b"


def test_best_path_decoding_normalizes_spaces_as_the_transcripts_are():
    chars = CharSet.build(["ab c"])
    a, b, space = chars.index["a"], chars.index["b"], chars.index[" "]
    assert chars.decode_best_path([space, a, space, 0, space, b, space]) == "a b"  # was " a  b "


def utterances(frames: list[int], transcripts: list[str]) -> speech.Utterances:
    n = len(frames)
    return speech.Utterances("m.tsv", [torch.zeros(t, 4) for t in frames], transcripts, [2 + i for i in range(n)],
                             [f"{i}.wav" for i in range(n)])  # fmt: skip


def test_a_transcript_needs_a_ctc_step_per_character_and_a_blank_between_repeats():
    chars = CharSet(["a", "b"])
    assert speech.encode_transcripts(chars, utterances([7, 3, 1], ["aab", "ab", "b"])) == [[1, 1, 2], [1, 2], [2]]
    with pytest.raises(DataError, match=r"m\.tsv:3: 1\.wav: 6 feature frames give 3 CTC steps; "
                                        r"its transcript 'aab' needs at least 4"):  # fmt: skip
        speech.encode_transcripts(chars, utterances([8, 6], ["ab", "aab"]))
    with pytest.raises(DataError, match=r"m\.tsv:2: 0\.wav: 2 feature frames give 1 CTC steps"):
        speech.encode_transcripts(chars, utterances([2], ["ab"]))


def test_too_many_mel_bands_for_the_fft_is_a_config_error():
    DataConfig("t.tsv", n_mels=80).validate()
    with pytest.raises(ConfigError, match=r"n_mels: 100 bands leave band 0 without any of the 129 FFT bins at 8000 Hz"):
        DataConfig("t.tsv", n_mels=100).validate()


@pytest.mark.parametrize("cell", ["gru", "lstm", "mlp"])
def test_an_utterance_scores_the_same_alone_or_padded_in_a_batch(cell):
    torch.manual_seed(0)
    model = AcousticModel(6, 5, ModelConfig(cell=cell, hidden_size=8, num_layers=2, dropout=0.0)).eval()
    lengths = torch.tensor([9, 4, 7])
    features = torch.randn(3, 9, 6)
    with torch.no_grad():
        batched, steps = model(features, lengths)
        assert steps.tolist() == [5, 2, 4]
        for b in range(3):
            n = int(lengths[b])
            alone, _ = model(features[b : b + 1, :n], lengths[b : b + 1])
            torch.testing.assert_close(alone[0], batched[b, : alone.shape[1]], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- learning
@pytest.fixture(scope="module")
def tone_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("speech")
    config = Config(
        data=DataConfig(
            str(write_manifest(folder, "train", 240, 0)), str(write_manifest(folder, "val", 40, 1)), n_mels=20
        ),
        model=ModelConfig(hidden_size=32, num_layers=1, dropout=0.0),
        train=TrainConfig(steps=200, batch_size=16, lr=5e-3, eval_every=200, quiet=True, run_dir=str(folder / "run")),
    )
    return speech.train(config).run_dir


def test_the_model_learns_to_transcribe_the_tones(tone_run):
    report = json.loads((tone_run / "eval" / "val" / "report.json").read_text())
    assert report["cer"] < 10.0 and report["wer"] < 20.0
    assert "## Speech recognition" in (tone_run / "report.md").read_text()
    recognizer = Recognizer.load(tone_run)
    wave = tone_wave("cab", random.Random(7))
    soundfile.write(str(tone_run.parent / "cab.wav"), wave.numpy(), RATE, subtype="PCM_16")
    assert recognizer.transcribe([tone_run.parent / "cab.wav"]) == ["c a b"]


def test_cli_eval_and_transcribe(tone_run, capsys, tmp_path):
    val = tone_run.parent / "val.tsv"
    assert main(["speech", "eval", "--run", str(tone_run), "--data", str(val), "--out-dir", str(tmp_path)]) == 0
    assert "WER" in capsys.readouterr().out
    assert len((tmp_path / "hypotheses.txt").read_text().splitlines()) == 40
    assert main(["speech", "transcribe", "--run", str(tone_run), str(tone_run.parent / "val" / "0.wav")]) == 0
    assert capsys.readouterr().out.startswith(str(tone_run.parent / "val" / "0.wav") + "\t")


def test_cli_beam_search_and_an_lm_of_the_training_transcripts(tone_run, capsys, tmp_path):
    train, val = tone_run.parent / "train.tsv", tone_run.parent / "val.tsv"
    lm = tmp_path / "lm.json"
    assert main(["speech", "lm", "--manifest", str(train), "--order", "3", "--out", str(lm)]) == 0
    assert capsys.readouterr().out.startswith(f"{lm}: 3-gram character LM (interpolated Kneser-Ney) of 4 characters")
    assert main(["speech", "eval", "--run", str(tone_run), "--data", str(val), "--out-dir", str(tmp_path / "beam"),
                 "--beam", "4"]) == 0  # fmt: skip
    assert "decoding: prefix beam search, beam 4\n" in capsys.readouterr().out
    report = json.loads((tmp_path / "beam" / "report.json").read_text())
    assert report["decoding"] == {"method": "prefix beam search", "beam": 4} and report["cer"] < 10.0
    assert len((tmp_path / "beam" / "hypotheses.txt").read_text().splitlines()) == 40
    assert main(["speech", "eval", "--run", str(tone_run), "--data", str(val), "--out-dir", str(tmp_path / "lm"),
                 "--beam", "4", "--lm", str(lm), "--lm-weight", "0.3", "--insertion-bonus", "0.5"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"decoding: prefix beam search, beam 4, 3-gram character LM {lm} (weight 0.3, insertion bonus 0.5)" in out
    report = json.loads((tmp_path / "lm" / "report.json").read_text())
    assert report["decoding"]["lm_order"] == 3 and report["decoding"]["lm_unknown_characters"] == []
    assert report["cer"] < 10.0
    soundfile.write(str(tmp_path / "cab.wav"), tone_wave("cab", random.Random(7)).numpy(), RATE, subtype="PCM_16")
    fused = ["--beam", "4", "--lm", str(lm)]
    assert main(["speech", "transcribe", "--run", str(tone_run), *fused, str(tmp_path / "cab.wav")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'cab.wav'}\tc a b\n"
    greedy = Recognizer.load(tone_run).transcribe([tmp_path / "cab.wav"], speech.DecodeConfig(beam=1))
    assert greedy == ["c a b"]


def test_cli_bad_decoding_options_are_one_line_and_status_2(tone_run, tmp_path, capsys):
    val = tone_run.parent / "val.tsv"
    lm = tmp_path / "lm.json"
    speech.build_lm(manifest=tone_run.parent / "train.tsv", order=2).save(lm)
    (tmp_path / "upper.txt").write_text("XYZ\n")
    speech.build_lm(text=tmp_path / "upper.txt", lowercase=False).save(tmp_path / "upper.json")
    (tmp_path / "other.json").write_text('{"task": "speech"}')
    eval_ = ["speech", "eval", "--run", str(tone_run), "--data", str(val), "--out-dir", str(tmp_path / "out")]
    cases = [
        ([*eval_, "--beam", "0"], "beam: expected an integer >= 1, got 0"),
        ([*eval_, "--lm", str(lm), "--lm-weight", "nan"], "lm_weight: expected a finite number, got nan"),
        ([*eval_, "--lm", str(lm), "--lm-weight", "-1"], "lm_weight: expected a number >= 0"),
        ([*eval_, "--lm", str(lm), "--insertion-bonus", "inf"], "insertion_bonus: expected a finite number"),
        ([*eval_, "--insertion-bonus", "1"], "insertion_bonus: applies to an LM only; expected --lm FILE"),
        ([*eval_, "--lm", str(tmp_path / "none.json")], "none.json: cannot read file"),
        ([*eval_, "--lm", str(val)], "not JSON"),
        ([*eval_, "--lm", str(tmp_path / "other.json")], "other.json: field 'format': expected 'rnnkit-char-ngram'"),
        ([*eval_, "--lm", str(tmp_path / "upper.json")], "knows none of the model's characters"),
        (["speech", "transcribe", "--run", str(tone_run), "--beam", "-2", "a.wav"], "beam: expected an integer"),
        (["speech", "lm", "--out", str(tmp_path / "x.json")], "text, manifest: expected exactly one"),
        (
            ["speech", "lm", "--text", str(val), "--manifest", str(val), "--out", str(tmp_path / "x.json")],
            "expected exactly one",
        ),
        (["speech", "lm", "--text", str(tmp_path / "upper.txt")], "--out: required"),
        (
            ["speech", "lm", "--text", str(tmp_path / "upper.txt"), "--order", "0", "--out", str(tmp_path / "x.json")],
            "order: expected",
        ),
        (
            ["speech", "lm", "--text", str(tmp_path / "none.txt"), "--out", str(tmp_path / "x.json")],
            "none.txt: cannot read file",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.json").exists()
    (tmp_path / "marks.txt").write_text("a b\nb\x02a\n")
    assert main(["speech", "lm", "--text", str(tmp_path / "marks.txt"), "--out", str(tmp_path / "x.json")]) == 2
    assert "marks.txt:2: holds the control character U+0002" in capsys.readouterr().err


def test_cli_bad_input_is_one_line_and_status_2(tone_run, tmp_path, capsys):
    (tmp_path / "bad.tsv").write_text("path\ttranscript\nnope.wav\ta b\n")
    status = main(["speech", "train", "--train", str(tmp_path / "bad.tsv"), "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and "bad.tsv:2:" in err and "nope.wav" in err and not (tmp_path / "r").exists()
    (tmp_path / "cols.tsv").write_text("file\ttext\nx.wav\ta\n")
    assert main(["speech", "train", "--train", str(tmp_path / "cols.tsv")]) == 2
    assert "no column 'path'" in capsys.readouterr().err
    soundfile.write(str(tmp_path / "z.wav"), torch.zeros(800).numpy(), RATE)
    (tmp_path / "new.tsv").write_text("path\ttranscript\nz.wav\tzzz\n")
    assert main(["speech", "eval", "--run", str(tone_run), "--data", str(tmp_path / "new.tsv")]) == 0  # WER only
    capsys.readouterr()
    assert main(["speech", "transcribe", "--run", str(tone_run)]) == 2
    assert "--files: required" in capsys.readouterr().err
    assert main(["speech", "transcribe", "--run", str(tmp_path / "none"), "a.wav"]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_audio_too_short_for_its_transcript_is_refused_not_a_zero_loss(tone_run, tmp_path, capsys):
    soundfile.write(str(tmp_path / "short.wav"), torch.zeros(300).numpy(), RATE)  # 4 frames: 2 CTC steps
    (tmp_path / "short.tsv").write_text("path\ttranscript\nshort.wav\ta b\n")
    status = main(["speech", "train", "--train", str(tmp_path / "short.tsv"), "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1 and not (tmp_path / "r").exists()
    assert "short.tsv:2: " in err and "short.wav: 4 feature frames give 2 CTC steps" in err
    report = speech.evaluate_file(tone_run, tmp_path / "short.tsv", tmp_path / "eval")
    assert report["ctc_loss"] is None and report["utterances"] == 1  # it was 0.0: zero_infinity hid the inf


def test_resume_continues_exactly_with_the_runs_own_model_and_features(tmp_path):
    torch.set_num_threads(1)
    train_tsv, val_tsv = write_manifest(tmp_path, "train", 24, 0), write_manifest(tmp_path, "val", 6, 1)

    def config(steps: int, run: str | None, resume: str | None = None, hidden: int = 8, n_mels: int = 20) -> Config:
        return Config(
            DataConfig(str(train_tsv), str(val_tsv), n_mels=n_mels), ModelConfig(hidden_size=hidden, dropout=0.3),
            TrainConfig(steps=steps, batch_size=8, eval_every=4, quiet=True, run_dir=run, resume=resume),
        )  # fmt: skip

    speech.train(config(8, str(tmp_path / "whole")))
    speech.train(config(4, str(tmp_path / "halves")))
    speech.train(config(8, None, str(tmp_path / "halves"), hidden=16, n_mels=40))  # the run's own options win
    saved, resumed = load_run(tmp_path / "halves", "last")
    _, whole = load_run(tmp_path / "whole", "last")
    assert saved["model"]["hidden_size"] == 8 and saved["data"]["n_mels"] == 20
    for name, weight in whole.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=0)


def test_a_model_or_feature_option_given_with_resume_is_refused_not_ignored(tmp_path, capsys):
    torch.set_num_threads(1)
    train_tsv = write_manifest(tmp_path, "train", 16, 0)
    base = ["speech", "train", "--train", str(train_tsv), "--hidden-size", "8", "--batch-size", "8", "--quiet"]
    assert main([*base, "--steps", "2", "--run-dir", str(tmp_path / "run")]) == 0
    resume = ["speech", "train", "--steps", "4", "--quiet", "--resume", str(tmp_path / "run")]
    for option in (["--hidden-size", "16"], ["--n-mels", "24"]):
        assert main([*resume, *option]) == 2
        assert "a resumed speech run keeps its" in capsys.readouterr().err
    assert main([*resume, "--train", str(train_tsv)]) == 0  # the manifests may be given again


def test_resume_of_another_tasks_run_is_one_line(tmp_path, capsys):
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "config.json").write_text('{"task": "lm", "train": {}}')
    assert main(["speech", "train", "--resume", str(tmp_path / "lm")]) == 2
    assert capsys.readouterr().err.strip().endswith("a 'lm' run, expected a 'speech' run")


def test_the_normalizer_of_a_single_frame_is_finite():
    one = speech.Normalizer.fit([torch.tensor([[1.0, -2.0]])])  # std over one frame: 0, then the floor
    assert one.mean == [1.0, -2.0] and one.std == [pytest.approx(1e-3)] * 2
    frames = torch.randn(50, 3)
    fitted = speech.Normalizer.fit([frames[:20], frames[20:]])
    assert torch.allclose(fitted(frames).std(0, correction=0), torch.ones(3), atol=1e-5)
