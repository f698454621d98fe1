"""Which frames of a clip to keep, and their colour and size: one rule for every clip file, a
``.npy`` array or a decoded video, so that both give the same tensor for the same pixels.

* :func:`kept_indices` — ``frames`` indices spread uniformly over a clip of ``total`` frames:
  the middle frame of each of ``frames`` equal segments, ``floor((2i + 1) * total / (2 * frames))``.
  ``frames == total`` keeps every frame; a clip shorter than ``frames`` repeats its frames in
  order (each about ``frames / total`` times: the clip played slower), as uniform sampling does.
* :func:`shape_frames` — ``(T, C, H, W)`` to the asked colour (``gray``: the BT.601 luma
  ``0.299 R + 0.587 G + 0.114 B`` of an RGB frame, as PIL's ``convert("L")`` and torchvision's
  ``rgb_to_grayscale``; ``rgb``: a gray frame repeated over three channels; ``auto``: as given)
  and frame size (``torch.nn.functional.interpolate``, bilinear with antialiasing, so that
  shrinking a frame averages its pixels instead of skipping them).

Shape legend: ``T`` frames, ``C`` channels, ``H``/``W`` frame height/width.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import DataError

COLORS = ("auto", "gray", "rgb")  # auto: a .npy clip's own channels, RGB for a video file
LUMA = (0.299, 0.587, 0.114)  # BT.601 weights of R, G, B


def check_clip_options(frames: int | None, size: tuple[int, int] | None, color: str) -> None:
    """A ``ValueError`` naming the option unless ``frames`` is ``None`` or an integer >= 1,
    ``size`` is ``None`` or two integers >= 1 (height, width), and ``color`` one of :data:`COLORS`."""
    if frames is not None and (not _is_int(frames) or frames < 1):
        raise ValueError(f"frames: expected an integer >= 1, or None for every frame; got {frames!r}")
    if size is not None and (len(size) != 2 or not all(_is_int(n) and n >= 1 for n in size)):
        raise ValueError(f"size: expected two integers >= 1 (height, width), or None for the stored size; got {size!r}")
    if color not in COLORS:
        raise ValueError(f"color: expected one of {list(COLORS)}, got {color!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # numpy integers too


def kept_indices(total: int, frames: int | None) -> list[int]:
    """The indices (ascending, repeated when ``total < frames``) of the ``frames`` frames kept of
    a clip of ``total`` >= 1 frames; all of them for ``frames=None``."""
    if total < 1:
        raise ValueError(f"total: expected a clip of at least one frame, got {total}")
    if frames is None:
        return list(range(total))
    return [(2 * i + 1) * total // (2 * frames) for i in range(frames)]


def shape_frames(frames: Tensor, *, color: str = "auto", size: tuple[int, int] | None = None, name: str) -> Tensor:
    """``frames: (T, C, H, W)`` float32 in the colour and ``size`` (height, width) asked; a
    :class:`DataError` naming ``name`` (the file) when ``color`` cannot apply to ``C`` channels."""
    frames = _in_color(frames, color, name)
    if size is not None and tuple(frames.shape[2:]) != tuple(size):
        frames = F.interpolate(frames, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return frames  # (T, C', H', W')


def _in_color(frames: Tensor, color: str, name: str) -> Tensor:
    channels = frames.shape[1]
    if color == "auto" or (color == "gray" and channels == 1) or (color == "rgb" and channels == 3):
        return frames
    if color == "gray" and channels == 3:
        weights = torch.tensor(LUMA, dtype=frames.dtype).view(1, 3, 1, 1)
        return (frames * weights).sum(1, keepdim=True)  # (T, 1, H, W)
    if color == "rgb" and channels == 1:
        return frames.repeat(1, 3, 1, 1)  # (T, 3, H, W)
    raise DataError(f"frames of {channels} channels; color {color!r} takes 1 (gray) or 3 (RGB) channels", path=name)
