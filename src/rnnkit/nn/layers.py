"""Recurrent layers: RNN, LSTM and GRU, stacked and bidirectional, with ``lengths``.

A layer is a stack of cells (one per layer and direction) run by the generic loop
(:func:`rnnkit.nn.scan.scan`), or, when the configuration is one torch computes identically, by
torch's own fused kernel (:mod:`rnnkit.nn.fused`). Both paths give the same numbers; ``impl``
chooses: ``"auto"`` (the faster of the two where both apply:
:meth:`RecurrentLayer.written_here_faster`), ``"fused"`` (raise if impossible), ``"loop"``. On the
written-here side, the LSTM family and the GRUs (their layer-norm variants and regularizers
included) run a sequence of two or more steps as one autograd Function with a hand-written
backward — whole-sequence C calls on the CPU (:mod:`rnnkit.nn.sequence`) — which computes what
the generic loop computes, second derivatives included (``create_graph=True``:
:mod:`rnnkit.nn.double_backward`).

Parameter names, shapes and gate order are torch.nn's (``weight_ih_l0``, ``weight_hh_l1_reverse``,
``bias_ih_l0``, ``weight_hr_l0``, …), so ``load_state_dict`` works both ways.

Shape legend: ``B`` batch, ``T`` time steps, ``I`` input features, ``H`` hidden size,
``H_out`` = ``proj_size`` or ``H``, ``D`` = 2 if bidirectional else 1, ``L`` = num_layers.
"""

from __future__ import annotations

import warnings
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import fused, sequence
from rnnkit.nn.cells import (
    GRUCell,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    RecurrentCell,
    RNNCell,
    State,
    is_integer,
    state_parts,
)
from rnnkit.nn.dropout import (
    RecurrentDropoutCell,
    ZoneoutCell,
    check_rate,
    dropped_weight,
    sequence_mask,
    zoneout_weights,
)
from rnnkit.nn.scan import scan

LayerState = Union[Tensor, tuple[Tensor, Tensor]]  # noqa: UP007 (runtime alias, Python 3.10)

IMPLS = ("auto", "fused", "loop")


def autocast_to(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` in ``dtype`` where autocast is on for its device and both are floating point (a bf16
    output of an earlier op or of the layer's own last call, under ``torch.autocast``, as
    ``torch.nn``'s RNNs accept it); ``t`` itself otherwise, for the checks to refuse a mismatch.
    The layer then runs in its parameters' dtype: torch's kernel casts to autocast's own dtype
    again, the written-here paths compute in float32."""
    if t.dtype == dtype or not (t.is_floating_point() and dtype.is_floating_point):
        return t
    return t.to(dtype) if torch.is_autocast_enabled(t.device.type) else t


def functorch_active() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``jacrev``, …) runs this call. The
    written-here sequence Functions have no functorch ``setup_context``, so there a layer takes
    torch's kernel or the generic loop of plain torch ops instead (the same numbers), as
    ``torch.func.grad`` takes ``torch.nn``'s RNNs."""
    return torch._C._are_functorch_transforms_active()


class RecurrentLayer(nn.Module):
    """Base of all rnnkit recurrent layers: stacking, directions, dropout, lengths, checks.

    Subclasses say which cell to build (:meth:`make_cell`) and torch's mode name (``mode``,
    or ``None`` where torch has no kernel). Each cell's parameters are registered on the layer
    under torch.nn's names (``<name>_l<k>[_reverse]``); the cells themselves are not submodules,
    so ``state_dict()`` and ``named_parameters()`` show exactly torch.nn's keys.

    Regularizers of the recurrence, active in ``train()`` only (keyword arguments of every layer):

    * ``recurrent_dropout``: probability of zeroing a unit of ``h_{t-1}`` where it meets the
      recurrent weights, one mask per sequence for all time steps (Gal & Ghahramani 2016);
    * ``zoneout``: probability that a state unit keeps its previous value, a float or one per
      state tensor (``(p_h, p_c)`` for LSTMs) (Krueger et al. 2016). In ``eval()`` each unit is the
      expectation ``p * old + (1 - p) * new``, as in the paper; ``zoneout=0`` is the plain cell;
    * ``weight_drop``: DropConnect on the recurrent weights ``weight_hh``, one mask per forward
      pass (AWD-LSTM).

    Any of them makes torch's fused kernel unusable (see :meth:`fused_unsupported_reason`).
    """

    mode: str | None = None

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
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        weight_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not is_integer(num_layers) or num_layers < 1:
            raise ValueError(f"num_layers: expected an integer >= 1, got {num_layers!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout <= 1.0):
            raise ValueError(f"dropout: expected a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} acts between layers, and num_layers=1 has none: it does nothing",
                stacklevel=2,
            )
        if impl not in IMPLS:
            raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.impl = impl
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.weight_drop = check_rate("weight_drop", weight_drop)
        self.zoneout = self._check_zoneout(zoneout)
        cells: list[RecurrentCell] = []
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else self.output_size * self.num_directions
            for direction in range(self.num_directions):
                cell = self.make_cell(layer_input, device=device, dtype=dtype)
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for name, param in cell.named_parameters():
                    flat = name.replace(".", "_") + suffix
                    self.register_parameter(flat, param)
                    self._flat_weights_names.append(flat)
                cells.append(cell)
        # Not submodules: the parameters above are the only registered copies.
        self._cells: tuple[RecurrentCell, ...] = tuple(cells)

    # ----------------------------------------------------------------- what subclasses define
    def make_cell(self, input_size: int, *, device=None, dtype=None) -> RecurrentCell:
        """Build the cell of one layer and direction, reading ``input_size`` features."""
        raise NotImplementedError

    def fused_unsupported_reason(self) -> str | None:
        """Why torch's fused kernel cannot compute this layer exactly, or ``None`` if it can."""
        if self.mode is None:
            return f"{type(self).__name__} has no torch.nn kernel"
        if self.recurrent_dropout:
            return f"recurrent_dropout={self.recurrent_dropout} masks h inside the recurrence; torch's kernel cannot"
        if any(self.zoneout):
            return f"zoneout={self.zoneout} mixes each step's state with the previous one; torch's kernel cannot"
        if self.weight_drop:
            return f"weight_drop={self.weight_drop} masks the recurrent weights; torch's kernel would copy them"
        return None

    # ----------------------------------------------------------------- sizes
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features per direction of the output (``H_out``)."""
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Feature size of each state tensor: ``(H,)``, or ``(H_out, H)`` for an LSTM."""
        return (self.hidden_size,)

    # ----------------------------------------------------------------- forward
    def forward(
        self, x: Tensor, state: LayerState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, LayerState]:
        """Run the layer over a batch of sequences.

        Args:
            x: ``(B, T, I)`` (``(T, B, I)`` if ``batch_first=False``), or ``(T, I)`` unbatched.
            state: initial state, zeros if ``None``: ``h: (L * D, B, H)``, for an LSTM a tuple
                ``(h: (L * D, B, H_out), c: (L * D, B, H))``; without the ``B`` axis if unbatched.
            lengths: ``(B,)`` integer tensor, any order, each in ``1..T``, on the CPU or ``x``'s
                device. Outputs past a sequence's end are zero, the final state is each
                sequence's state at its own last step, and the reverse direction reads each
                sequence backwards from its own last step.

        Returns:
            output: ``(B, T, D * H_out)`` (time first if ``batch_first=False``): the last layer's
                outputs, both directions concatenated.
            state: the final state, shaped as ``state`` above.
        """
        x, unbatched = self._check_input(x)  # x: (B, T, I)
        B, T, _ = x.shape
        lengths = self._check_lengths(lengths, B, T)
        hx = self._check_state(state, B, x, unbatched)  # tuple of (L * D, B, ·) or None
        self._sync_cells()
        if B == 0:  # an empty batch, as torch.nn's RNNs take it: empty outputs and states
            out = x.new_zeros(0, T, self.num_directions * self.output_size)
            LD = self.num_layers * self.num_directions
            hn = hx or tuple(x.new_zeros(LD, 0, size) for size in self.state_sizes)
        elif self._use_fused(x, lengths):
            out, hn = fused.forward(self, x, hx, lengths)
        else:  # in the parameters' dtype under autocast too: the same numbers whichever path runs
            with torch.autocast(x.device.type, enabled=False):
                out, hn = self._forward_loop(x, hx, None if lengths is None else lengths.to(x.device))
        if unbatched:
            out, hn = out.squeeze(0), tuple(h.squeeze(1) for h in hn)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, (hn if len(hn) > 1 else hn[0])

    def _use_fused(self, x: Tensor, lengths: Tensor | None) -> bool:
        if self.impl == "loop":
            return False
        reason = self.fused_unsupported_reason()
        if reason is not None and self.impl == "fused":
            raise ValueError(f"impl='fused' is not possible: {reason}; use impl='auto' or 'loop'")
        return reason is None and (self.impl == "fused" or not self.written_here_faster(x, lengths))

    def written_here_faster(self, x: Tensor, lengths: Tensor | None) -> bool:
        """Whether ``impl="auto"`` runs the written-here path on ``x: (B, T, I)`` although torch's
        kernel computes the same thing, because it is faster there (measured: docs/nn.md, "Which
        path ``impl="auto"`` takes"). Only on the CPU, for sequences of two or more steps, and
        not under ``torch.export`` or ``torch.jit.trace`` (their graphs hold torch's op, not a C
        call); under a ``torch.func`` transform (:func:`functorch_active`) exactly where ``lengths``
        are given (torch's packing cannot be traced there; the generic loop runs). Otherwise:

        * training (autograd on) with ``lengths``: torch's packed-sequence backward pass on the CPU
          grows with ``T²`` (it fills a full-size gradient at every step);
        * an LSTM (no ``proj_size``) or a GRU in float32, where the whole-sequence C calls run:
          always in training, and a GRU (torch's CPU GRU is slow) or an LSTM with ``lengths`` at
          inference too.
        """
        if functorch_active():  # torch's kernel, but not its packing, which functorch cannot trace
            return lengths is not None
        if x.device.type != "cpu" or x.shape[1] < 2 or torch.compiler.is_exporting() or torch.jit.is_tracing():
            return False
        grads = x.requires_grad or any(p.requires_grad for p in self.parameters())
        training = torch.is_grad_enabled() and grads
        if training and lengths is not None:
            return True
        whole = sequence.runs_whole_sequence(self._cells[0], x)
        return whole and (training or self.mode == "GRU" or lengths is not None)

    def _forward_loop(
        self, x: Tensor, hx: tuple[Tensor, ...] | None, lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The written-here path: each layer and direction is one :func:`scan` of its cell."""
        finals: list[list[Tensor]] = [[] for _ in self.state_sizes]
        layer_input = x  # (B, T, I)
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                s0 = None if hx is None else _unwrap(tuple(h[index] for h in hx))
                out, sn = self.scan_direction(index, layer_input, s0, lengths, reverse=direction == 1)
                outputs.append(out)  # (B, T, H_out)
                for kept, s in zip(finals, sn if isinstance(sn, tuple) else (sn,), strict=True):
                    kept.append(s)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)  # (B, T, D*H_out)
            if layer < self.num_layers - 1:
                layer_input = self.between_layers(layer_input)
        return layer_input, tuple(torch.stack(kept) for kept in finals)  # each (L*D, B, ·)

    def scan_direction(
        self, index: int, x: Tensor, state: State | None, lengths: Tensor | None, reverse: bool
    ) -> tuple[Tensor, State]:
        """Run cell ``index`` (layer * D + direction) over ``x: (B, T, ·)`` with this layer's regularizers.

        Returns ``(outputs: (B, T, H_out), final_state)`` as :func:`rnnkit.nn.scan.scan`.
        """
        cell = self._cells[index]
        fast = None
        zoned = any(self.zoneout)
        # A single step (generation) runs the generic loop: less per-call work than a sequence
        # Function (a 2x512 layer-norm LSTM step at batch 1 on one thread: 0.91 vs 1.04 ms).
        if x.shape[1] > 1 and not functorch_active() and (not zoned or sequence.runs_whole_sequence(cell, x)):
            if sequence.supports(cell):
                fast = sequence.lstm_scan
            elif sequence.supports_gru(cell, x):
                fast = sequence.gru_scan
        weights = self.zoneout_weights(cell, x) if zoned else None  # (T, B, H_k) per state tensor
        if fast is not None:  # the LSTM family's and the GRUs' fast paths, same numbers
            weight_hh = F.dropout(cell.weight_hh, self.weight_drop) if self.weight_drop and self.training else None
            mask = None
            if self.recurrent_dropout and self.training:
                mask = sequence_mask(x.shape[0], cell.output_size, self.recurrent_dropout, x)  # (B, H)
            return fast(cell, x, state, lengths, reverse, weight_hh=weight_hh, mask=mask, zoneout=weights)
        if not (self.weight_drop and self.training):
            return scan(self.regularized(cell, x, weights), x, state, lengths, reverse)
        with dropped_weight(cell, "weight_hh", self.weight_drop):
            return scan(self.regularized(cell, x, weights), x, state, lengths, reverse)

    def zoneout_weights(self, cell: RecurrentCell, x: Tensor) -> tuple[Tensor | None, ...]:
        """This layer's zoneout weights for one run of ``cell`` over ``x: (B, T, ·)``: one
        ``(T, B, H_k)`` tensor per state tensor (:func:`rnnkit.nn.dropout.zoneout_weights`)."""
        state = cell.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        shapes = [s.shape for s in (state if isinstance(state, tuple) else (state,))]
        return zoneout_weights(self.zoneout, self.training, shapes, x.shape[1], x)

    def regularized(self, cell: RecurrentCell, x: Tensor, zoneout: tuple[Tensor | None, ...] | None):
        """``cell`` wrapped in recurrent dropout and zoneout as configured (itself if neither
        applies); ``zoneout``: the weights from :meth:`zoneout_weights`, or ``None``."""
        wrapped = cell
        if self.recurrent_dropout and self.training:
            mask = sequence_mask(x.shape[0], cell.output_size, self.recurrent_dropout, x)  # (B, H_out)
            wrapped = RecurrentDropoutCell(wrapped, mask)
        if zoneout is not None:
            wrapped = ZoneoutCell(wrapped, zoneout)
        return wrapped

    def between_layers(self, x: Tensor) -> Tensor:
        """What happens to one layer's output ``(B, T, D * H_out)`` before the next: dropout, on a
        contiguous tensor (a mask is drawn in memory order, and the paths' outputs differ in
        layout: so every ``impl`` draws the same mask from the same seed)."""
        return F.dropout(x.contiguous(), self.dropout, self.training) if self.dropout > 0 else x

    # ----------------------------------------------------------------- bookkeeping
    def flat_weights(self) -> list[Tensor]:
        """The parameters in torch.nn's ``_flat_weights`` order (what the fused kernel takes)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def _sync_cells(self) -> None:
        """Point each cell at the layer's current parameters (they may have been replaced)."""
        names = iter(self._flat_weights_names)
        for cell in self._cells:
            for name, _ in list(cell.named_parameters()):
                owner_path, _, leaf = name.rpartition(".")
                owner = cell.get_submodule(owner_path) if owner_path else cell
                owner._parameters[leaf] = getattr(self, next(names))

    def reset_parameters(self) -> None:
        """Each cell's own initialization (torch.nn's, uniform in ``±1/sqrt(H)``, for RNN/LSTM/GRU)."""
        self._sync_cells()
        for cell in self._cells:
            cell.reset_parameters()

    def flatten_parameters(self) -> None:
        """Does nothing; here so that code written for ``torch.nn`` (which calls it after
        ``.cuda()`` or under DataParallel) runs unchanged. torch's own method packs the weights
        into cuDNN's single buffer and is itself a no-op off CUDA; this layer hands its weights
        to the kernels as they are at each call (not measured on a GPU here)."""

    # ----------------------------------------------------------------- input checks
    def _check_zoneout(self, zoneout: float | tuple[float, ...]) -> tuple[float, ...]:
        """One zoneout rate per state tensor (``(p_h,)`` or ``(p_h, p_c)``)."""
        n = len(self.state_sizes)
        rates = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout,) * n
        if len(rates) != n:
            raise ValueError(f"zoneout: expected a float or {n} rate(s) (one per state tensor), got {zoneout!r}")
        return tuple(check_rate("zoneout", p) for p in rates)

    def _check_input(self, x: Tensor) -> tuple[Tensor, bool]:
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise ValueError("x: expected a padded Tensor, got a PackedSequence; pass the lengths as lengths= instead")
        if not isinstance(x, Tensor):
            raise ValueError(f"x: expected a Tensor, got {type(x).__name__}")
        expected = "(B, T, I)" if self.batch_first else "(T, B, I)"
        if x.dim() not in (2, 3):
            raise ValueError(
                f"x: expected a 3-D tensor {expected} (or 2-D (T, I) unbatched) with "
                f"I={self.input_size}, got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected {self.input_size} features in the last dimension {expected}, got shape {tuple(x.shape)}"
            )
        weight = self.weight_ih_l0
        x = autocast_to(x, weight.dtype)
        if x.dtype != weight.dtype or x.device != weight.device:
            raise ValueError(
                f"x: dtype {x.dtype} on {x.device} does not match the layer's parameters "
                f"({weight.dtype} on {weight.device}); move one of them with .to()"
            )
        if x.shape[1 if self.batch_first and x.dim() == 3 else 0] == 0:
            raise ValueError(f"x: expected at least one time step, got shape {tuple(x.shape)}")
        if x.dim() == 2:
            return x.unsqueeze(0), True
        return (x if self.batch_first else x.transpose(0, 1)), False

    def _check_lengths(self, lengths: Tensor | None, B: int, T: int) -> Tensor | None:
        if lengths is None:
            return None
        if not isinstance(lengths, Tensor):
            raise ValueError(f"lengths: expected a 1-D integer tensor of shape ({B},), got {type(lengths).__name__}")
        if lengths.dim() != 1 or lengths.shape[0] != B:
            raise ValueError(f"lengths: expected shape ({B},) (one length per sequence), got {tuple(lengths.shape)}")
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
            raise ValueError(f"lengths: expected an integer dtype (torch.int64), got {lengths.dtype}")
        if lengths.device.type != "cpu" and lengths.device != self.weight_ih_l0.device:
            raise ValueError(
                f"lengths: expected a tensor on the CPU or on x's device ({self.weight_ih_l0.device}), "
                f"got one on {lengths.device}"
            )
        if B == 0:
            return lengths.long()
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > T:
            raise ValueError(f"lengths: each length must be in 1..T={T}, got values from {low} to {high}")
        return lengths.long()

    def _check_state(self, state: LayerState | None, B: int, x: Tensor, unbatched: bool) -> tuple[Tensor, ...] | None:
        if state is None:
            return None
        parts = state_parts(state)
        names = ("h", "c") if len(self.state_sizes) == 2 else ("h",)
        if len(parts) != len(names):
            kind = "a tuple (h, c)" if len(names) == 2 else "a single tensor h"
            raise ValueError(f"state: expected {kind}, got {len(parts)} tensor(s)")
        checked = []
        LD = self.num_layers * self.num_directions
        for name, part, size in zip(names, parts, self.state_sizes, strict=True):
            expected = (LD, size) if unbatched else (LD, B, size)
            if not isinstance(part, Tensor) or tuple(part.shape) != expected:
                got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise ValueError(
                    f"state {name}: expected shape {expected} (num_layers * num_directions, B, "
                    f"{'H_out' if name == 'h' and len(names) == 2 else 'H'}), got {got}"
                )
            part = autocast_to(part, x.dtype)
            if part.dtype != x.dtype or part.device != x.device:
                raise ValueError(
                    f"state {name}: dtype {part.dtype} on {part.device} does not match x ({x.dtype} on {x.device})"
                )
            checked.append(part.unsqueeze(1) if unbatched else part)
        return tuple(checked)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if not self.batch_first:
            s += ", batch_first=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.impl != "auto":
            s += f", impl={self.impl!r}"
        for option in ("recurrent_dropout", "weight_drop"):
            if getattr(self, option):
                s += f", {option}={getattr(self, option)}"
        if any(self.zoneout):
            s += f", zoneout={self.zoneout}"
        return s


def _unwrap(parts: tuple[Tensor, ...]):
    return parts if len(parts) > 1 else parts[0]


class RNN(RecurrentLayer):
    r"""Multi-layer Elman RNN, :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    Drop-in for ``torch.nn.RNN`` (same parameters and state), but ``batch_first=True`` by
    default and variable lengths through ``lengths=`` instead of PackedSequence.

    Args:
        input_size: ``I``. hidden_size: ``H``. num_layers: ``L``, stacked layers.
        nonlinearity: ``"tanh"`` or ``"relu"`` (:math:`\phi`).
        bias: learn the biases. batch_first: ``x`` is ``(B, T, I)`` (else ``(T, B, I)``).
        dropout: dropout probability on each layer's output except the last.
        bidirectional: also run each layer backwards over every sequence (``D = 2``).
        impl: ``"auto"``, ``"fused"`` or ``"loop"`` (see the module docstring).

    Call: ``output, h_n = rnn(x, state=None, lengths=None)`` with ``output: (B, T, D * H)`` and
    ``h_n: (L * D, B, H)`` (see :meth:`RecurrentLayer.forward`).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        impl: str = "auto",
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        weight_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            impl,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
            device=device,
            dtype=dtype,
        )

    def make_cell(self, input_size: int, *, device=None, dtype=None) -> RNNCell:
        return RNNCell(input_size, self.hidden_size, self.bias, self.nonlinearity, device=device, dtype=dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(RecurrentLayer):
    r"""Multi-layer LSTM (equations in :class:`rnnkit.nn.LSTMCell`), drop-in for ``torch.nn.LSTM``.

    Args: as :class:`RNN` (without ``nonlinearity``), plus
        proj_size: ``P``; if > 0, each layer's ``h`` is projected to ``P`` features
            (``H_out = P``), as in ``torch.nn.LSTM``.

    Call: ``output, (h_n, c_n) = lstm(x, state=None, lengths=None)`` with
    ``output: (B, T, D * H_out)``, ``h_n: (L * D, B, H_out)``, ``c_n: (L * D, B, H)``.
    """

    mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        impl: str = "auto",
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        weight_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        if not is_integer(proj_size) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(
                f"proj_size: expected an integer, 0 <= proj_size < hidden_size={hidden_size}, got {proj_size!r}"
            )
        self.proj_size = int(proj_size)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            impl,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
            device=device,
            dtype=dtype,
        )

    def make_cell(self, input_size: int, *, device=None, dtype=None) -> LSTMCell:
        return LSTMCell(input_size, self.hidden_size, self.bias, self.proj_size, device=device, dtype=dtype)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", proj_size={self.proj_size}" if self.proj_size else "")


class GRU(RecurrentLayer):
    r"""Multi-layer GRU (equations in :class:`rnnkit.nn.GRUCell`), drop-in for ``torch.nn.GRU``.

    Args: as :class:`RNN` without ``nonlinearity``.

    Call: ``output, h_n = gru(x, state=None, lengths=None)`` with ``output: (B, T, D * H)`` and
    ``h_n: (L * D, B, H)``.
    """

    mode = "GRU"

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
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        weight_drop: float = 0.0,
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
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
            device=device,
            dtype=dtype,
        )

    def make_cell(self, input_size: int, *, device=None, dtype=None) -> GRUCell:
        return GRUCell(input_size, self.hidden_size, self.bias, device=device, dtype=dtype)


class LayerNormLSTM(RecurrentLayer):
    r"""Multi-layer LSTM with layer normalization (equations in :class:`rnnkit.nn.LayerNormLSTMCell`).

    Same call, state and options as :class:`LSTM` (no ``proj_size``), plus
        forget_bias: initial forget-gate bias (default 1.0). eps: the layer norms' epsilon.

    Parameters per layer ``k`` (and ``_reverse``): ``weight_ih_lk``, ``weight_hh_lk``, ``bias_ih_lk``,
    ``bias_hh_lk``, ``ln_ih_weight_lk``, ``ln_hh_weight_lk``, ``ln_c_weight_lk``, ``ln_c_bias_lk``.
    torch has no kernel for it: it always runs the written-here path.

    Call: ``output, (h_n, c_n) = lstm(x, state=None, lengths=None)``, ``output: (B, T, D * H)``,
    ``h_n, c_n: (L * D, B, H)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        forget_bias: float = 1.0,
        eps: float = 1e-5,
        impl: str = "auto",
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        weight_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        self.forget_bias = forget_bias
        self.eps = eps
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            impl,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
            device=device,
            dtype=dtype,
        )

    def make_cell(self, input_size: int, *, device=None, dtype=None) -> LayerNormLSTMCell:
        return LayerNormLSTMCell(
            input_size, self.hidden_size, self.bias, self.forget_bias, self.eps, device=device, dtype=dtype
        )

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size, self.hidden_size)


class LayerNormGRU(RecurrentLayer):
    r"""Multi-layer GRU with layer normalization (equations in :class:`rnnkit.nn.LayerNormGRUCell`).

    Same call, state and options as :class:`GRU`, plus ``eps``. Extra parameters per layer:
    ``ln_ih_weight_lk``, ``ln_hh_weight_lk: (3H,)``. Always runs the written-here path.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        eps: float = 1e-5,
        impl: str = "auto",
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        weight_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        self.eps = eps
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            impl,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
            device=device,
            dtype=dtype,
        )

    def make_cell(self, input_size: int, *, device=None, dtype=None) -> LayerNormGRUCell:
        return LayerNormGRUCell(input_size, self.hidden_size, self.bias, self.eps, device=device, dtype=dtype)


class IndRNN(RecurrentLayer):
    r"""Multi-layer independently recurrent network (equations in :class:`rnnkit.nn.IndRNNCell`).

    Args: as :class:`RNN` (``nonlinearity`` defaults to ``"relu"``), plus
        recurrent_max: bound on each recurrent weight ``|u_j|`` (``None``: unbounded).

    Parameters per layer: ``weight_ih_lk: (H, I)``, ``weight_hh_lk: (H,)``, ``bias_ih_lk: (H,)``.
    Call: ``output, h_n = indrnn(x, state=None, lengths=None)``, ``output: (B, T, D * H)``,
    ``h_n: (L * D, B, H)``. Always runs the written-here path.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "relu",
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        recurrent_max: float | None = 1.0,
        impl: str = "auto",
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        weight_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        self.nonlinearity = nonlinearity
        self.recurrent_max = recurrent_max
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            impl,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
            device=device,
            dtype=dtype,
        )

    def make_cell(self, input_size: int, *, device=None, dtype=None) -> IndRNNCell:
        return IndRNNCell(
            input_size,
            self.hidden_size,
            self.bias,
            self.nonlinearity,
            self.recurrent_max,
            device=device,
            dtype=dtype,
        )
