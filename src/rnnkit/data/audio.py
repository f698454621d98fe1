"""Audio files to feature frames: reading with ``soundfile``, log-mel filterbank features with
``torch.stft`` and a mel filterbank written here (no torchaudio, no librosa).

* :func:`read_audio` — a sound file as a mono float32 tensor ``(N,)`` at its sample rate
  (channels averaged; integer PCM of any width scaled to ``[-1, 1)``, float files as stored); a
  :class:`~rnnkit.errors.DataError` naming the file if it is missing, cannot be read, is empty,
  holds a NaN or infinite sample, or has another sample rate than expected (no resampling).
* :func:`mel_filterbank` — ``(n_mels, n_fft // 2 + 1)`` triangular filters equally spaced on the
  HTK mel scale ``mel(f) = 2595 log10(1 + f / 700)``, each of height 1 at its centre.
* :class:`LogMel` — ``wave (N,)`` → ``(frames, n_mels)``: ``log(mel power + 1e-6)`` of a Hann-windowed
  STFT (``win_ms`` windows every ``hop_ms``), the features speech recognizers start from.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.errors import DataError


def read_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[Tensor, int]:
    """``(wave: (N,) float32, sample_rate)`` of a WAV/FLAC/OGG file, channels averaged (integer
    PCM scaled to ``[-1, 1)``); with ``sample_rate`` given, a file at another rate is a
    :class:`DataError` (it is not resampled)."""
    import soundfile

    if not Path(path).is_file():
        found = "a folder" if Path(path).is_dir() else "no such file"
        raise DataError(f"{found}; expected an audio file", path=str(path))
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except (RuntimeError, OSError, ValueError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise DataError(f"not a readable audio file ({e})", path=str(path)) from None
    if data.shape[0] == 0:
        raise DataError("no samples; expected some audio", path=str(path))
    if sample_rate is not None and rate != sample_rate:
        raise DataError(f"sample rate {rate} Hz; expected {sample_rate} Hz (resample it first)", path=str(path))
    wave = torch.from_numpy(data.mean(axis=1))  # (N,)
    bad = (~torch.isfinite(wave)).nonzero()
    if len(bad):
        raise DataError(f"sample {int(bad[0])} is {wave[bad[0]].item()}; expected finite samples", path=str(path))
    return wave, rate


def hz_to_mel(f: Tensor) -> Tensor:
    """The HTK mel of each frequency ``f`` (Hz): ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    """The frequency (Hz) of each HTK mel ``m``, the inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> Tensor:
    """``(n_mels, n_fft // 2 + 1)``: filter ``m`` rises linearly from mel point ``m`` to 1 at
    point ``m + 1`` and falls to 0 at point ``m + 2``, the ``n_mels + 2`` points equally spaced
    in mel from ``f_min`` to ``f_max`` (default: half the sample rate); weights per FFT bin."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2 or n_mels < 1 or n_fft < 2:
        raise ValueError(
            f"n_mels, n_fft, f_min, f_max: expected >= 1, >= 2 and 0 <= f_min < f_max <= {sample_rate / 2}, "
            f"got {n_mels}, {n_fft}, {f_min}, {f_max}"
        )
    points = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(f_max)), n_mels + 2))
    bins = torch.arange(n_fft // 2 + 1) * (sample_rate / n_fft)  # (F,) each bin's frequency
    low, centre, high = points[:-2, None], points[1:-1, None], points[2:, None]  # (n_mels, 1) each
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_mels, F)


@dataclass(frozen=True)
class LogMel:
    """Log-mel filterbank features: ``features(wave: (N,)) -> (frames, n_mels)``, ``frames =
    1 + N // hop`` (the STFT is centred: the signal is padded by half a window each side)."""

    sample_rate: int = 8000
    n_mels: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0

    @property
    def win(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def n_fft(self) -> int:
        return 1 << math.ceil(math.log2(self.win))

    def filters(self) -> Tensor:
        """``(n_mels, n_fft // 2 + 1)``: the mel filterbank these features use."""
        return mel_filterbank(self.n_mels, self.n_fft, self.sample_rate)

    def __call__(self, wave: Tensor) -> Tensor:
        if wave.dim() != 1 or not wave.is_floating_point():
            raise ValueError(f"wave: expected a 1-D float tensor (N,), got {wave.dtype} of shape {tuple(wave.shape)}")
        window = torch.hann_window(self.win, device=wave.device, dtype=wave.dtype)
        spectrum = torch.stft(
            wave,
            self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (F, frames)
        power = spectrum.abs() ** 2
        filters = self.filters().to(wave)  # (n_mels, F)
        return torch.log(filters @ power + 1e-6).T  # (frames, n_mels)
