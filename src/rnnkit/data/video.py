"""Video clips as frame arrays, and a synthetic moving-shapes set for tests and benchmarks.

* :func:`read_clip` — a ``.npy`` file holding ``(T, H, W)`` (gray) or ``(T, H, W, C)`` frames of
  a numeric dtype (``uint8`` 0..255 is scaled to 0..1), read with ``numpy.load(allow_pickle=False)``
  (a file can never run code), returned as ``(T, C, H, W)`` float32. Decoding MP4/AVI is left to
  the user's tool of choice (``ffmpeg``, ``imageio``): save each clip's frames as ``.npy``.
* :func:`moving_shapes` — clips of a small shape sliding across a dark canvas in one of four
  directions, labelled by the direction: a task that the set of frames alone cannot solve (a
  clip moving left is, frame for frame, a clip moving right played backwards), only their order.
"""

from __future__ import annotations

import os
import random

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


def read_clip(path: str | os.PathLike) -> Tensor:
    """``(T, C, H, W)`` float32 frames of a ``.npy`` clip (see the module docstring)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"not a readable .npy array ({e})", path=str(path)) from None
    if array.ndim not in (3, 4) or min(array.shape) < 1:
        raise DataError(f"array of shape {array.shape}; expected frames (T, H, W) or (T, H, W, C)", path=str(path))
    if not (np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)):
        raise DataError(f"array of dtype {array.dtype}; expected numbers", path=str(path))
    frames = torch.from_numpy(np.ascontiguousarray(array)).float()
    if array.dtype == np.uint8:
        frames = frames / 255.0
    if not torch.isfinite(frames).all():
        raise DataError("frames hold NaN or infinite values", path=str(path))
    return frames.unsqueeze(1) if array.ndim == 3 else frames.permute(0, 3, 1, 2)  # (T, C, H, W)


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
