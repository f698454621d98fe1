"""Spoken digit strings from the Free Spoken Digit Dataset (FSDD), for speech-to-text with CTC.

FSDD has 3,000 recordings of single digits (``{digit}_{speaker}_{index}.wav``, 8 kHz mono;
6 speakers x 10 digits x 50). :func:`make_digit_utterances` strings 1..``max_digits`` recordings
together, with ``gap_ms`` of silence between them, into new WAV files and writes a manifest
(``path<TAB>transcript``, the digits as words: ``"three seven one"``) that
``rnnkit speech train`` reads. The dataset's own convention splits by recording index: 0-4 test,
5-49 training (``indices``), so every speaker is in both and no recording is in both.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import torch

from rnnkit.data.audio import read_audio
from rnnkit.errors import DataError
from rnnkit.io import atomic_path, atomic_write_text

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
SAMPLE_RATE = 8000
TRAIN_INDICES = range(5, 50)
TEST_INDICES = range(0, 5)


def list_recordings(folder: str | os.PathLike, indices: range) -> list[tuple[Path, int]]:
    """``(file, digit)`` of the recordings in ``folder`` whose index is in ``indices``, sorted."""
    if not Path(folder).is_dir():
        raise DataError("no such folder; expected FSDD's recordings/ folder", path=str(folder))
    found = []
    for path in sorted(Path(folder).glob("*.wav")):
        match = _NAME.match(path.name)
        if match and int(match.group(3)) in indices:
            found.append((path, int(match.group(1))))
    if not found:
        raise DataError(
            f"no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) with index in {indices}", path=str(folder)
        )
    return found


def make_digit_utterances(
    recordings: str | os.PathLike,
    out_dir: str | os.PathLike,
    count: int,
    *,
    indices: range = TRAIN_INDICES,
    max_digits: int = 4,
    gap_ms: float = 100.0,
    seed: int = 0,
) -> Path:
    """Write ``count`` utterances of 1..``max_digits`` random recordings (index in ``indices``)
    into ``out_dir``, and ``out_dir/manifest.tsv``; returns the manifest's path."""
    import soundfile

    if count < 1 or max_digits < 1 or gap_ms < 0:
        raise ValueError(
            f"count, max_digits, gap_ms: expected >= 1, >= 1 and >= 0, got {count!r}, {max_digits!r}, {gap_ms!r}"
        )
    rng = random.Random(seed)
    pool = list_recordings(recordings, indices)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gap = torch.zeros(int(SAMPLE_RATE * gap_ms / 1000))
    rows = ["path\ttranscript"]
    cache: dict[Path, torch.Tensor] = {}
    for n in range(count):
        chosen = [rng.choice(pool) for _ in range(rng.randint(1, max_digits))]
        parts = []
        for path, _ in chosen:
            if path not in cache:
                cache[path] = read_audio(path, SAMPLE_RATE)[0]
            parts += [cache[path], gap]
        wave = torch.cat([gap, *parts])
        name = f"utt{n:05d}.wav"
        with atomic_path(out / name, suffix=".wav") as tmp:
            soundfile.write(str(tmp), wave.numpy(), SAMPLE_RATE, format="WAV", subtype="PCM_16")
        rows.append(f"{name}\t{' '.join(WORDS[d] for _, d in chosen)}")
    manifest = out / "manifest.tsv"
    atomic_write_text(manifest, "\n".join(rows) + "\n")
    return manifest
