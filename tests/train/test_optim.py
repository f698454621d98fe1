"""Optimizers and schedules by name."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnkit.train import TrainConfig
from rnnkit.train.optim import build_optimizer, build_scheduler, lr_factor


def lrs(config: TrainConfig, total: int) -> list[float]:
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], config)
    sched = build_scheduler(opt, config, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


OPTIMIZERS = [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)]


@pytest.mark.parametrize(("name", "cls"), OPTIMIZERS)
def test_optimizer_by_name(name, cls):
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], TrainConfig(optimizer=name, lr=0.3))
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.3


def test_warmup_then_cosine_to_min_lr():
    values = lrs(TrainConfig(lr=1.0, schedule="cosine", warmup=4, min_lr=0.1), total=14)
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(values[4:]))
    assert lr_factor(TrainConfig(lr=1.0, schedule="cosine", warmup=4, min_lr=0.1), 14)(14) == pytest.approx(0.1)


def test_step_schedule_multiplies_by_gamma_every_step_size():
    values = lrs(TrainConfig(lr=1.0, schedule="step", step_size=3, gamma=0.5), total=7)
    assert values == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25])


def test_linear_and_constant():
    assert lrs(TrainConfig(lr=1.0, schedule="linear"), total=4) == pytest.approx([1, 0.75, 0.5, 0.25])
    assert lrs(TrainConfig(lr=1.0), total=3) == pytest.approx([1, 1, 1])
