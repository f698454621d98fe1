"""Tests of rnnkit.train.averaging: the EMA and SWA recursions against hand-computed averages,
the start step, applying and restoring, and the average travelling in the model's state_dict."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.train.averaging import WeightAverage


class Tiny(nn.Module):
    """A linear layer and a frozen scale, with the average as a submodule (as a task would)."""

    def __init__(self, kind: str = "ema", decay: float = 0.5, start: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.scale = nn.Parameter(torch.ones(1), requires_grad=False)
        self.average = WeightAverage(self, kind, decay, start)


def iterates(model: Tiny, n: int) -> list[torch.Tensor]:
    """Set the weights to ``n`` seeded random values, stepping the average after each."""
    gen, seen = torch.Generator().manual_seed(0), []
    for _ in range(n):
        with torch.no_grad():
            model.linear.weight.copy_(torch.randn(1, 2, generator=gen))
        seen.append(model.linear.weight.detach().clone())
        model.average.step(model)
    return seen


def test_ema_follows_the_warmed_up_recursion() -> None:
    model = Tiny("ema", decay=0.5)
    seen = iterates(model, 6)
    expected = seen[0]
    for n, w in enumerate(seen[1:], start=1):
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * w
    assert torch.allclose(model.average.linear__weight, expected)
    assert not torch.allclose(expected, seen[-1])
    assert int(model.average.updates) == 6 and "scale" not in model.average.names  # frozen: not averaged


def test_swa_is_the_mean_of_the_iterates_after_start() -> None:
    model = Tiny("swa", start=2)
    seen = iterates(model, 5)
    assert torch.allclose(model.average.linear__weight, torch.stack(seen[2:]).mean(0))
    assert (int(model.average.steps), int(model.average.updates)) == (5, 3)


def test_applied_uses_the_average_then_restores_and_copy_to_keeps_it() -> None:
    model = Tiny("swa")
    seen = iterates(model, 3)
    mean = torch.stack(seen).mean(0)
    with model.average.applied(model):
        assert torch.allclose(model.linear.weight, mean)
    assert torch.equal(model.linear.weight, seen[-1])
    model.average.copy_to(model)
    assert torch.allclose(model.linear.weight, mean)


def test_nothing_is_copied_before_the_first_update() -> None:
    model = Tiny("ema", start=10)
    seen = iterates(model, 3)
    model.average.copy_to(model)
    assert torch.equal(model.linear.weight, seen[-1]) and int(model.average.updates) == 0


def test_the_average_is_saved_and_restored_with_the_model() -> None:
    model = Tiny("ema")
    iterates(model, 4)
    again = Tiny("ema")
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.average.linear__weight, model.average.linear__weight)
    assert int(again.average.updates) == 4
    assert "average.linear__bias" in model.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"kind": "mean"}, r"kind: expected one of"), ({"decay": 1.0}, r"decay: expected"), ({"start": -1}, "start")],
)
def test_bad_arguments_name_themselves(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        WeightAverage(nn.Linear(2, 1), **kwargs)
