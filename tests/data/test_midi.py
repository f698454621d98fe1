"""Tests of rnnkit.data.midi: a piece written and read back is the same piece (any grid, held or
repeated notes, rests at either end), the file is written atomically, and reading real-world
MIDI (velocity-0 note-offs, a pitch struck again while it sounds, tempo changes, several tracks,
type 0/1/2, drums) and bad files (a clear DataError naming the file)."""

from __future__ import annotations

import mido
import pytest

from rnnkit.data.midi import read_midi, write_midi
from rnnkit.errors import DataError

PIECE = [[], [60, 64], [60, 64], [], [62], [62, 67], [67], [], []]  # rests first, in the middle and last


def on(note: int, time: int = 0, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", note=note, velocity=64, time=time, channel=channel)


def off(note: int, time: int = 0, channel: int = 0) -> mido.Message:
    return mido.Message("note_off", note=note, velocity=0, time=time, channel=channel)


def save(path, *tracks: list, kind: int = 1, ticks_per_beat: int = 480):
    midi = mido.MidiFile(type=kind, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    midi.save(str(path))
    return path


# ---------------------------------------------------------------- writing and reading back
@pytest.mark.parametrize("steps_per_beat", [1, 2, 3, 7, 960])
@pytest.mark.parametrize("merge", [True, False])
def test_a_written_piece_reads_back_the_same_on_any_grid(tmp_path, steps_per_beat, merge):
    write_midi(PIECE, tmp_path / "a.mid", steps_per_beat=steps_per_beat, merge=merge)
    assert read_midi(tmp_path / "a.mid", steps_per_beat=steps_per_beat) == PIECE


@pytest.mark.parametrize("merge", [True, False])
def test_held_notes_are_one_note_unless_no_merge(tmp_path, merge):
    write_midi(PIECE, tmp_path / "a.mid", merge=merge)
    notes = sum(m.type == "note_on" for m in mido.MidiFile(tmp_path / "a.mid").tracks[0])
    assert notes == (4 if merge else 8)  # 60, 64, 62, 67 each sound for two steps: one note, or two


def test_writing_is_atomic_and_checks_the_piece(tmp_path):
    path = tmp_path / "a.mid"
    write_midi(PIECE, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"step 1: expected MIDI pitches \(integers 0\.\.127\), got 200"):
        write_midi([[60], [200]], path)
    with pytest.raises(ValueError, match="steps_per_beat"):
        write_midi(PIECE, path, steps_per_beat=0)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.mid"]


# ---------------------------------------------------------------- reading what other programs write
def test_a_note_on_with_velocity_0_ends_the_note(tmp_path):
    quiet = mido.Message("note_on", note=60, velocity=0, time=480)
    path = save(tmp_path / "a.mid", [on(60), quiet, on(62), mido.Message("note_on", note=62, velocity=0, time=480)])
    assert read_midi(path) == [[60], [62]]


def test_a_pitch_struck_again_while_it_sounds_is_a_second_note(tmp_path):
    overlapping = save(tmp_path / "a.mid", [on(60), on(60, 480), off(60, 480), off(60, 480)])
    assert read_midi(overlapping) == [[60], [60], [60]]  # notes [0, 2) and [1, 3) beats
    # a writer that starts the next note before it ends the last one at the same tick
    restruck = save(tmp_path / "b.mid", [on(60), on(60, 480), off(60), off(60, 480)])
    assert read_midi(restruck) == [[60], [60]]


def test_tracks_channels_and_tempo_changes(tmp_path):
    tempo = [mido.MetaMessage("set_tempo", tempo=500_000), mido.MetaMessage("set_tempo", tempo=250_000, time=480)]
    bass = [on(48), off(48, 960)]
    tenor = [on(60, 480, channel=1), on(64, 0, channel=2), off(60, 480, channel=1), off(64, 0, channel=2)]
    drums = [on(36, 0, channel=9), off(36, 1440, channel=9)]
    path = save(tmp_path / "a.mid", tempo, bass, tenor, drums)
    # the grid is in beats (the tempo change moves nothing); the drums are skipped but last 3 beats
    assert read_midi(path) == [[48], [48, 60, 64], []]


def test_type_0_reads_every_channel_and_type_2_is_refused(tmp_path):
    one_track = [on(60, 0, channel=0), on(67, 0, channel=3), off(60, 480), off(67, 480, channel=3)]
    assert read_midi(save(tmp_path / "a.mid", one_track, kind=0)) == [[60, 67], [67]]
    with pytest.raises(DataError, match=r"b\.mid: a type 2 MIDI file"):
        read_midi(save(tmp_path / "b.mid", [on(60), off(60, 480)], kind=2))


def test_a_note_off_the_grid_fills_every_step_it_overlaps(tmp_path):
    path = save(tmp_path / "a.mid", [on(60, 100), off(60, 300), on(62, 500), off(62, 100)], ticks_per_beat=480)
    # ticks 100-400 and 900-1000 on a grid of 240 ticks a step: steps 0-1 and 3-4
    assert read_midi(path, steps_per_beat=2) == [[60], [60], [], [62], [62]]


def test_pitches_of_the_whole_midi_range_are_read(tmp_path):
    path = save(tmp_path / "a.mid", [on(0), on(127), off(0, 480), off(127)])
    assert read_midi(path) == [[0, 127]]


# ---------------------------------------------------------------- bad files
def header(division: bytes) -> bytes:
    return b"MThd\x00\x00\x00\x06\x00\x01\x00\x01" + division


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"x\.mid: empty file; expected a MIDI file"),
        (b"not midi at all", r"x\.mid: not a readable MIDI file \(MThd not found"),
        (header(b"\x01\xe0") + b"MTrk\x00\x00\x00\x10\x00\x90", r"x\.mid: not a readable MIDI file \(it ends"),
        (header(b"\xe7\x28") + b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00", r"x\.mid: time division -6360 \(SMPTE"),
    ],
)
def test_a_bad_file_is_a_data_error_naming_it(tmp_path, content, message):
    (tmp_path / "x.mid").write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_midi(tmp_path / "x.mid")


def test_a_missing_file_or_one_without_notes(tmp_path):
    with pytest.raises(DataError, match=r"none\.mid: cannot read file \(No such file"):
        read_midi(tmp_path / "none.mid")
    drums_only = save(tmp_path / "d.mid", [on(36, 0, channel=9), off(36, 480, channel=9)])
    with pytest.raises(DataError, match=r"d\.mid: no notes"):
        read_midi(drums_only)
    with pytest.raises(ValueError, match="steps_per_beat"):
        read_midi(drums_only, steps_per_beat=0)
