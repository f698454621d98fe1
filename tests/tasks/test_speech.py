"""Tests of rnnkit.tasks.speech and rnnkit.data.audio / fsdd: features against direct formulas,
CTC decoding, padding invariance, learning a toy "language" of tones, the CLI and bad input."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import soundfile
import torch

from rnnkit.cli import main
from rnnkit.data.audio import LogMel, hz_to_mel, mel_filterbank, mel_to_hz, read_audio
from rnnkit.errors import DataError
from rnnkit.tasks import speech
from rnnkit.tasks.speech import AcousticModel, CharSet, Config, DataConfig, ModelConfig, Recognizer
from rnnkit.train import TrainConfig

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"
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


# ---------------------------------------------------------------- features
def test_mel_scale_round_trip_and_filter_shapes():
    f = torch.tensor([0.0, 700.0, 4000.0])
    torch.testing.assert_close(mel_to_hz(hz_to_mel(f)), f, atol=1e-2, rtol=1e-5)
    assert hz_to_mel(torch.tensor(700.0)).item() == pytest.approx(2595 * math.log10(2))
    bank = mel_filterbank(10, 256, RATE)
    assert bank.shape == (10, 129) and bank.min() >= 0 and bank.max() <= 1
    peaks = bank.argmax(1)
    assert (peaks[1:] > peaks[:-1]).all()  # centres rise with the filter index
    centres = mel_to_hz(torch.linspace(0, hz_to_mel(torch.tensor(4000.0)).item(), 12))[1:-1]
    bins = torch.linspace(0, 4000, 129)
    torch.testing.assert_close(bins[peaks], bins[(bins[:, None] - centres).abs().argmin(0)])


def test_log_mel_of_a_tone_peaks_in_the_band_of_its_frequency():
    features = LogMel(sample_rate=RATE, n_mels=20)
    wave = torch.sin(2 * math.pi * 1000.0 * torch.arange(RATE) / RATE)  # 1 s at 1 kHz
    frames = features(wave)  # (frames, 20)
    assert frames.shape == (1 + RATE // features.hop, 20)
    bank = mel_filterbank(20, features.n_fft, RATE)
    expected_band = bank[:, round(1000 / (RATE / 2) * (features.n_fft // 2))].argmax()
    assert (frames[5:-5].argmax(1) == expected_band).all()


def test_log_mel_matches_a_direct_dft():
    features = LogMel(sample_rate=RATE, n_mels=8)
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(1000, generator=g, dtype=torch.float64).float()
    frame = 3  # a frame clear of the padding: samples [3 hop - n_fft / 2, 3 hop + n_fft / 2)
    start = frame * features.hop - features.n_fft // 2
    window = torch.zeros(features.n_fft)
    offset = (features.n_fft - features.win) // 2
    window[offset : offset + features.win] = torch.hann_window(features.win)
    segment = wave[start : start + features.n_fft].double() * window.double()
    k = torch.arange(features.n_fft // 2 + 1, dtype=torch.float64)
    n = torch.arange(features.n_fft, dtype=torch.float64)
    dft = (segment * torch.exp(-2j * math.pi * k[:, None] * n / features.n_fft)).sum(1)  # (F,)
    expected = torch.log(mel_filterbank(8, features.n_fft, RATE).double() @ dft.abs() ** 2 + 1e-6)
    torch.testing.assert_close(features(wave)[frame].double(), expected, atol=1e-3, rtol=1e-4)


def test_read_audio_checks_rate_and_content(tmp_path):
    soundfile.write(str(tmp_path / "s.wav"), torch.zeros(100, 2).numpy(), 16000)
    wave, rate = read_audio(tmp_path / "s.wav")
    assert wave.shape == (100,) and rate == 16000
    with pytest.raises(DataError, match=r"s\.wav: sample rate 16000 Hz; expected 8000 Hz"):
        read_audio(tmp_path / "s.wav", 8000)
    (tmp_path / "x.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(DataError, match=r"x\.wav: not a readable audio file"):
        read_audio(tmp_path / "x.wav")


# ---------------------------------------------------------------- model and decoding
def test_best_path_decoding_merges_repeats_then_drops_blanks():
    chars = CharSet.build(["ab c"])
    a, b = chars.index["a"], chars.index["b"]
    assert chars.decode_best_path([0, a, a, 0, a, b, b, 0, 0]) == "aab"
    assert chars.encode("ba", "x") == [b, a]
    with pytest.raises(DataError, match=r"t\.tsv:3: characters \['z'\]"):
        chars.encode("za", "t.tsv:3")


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


# ---------------------------------------------------------------- real data
@pytest.mark.skipif(not FSDD.is_dir(), reason="needs ../shared/data/fsdd (absent in a user's clone)")
def test_fsdd_digit_strings(tmp_path):
    from rnnkit.data.fsdd import WORDS, make_digit_utterances

    manifest = make_digit_utterances(FSDD, tmp_path / "u", 6, indices=range(0, 1), max_digits=3)
    rows = manifest.read_text().splitlines()[1:]
    assert len(rows) == 6
    for row in rows:
        name, text = row.split("\t")
        assert 1 <= len(text.split()) <= 3 and set(text.split()) <= set(WORDS)
        wave, rate = read_audio(tmp_path / "u" / name, 8000)
        assert rate == 8000 and len(wave) > 800 * len(text.split())
    utterances = speech.read_utterances(manifest, DataConfig(str(manifest)))
    assert len(utterances) == 6 and utterances.features[0].shape[1] == 40
