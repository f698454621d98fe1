"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): parallel in training.

Their gates read only the input, so the recurrence is linear in ``h``:
``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` computed from ``x_t`` alone. A whole sequence
therefore runs as a parallel scan (:func:`linear_recurrence`, in log space as in Heinsen 2023),
and generation runs one :meth:`step` at a time with an O(1) state, exactly like any other cell
through :func:`rnnkit.nn.scan.scan`. Both compute the same numbers (tests pin it to 1e-5).

The candidate goes through the paper's positive activation ``g(v) = v + 1/2`` for ``v >= 0``,
``sigmoid(v)`` otherwise, so that ``b_t > 0`` and its logarithm exists.

Shape legend: ``B`` batch, ``T`` time steps, ``I`` input features, ``H`` hidden size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.nn.cells import RecurrentCell
from rnnkit.nn.layers import RecurrentLayer
from rnnkit.nn.scan import reverse_padded, scan

CHUNK = 64  # time steps per log-space block of the parallel scan (bounds float32 cancellation)


def positive(v: Tensor) -> Tensor:
    """The paper's ``g``: ``v + 1/2`` where ``v >= 0``, ``sigmoid(v)`` elsewhere (always > 0)."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_positive(v: Tensor) -> Tensor:
    """``log g(v)``, computed stably."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def linear_recurrence(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int = CHUNK) -> Tensor:
    """All ``h_t = exp(log_a_t) * h_{t-1} + exp(log_b_t)``, ``t = 1..T``, from ``h0: (B, H)``.

    Within blocks of ``chunk`` steps, Heinsen's log-space scan: ``h = A_t * sum_{s<=t} b_s / A_s``
    with ``A_t = prod_{r<=t} a_r``, computed as ``exp(log A_t + logcumsumexp(log b_s - log A_s))``
    (one ``cumsum`` and one ``logcumsumexp``). Blocks bound ``|log A|`` and so the float32
    cancellation; their starting states are carried across by ``T / chunk`` cheap steps, which
    also lets ``h0`` have any sign.

    Args: ``log_a, log_b: (B, T, H)``, ``h0: (B, H)``. Returns ``h: (B, T, H)``.
    """
    B, T, H = log_a.shape
    pad = (-T) % chunk
    if pad:  # padded steps come after the real ones and are cut off at the end
        log_a, log_b = F.pad(log_a, (0, 0, 0, pad)), F.pad(log_b, (0, 0, 0, pad))
    n = (T + pad) // chunk
    log_a = log_a.reshape(B, n, chunk, H)
    log_b = log_b.reshape(B, n, chunk, H)
    log_decay = log_a.cumsum(dim=2)  # (B, n, C, H): log prod of a within the block
    local = torch.exp(log_decay + torch.logcumsumexp(log_b - log_decay, dim=2))  # (B, n, C, H): from zero
    decay = torch.exp(log_decay)  # (B, n, C, H)
    starts = []
    h = h0  # (B, H)
    for block in range(n):
        starts.append(h)
        h = decay[:, block, -1] * h + local[:, block, -1]
    start = torch.stack(starts, dim=1).unsqueeze(2)  # (B, n, 1, H)
    return (local + decay * start).reshape(B, n * chunk, H)[:, :T]


class MinRecurrentCell(RecurrentCell):
    """Base of minGRU/minLSTM cells: gates from the input only, no recurrent weights.

    Subclasses give :meth:`log_coefficients` (``log a``, ``log b`` of ``h_t = a_t h_{t-1} + b_t``).
    Parameters: ``weight_ih: (G, I)``, ``bias_ih: (G,)``. State: ``h: (B, H)``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.register_parameter("weight_hh", None)
        self.register_parameter("bias_hh", None)

    def log_coefficients(self, g: Tensor) -> tuple[Tensor, Tensor]:
        """``(log a, log b)``, each ``(..., H)``, from projected inputs ``g: (..., G)``."""
        raise NotImplementedError

    def step(self, g_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        log_a, log_b = self.log_coefficients(g_t)  # (B, H) each
        h = torch.exp(log_a) * state + torch.exp(log_b)  # (B, H)
        return h, h


class MinGRUCell(MinRecurrentCell):
    r"""minGRU cell: :math:`z_t = \sigma(W_z x_t + b_z)`, :math:`\tilde h_t = g(W_h x_t + b_h)`,
    :math:`h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t`.

    ``weight_ih: (2H, I)`` rows ordered ``z, h``.
    """

    num_gates = 2

    def log_coefficients(self, g: Tensor) -> tuple[Tensor, Tensor]:
        k, candidate = g.chunk(2, dim=-1)
        return -F.softplus(k), -F.softplus(-k) + log_positive(candidate)  # log(1 - z), log(z * g(h~))


class MinLSTMCell(MinRecurrentCell):
    r"""minLSTM cell: :math:`f_t = \sigma(W_f x_t + b_f)`, :math:`i_t = \sigma(W_i x_t + b_i)`,
    :math:`\tilde h_t = g(W_h x_t + b_h)`, normalized gates :math:`f'_t = f_t / (f_t + i_t)`,
    :math:`i'_t = i_t / (f_t + i_t)`, and :math:`h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t`.

    ``weight_ih: (3H, I)`` rows ordered ``f, i, h``.
    """

    num_gates = 3

    def log_coefficients(self, g: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, candidate = g.chunk(3, dim=-1)
        diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
        return -F.softplus(diff), -F.softplus(-diff) + log_positive(candidate)  # log f', log(i' g(h~))


def parallel_scan(
    cell: MinRecurrentCell,
    x: Tensor,
    state: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """What :func:`rnnkit.nn.scan.scan` computes for a min-cell, with the parallel scan.

    Args: ``x: (B, T, I)``, ``state: (B, H)`` or ``None`` (zeros), ``lengths: (B,)`` or ``None``,
    ``reverse``: read each sequence backwards from its own last step.
    Returns ``(outputs: (B, T, H)`` zero past each end, ``final state: (B, H))``.
    """
    B, T, _ = x.shape
    if state is None:
        state = cell.initial_state(B, device=x.device, dtype=x.dtype)
    if reverse:
        x = reverse_padded(x, lengths)
    log_a, log_b = cell.log_coefficients(cell.project(x))  # (B, T, H) each
    h = linear_recurrence(log_a, log_b, state)  # (B, T, H)
    if lengths is None:
        final = h[:, -1]
    else:  # steps past an end only follow it; the state at the end is the final one, outputs are zeroed
        final = h[torch.arange(B, device=x.device), lengths - 1]  # (B, H)
        valid = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        h = h * valid.unsqueeze(-1)
    if reverse:
        h = reverse_padded(h, lengths)
    return h, final


class _MinRecurrentLayer(RecurrentLayer):
    """Stacking, directions, lengths of the min-cells; ``impl="auto"`` runs :func:`parallel_scan`,
    ``impl="loop"`` the generic step-by-step :func:`rnnkit.nn.scan.scan` (same numbers)."""

    cell_class: type[MinRecurrentCell]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        impl: str = "auto",
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            impl,
            device=device,
            dtype=dtype,
        )

    def make_cell(self, input_size: int, *, device=None, dtype=None) -> MinRecurrentCell:
        return self.cell_class(input_size, self.hidden_size, self.bias, device=device, dtype=dtype)

    def fused_unsupported_reason(self) -> str | None:
        return f"{type(self).__name__} has no torch.nn kernel (its fast path is the parallel scan, impl='auto')"

    def scan_direction(
        self, index: int, x: Tensor, state: Tensor | None, lengths: Tensor | None, reverse: bool
    ) -> tuple[Tensor, Tensor]:
        if self.impl == "loop":
            return scan(self._cells[index], x, state, lengths, reverse)
        return parallel_scan(self._cells[index], x, state, lengths, reverse)


class MinGRU(_MinRecurrentLayer):
    r"""Multi-layer minGRU (equations in :class:`MinGRUCell`); parallel over time.

    Args: ``input_size`` (``I``), ``hidden_size`` (``H``), ``num_layers``, ``bias``, ``batch_first``,
    ``dropout`` (between layers), ``bidirectional``, ``impl`` (``"auto"``: parallel scan,
    ``"loop"``: one step at a time).

    Call: ``output, h_n = layer(x, state=None, lengths=None)`` with ``x: (B, T, I)``,
    ``output: (B, T, D * H)``, ``h_n: (L * D, B, H)``. To generate, feed one step ``(B, 1, I)``
    at a time and pass ``h_n`` back as ``state``.
    """

    cell_class = MinGRUCell


class MinLSTM(_MinRecurrentLayer):
    r"""Multi-layer minLSTM (equations in :class:`MinLSTMCell`); parallel over time.

    Same arguments and call as :class:`MinGRU`; the state is ``h`` alone.
    """

    cell_class = MinLSTMCell
