"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): parallel in training.

Their gates read only the input, so the recurrence is linear in ``h``:
``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` computed from ``x_t`` alone. A whole sequence
therefore runs as a parallel scan (:class:`LinearRecurrence`), and generation runs one
:meth:`step` at a time with an O(1) state, exactly like any other cell through
:func:`rnnkit.nn.scan.scan`. Both compute the same numbers (tests pin it to 1e-5).

The scan is blocked: ``T`` steps are cut into ``n`` blocks of ``C ≈ sqrt(T)`` steps; all blocks
are scanned at once (``C`` element-wise steps over ``(B, n, H)``), then the blocks' starting
states are carried across (``n`` steps over ``(B, H)``) and combined with the cumulative products
of ``a`` — ``O(sqrt(T))`` sequential operations instead of ``T``. Long sequences run as
segments of ``SEGMENT`` steps, the state carried from one to the next, so the temporaries stay in
cache (at T = 4096 this halves the time on the 2-core CPU this was measured on). It works in linear space, where
``0 < a_t < 1`` keeps every product bounded: the paper's log-space form (Heinsen 2023) computes the
same scan, but costs a ``logcumsumexp`` (slow on CPU: 0.44 s for 4M elements here) and float32
precision at long ``T`` (``log h`` is a difference of two numbers of size ~``T``). Its backward is
the same scan run backwards in time, written by hand.

On the CPU in float32 (with torch's BLAS ``sgemm_`` found), both cells skip all of this:
:class:`MinSequence` runs their input projection, gates and recurrence in C
(:mod:`rnnkit.nn.native`), each batch row in one pass over time, which on a CPU beats any scan —
``B * H`` independent channels already fill the cores, and the scan's extra passes over memory
are what it costs.

The candidate goes through the paper's positive activation ``g(v) = v + 1/2`` for ``v >= 0``,
``sigmoid(v)`` otherwise.

Shape legend: ``B`` batch, ``T`` time steps, ``I`` input features, ``H`` hidden size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.nn import buffers, double_backward, native
from rnnkit.nn.cells import RecurrentCell
from rnnkit.nn.eager import eager_only
from rnnkit.nn.layers import RecurrentLayer, functorch_active
from rnnkit.nn.scan import reverse_padded, scan

SEGMENT = 256  # time steps per parallel segment: big enough to amortize, small enough to stay in cache


def positive(v: Tensor) -> Tensor:
    """The paper's ``g``: ``v + 1/2`` where ``v >= 0``, ``sigmoid(v)`` elsewhere (always > 0)."""
    return torch.relu(v) + torch.sigmoid(v.clamp(max=0.0))


def blocked_scan(a: Tensor, b: Tensor, h0: Tensor, block: int | None = None, reverse: bool = False) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for ``t = 1..T`` from ``h0``, in ``O(sqrt(T))`` sequential steps.

    With ``reverse=True``, ``h_t = a_t * h_{t+1} + b_t`` for ``t = T..1`` from ``h_{T+1} = h0``.

    Args: ``a, b: (B, T, H)``, ``h0: (B, H)``, ``block``: steps per block (default ``ceil(sqrt(T))``).
    Returns ``h: (B, T, H)``. No autograd: see :class:`LinearRecurrence`.
    """
    B, T, H = a.shape
    C = block or max(1, math.ceil(math.sqrt(T)))
    pad = (-T) % C
    if pad:  # padded steps (a = 1, b = 0) after the real ones; cut off at the end
        if reverse:
            raise ValueError(f"reverse scan: T={T} must be a multiple of block={C}")
        a, b = F.pad(a, (0, 0, 0, pad), value=1.0), F.pad(b, (0, 0, 0, pad))
    n = (T + pad) // C
    decay = _time_blocks(a, n, C)  # (C, B, n, H): becomes the product of a within each block
    local = _time_blocks(b, n, C)  # (C, B, n, H): becomes the scan from 0 within each block
    steps = range(C - 2, -1, -1) if reverse else range(1, C)
    for j in steps:
        prev = j + 1 if reverse else j - 1
        local[j].addcmul_(decay[j], local[prev])
        decay[j].mul_(decay[prev])
    starts = torch.empty_like(local[0])  # (B, n, H): state entering each block
    end = 0 if reverse else -1
    h = h0
    for k in range(n - 1, -1, -1) if reverse else range(n):
        starts[:, k] = h
        h = torch.addcmul(local[end, :, k], decay[end, :, k], h)
    h_all = local.addcmul_(decay, starts)  # (C, B, n, H)
    return h_all.permute(1, 2, 0, 3).reshape(B, n * C, H)[:, :T]


def _time_blocks(v: Tensor, n: int, C: int) -> Tensor:
    """A contiguous copy of ``v: (B, n * C, H)`` laid out as ``(C, B, n, H)``."""
    B, _, H = v.shape
    return v.reshape(B, n, C, H).permute(2, 0, 1, 3).clone(memory_format=torch.contiguous_format)


class LinearRecurrence(torch.autograd.Function):
    """``h = blocked_scan(a, b, h0)`` with a hand-written backward, itself a reversed scan:
    ``dh_t = g_t + a_{t+1} dh_{t+1}``, then ``db_t = dh_t``, ``da_t = dh_t h_{t-1}``, ``dh0 = a_1 dh_1``.
    When autograd records the backward pass (``create_graph=True``) that reversed scan is this
    Function again, run on the time-reversed inputs, so the grads are differentiable to any order."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = blocked_scan(a, b, h0)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, h0, h = ctx.saved_tensors
        T = a.shape[1]
        h_prev = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1)  # (B, T, H)
        if double_backward.graph_wanted():
            a_next = F.pad(a[:, 1:], (0, 0, 0, 1))  # (B, T, H): a_{t+1}, 0 after the end
            dh = linear_recurrence(a_next.flip(1), grad.flip(1), torch.zeros_like(h0)).flip(1)
            return dh * h_prev, dh, a[:, 0] * dh[:, 0]
        C = max(1, math.ceil(math.sqrt(T)))
        pad = (-T) % C  # padded steps after the end have a = b = 0: the reverse scan enters them with 0
        a_next = F.pad(a[:, 1:], (0, 0, 0, 1 + pad))  # (B, T + pad, H): a_{t+1}, 0 after the end
        dh = blocked_scan(a_next, F.pad(grad, (0, 0, 0, pad)), torch.zeros_like(h0), C, reverse=True)[:, :T]
        return dh * h_prev, dh, a[:, 0] * dh[:, 0]


class MinSequence(torch.autograd.Function):
    """A minGRU or minLSTM over a whole sequence, input projection included, in C
    (:mod:`rnnkit.nn.native`): ``x: (B, T, I)``, ``weight: (G, I)``, ``bias: (G,)`` or ``None``,
    ``h0: (B, H)`` -> ``h: (B, T, H)``; ``kernel`` names the cell (``G = 2H`` minGRU ``[k | c]``,
    ``3H`` minLSTM ``[kf | ki | c]``); float32 CPU tensors only.

    Each thread takes a block of batch rows (a row's recurrence needs no other row) and runs each
    row in chunks of ``CHUNK_STEPS`` steps: the chunk's projection ``x W^T`` is one ``sgemm_`` into
    the core's cache, and the gates and recurrence run over it in one pass while it is there. No
    Python runs per chunk and no input is copied. For the backward pass the projections are kept,
    ``(B, T, G)`` (at B=32, T=4096, I=128, H=256 a training step's peak is ~390 MB; projecting again
    instead took a third GEMM, 8 of a 38 ms step at B=16, T=1024, I=128, H=256); the backward pass
    walks each row's chunks from the last, and per chunk adds the thread's share of ``dW`` (one
    ``sgemm_``), ``db`` and, where wanted, ``dx``. Without autograd nothing is kept. The same
    numbers as the cell's :meth:`~MinRecurrentCell.coefficients` through :func:`linear_recurrence`
    (tests pin it).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, h0: Tensor, kernel: str) -> Tensor:
        B, T, I = x.shape
        G, H = weight.shape[0], h0.shape[-1]
        x, weight, h0 = x.contiguous(), weight.contiguous(), h0.contiguous()
        b = weight.new_zeros(G) if bias is None else bias.contiguous()  # (G,): the kernel always adds one
        threads, S = native.threads(), CHUNK_STEPS
        h = buffers.empty(x, B, T, H)
        keep = any(ctx.needs_input_grad[:4])
        g = buffers.empty(x, B, T, G) if keep else None  # the projections, for the backward pass
        work = None if keep else x.new_empty(threads * min(S, T) * G)  # each thread's chunk projections
        getattr(native.library(), f"{kernel}_sequence_forward")(
            threads, native.sgemm(), B, T, I, H, S, x.data_ptr(), weight.data_ptr(), b.data_ptr(),
            h0.data_ptr(), h.data_ptr(), native.ptr(g), native.ptr(work),
        )  # fmt: skip
        if keep:
            double_backward.save(ctx, (x, weight, b, h0, h, g), (x, weight, bias, h0, kernel))
            ctx.kernel, ctx.has_bias = kernel, bias is not None
        return h

    @staticmethod
    def backward(ctx, dh: Tensor):
        if double_backward.graph_wanted():  # create_graph=True: differentiate min_reference instead
            return double_backward.recomputed_grads(ctx, min_reference, (dh,))
        x, weight, b, h0, h, g = double_backward.saved(ctx)
        B, T, I = x.shape
        G, H = weight.shape[0], h0.shape[-1]
        threads, S = native.threads(), CHUNK_STEPS
        dh, dh_layout = native.grad_rows(dh)  # (B, T, H), read in place
        carry = h0.new_zeros(B, H)  # grad of the state from later steps; ends as grad of h0
        d_weight_parts, d_bias_parts = weight.new_zeros(threads, G, I), weight.new_zeros(threads, G)  # per thread
        dx = buffers.empty(x, B, T, I) if ctx.needs_input_grad[0] else None
        work = x.new_empty(threads * (min(S, T) * G + H))  # each thread's chunk of grads of g, a row of dh
        getattr(native.library(), f"{ctx.kernel}_sequence_backward")(
            threads, native.sgemm(), B, T, I, H, S, x.data_ptr(), weight.data_ptr(), b.data_ptr(),
            h0.data_ptr(), h.data_ptr(), g.data_ptr(), dh.data_ptr(), dh_layout.data_ptr(),
            carry.data_ptr(), d_weight_parts.data_ptr(), d_bias_parts.data_ptr(), native.ptr(dx), work.data_ptr(),
        )  # fmt: skip
        d_bias = d_bias_parts.sum(0) if ctx.has_bias else None
        return dx, d_weight_parts.sum(0), d_bias, carry, None


CHUNK_STEPS = 128  # steps per chunk of a row in MinSequence: its projections stay in the core's cache


def min_reference(x: Tensor, weight: Tensor, bias: Tensor | None, h0: Tensor, kernel: str) -> Tensor:
    """:class:`MinSequence`'s output from its arguments in differentiable torch ops: the cell's
    coefficients (:data:`COEFFICIENTS`) through :func:`linear_recurrence` (what its backward pass
    differentiates when autograd records it). ``x: (B, T, I)`` -> ``h: (B, T, H)``."""
    a, b = COEFFICIENTS[kernel](F.linear(x, weight, bias))  # (B, T, H) each
    return linear_recurrence(a, b, h0)


@eager_only
def _min_sequence(x: Tensor, weight: Tensor, bias: Tensor | None, h0: Tensor, kernel: str) -> Tensor:
    return MinSequence.apply(x, weight, bias, h0, kernel)


def linear_recurrence(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """All ``h_t = a_t * h_{t-1} + b_t`` (``a, b: (B, T, H)``, ``h0: (B, H)``) -> ``(B, T, H)``, differentiable."""
    return LinearRecurrence.apply(a, b, h0)


class MinRecurrentCell(RecurrentCell):
    """Base of minGRU/minLSTM cells: gates from the input only, no recurrent weights.

    Subclasses give :meth:`coefficients` (``a``, ``b`` of ``h_t = a_t h_{t-1} + b_t``), and
    ``kernel``, the name of their C pass in :mod:`rnnkit.nn.native` (``None``: the scan only).
    Parameters: ``weight_ih: (G, I)``, ``bias_ih: (G,)``. State: ``h: (B, H)``.
    """

    kernel: str | None = None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.register_parameter("weight_hh", None)
        self.register_parameter("bias_hh", None)

    def coefficients(self, g: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)``, each ``(..., H)``, from projected inputs ``g: (..., G)``."""
        raise NotImplementedError

    def step(self, g_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.coefficients(g_t)  # (B, H) each
        h = torch.addcmul(b, a, state)  # (B, H)
        return h, h


class MinGRUCell(MinRecurrentCell):
    r"""minGRU cell: :math:`z_t = \sigma(W_z x_t + b_z)`, :math:`\tilde h_t = g(W_h x_t + b_h)`,
    :math:`h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t`.

    ``weight_ih: (2H, I)`` rows ordered ``z, h``.
    """

    num_gates = 2
    kernel = "mingru"  # its C pass in rnnkit.nn.native

    def coefficients(self, g: Tensor) -> tuple[Tensor, Tensor]:
        return mingru_coefficients(g)


def mingru_coefficients(g: Tensor) -> tuple[Tensor, Tensor]:
    """minGRU's ``(a, b)`` = ``(1 - z, z * g(h~))``, each ``(..., H)``, from ``g = [k | c]: (..., 2H)``."""
    k, candidate = g.chunk(2, dim=-1)
    return torch.sigmoid(-k), torch.sigmoid(k) * positive(candidate)


class MinLSTMCell(MinRecurrentCell):
    r"""minLSTM cell: :math:`f_t = \sigma(W_f x_t + b_f)`, :math:`i_t = \sigma(W_i x_t + b_i)`,
    :math:`\tilde h_t = g(W_h x_t + b_h)`, normalized gates :math:`f'_t = f_t / (f_t + i_t)`,
    :math:`i'_t = i_t / (f_t + i_t)`, and :math:`h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t`.

    ``weight_ih: (3H, I)`` rows ordered ``f, i, h``.
    """

    num_gates = 3
    kernel = "minlstm"

    def coefficients(self, g: Tensor) -> tuple[Tensor, Tensor]:
        return minlstm_coefficients(g)


def minlstm_coefficients(g: Tensor) -> tuple[Tensor, Tensor]:
    """minLSTM's ``(a, b)`` = ``(f', i' g(h~))``, each ``(..., H)``, from ``g = [kf | ki | c]: (..., 3H)``."""
    kf, ki, candidate = g.chunk(3, dim=-1)
    log_ratio = F.softplus(-kf) - F.softplus(-ki)  # log i - log f, stable for large |k|
    return torch.sigmoid(-log_ratio), torch.sigmoid(log_ratio) * positive(candidate)


COEFFICIENTS = {"mingru": mingru_coefficients, "minlstm": minlstm_coefficients}  # by MinRecurrentCell.kernel


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
    if cell.kernel is not None and native.whole_sequence(x, cell.weight_ih, state):
        h = _min_sequence(x, cell.weight_ih, cell.bias_ih, state, cell.kernel)  # (B, T, H): all in C
    else:
        g = cell.project(x)  # (B, T, G)
        pieces, h_end = [], state
        for segment in g.split(SEGMENT, dim=1):  # cache-sized pieces; the state carries across
            a, b = cell.coefficients(segment)  # (B, S, H) each
            pieces.append(linear_recurrence(a, b, h_end))
            h_end = pieces[-1][:, -1]
        h = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)  # (B, T, H)
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
    ``impl="loop"`` (and any call under a ``torch.func`` transform) the generic step-by-step
    :func:`rnnkit.nn.scan.scan` (same numbers)."""

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
        if self.impl == "loop" or functorch_active():  # the scan's Functions have no functorch rule
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
