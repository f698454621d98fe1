"""Weight averaging: one model whose weights are an average of the iterates of one run.

Two kinds, both folded in after optimizer steps by :meth:`WeightAverage.step`:

- ``"ema"``: an exponential moving average of the parameters (Polyak averaging), ``avg <-
  d * avg + (1 - d) * p`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the
  first updates follow the weights closely, so the starting weights are soon forgotten).
- ``"swa"``: the plain mean of the weights after every step from ``start`` on (stochastic weight
  averaging / tail averaging, Izmailov et al. 2018): ``avg <- avg + (p - avg) / (n + 1)``.

The average lives in buffers of a :class:`WeightAverage` module, so when it is a submodule of the
model it averages, it is saved, restored and moved with that model's ``state_dict`` (exact
resume, nothing else to store). It never holds a reference to that model: every method takes it
as an argument. Only trainable floating-point parameters are averaged; buffers are left alone::

    model.average = WeightAverage(model, kind="ema", decay=0.999)   # before building the optimizer
    optimizer.register_step_post_hook(lambda *_: model.average.step(model))
    with model.average.applied(model):   # evaluate the averaged weights, then restore the trained ones
        evaluate(model)
    model.average.copy_to(model)         # keep the averaged weights (e.g. after loading a checkpoint)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

AVERAGES = ("ema", "swa")


def _buffer_name(param_name: str) -> str:
    return param_name.replace(".", "__")


class WeightAverage(nn.Module):
    """A running average of ``module``'s trainable parameters, held as buffers.

    Args: ``module`` (whose parameters are averaged; not stored), ``kind`` (``"ema"`` or
    ``"swa"``), ``decay`` (EMA factor in ``[0, 1)``), ``start`` (steps to skip before the first
    update; settable later, as ``average.start``, when the run's length is known).
    """

    def __init__(self, module: nn.Module, kind: str = "ema", decay: float = 0.999, start: int = 0) -> None:
        super().__init__()
        if kind not in AVERAGES:
            raise ValueError(f"kind: expected one of {list(AVERAGES)}, got {kind!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay: expected a number in [0, 1), got {decay!r}")
        if start < 0:
            raise ValueError(f"start: expected an integer >= 0, got {start!r}")
        self.kind, self.decay, self.start = kind, decay, start
        self.names = []
        for name, p in module.named_parameters():
            if p.requires_grad and p.is_floating_point():
                self.names.append(name)
                self.register_buffer(_buffer_name(name), p.detach().clone())
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # step() calls
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # iterates folded in

    def _pairs(self, module: nn.Module) -> Iterator[tuple[Tensor, Tensor]]:
        params = dict(module.named_parameters())
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(f"module: has no parameter {missing[0]!r} of the averaged module")
        for name in self.names:
            yield getattr(self, _buffer_name(name)), params[name]

    @torch.no_grad()
    def step(self, module: nn.Module) -> None:
        """Count one optimizer step; from step ``start + 1`` on, fold ``module``'s weights in."""
        self.steps += 1
        if int(self.steps) <= self.start:
            return
        n = int(self.updates)
        ema = 1.0 - min(self.decay, (1.0 + n) / (10.0 + n))
        weight = ema if self.kind == "ema" else 1.0 / (n + 1)  # of the new iterate
        for avg, p in self._pairs(module):
            avg.lerp_(p.detach().to(avg.dtype), 1.0 if n == 0 else weight)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the average into ``module``'s parameters (nothing happens before the first update)."""
        if int(self.updates) == 0:
            return
        for avg, p in self._pairs(module):
            p.copy_(avg)

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[nn.Module]:
        """``module`` with the averaged weights inside the block, its own weights again after it."""
        saved = [p.detach().clone() for _, p in self._pairs(module)]
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for (_, p), value in zip(self._pairs(module), saved, strict=True):
                    p.copy_(value)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, decay={self.decay}, start={self.start}, params={len(self.names)}"
