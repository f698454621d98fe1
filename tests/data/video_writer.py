"""Tiny video files for the tests, written with PyAV's encoders in a test's tmp folder (no video
file is ever committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# (codec, pixel format) per container: each a codec PyAV's bundled ffmpeg encodes.
CODECS = {
    ".mp4": ("mpeg4", "yuv420p"),
    ".avi": ("mjpeg", "yuvj420p"),
    ".mov": ("libx264", "yuv420p"),
    ".mkv": ("ffv1", "bgr0"),  # lossless RGB: decodes to exactly the frames written
    ".webm": ("libvpx-vp9", "yuv420p"),
}


def write_video(path: Path, frames: np.ndarray, *, codec: str | None = None, pix_fmt: str | None = None) -> Path:
    """Write ``frames: (T, H, W, 3)`` or gray ``(T, H, W)`` uint8 as a 10 fps video at ``path``
    (codec and pixel format: :data:`CODECS` of its suffix unless given)."""
    import av

    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    default_codec, default_format = CODECS[path.suffix]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec or default_codec, rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt or default_format
        stream.bit_rate = 4_000_000
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")))
        container.mux(stream.encode())
    return path


def flat_frames(levels: list[tuple[int, int, int]], height: int = 32, width: int = 32) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames, frame ``t`` all of the RGB colour ``levels[t]``."""
    return np.broadcast_to(np.array(levels, dtype=np.uint8)[:, None, None, :], (len(levels), height, width, 3)).copy()


def packet_spans(path: Path) -> list[tuple[int, int]]:
    """``(byte offset, size)`` of each video packet of a file: where its frames' data lies."""
    import av

    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size]
