"""Piano-roll pieces to and from standard MIDI files, with ``mido``.

* :func:`write_midi` — a piece (time steps of sounding pitches, :mod:`rnnkit.data.pianoroll`)
  as a one-track MIDI file, atomically. A pitch sounding in consecutive steps is one held note
  (``merge=True``, the default) or one note per step.
* :func:`read_midi` — a MIDI file quantized to a grid of ``steps_per_beat`` steps per quarter
  note: a step holds every pitch whose note overlaps it (drum channel 10 skipped).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from rnnkit.data.pianoroll import Piece
from rnnkit.errors import DataError
from rnnkit.io import atomic_path

TICKS_PER_BEAT = 480


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

    if steps_per_beat < 1 or not 0 < tempo_bpm <= 1000 or not 1 <= velocity <= 127 or not 0 <= program <= 127:
        raise ValueError(
            "steps_per_beat, tempo_bpm, velocity, program: expected >= 1, in (0, 1000], 1..127 and 0..127, "
            f"got {steps_per_beat}, {tempo_bpm}, {velocity}, {program}"
        )
    step_ticks = TICKS_PER_BEAT // steps_per_beat
    events: list[tuple[int, int, int]] = []  # (tick, 0 = off before 1 = on, pitch)
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
    events.sort()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, on, pitch in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity if on else 0, time=tick - now))
        now = tick
    end = len(piece) * step_ticks
    track.append(mido.MetaMessage("end_of_track", time=end - now))
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    with atomic_path(Path(path), suffix=".mid") as tmp:
        midi.save(str(tmp))


def read_midi(path: str | os.PathLike, steps_per_beat: int = 1) -> Piece:
    """The piece of a MIDI file on a grid of ``steps_per_beat`` steps per quarter note: step ``t``
    holds the pitches of every note (all tracks, all channels but drums) overlapping
    ``[t, t + 1)`` grid units. A :class:`DataError` if the file is not MIDI or has no notes."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise DataError(f"not a readable MIDI file ({e})", path=str(path)) from None
    if midi.type == 2:
        raise DataError("a type 2 MIDI file (independent sequences); expected type 0 or 1", path=str(path))
    step_ticks = midi.ticks_per_beat / steps_per_beat
    notes: list[tuple[int, int, int]] = []  # (pitch, start tick, end tick)
    for track in midi.tracks:
        tick, open_notes = 0, {}
        for message in track:
            tick += message.time
            if message.type not in ("note_on", "note_off") or message.channel == 9:
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                open_notes.setdefault(key, tick)
            elif key in open_notes:
                notes.append((message.note, open_notes.pop(key), tick))
        notes += [(note, start, tick) for (_, note), start in open_notes.items()]
    notes = [n for n in notes if n[2] > n[1]]
    if not notes:
        raise DataError("no notes; expected a MIDI file with at least one note", path=str(path))
    end_tick = max(end for _, _, end in notes)
    steps: list[set[int]] = [set() for _ in range(math.ceil(end_tick / step_ticks))]
    for pitch, start, end in notes:
        first, last = int(start // step_ticks), math.ceil(end / step_ticks)  # steps [first, last) overlap it
        for t in range(first, min(last, len(steps))):
            steps[t].add(pitch)
    return [sorted(s) for s in steps]
