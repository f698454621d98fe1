"""Video files — MP4, M4V, AVI, MOV, MKV, WebM — decoded with PyAV (``pip install 'rnnkit[video]'``,
which brings its own ffmpeg: H.264, MPEG-4, VP8/VP9, MJPEG, FFV1, ...).

* :func:`read_video` — the first video stream of a file (cover art stored as a one-picture video
  stream is skipped) as ``(T, C, H, W)`` float32 in 0..1: each frame decoded to 8-bit RGB,
  scaled from 0..255, then put in the asked colour and size (:mod:`rnnkit.data.video_frames`,
  the same rule as for ``.npy`` clips).
* ``frames=N`` keeps ``N`` frames spread uniformly over the whole video
  (:func:`~rnnkit.data.video_frames.kept_indices`; a video of fewer frames repeats them). The
  frames are counted first — from the container's index, else by reading the stream's packets
  without decoding them — and one decoding pass then converts only the frames kept. If decoding
  finds another number of frames than counted (a damaged index), a second pass keeps the frames
  of the number found. Frames are picked by their order, not their time stamps.
* Memory: one full-size frame at a time, and the frames kept at the asked size.
* PyAV is imported when the first video file is read, never before (``import rnnkit.data.video``
  and ``rnnkit --help`` do not load it).

Every problem is one :class:`~rnnkit.errors.DataError` naming the file: PyAV missing, a file that
cannot be read, not a video (or damaged beyond reading), no video stream, a frame that does not
decode, no decodable frame, frames of changing size without ``size``.

Shape legend: ``T`` frames, ``C`` channels (3 RGB, 1 gray), ``H``/``W`` frame height/width.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.video_frames import check_clip_options, kept_indices, shape_frames
from rnnkit.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm")
INSTALL_HINT = "pip install 'rnnkit[video]'"
ATTACHED_PIC = 0x0400  # ffmpeg's AV_DISPOSITION_ATTACHED_PIC: cover art, not the video


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as a video file (:data:`VIDEO_SUFFIXES`, any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_video(
    path: str | os.PathLike, *, frames: int | None = None, size: tuple[int, int] | None = None, color: str = "auto"
) -> Tensor:
    """``(T, C, H, W)`` float32 0..1 frames of the first video stream of ``path``: ``frames``
    spread uniformly over it (``None``: all), ``size`` (height, width; ``None``: as stored),
    ``color`` ``gray`` or ``rgb`` (``auto``: RGB). See the module docstring."""
    check_clip_options(frames, size, color)
    name = str(path)
    av = _import_av(name)
    try:
        total = None if frames is None else _counted_frames(av, name)
        wanted = None if total is None else kept_indices(total, frames)
        kept, decoded = _decode(av, name, wanted, size, color)
        if total is not None and decoded != total:  # the count was off: pick again among the frames found
            kept, _ = _decode(av, name, kept_indices(decoded, frames), size, color)
    except av.error.FFmpegError as e:
        raise DataError(_error_text(e), path=name) from None
    return torch.stack(kept)  # (T, C, H, W)


def _import_av(name: str) -> ModuleType:
    try:
        import av
    except ImportError:
        raise DataError(f"reading a video file needs PyAV, which is not installed: {INSTALL_HINT}", path=name) from None
    return av


def _error_text(e: Exception) -> str:
    reason = getattr(e, "strerror", None) or str(e)
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return f"cannot read file ({reason}); expected a video file"
    return f"not a readable video ({reason}); expected a video file ({', '.join(VIDEO_SUFFIXES)}) that ffmpeg decodes"


def _video_stream(container: Any, name: str) -> Any:
    """The first video stream of an open container that is not cover art."""
    for stream in container.streams.video:
        if not int(getattr(stream, "disposition", 0)) & ATTACHED_PIC:
            return stream
    found = sorted({s.type for s in container.streams})
    holds = f"it holds only {' and '.join(found)} streams" if found else "it holds no streams"
    raise DataError(f"no video stream ({holds}); expected a video file", path=name)


def _counted_frames(av: ModuleType, name: str) -> int:
    """The number of frames of the video stream: the container's index, else its packets (read, not decoded)."""
    with av.open(name) as container:
        stream = _video_stream(container, name)
        if stream.frames > 0:
            return stream.frames
        count = sum(1 for packet in container.demux(stream) if packet.size)
    if count == 0:
        raise DataError(_NO_FRAMES, path=name)
    return count


_NO_FRAMES = "no decodable frames in its video stream; expected a video of at least one frame"


def _decode(
    av: ModuleType, name: str, wanted: list[int] | None, size: tuple[int, int] | None, color: str
) -> tuple[list[Tensor], int]:
    """The frames at the indices ``wanted`` (``None``: all; one found fewer frames is left out),
    each ``(C, H, W)`` as it is decoded, and the number of frames the stream decoded to."""
    picked: dict[int, Tensor] = {}
    keep = None if wanted is None else set(wanted)
    count, first_shape = 0, None
    with av.open(name) as container:
        stream = _video_stream(container, name)
        try:
            for frame in container.decode(stream):
                if keep is None or count in keep:
                    picked[count] = _frame_tensor(frame, size, color, name)
                    first_shape = first_shape or picked[count].shape
                    _check_same_size(picked[count].shape, first_shape, count, name)
                count += 1
        except av.error.FFmpegError as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise DataError(f"a damaged video: frame {count + 1} does not decode ({reason})", path=name) from None
    if count == 0:
        raise DataError(_NO_FRAMES, path=name)
    order = range(count) if wanted is None else wanted
    return [picked[i] for i in order if i in picked], count


def _frame_tensor(frame: Any, size: tuple[int, int] | None, color: str, name: str) -> Tensor:
    """A decoded ``av.VideoFrame`` as ``(C, H, W)`` float32: 8-bit RGB scaled to 0..1, then shaped."""
    rgb = torch.from_numpy(frame.to_ndarray(format="rgb24"))  # (H, W, 3) uint8
    pixels = rgb.permute(2, 0, 1).unsqueeze(0).float() / 255.0  # (1, 3, H, W)
    return shape_frames(pixels, color="rgb" if color == "auto" else color, size=size, name=name)[0]


def _check_same_size(shape: torch.Size, first: torch.Size, index: int, name: str) -> None:
    if shape != first:
        raise DataError(
            f"frame {index + 1} is {shape[2]}x{shape[1]} pixels, an earlier one {first[2]}x{first[1]}; "
            "expected one frame size (size=(H, W) resizes every frame)",
            path=name,
        )
