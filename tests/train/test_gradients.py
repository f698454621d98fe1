"""Per-layer and per-time-step gradient norms, and the vanishing/exploding watch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnkit.nn import GRU
from rnnkit.train.gradients import GradientWatch, TimeStepGradients, layer_grad_norms, layer_name


@pytest.mark.parametrize(
    ("parameter", "layer"),
    [
        ("rnn.weight_hh_l1_reverse", "rnn.l1_reverse"),
        ("rnn.bias_ih_l0", "rnn.l0"),
        ("encoder.rnn.weight_hr_l2", "encoder.rnn.l2"),
        ("head.weight", "head"),
        ("scale", "scale"),
    ],
)
def test_layer_name(parameter, layer):
    assert layer_name(parameter) == layer


def test_layer_norms_add_up_to_the_global_norm():
    model = nn.ModuleDict({"rnn": GRU(3, 5, num_layers=2), "head": nn.Linear(5, 2)})
    out, _ = model["rnn"](torch.randn(4, 6, 3))
    model["head"](out).pow(2).sum().backward()
    norms = layer_grad_norms(model)
    assert set(norms) == {"rnn.l0", "rnn.l1", "head"}
    total = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    assert math.isclose(math.sqrt(sum(v * v for v in norms.values())), float(total), rel_tol=1e-5)


def test_time_step_gradients_show_the_signal_fading_backwards():
    torch.manual_seed(0)
    rnn = GRU(2, 8)
    recorder = TimeStepGradients()
    out, _ = rnn(torch.randn(3, 30, 2))
    out = recorder.watch(out)
    out[:, -1].sum().backward()  # a loss on the last step only
    norms = recorder.norms
    assert norms.shape == (30,)
    assert norms[-1] > 0 and norms[0] < 0.1 * norms[-1]  # what reaches early steps has faded


def test_watch_warns_after_a_streak_of_tiny_norms_and_on_explosions():
    watch = GradientWatch(vanish=1e-6, explode=100.0, patience=3)
    assert [watch.check(s, 1e-8) for s in range(1, 3)] == [None, None]
    assert "vanishing" in watch.check(3, 1e-8)
    assert watch.check(4, 1e-8) is None  # once per streak
    assert watch.check(5, 1.0) is None
    assert "exploding" in watch.check(6, 1e4)
    assert watch.check(7, 1e4) is None  # rate-limited
    assert "exploding" in watch.check(9, float("inf"))
