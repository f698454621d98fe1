"""Tests of rnnkit.data.video_frames: which frames are kept, gray/RGB conversion, resizing, and
the options checked."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.video_frames import LUMA, check_clip_options, kept_indices, shape_frames
from rnnkit.errors import DataError


@pytest.mark.parametrize(
    ("total", "frames", "expected"),
    [
        (10, 5, [1, 3, 5, 7, 9]),  # the middle frame of each of 5 segments of 2
        (12, 4, [1, 4, 7, 10]),
        (7, 7, [0, 1, 2, 3, 4, 5, 6]),  # as many as there are: every frame once
        (9, 1, [4]),  # one frame: the middle one
        (3, 6, [0, 0, 1, 1, 2, 2]),  # a shorter clip repeats its frames, in order
        (1, 3, [0, 0, 0]),
        (4, None, [0, 1, 2, 3]),
    ],
)
def test_kept_indices_are_segment_middles(total, frames, expected):
    assert kept_indices(total, frames) == expected


def test_kept_indices_span_the_clip_in_order_for_any_lengths():
    for total in range(1, 60):
        for frames in range(1, 40):
            kept = kept_indices(total, frames)
            assert len(kept) == frames and kept == sorted(kept) and kept[0] >= 0 and kept[-1] < total
            if frames <= total:
                assert len(set(kept)) == frames
                assert kept[0] < total / frames and kept[-1] >= total - total / frames  # first and last segment
            else:
                assert set(kept) == set(range(total))  # every frame, repeated


def test_kept_indices_of_an_empty_clip_is_refused():
    with pytest.raises(ValueError, match="total: expected a clip of at least one frame"):
        kept_indices(0, 3)


def test_gray_is_the_luma_of_rgb_and_rgb_repeats_gray():
    frames = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    gray = shape_frames(frames, color="gray", name="x")
    expected = LUMA[0] * frames[:, 0] + LUMA[1] * frames[:, 1] + LUMA[2] * frames[:, 2]
    assert gray.shape == (2, 1, 4, 5)
    torch.testing.assert_close(gray[:, 0], expected)
    rgb = shape_frames(gray, color="rgb", name="x")
    assert rgb.shape == (2, 3, 4, 5) and all(torch.equal(rgb[:, c], gray[:, 0]) for c in range(3))
    assert shape_frames(frames, color="auto", name="x") is frames
    assert shape_frames(gray, color="gray", name="x") is gray


def test_resizing_averages_what_it_shrinks():
    stripes = torch.zeros(1, 1, 16, 16)
    stripes[..., ::4] = 1.0  # one column in four lit: 0.25 on average
    small = shape_frames(stripes, size=(4, 4), name="x")
    assert small.shape == (1, 1, 4, 4)
    assert small[..., 1:3].sub(0.25).abs().max() < 0.05  # antialiased: not 0 (every sample between columns)
    flat = torch.full((2, 3, 9, 7), 0.6)
    torch.testing.assert_close(shape_frames(flat, size=(20, 5), name="x"), torch.full((2, 3, 20, 5), 0.6))
    assert shape_frames(flat, size=(9, 7), name="x") is flat


def test_a_color_that_cannot_apply_names_the_file():
    with pytest.raises(DataError, match=r"two\.npy: frames of 2 channels; color 'gray' takes 1 \(gray\) or 3"):
        shape_frames(torch.zeros(1, 2, 3, 3), color="gray", name="two.npy")
    with pytest.raises(DataError, match="frames of 4 channels; color 'rgb'"):
        shape_frames(torch.zeros(1, 4, 3, 3), color="rgb", name="x")


@pytest.mark.parametrize(
    ("frames", "size", "color", "message"),
    [
        (0, None, "auto", "frames: expected an integer >= 1"),
        (2.5, None, "auto", "frames: expected an integer >= 1"),
        (True, None, "auto", "frames: expected an integer >= 1"),
        (None, (0, 4), "auto", r"size: expected two integers >= 1 \(height, width\)"),
        (None, (4,), "auto", "size: expected two integers"),
        (None, (4, 4.0), "auto", "size: expected two integers"),
        (None, None, "grey", r"color: expected one of \['auto', 'gray', 'rgb'\], got 'grey'"),
    ],
)
def test_bad_options_are_named(frames, size, color, message):
    with pytest.raises(ValueError, match=message):
        check_clip_options(frames, size, color)
