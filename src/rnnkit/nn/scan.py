"""The one generic loop: runs any cell over time.

:func:`scan` takes a cell (anything with ``project`` and ``step``, see :mod:`rnnkit.nn.cells`),
projects the whole input at once, then steps through time carrying the state. It handles

* ``lengths``: past each sequence's end the state is frozen and the output is zero, so the
  returned state is every sequence's state at its own last step;
* ``reverse=True``: each sequence is read backwards from its own last step (as PackedSequence
  does), and outputs are returned in the original time order;
* an initial state (zeros when not given).

Adding a cell never means writing a new loop.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from rnnkit.nn.cells import State


class Cell(Protocol):
    """What :func:`scan` needs from a cell."""

    def project(self, x: Tensor) -> Tensor: ...

    def step(self, g_t: Tensor, state: State) -> tuple[Tensor, State]: ...

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State: ...


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``x: (B, T, F)`` within its own length; padding stays in place.

    ``lengths: (B,)`` on ``x``'s device, or ``None`` (all sequences have length ``T``). The
    operation is its own inverse.
    """
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    n = lengths.unsqueeze(1)  # (B, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def where_state(mask: Tensor, new: State, old: State) -> State:
    """Per sequence, ``new`` where ``mask: (B, 1)`` is true and ``old`` elsewhere."""
    if isinstance(new, tuple):
        return tuple(torch.where(mask, n, o) for n, o in zip(new, old, strict=True))
    return torch.where(mask, new, old)


def scan(
    cell: Cell,
    x: Tensor,
    state: State | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, State]:
    """Run ``cell`` over ``x`` and return ``(outputs, final_state)``.

    Args:
        cell: a recurrent cell (``project``, ``step``, ``initial_state``).
        x: ``(B, T, I)``, batch first.
        state: initial state, ``(B, H)`` or a tuple of such tensors; zeros if ``None``.
        lengths: ``(B,)`` integer tensor on ``x``'s device, each in ``1..T``; ``None`` means all ``T``.
            Not checked here: the layers validate it at their boundary.
        reverse: read each sequence backwards from its own last step.

    Returns:
        outputs: ``(B, T, H_out)``, zero past each sequence's end, in input time order.
        final_state: the state at each sequence's own last step.
    """
    B, T, _ = x.shape
    if state is None:
        state = cell.initial_state(B, device=x.device, dtype=x.dtype)
    if reverse:
        x = reverse_padded(x, lengths)
    g = cell.project(x)  # (B, T, G): every time step's input projection in one matmul
    # unbind, not g[:, t]: its backward stacks T gradients once, where T slices would each
    # scatter into a fresh (B, T, G) zero tensor (O(T^2) memory traffic).
    g_steps = g.unbind(1)  # T tensors (B, G)
    outputs: list[Tensor] = []
    if lengths is None:
        for t in range(T):
            h_t, state = cell.step(g_steps[t], state)
            outputs.append(h_t)
    else:
        valid = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        always = int(lengths.min())  # every sequence is still running before this step
        for t in range(int(lengths.max())):
            h_t, new_state = cell.step(g_steps[t], state)
            if t < always:
                state = new_state
            else:
                mask = valid[:, t : t + 1]  # (B, 1)
                state = where_state(mask, new_state, state)
                h_t = h_t * mask
            outputs.append(h_t)
        if len(outputs) < T:  # steps after the longest sequence's end: zero outputs
            outputs.extend([torch.zeros_like(outputs[0])] * (T - len(outputs)))
    out = torch.stack(outputs, dim=1)  # (B, T, H_out)
    if reverse:
        out = reverse_padded(out, lengths)
    return out, state
