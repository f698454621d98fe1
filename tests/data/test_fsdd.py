"""Tests of rnnkit.data.fsdd: picking recordings by FSDD's index split, and stringing them into
multi-digit utterances with a manifest (on a tiny made-up folder, and on the real data when here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from rnnkit.data.audio import read_audio
from rnnkit.data.fsdd import SAMPLE_RATE, WORDS, list_recordings, make_digit_utterances
from rnnkit.errors import DataError
from rnnkit.tasks import speech

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"


@pytest.fixture
def recordings(tmp_path) -> Path:
    """Digit ``d`` of index ``i`` is ``100 (d + 1) + i`` samples of the constant ``d / 16``."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for digit in range(3):
        for index in range(3):
            wave = np.full(100 * (digit + 1) + index, digit / 16, np.float32)
            soundfile.write(str(folder / f"{digit}_jack_{index}.wav"), wave, SAMPLE_RATE, subtype="PCM_16")
    (folder / "notes.wav").write_bytes(b"")  # not an FSDD name: ignored
    (folder / "1_jack_x.wav").write_bytes(b"")
    return folder


def test_list_recordings_keeps_the_indices_asked_for(recordings):
    found = list_recordings(recordings, range(1, 3))
    assert [(p.name, d) for p, d in found] == [
        ("0_jack_1.wav", 0), ("0_jack_2.wav", 0), ("1_jack_1.wav", 1),
        ("1_jack_2.wav", 1), ("2_jack_1.wav", 2), ("2_jack_2.wav", 2),
    ]  # fmt: skip
    with pytest.raises(DataError, match=r"recordings: no FSDD recordings .* with index in range\(5, 50\)"):
        list_recordings(recordings, range(5, 50))
    with pytest.raises(DataError, match=r"missing: no such folder; expected FSDD's recordings/ folder"):
        list_recordings(recordings.parent / "missing", range(5))


def test_utterances_are_the_recordings_in_order_between_gaps(recordings, tmp_path):
    manifest = make_digit_utterances(recordings, tmp_path / "u", 8, indices=range(0, 1), max_digits=3, gap_ms=10)
    rows = [row.split("\t") for row in manifest.read_text().splitlines()]
    assert rows[0] == ["path", "transcript"] and len(rows) == 9
    gap = SAMPLE_RATE * 10 // 1000
    for name, text in rows[1:]:
        digits = [WORDS.index(w) for w in text.split()]
        assert 1 <= len(digits) <= 3
        wave, _ = read_audio(tmp_path / "u" / name, SAMPLE_RATE)
        expected = np.concatenate(
            [np.zeros(gap)] + [np.r_[np.full(100 * (d + 1), d / 16), np.zeros(gap)] for d in digits]
        )
        np.testing.assert_allclose(wave.numpy(), expected, atol=1 / 2**15)
    again = make_digit_utterances(recordings, tmp_path / "v", 8, indices=range(0, 1), max_digits=3, gap_ms=10)
    assert again.read_text() == manifest.read_text()  # the same seed, the same utterances


@pytest.mark.parametrize(("count", "max_digits", "gap_ms"), [(0, 4, 100.0), (3, 0, 100.0), (3, 4, -1.0)])
def test_make_digit_utterances_rejects_bad_arguments(recordings, tmp_path, count, max_digits, gap_ms):
    with pytest.raises(ValueError, match="count, max_digits, gap_ms: expected >= 1, >= 1 and >= 0"):
        make_digit_utterances(recordings, tmp_path / "u", count, max_digits=max_digits, gap_ms=gap_ms)
    assert not (tmp_path / "u").exists()


@pytest.mark.skipif(not FSDD.is_dir(), reason="needs ../shared/data/fsdd (absent in a user's clone)")
def test_fsdd_digit_strings(tmp_path):
    manifest = make_digit_utterances(FSDD, tmp_path / "u", 6, indices=range(0, 1), max_digits=3)
    rows = manifest.read_text().splitlines()[1:]
    assert len(rows) == 6
    for row in rows:
        name, text = row.split("\t")
        assert 1 <= len(text.split()) <= 3 and set(text.split()) <= set(WORDS)
        wave, rate = read_audio(tmp_path / "u" / name, 8000)
        assert rate == 8000 and len(wave) > 800 * len(text.split())
    utterances = speech.read_utterances(manifest, speech.DataConfig(str(manifest)))
    assert len(utterances) == 6 and utterances.features[0].shape[1] == 40
