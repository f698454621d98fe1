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


@pytest.mark.parametrize(("name", "cls"), OPTIMIZERS)
def test_fused_kernels_on_cpu_make_the_same_updates_as_the_unfused_optimizer(name, cls):
    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5)]
    config = TrainConfig(optimizer=name, lr=0.05, weight_decay=0.01, momentum=0.9)
    fused = [torch.nn.Parameter(t.clone()) for t in start]
    plain = [torch.nn.Parameter(t.clone()) for t in start]
    opt = build_optimizer(fused, config)
    assert opt.defaults["fused"] is True
    reference = cls(plain, lr=0.05, weight_decay=0.01, **({"momentum": 0.9} if name == "sgd" else {}))
    for step in range(5):
        for params, o in ((fused, opt), (plain, reference)):
            o.zero_grad()
            ((params[0] @ params[1]).sin().sum() * (step + 1)).backward()
            o.step()
    for a, b in zip(fused, plain, strict=True):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_parameters_fused_kernels_cannot_take_get_the_plain_optimizer():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))], TrainConfig())
    assert not opt.defaults["fused"]
    opt.param_groups[0]["params"][0].grad = torch.ones(2, dtype=torch.complex64)
    opt.step()  # runs (fused AdamW would refuse complex parameters)


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
