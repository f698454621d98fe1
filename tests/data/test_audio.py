"""Tests of rnnkit.data.audio: reading sound files of every sample format (and refusing bad ones),
the mel scale and filterbank against independent formulas, log-mel features against a direct DFT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile
import torch

from rnnkit.data.audio import LogMel, hz_to_mel, mel_filterbank, mel_to_hz, read_audio
from rnnkit.errors import DataError

RATE = 8000


def reference_filterbank(n_mels: int, n_fft: int, sr: int, f_min: float, f_max: float) -> np.ndarray:
    """HTK-scale triangular filters, unnormalized, written from the definition (as librosa's
    ``filters.mel(htk=True, norm=None)``): bin frequencies ``k sr / n_fft``, ramps from the
    differences between neighbouring mel points."""
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    points = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    gaps = np.diff(points)
    ramps = points[:, None] - freqs[None, :]
    lower = -ramps[:-2] / gaps[:-1, None]
    upper = ramps[2:] / gaps[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


# ---------------------------------------------------------------- mel scale and filters
def test_mel_scale_is_htk_and_round_trips():
    assert hz_to_mel(torch.tensor(1000.0)).item() == pytest.approx(999.9855, abs=1e-3)  # HTK: mel(1 kHz) ~ 1000
    assert hz_to_mel(torch.tensor(700.0)).item() == pytest.approx(2595 * math.log10(2))
    f = torch.tensor([0.0, 700.0, 4000.0])
    torch.testing.assert_close(mel_to_hz(hz_to_mel(f)), f, atol=1e-2, rtol=1e-5)


@pytest.mark.parametrize(
    ("n_mels", "n_fft", "sr", "f_min", "f_max"),
    [(10, 256, 8000, 0.0, 4000.0), (40, 512, 16000, 20.0, 7600.0), (8, 255, 8000, 0.0, 4000.0)],
)
def test_mel_filterbank_matches_the_definition(n_mels, n_fft, sr, f_min, f_max):
    bank = mel_filterbank(n_mels, n_fft, sr, f_min, f_max)
    assert bank.shape == (n_mels, n_fft // 2 + 1)
    expected = torch.from_numpy(reference_filterbank(n_mels, n_fft, sr, f_min, f_max)).float()
    torch.testing.assert_close(bank, expected, atol=1e-4, rtol=1e-4)


def test_mel_filters_peak_at_their_centres_and_rise_in_order():
    bank = mel_filterbank(10, 256, RATE)
    assert bank.min() >= 0 and bank.max() <= 1
    peaks = bank.argmax(1)
    assert (peaks[1:] > peaks[:-1]).all()
    centres = mel_to_hz(torch.linspace(0, hz_to_mel(torch.tensor(4000.0)).item(), 12))[1:-1]
    bins = torch.arange(129) * (RATE / 256)
    torch.testing.assert_close(bins[peaks], bins[(bins[:, None] - centres).abs().argmin(0)])


@pytest.mark.parametrize(
    "args", [(0, 256, RATE), (10, 1, RATE), (10, 256, RATE, 100.0, 50.0), (10, 256, RATE, 0.0, 5000.0)]
)
def test_mel_filterbank_rejects_bad_arguments(args):
    with pytest.raises(ValueError, match="n_mels, n_fft, f_min, f_max"):
        mel_filterbank(*args)


# ---------------------------------------------------------------- log-mel features
@pytest.mark.parametrize("n", [1, 79, 80, 81, 1000])
def test_log_mel_has_one_frame_per_hop_plus_one(n):
    features = LogMel(sample_rate=RATE, n_mels=20)
    assert features(torch.zeros(n)).shape == (1 + n // features.hop, 20)


def test_log_mel_of_a_tone_peaks_in_the_band_of_its_frequency():
    features = LogMel(sample_rate=RATE, n_mels=20)
    wave = torch.sin(2 * math.pi * 1000.0 * torch.arange(RATE) / RATE)  # 1 s at 1 kHz
    frames = features(wave)  # (frames, 20)
    expected_band = features.filters()[:, round(1000 / (RATE / 2) * (features.n_fft // 2))].argmax()
    assert (frames[5:-5].argmax(1) == expected_band).all()


def test_log_mel_matches_a_direct_dft():
    features = LogMel(sample_rate=RATE, n_mels=8)
    wave = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    frame = 3  # a frame clear of the padding: samples [3 hop - n_fft / 2, 3 hop + n_fft / 2)
    start = frame * features.hop - features.n_fft // 2
    window = torch.zeros(features.n_fft, dtype=torch.float64)
    offset = (features.n_fft - features.win) // 2
    window[offset : offset + features.win] = torch.hann_window(features.win, dtype=torch.float64)
    segment = wave[start : start + features.n_fft].double() * window
    k = torch.arange(features.n_fft // 2 + 1, dtype=torch.float64)
    n = torch.arange(features.n_fft, dtype=torch.float64)
    dft = (segment * torch.exp(-2j * math.pi * k[:, None] * n / features.n_fft)).sum(1)  # (F,)
    expected = torch.log(features.filters().double() @ dft.abs() ** 2 + 1e-6)
    torch.testing.assert_close(features(wave)[frame].double(), expected, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(features(wave.double())[frame], expected, atol=1e-6, rtol=1e-6)  # float64 too


def test_log_mel_rejects_a_batch_or_integer_samples():
    with pytest.raises(ValueError, match=r"wave: expected a 1-D float tensor \(N,\), got torch.float32 of shape"):
        LogMel()(torch.zeros(2, 100))
    with pytest.raises(ValueError, match=r"torch\.int16 of shape \(100,\)"):
        LogMel()(torch.zeros(100, dtype=torch.int16))


# ---------------------------------------------------------------- reading files
WAVE = (0.3 * np.sin(np.arange(800) / 5)).astype(np.float32)


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [("PCM_U8", 1 / 2**7), ("PCM_16", 1 / 2**15), ("PCM_24", 1 / 2**23), ("PCM_32", 1e-7), ("FLOAT", 0), ("DOUBLE", 0)],
)
def test_read_audio_scales_every_sample_format_alike(tmp_path, subtype, tolerance):
    soundfile.write(str(tmp_path / "a.wav"), WAVE, RATE, subtype=subtype)
    wave, rate = read_audio(tmp_path / "a.wav", RATE)
    assert wave.dtype == torch.float32 and wave.shape == (800,) and rate == RATE
    assert (wave - torch.from_numpy(WAVE)).abs().max() <= tolerance


def test_read_audio_averages_the_channels(tmp_path):
    stereo = np.stack([WAVE, -0.5 * WAVE], axis=1)  # (N, 2)
    soundfile.write(str(tmp_path / "s.flac"), stereo, RATE, subtype="PCM_24")
    wave, _ = read_audio(tmp_path / "s.flac")
    torch.testing.assert_close(wave, torch.from_numpy(0.25 * WAVE), atol=1e-6, rtol=0)


def test_read_audio_names_the_file_and_the_problem(tmp_path):
    soundfile.write(str(tmp_path / "r16k.wav"), np.zeros((100, 2), np.float32), 16000)
    assert read_audio(tmp_path / "r16k.wav")[1] == 16000  # any rate when none is asked for
    with pytest.raises(DataError, match=r"r16k\.wav: sample rate 16000 Hz; expected 8000 Hz \(resample it first\)"):
        read_audio(tmp_path / "r16k.wav", 8000)
    (tmp_path / "x.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(DataError, match=r"x\.wav: not a readable audio file"):
        read_audio(tmp_path / "x.wav")
    with pytest.raises(DataError, match=r"nope\.wav: no such file; expected an audio file"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(DataError, match=r": a folder; expected an audio file"):
        read_audio(tmp_path)
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), RATE)
    with pytest.raises(DataError, match=r"empty\.wav: no samples; expected some audio"):
        read_audio(tmp_path / "empty.wav")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_read_audio_refuses_non_finite_samples(tmp_path, value):
    bad = WAVE.copy()
    bad[17] = value
    soundfile.write(str(tmp_path / "f.wav"), bad, RATE, subtype="FLOAT")
    with pytest.raises(DataError, match=rf"f\.wav: sample 17 is {value}; expected finite samples"):
        read_audio(tmp_path / "f.wav")
