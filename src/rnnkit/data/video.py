"""Video clips as frame arrays, and a synthetic moving-shapes set for tests and benchmarks.

* :func:`read_clip` — a ``.npy`` file holding ``(T, H, W)`` (gray) or ``(T, H, W, C)`` frames of
  a numeric dtype (``uint8`` 0..255 is scaled to 0..1; any other dtype is taken as it is), read
  with ``numpy.load(allow_pickle=False)`` (a file can never run code; ``.npz`` archives and
  pickles are refused), returned as ``(T, C, H, W)`` float32. A 4-D array whose last axis is
  longer than 4 while its second is at most 4 is refused as channels-first. Decoding MP4/AVI is
  left to the user's tool of choice (``ffmpeg``, ``imageio``): save each clip's frames as ``.npy``.
* :func:`clip_files` — the clips named on a command line, a folder standing for its ``.npy`` files.
* :func:`moving_shapes` — clips of a small shape sliding across a dark canvas in one of four
  directions, labelled by the direction: a task that the set of frames alone cannot solve (a
  clip moving left is, frame for frame, a clip moving right played backwards), only their order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.errors import DataError

DIRECTIONS = ("left", "right", "up", "down")
_GLYPHS = (  # 5 x 5 shapes
    ["..#..", ".###.", "#####", ".###.", "..#.."],
    ["#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
    ["#####", "#...#", "#...#", "#...#", "#####"],
    ["..#..", "..#..", "#####", "..#..", "..#.."],
)


NPY_MAGIC = b"\x93NUMPY"  # how every file numpy.save writes begins


def read_clip(path: str | os.PathLike) -> Tensor:
    """``(T, C, H, W)`` float32 frames of a ``.npy`` clip (see the module docstring)."""
    return frames_tensor(load_frames(path))


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
            "(.npz archives and pickles are refused)",
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
    """``paths`` with each folder replaced by the ``.npy`` files directly in it, sorted by name;
    a :class:`DataError` for a folder without any."""
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(f for f in path.iterdir() if f.suffix.lower() == ".npy" and f.is_file())
        if not found:
            raise DataError(
                "a folder without .npy files; expected clips (or .npy files named one by one)", path=str(path)
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
