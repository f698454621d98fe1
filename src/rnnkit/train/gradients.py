"""Gradient norms: global and per layer every logged step, per time step on demand, and the
watch that warns when they vanish or explode.

A "layer" is a module path plus torch.nn's layer suffix: ``rnn.weight_hh_l1_reverse`` and
``rnn.bias_ih_l1_reverse`` both count under ``rnn.l1_reverse``; ``head.weight`` under ``head``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable

import torch
from torch import Tensor, nn

_LAYER_SUFFIX = re.compile(r"_(l\d+(?:_reverse)?)$")


def layer_name(parameter_name: str) -> str:
    """The layer a parameter belongs to (see the module docstring)."""
    module, _, leaf = parameter_name.rpartition(".")
    match = _LAYER_SUFFIX.search(leaf)
    if match:
        return f"{module}.{match.group(1)}" if module else match.group(1)
    return module or leaf


def global_grad_norm(parameters: Iterable[nn.Parameter]) -> float:
    """The 2-norm of all gradients together (``inf``/``nan`` when any is not finite)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))


@torch.no_grad()
def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """2-norm of the gradients of each layer (see :func:`layer_name`), keyed by layer."""
    squares: dict[str, float] = defaultdict(float)
    for name, p in model.named_parameters():
        if p.grad is not None:
            squares[layer_name(name)] += float(torch.linalg.vector_norm(p.grad.float())) ** 2
    return {layer: math.sqrt(total) for layer, total in squares.items()}


class TimeStepGradients:
    """Records ``||dL/dh_t||`` for each time step of a ``(B, T, H)`` output during backward.

    ``rec = TimeStepGradients(); out = rec.watch(out)`` before the loss; after ``backward()``,
    ``rec.norms`` is a ``(T,)`` tensor: the norm over batch and features of the gradient reaching
    each step's output. Small early-step norms on a task that needs early inputs is vanishing.
    """

    def __init__(self) -> None:
        self.norms: Tensor | None = None

    def watch(self, outputs: Tensor) -> Tensor:
        """Hook ``outputs: (B, T, H)`` (must require grad); returns it unchanged."""
        if outputs.dim() != 3:
            raise ValueError(f"outputs: expected (B, T, H), got shape {tuple(outputs.shape)}")
        outputs.register_hook(self._record)
        return outputs

    def _record(self, grad: Tensor) -> None:
        self.norms = torch.linalg.vector_norm(grad.detach().float(), dim=(0, 2)).cpu()  # (T,)


class GradientWatch:
    """Warns when the global gradient norm vanishes (below ``vanish`` for ``patience`` steps in a
    row, once per streak) or explodes (above ``explode``, or not finite; at most once per
    ``patience`` steps). :meth:`check` returns the warning text or None.
    """

    def __init__(self, vanish: float, explode: float, patience: int) -> None:
        self.vanish = vanish
        self.explode = explode
        self.patience = max(1, patience)
        self.small_streak = 0
        self.last_explode_warning = -(10**9)

    def check(self, step: int, norm: float) -> str | None:
        if not math.isfinite(norm) or norm > self.explode:
            self.small_streak = 0
            if step - self.last_explode_warning >= self.patience:
                self.last_explode_warning = step
                return f"exploding gradients: global norm {norm:.3g} (threshold {self.explode:g})"
            return None
        if norm < self.vanish:
            self.small_streak += 1
            if self.small_streak == self.patience:
                return (
                    f"vanishing gradients: global norm below {self.vanish:g} for {self.patience} steps (now {norm:.3g})"
                )
            return None
        self.small_streak = 0
        return None

    def state_dict(self) -> dict[str, int]:
        return {"small_streak": self.small_streak, "last_explode_warning": self.last_explode_warning}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.small_streak = int(state["small_streak"])
        self.last_explode_warning = int(state["last_explode_warning"])
