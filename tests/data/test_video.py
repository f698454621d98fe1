"""Tests of rnnkit.data.video: clip layouts, dtypes and scaling, every refused file named (no
pickle is ever loaded), the decoding options on .npy clips, a clip's file chosen by its name,
folders of clips (.npy and video files), and the moving-shapes set. The video files themselves:
tests/data/test_video_files.py."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.video import DIRECTIONS, clip_files, load_clip, load_frames, moving_shapes, read_clip
from rnnkit.errors import DataError


def test_read_clip_layouts_and_scaling(tmp_path):
    np.save(tmp_path / "g.npy", np.full((3, 4, 5), 255, dtype=np.uint8))
    assert read_clip(tmp_path / "g.npy").shape == (3, 1, 4, 5) and read_clip(tmp_path / "g.npy").max() == 1.0
    rgb = np.random.default_rng(0).random((2, 4, 5, 3)).astype(np.float32)
    np.save(tmp_path / "c.npy", rgb)
    clip = read_clip(tmp_path / "c.npy")
    assert clip.shape == (2, 3, 4, 5) and torch.equal(clip[1, 2], torch.from_numpy(rgb[1, :, :, 2]))


def test_big_endian_and_fortran_order_arrays_read_as_the_same_frames(tmp_path):
    frames = np.random.default_rng(0).random((2, 3, 4)).astype(np.float32)
    np.save(tmp_path / "n.npy", frames)
    np.save(tmp_path / "b.npy", frames.astype(">f4"))
    np.save(tmp_path / "f.npy", np.asfortranarray(frames))
    expected = read_clip(tmp_path / "n.npy")
    assert torch.equal(read_clip(tmp_path / "b.npy"), expected) and torch.equal(read_clip(tmp_path / "f.npy"), expected)
    assert read_clip(tmp_path / "b.npy").dtype == torch.float32


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 5)), r"shape \(4, 5\); expected frames"),
        (np.zeros((1, 2, 3, 4, 1)), r"shape \(1, 2, 3, 4, 1\); expected frames"),
        (np.zeros((0, 4, 4), dtype=np.uint8), r"shape \(0, 4, 4\); expected frames"),
        (np.zeros((2, 3, 16, 16)), r"looks channels-first \(T, C, H, W\)"),
        (np.array([["a"]] * 2).reshape(1, 1, 2), "dtype <U1; expected numbers"),
        (np.zeros((1, 2, 2), dtype=bool), "dtype bool; expected numbers"),
        (np.zeros((1, 2, 2), dtype=np.complex64), "dtype complex64; expected numbers"),
        (np.full((1, 2, 2), np.nan), "NaN or infinite"),
        (np.full((1, 2, 2), -np.inf, dtype=np.float32), "NaN or infinite"),
    ],
)
def test_bad_clips_are_named(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=r"x\.npy: .*" + message):
        read_clip(tmp_path / "x.npy")


def test_a_pickled_object_array_is_refused_unread(tmp_path, monkeypatch):
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("a pickle was loaded"))
    with pytest.raises(DataError, match=r"p\.npy: holds Python objects .*never loaded"):
        read_clip(tmp_path / "p.npy")


def test_files_that_are_not_npy_are_refused(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 3, 3)))
    (tmp_path / "pk.npy").write_bytes(pickle.dumps(np.zeros((2, 3, 3))))
    (tmp_path / "empty.npy").write_bytes(b"")
    for name in ("a.npz", "pk.npy", "empty.npy"):
        with pytest.raises(DataError, match=name.replace(".", r"\.") + r": not a \.npy file"):
            read_clip(tmp_path / name)
    with pytest.raises(DataError, match=r"gone\.npy: cannot read file \(No such file"):
        read_clip(tmp_path / "gone.npy")
    with pytest.raises(DataError, match=r"cannot read file .*expected a \.npy file"):
        read_clip(tmp_path)  # a folder


def test_a_truncated_npy_file_is_named(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((4, 8, 8), dtype=np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) - 100])
    with pytest.raises(DataError, match=r"t\.npy: not a readable \.npy array"):
        load_frames(tmp_path / "t.npy")


def test_clip_files_expands_folders_in_name_order(tmp_path):
    for name in ("b.npy", "a.npy", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    assert clip_files([tmp_path, "x.npy"]) == [tmp_path / "a.npy", tmp_path / "b.npy", Path("x.npy")]
    with pytest.raises(DataError, match=r"sub: a folder without clip files \(\.npy, \.mp4, .*\.webm\)"):
        clip_files([tmp_path / "sub"])


def test_a_folder_of_videos_stands_for_its_video_files(tmp_path):
    names = ("c.mp4", "a.AVI", "b.mov", "d.mkv", "e.webm", "f.m4v", "g.npy", "h.gif", "i.mp3", "j.txt")
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "k.mp4").mkdir()  # a folder named like a video is not a clip
    expected = ["a.AVI", "b.mov", "c.mp4", "d.mkv", "e.webm", "f.m4v", "g.npy"]
    assert clip_files([tmp_path]) == [tmp_path / name for name in expected]


def test_the_decoding_options_apply_to_npy_clips(tmp_path):
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", frames)  # frame t: all t
    clip = load_clip(tmp_path / "c.npy", frames=5, size=(2, 3), color="gray")
    assert clip.frames.shape == (5, 1, 2, 3) and clip.uint8 and clip.stored == "dtype uint8"
    torch.testing.assert_close(clip.frames[:, 0, 0, 0] * 255, torch.tensor([1.0, 3, 5, 7, 9]))
    assert read_clip(tmp_path / "c.npy", frames=20).shape == (20, 3, 4, 6)  # 10 frames, each twice
    np.save(tmp_path / "g.npy", np.zeros((3, 4, 4), dtype=np.float32))
    gray = load_clip(tmp_path / "g.npy", color="rgb")
    assert gray.frames.shape == (3, 3, 4, 4) and not gray.uint8 and gray.stored == "dtype float32"
    with pytest.raises(ValueError, match="frames: expected an integer >= 1"):
        read_clip(tmp_path / "g.npy", frames=0)


def test_a_clip_is_read_as_npy_or_video_by_its_name(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 4, 4), dtype=np.uint8))
    (tmp_path / "c.npy").rename(tmp_path / "c.mp4")  # an array named as a video is read as a video
    with pytest.raises(DataError, match=r"c\.mp4: not a readable video"):
        read_clip(tmp_path / "c.mp4")
    (tmp_path / "v.mpg").write_bytes(b"\x00\x00\x01\xba" + bytes(60))
    with pytest.raises(DataError, match=r"v\.mpg: not a \.npy file .* or a video file named \.mp4, \.m4v"):
        read_clip(tmp_path / "v.mpg")


def test_moving_shapes_move_two_pixels_a_frame():
    clips, labels = moving_shapes(20, frames=5, size=16, seed=0)
    assert set(labels) <= set(DIRECTIONS)
    for clip, label in zip(clips, labels, strict=True):
        mass = (clip[:, 0] > 0.5).float()  # (T, H, W)
        ys, xs = torch.arange(16.0)[:, None], torch.arange(16.0)[None, :]
        cx = (mass * xs).sum((1, 2)) / mass.sum((1, 2))
        cy = (mass * ys).sum((1, 2)) / mass.sum((1, 2))
        step = {"left": (-2, 0), "right": (2, 0), "up": (0, -2), "down": (0, 2)}[label]
        torch.testing.assert_close(cx[1:] - cx[:-1], torch.full((4,), float(step[0])))
        torch.testing.assert_close(cy[1:] - cy[:-1], torch.full((4,), float(step[1])))
