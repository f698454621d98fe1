"""Tests of rnnkit.data.video_files: every container read, frames sampled over the whole video,
gray/RGB and resizing as for .npy clips (the same tensor from a lossless video), only the kept
frames converted, every bad file named, and PyAV imported only when a video is read."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnkit.data import video_files
from rnnkit.data.video import read_clip
from rnnkit.data.video_files import read_video
from rnnkit.data.video_frames import LUMA, kept_indices
from rnnkit.errors import DataError
from tests.data.video_writer import CODECS, flat_frames, packet_spans, write_video

LEVELS = [(20 * t, 240 - 20 * t, 100 + 10 * t) for t in range(12)]  # one flat colour per frame
LOSSY = 4 / 255  # what mpeg4 / mjpeg / x264 / vp9 at a high bit rate change a flat colour by, at most


def levels_of(clip: torch.Tensor) -> np.ndarray:
    """``(T, C)`` mean value of each frame's channels, back on the 0..255 scale."""
    return clip.mean((2, 3)).numpy() * 255


@pytest.mark.parametrize("suffix", list(CODECS))
def test_each_container_reads_its_frames(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", flat_frames(LEVELS, 32, 48))
    clip = read_video(path)
    assert clip.shape == (12, 3, 32, 48) and clip.dtype == torch.float32
    assert clip.min() >= 0.0 and clip.max() <= 1.0
    np.testing.assert_allclose(levels_of(clip), np.array(LEVELS, dtype=float), atol=LOSSY * 255)
    assert clip.std((2, 3)).max() < LOSSY  # each frame stays flat


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])  # frames counted from the index / from the packets
def test_frames_are_sampled_uniformly_over_the_whole_video(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", flat_frames(LEVELS, 16, 16))
    for keep in (4, 5, 1, 12):
        clip = read_video(path, frames=keep)
        expected = [LEVELS[i] for i in kept_indices(12, keep)]
        assert clip.shape == (keep, 3, 16, 16)
        np.testing.assert_allclose(levels_of(clip), np.array(expected, dtype=float), atol=LOSSY * 255)


def test_a_video_shorter_than_the_frames_asked_repeats_its_frames(tmp_path):
    path = write_video(tmp_path / "v.mkv", flat_frames(LEVELS[:5], 16, 16))
    clip = read_video(path, frames=12)
    assert clip.shape == (12, 3, 16, 16)
    expected = [LEVELS[i] for i in [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4]]  # each 2 or 3 times
    np.testing.assert_allclose(levels_of(clip), np.array(expected, dtype=float), atol=0.01)


@pytest.mark.parametrize("wrong", [15, 9, 1])
def test_a_wrong_frame_count_is_corrected_by_decoding(tmp_path, monkeypatch, wrong):
    path = write_video(tmp_path / "v.mkv", flat_frames(LEVELS, 16, 16))
    right = read_video(path, frames=4)
    monkeypatch.setattr(video_files, "_counted_frames", lambda av, name: wrong)
    assert torch.equal(read_video(path, frames=4), right)


def test_only_the_frames_kept_are_converted(tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.mp4", flat_frames(LEVELS, 16, 16))
    converted = []
    convert = video_files._frame_tensor
    monkeypatch.setattr(video_files, "_frame_tensor", lambda frame, *a: converted.append(1) or convert(frame, *a))
    assert read_video(path, frames=3).shape[0] == 3 and len(converted) == 3
    converted.clear()
    assert read_video(path, frames=24).shape[0] == 24 and len(converted) == 12  # a repeated frame converted once


def test_gray_resize_and_rgb(tmp_path):
    path = write_video(tmp_path / "v.mkv", flat_frames(LEVELS, 32, 48))
    gray = read_video(path, color="gray")
    assert gray.shape == (12, 1, 32, 48)
    luma = np.array(LEVELS, dtype=float) @ np.array(LUMA)
    np.testing.assert_allclose(levels_of(gray)[:, 0], luma, atol=0.01)
    small = read_video(path, size=(8, 12), frames=6)
    assert small.shape == (6, 3, 8, 12)
    np.testing.assert_allclose(levels_of(small), [LEVELS[i] for i in kept_indices(12, 6)], atol=0.01)
    assert torch.equal(read_video(path, color="rgb"), read_video(path))


@pytest.mark.parametrize(
    "options",
    [{}, {"frames": 5}, {"frames": 20}, {"color": "gray"}, {"size": (7, 10)}, {"frames": 3, "size": (20, 30)}],
)
def test_a_lossless_video_reads_as_the_same_tensor_as_its_npy_clip(tmp_path, options):
    frames = np.random.default_rng(0).integers(0, 256, (9, 16, 24, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", frames)
    write_video(tmp_path / "c.mkv", frames)  # ffv1, RGB: lossless
    from_video, from_npy = read_clip(tmp_path / "c.mkv", **options), read_clip(tmp_path / "c.npy", **options)
    assert from_video.shape == from_npy.shape and torch.equal(from_video, from_npy)


def test_a_gray_npy_clip_and_its_video_agree_within_lossy_coding(tmp_path):
    frames = np.zeros((6, 16, 16), dtype=np.uint8)
    for t in range(6):
        frames[t, 4:10, 2 * t : 2 * t + 5] = 230  # a bright block moving right
    np.save(tmp_path / "c.npy", frames)
    write_video(tmp_path / "c.mp4", frames)  # mpeg4, yuv420p
    from_video = read_clip(tmp_path / "c.mp4", color="gray")
    from_npy = read_clip(tmp_path / "c.npy")
    assert from_video.shape == from_npy.shape == (6, 1, 16, 16)
    assert (from_video - from_npy).abs().mean() < 0.02 and (from_video - from_npy).abs().max() < 0.25


# ---------------------------------------------------------------- bad files
def test_not_a_video_is_named(tmp_path):
    (tmp_path / "text.mp4").write_text("hello\n" * 20)
    (tmp_path / "empty.avi").write_bytes(b"")
    for name in ("text.mp4", "empty.avi"):
        with pytest.raises(DataError, match=name.replace(".", r"\.") + r": not a readable video \(Invalid data"):
            read_video(tmp_path / name)


def test_a_file_that_cannot_be_read_is_named(tmp_path):
    with pytest.raises(DataError, match=r"gone\.mp4: cannot read file \(No such file or directory\)"):
        read_video(tmp_path / "gone.mp4")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(DataError, match=r"folder\.mp4: cannot read file \(Is a directory\)"):
        read_video(tmp_path / "folder.mp4")


def test_a_file_without_a_video_stream_is_named(tmp_path):
    import av

    with av.open(str(tmp_path / "sound.mkv"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(DataError, match=r"sound\.mkv: no video stream \(it holds only audio streams\)"):
        read_video(tmp_path / "sound.mkv", frames=4)


def blank_packets(path, keep: int = 0):
    """Overwrite the data of the video packets of ``path`` after the first ``keep`` with zeros."""
    data = bytearray(path.read_bytes())
    for pos, size in packet_spans(path)[keep:]:
        data[pos : pos + size] = bytes(size)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("frames", [None, 4])
def test_a_video_of_no_decodable_frame_is_named(tmp_path, frames):
    path = write_video(tmp_path / "blank.mkv", flat_frames(LEVELS, 16, 16))
    blank_packets(path)  # ffv1 decodes nothing from them
    with pytest.raises(DataError, match=r"blank\.mkv: no decodable frames in its video stream"):
        read_video(path, frames=frames)


def test_a_frame_that_does_not_decode_is_named(tmp_path):
    path = write_video(tmp_path / "broken.avi", flat_frames(LEVELS, 16, 16))
    blank_packets(path, keep=5)  # mjpeg refuses a frame of zeros
    with pytest.raises(DataError, match=r"broken\.avi: a damaged video: frame 6 does not decode \(Invalid data"):
        read_video(path)


def test_frames_of_changing_size_are_refused_unless_resized(tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.mkv", flat_frames(LEVELS[:3], 8, 8))
    sizes = iter([(8, 8), (8, 8), (6, 10)])
    monkeypatch.setattr(video_files, "_frame_tensor", lambda *a: torch.zeros(3, *next(sizes)))
    with pytest.raises(DataError, match=r"v\.mkv: frame 3 is 10x6 pixels, an earlier one 8x8; expected one frame"):
        read_video(path)


def test_without_pyav_a_video_names_the_install_and_npy_clips_still_read(tmp_path, monkeypatch):
    np.save(tmp_path / "c.npy", np.zeros((2, 4, 4), dtype=np.uint8))
    path = write_video(tmp_path / "c.mp4", flat_frames(LEVELS[:2], 16, 16))
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` fails
    with pytest.raises(DataError, match=r"c\.mp4: reading a video file needs PyAV.*pip install 'rnnkit\[video\]'"):
        read_clip(path)
    assert read_clip(tmp_path / "c.npy").shape == (2, 1, 4, 4)


def test_pyav_is_imported_only_when_a_video_is_read(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 4, 4), dtype=np.uint8))
    write_video(tmp_path / "c.mp4", flat_frames(LEVELS[:2], 16, 16))
    code = (
        "import json, sys\n"
        "import rnnkit.data.video, rnnkit.tasks.video\n"
        "from rnnkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "try:\n    main(['video', 'train', '--help'])\nexcept SystemExit:\n    pass\n"
        f"rnnkit.data.video.read_clip({str(tmp_path / 'c.npy')!r})\n"
        "before = 'av' in sys.modules\n"
        f"rnnkit.data.video.read_clip({str(tmp_path / 'c.mp4')!r})\n"
        "print(json.dumps([before, 'av' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == [False, True]
