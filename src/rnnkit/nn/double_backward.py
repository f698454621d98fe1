"""Double backward through rnnkit.nn's hand-written autograd Functions.

The whole-sequence Functions (:mod:`rnnkit.nn.sequence`, :mod:`rnnkit.nn.minrnn`) compute their
gradients with C kernels and ``out=`` buffers: numbers, not a graph. When autograd records the
backward pass itself — ``torch.autograd.grad(..., create_graph=True)`` for a gradient penalty, a
Hessian-vector product, MAML — each of them instead calls :func:`recomputed_grads`: it runs the
Function's forward again as plain differentiable torch ops (its *reference*, step by step like
the generic loop) from the saved inputs, and differentiates that with ``create_graph=True``.
First derivatives keep the fast path; a graph of them costs one step-by-step forward and its
backward, what the generic loop costs.

A Function's first input is often a large ``(T, B, G)`` buffer (the input projection) that its
own backward pass does not need. Rather than keep it alive until the backward pass, the caller
may give a *source*: ``(fn, *tensors)`` with ``fn(*tensors)`` rebuilding that input with its
graph (e.g. ``x_rows @ weight_ih.t()`` from the ``x_rows`` the projection keeps anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Source = tuple  # (fn, *tensors): fn(*tensors) is a Function's first input, graph included


def graph_wanted() -> bool:
    """Whether autograd records the backward pass running now (``create_graph=True``)."""
    return torch.is_grad_enabled()


def save(ctx, saved: Sequence[Tensor | None], inputs: Sequence, source: Source | None = None) -> None:
    """``ctx.save_for_backward(*saved)`` plus what :func:`recomputed_grads` needs: every argument
    of the Function's ``forward`` (``inputs``, in order; tensors saved, the rest kept as they
    are), the first one replaced by ``source``'s tensors where a source is given."""
    first = 1 if source is not None else 0
    kept = [t for t in inputs[first:] if isinstance(t, Tensor)]
    source_tensors = list(source[1:]) if source is not None else []
    ctx.save_for_backward(*saved, *kept, *source_tensors)
    ctx.n_saved = len(saved)
    ctx.arguments = [None if isinstance(t, Tensor) else t for t in inputs]  # non-tensor arguments
    ctx.tensor_slots = [k for k, t in enumerate(inputs) if k >= first and isinstance(t, Tensor)]
    ctx.source_fn = None if source is None else source[0]


def saved(ctx) -> tuple[Tensor | None, ...]:
    """The tensors given as ``saved`` to :func:`save`."""
    return ctx.saved_tensors[: ctx.n_saved]


def recomputed_grads(ctx, reference: Callable, grad_outputs: Sequence[Tensor]) -> tuple[Tensor | None, ...]:
    """The grads of every argument of a Function's ``forward`` as a graph: ``reference`` (the same
    outputs as ``forward`` from the same arguments, in differentiable torch ops) run on the
    arguments :func:`save` kept, then differentiated with ``create_graph=True`` against
    ``grad_outputs``. ``None`` where an argument needs no grad."""
    tensors = ctx.saved_tensors[ctx.n_saved :]
    arguments = list(ctx.arguments)
    for k, t in zip(ctx.tensor_slots, tensors, strict=False):
        arguments[k] = t
    with torch.enable_grad():
        if ctx.source_fn is not None:
            arguments[0] = ctx.source_fn(*tensors[len(ctx.tensor_slots) :])
        outputs = reference(*arguments)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    wanted = [k for k, need in enumerate(ctx.needs_input_grad) if need and isinstance(arguments[k], Tensor)]
    grads = torch.autograd.grad(
        outputs, [arguments[k] for k in wanted], grad_outputs, create_graph=True, allow_unused=True
    )
    result: list[Tensor | None] = [None] * len(arguments)
    for k, grad in zip(wanted, grads, strict=True):
        result[k] = grad
    return tuple(result)
