"""Video clips — ``.npy`` frame arrays and video files — and a synthetic moving-shapes set for
tests and benchmarks.

* :func:`read_clip` — a clip file as ``(T, C, H, W)`` float32, chosen by its name:

  - a video file (``.mp4``, ``.m4v``, ``.avi``, ``.mov``, ``.mkv``, ``.webm``): its first video
    stream decoded with PyAV (:mod:`rnnkit.data.video_files`; ``pip install 'rnnkit[video]'``),
    8-bit frames scaled to 0..1;
  - any other name: a ``.npy`` file holding ``(T, H, W)`` (gray) or ``(T, H, W, C)`` frames of a
    numeric dtype (``uint8`` 0..255 is scaled to 0..1; any other dtype is taken as it is), read
    with ``numpy.load(allow_pickle=False)`` (a file can never run code; ``.npz`` archives and
    pickles are refused). A 4-D array whose last axis is longer than 4 while its second is at
    most 4 is refused as channels-first.

  The same options shape both (:mod:`rnnkit.data.video_frames`): ``frames`` kept, spread
  uniformly over the clip (a shorter clip repeats its frames), ``color`` (``gray``, ``rgb``, or
  ``auto``: a ``.npy`` clip's own channels, RGB for a video) and ``size`` (height, width).
  :func:`load_clip` also says whether the clip was stored as 8-bit values (scaled) or not.
* :func:`clip_files` — the clips named on a command line, a folder standing for its clip files.
* :func:`moving_shapes` — clips of a small shape sliding across a dark canvas in one of four
  directions, labelled by the direction: a task that the set of frames alone cannot solve (a
  clip moving left is, frame for frame, a clip moving right played backwards), only their order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.video_files import VIDEO_SUFFIXES, is_video_file, read_video
from rnnkit.data.video_frames import check_clip_options, kept_indices, shape_frames
from rnnkit.errors import DataError

DIRECTIONS = ("left", "right", "up", "down")
_GLYPHS = (  # 5 x 5 shapes
    ["..#..", ".###.", "#####", ".###.", "..#.."],
    ["#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
    ["#####", "#...#", "#...#", "#...#", "#####"],
    ["..#..", "..#..", "#####", "..#..", "..#.."],
)


NPY_MAGIC = b"\x93NUMPY"  # how every file numpy.save writes begins
CLIP_SUFFIXES = (".npy", *VIDEO_SUFFIXES)  # what a folder of clips stands for


@dataclass
class Clip:
    """A clip file read: its ``frames: (T, C, H, W)`` float32, whether they were stored as 8-bit
    values scaled from 0..255 to 0..1 (a ``uint8`` array, every video file), and how they were
    stored, in words (``dtype float32``)."""

    frames: Tensor
    uint8: bool
    stored: str


def read_clip(
    path: str | os.PathLike, *, frames: int | None = None, size: tuple[int, int] | None = None, color: str = "auto"
) -> Tensor:
    """``(T, C, H, W)`` float32 frames of a clip file, ``.npy`` or video (see the module docstring)."""
    return load_clip(path, frames=frames, size=size, color=color).frames


def load_clip(
    path: str | os.PathLike, *, frames: int | None = None, size: tuple[int, int] | None = None, color: str = "auto"
) -> Clip:
    """A clip file (``.npy`` or video) read with the options of :func:`read_clip`, with its storage."""
    check_clip_options(frames, size, color)
    if is_video_file(path):
        return Clip(read_video(path, frames=frames, size=size, color=color), True, "a video (8-bit frames)")
    array = load_frames(path)
    kept = array if frames is None else array[kept_indices(len(array), frames)]
    tensor = shape_frames(frames_tensor(kept), color=color, size=size, name=str(path))
    return Clip(tensor, bool(array.dtype == np.uint8), f"dtype {array.dtype}")


def load_frames(path: str | os.PathLike) -> np.ndarray:
    """The checked ``(T, H, W)`` or ``(T, H, W, C)`` array of a ``.npy`` clip, as stored."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror}); expected a .npy file of frames", path=name) from None
    if magic != NPY_MAGIC:
        raise DataError(
            f"not a .npy file (it starts with {magic!r}); expected an array saved with numpy.save "
            f"(.npz archives and pickles are refused), or a video file named {', '.join(VIDEO_SUFFIXES)}",
            path=name,
        )
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            message = "holds Python objects (a pickled object array, never loaded); expected numbers"
            raise DataError(message, path=name) from None
        raise DataError(f"not a readable .npy array ({e})", path=name) from None
    except (OSError, EOFError) as e:
        raise DataError(f"not a readable .npy array ({e})", path=name) from None
    _check_frames(array, name)
    return array


def _check_frames(array: np.ndarray, name: str) -> None:
    if array.ndim not in (3, 4) or min(array.shape) < 1:
        raise DataError(f"array of shape {array.shape}; expected frames (T, H, W) or (T, H, W, C)", path=name)
    if array.ndim == 4 and array.shape[3] > 4 and array.shape[1] <= 4:
        raise DataError(
            f"array of shape {array.shape} looks channels-first (T, C, H, W); expected (T, H, W, C) "
            "(numpy.moveaxis(frames, 1, -1))",
            path=name,
        )
    if not (np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)):
        raise DataError(f"array of dtype {array.dtype}; expected numbers", path=name)
    if not np.isfinite(array).all():
        raise DataError("frames hold NaN or infinite values", path=name)


def frames_tensor(array: np.ndarray) -> Tensor:
    """A checked clip array (:func:`load_frames`) as ``(T, C, H, W)`` float32, ``uint8`` scaled to 0..1."""
    frames = torch.from_numpy(array.astype(np.float32))  # native byte order, contiguous
    if array.dtype == np.uint8:
        frames = frames / 255.0
    return frames.unsqueeze(1) if array.ndim == 3 else frames.permute(0, 3, 1, 2)  # (T, C, H, W)


def clip_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """``paths`` with each folder replaced by the clip files directly in it (:data:`CLIP_SUFFIXES`,
    any case), sorted by name; a :class:`DataError` for a folder without any."""
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(f for f in path.iterdir() if f.suffix.lower() in CLIP_SUFFIXES and f.is_file())
        if not found:
            raise DataError(
                f"a folder without clip files ({', '.join(CLIP_SUFFIXES)}); expected clips (or files named one by one)",
                path=str(path),
            )
        files.extend(found)
    return files


def moving_shapes(n: int, *, frames: int = 8, size: int = 24, seed: int = 0) -> tuple[list[Tensor], list[str]]:
    """``n`` clips ``(frames, 1, size, size)`` of a random glyph moving 2 pixels a frame in a
    random direction from a random start (so that it stays inside), with a little noise, and
    their directions."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    clips, labels = [], []
    travel = 2 * (frames - 1)
    for _ in range(n):
        glyph = torch.tensor([[c == "#" for c in row] for row in rng.choice(_GLYPHS)], dtype=torch.float32)
        direction = rng.choice(DIRECTIONS)
        dx, dy = {"left": (-2, 0), "right": (2, 0), "up": (0, -2), "down": (0, 2)}[direction]
        x = rng.randint(travel if dx < 0 else 0, size - 5 - (travel if dx > 0 else 0))
        y = rng.randint(travel if dy < 0 else 0, size - 5 - (travel if dy > 0 else 0))
        clip = 0.05 * torch.rand(frames, 1, size, size, generator=g)
        for t in range(frames):
            px, py = x + dx * t, y + dy * t
            clip[t, 0, py : py + 5, px : px + 5] += glyph
        clips.append(clip.clamp(0, 1))
        labels.append(direction)
    return clips, labels
