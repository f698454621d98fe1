"""Piano-roll pieces to and from standard MIDI files, with ``mido``.

* :func:`write_midi` — a piece (time steps of sounding pitches, :mod:`rnnkit.data.pianoroll`)
  as a one-track MIDI file, atomically. A pitch sounding in consecutive steps is one held note
  (``merge=True``, the default) or one note per step. The track ends at the end of the last
  step, so that :func:`read_midi` gives back the same piece, trailing rests included.
* :func:`read_midi` — a MIDI file (type 0 or 1) quantized to a grid of ``steps_per_beat`` steps
  per quarter note: a step holds every pitch whose note overlaps it (all tracks, all channels but
  drums, channel 10). The grid is in beats, so tempo changes do not move it. A note-on with
  velocity 0 is a note-off; a pitch struck again while it sounds is a second note (each note-off
  ends the oldest sounding one). The piece lasts until its last note or its longest track ends.
"""

from __future__ import annotations

import io
import math
import os
from collections import defaultdict
from pathlib import Path

from rnnkit.data.pianoroll import Piece
from rnnkit.errors import DataError
from rnnkit.io import atomic_path

TICKS_PER_BEAT = 480  # the resolution write_midi aims for (rounded down to a multiple of steps_per_beat)
MAX_TICKS_PER_BEAT = 0x7FFF  # a MIDI header holds 15 bits of ticks per quarter note
DRUM_CHANNEL = 9  # General MIDI channel 10, counted from 0

Note = tuple[int, int, int]  # (pitch, start tick, end tick)


def write_midi(
    piece: Piece,
    path: str | os.PathLike,
    *,
    steps_per_beat: int = 1,
    tempo_bpm: float = 100.0,
    velocity: int = 80,
    program: int = 0,
    merge: bool = True,
) -> None:
    """Write ``piece`` to ``path`` (``steps_per_beat`` steps per quarter note at ``tempo_bpm``;
    General MIDI ``program``, 0 = piano), atomically: temp file, then rename."""
    import mido

    if (
        not 1 <= steps_per_beat <= MAX_TICKS_PER_BEAT
        or not 0 < tempo_bpm <= 1000
        or not 1 <= velocity <= 127
        or not 0 <= program <= 127
    ):
        raise ValueError(
            f"steps_per_beat, tempo_bpm, velocity, program: expected 1..{MAX_TICKS_PER_BEAT}, in (0, 1000], "
            f"1..127 and 0..127, got {steps_per_beat}, {tempo_bpm}, {velocity}, {program}"
        )
    _check_pitches(piece)
    step_ticks = max(1, TICKS_PER_BEAT // steps_per_beat)  # a whole number of ticks per step: an exact grid
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, on, pitch in _note_events(piece, step_ticks, merge):
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity if on else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=len(piece) * step_ticks - now))
    midi = mido.MidiFile(ticks_per_beat=step_ticks * steps_per_beat)
    midi.tracks.append(track)
    with atomic_path(Path(path), suffix=".mid") as tmp:
        midi.save(str(tmp))


def _check_pitches(piece: Piece) -> None:
    for t, step in enumerate(piece):
        for pitch in step:
            if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch <= 127:
                raise ValueError(f"piece: step {t}: expected MIDI pitches (integers 0..127), got {pitch!r}")


def _note_events(piece: Piece, step_ticks: int, merge: bool) -> list[tuple[int, int, int]]:
    """``(tick, 0 = off / 1 = on, pitch)`` of every note of ``piece``, in time order (at the same
    tick a note-off before a note-on, so a struck-again pitch ends before it starts again)."""
    events = []
    for pitch in sorted({p for step in piece for p in step}):
        start = None
        for t in range(len(piece) + 1):
            sounding = t < len(piece) and pitch in piece[t]
            if start is not None and (not sounding or not merge):
                events.append((t * step_ticks, 0, pitch))
                start = None
            if sounding and start is None:
                events.append((t * step_ticks, 1, pitch))
                start = t
    return sorted(events)


def read_midi(path: str | os.PathLike, steps_per_beat: int = 1) -> Piece:
    """The piece of a MIDI file on a grid of ``steps_per_beat`` steps per quarter note: step ``t``
    holds the pitches of every note (all tracks, all channels but drums) overlapping
    ``[t, t + 1)`` grid units. A :class:`DataError` if the file is not a type 0 or 1 MIDI file
    counting ticks per quarter note, or has no notes."""
    if steps_per_beat < 1:
        raise ValueError(f"steps_per_beat: expected an integer >= 1, got {steps_per_beat!r}")
    midi = _open_midi(path)
    notes: list[Note] = []
    end_tick = 0
    for track in midi.tracks:
        track_notes, track_end = _track_notes(track)
        notes += track_notes
        end_tick = max(end_tick, track_end)
    if not notes:
        raise DataError("no notes; expected a MIDI file with at least one note (drums aside)", path=str(path))
    step_ticks = midi.ticks_per_beat / steps_per_beat
    last_note_end = max(end for _, _, end in notes)
    length = max(math.ceil(last_note_end / step_ticks), round(end_tick / step_ticks))  # trailing rests kept
    steps: list[set[int]] = [set() for _ in range(length)]
    for pitch, start, end in notes:
        first, last = int(start // step_ticks), math.ceil(end / step_ticks)  # steps [first, last) overlap it
        for t in range(first, last):
            steps[t].add(pitch)
    return [sorted(s) for s in steps]


def _open_midi(path: str | os.PathLike):
    """The parsed ``mido.MidiFile`` at ``path``, or a :class:`DataError` saying why it cannot be."""
    import mido

    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror})", path=name) from None
    if not raw:
        raise DataError("empty file; expected a MIDI file", path=name)
    try:
        midi = mido.MidiFile(file=io.BytesIO(raw))
    except EOFError:
        raise DataError("not a readable MIDI file (it ends in the middle of a chunk)", path=name) from None
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise DataError(f"not a readable MIDI file ({e})", path=name) from None
    if midi.type == 2:
        raise DataError("a type 2 MIDI file (independent sequences); expected type 0 or 1", path=name)
    if midi.ticks_per_beat <= 0:
        raise DataError(
            f"time division {midi.ticks_per_beat} (SMPTE frames, or none); expected ticks per quarter note",
            path=name,
        )
    return midi


def _track_notes(track) -> tuple[list[Note], int]:
    """The notes of one track (``(pitch, start, end)`` in ticks, drums skipped, zero-length ones
    dropped; notes still sounding at the end close there) and the tick at which the track ends."""
    tick = 0
    notes: list[Note] = []
    sounding: dict[tuple[int, int], list[int]] = defaultdict(list)  # (channel, pitch) -> start ticks, oldest first
    for message in track:
        tick += message.time
        if message.type not in ("note_on", "note_off") or message.channel == DRUM_CHANNEL:
            continue
        starts = sounding[(message.channel, message.note)]
        if message.type == "note_on" and message.velocity > 0:
            starts.append(tick)
        elif starts:
            notes.append((message.note, starts.pop(0), tick))
    notes += [(pitch, start, tick) for (_, pitch), starts in sounding.items() for start in starts]
    return [n for n in notes if n[2] > n[1]], tick
