"""rnnkit.nn.native: loading the C kernels leaves the process's floating-point modes alone."""

from __future__ import annotations

import pytest
import torch

from rnnkit.nn import native


def test_loading_the_kernels_keeps_denormals_for_the_whole_process():
    if native.library() is None:
        pytest.skip("no C compiler here: the kernels did not build (the torch code runs instead)")
    tiny = torch.tensor([1e-39])  # a float32 denormal
    assert (tiny * 1.0).item() > 0  # flush-to-zero (a -ffast-math link's crtfastmath) would give 0
    assert not torch.isnan(torch.tensor([0.0]) / 1e-40).any()  # and 0 / (denormals-are-zero) = NaN
