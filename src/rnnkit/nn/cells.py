"""One time step of each recurrent cell.

A cell splits its work in two:

* ``project(x)``: the input projection, for all time steps at once — one matrix multiply,
  ``x: (B, T, I) -> g: (B, T, G)`` (``G`` = gates × hidden size);
* ``step(g_t, state)``: the recurrent step, ``g_t: (B, G)`` and the previous state to
  ``(h_t, new_state)`` with ``h_t: (B, H_out)``.

The state is a tensor ``h: (B, H)`` (RNN, GRU) or a tuple ``(h, c)`` (LSTM). Parameter names,
shapes and gate order are those of ``torch.nn.RNNCell``, ``LSTMCell`` and ``GRUCell``
(LSTM gates i, f, g, o; GRU gates r, z, n), so weights move between the libraries unchanged.
``forward(x_t, state)`` runs one step on one input, exactly like the ``torch.nn`` cell.

The loop that runs a cell over a sequence lives in :mod:`rnnkit.nn.scan`.
"""

from __future__ import annotations

import math
import numbers
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = Union[Tensor, tuple[Tensor, ...]]  # noqa: UP007 (runtime alias, Python 3.10)


class RecurrentCell(nn.Module):
    """Base class of a cell: one step of a recurrence, with torch.nn's parameter names.

    Subclasses set ``num_gates`` and implement :meth:`step`; the input projection
    ``F.linear(x, weight_ih, bias_ih)`` is shared. ``state_size`` is the number of tensors in the
    state (1 for ``h``, 2 for ``(h, c)``).
    """

    num_gates: int = 1
    state_size: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, device=None, dtype=None) -> None:
        super().__init__()
        sizes = (input_size, hidden_size)
        if not all(is_integer(n) and n > 0 for n in sizes):
            raise ValueError(
                f"input_size and hidden_size: expected positive integers, got {input_size!r} and {hidden_size!r}"
            )
        input_size, hidden_size = int(input_size), int(hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        gate_size = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gate_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gate_size, self.output_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gate_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gate_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @property
    def output_size(self) -> int:
        """Size of ``h_t`` (the hidden size, or the projection size of a projected LSTM)."""
        return self.hidden_size

    def reset_parameters(self) -> None:
        """torch.nn's initialization: every weight uniform in ``(-1/sqrt(H), 1/sqrt(H))``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        """Input projection of all time steps at once: ``x: (..., I) -> (..., G)``."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, g_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One recurrent step: ``g_t: (B, G)`` (projected input), state -> ``(h_t, new_state)``."""
        raise NotImplementedError

    def step_dropped(self, g_t: Tensor, state: State, mask: Tensor) -> tuple[Tensor, State]:
        """:meth:`step` with ``h_{t-1}`` multiplied by ``mask: (B, H_out)`` where it meets the recurrent
        weights (recurrent dropout, Gal & Ghahramani 2016). Here ``h_{t-1}`` is used nowhere else;
        cells that also reuse it elsewhere (GRU) override this."""
        if isinstance(state, tuple):
            return self.step(g_t, (state[0] * mask, *state[1:]))
        return self.step(g_t, state * mask)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        """The zero state for a batch: ``h: (B, H)``, or ``(h, c)`` for an LSTM."""
        device = device if device is not None else self.weight_ih.device
        dtype = dtype if dtype is not None else self.weight_ih.dtype
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x_t: Tensor, state: State | None = None) -> State:
        """One step on one input, as the torch.nn cell: ``x_t: (B, I)`` or ``(I,)`` -> new state.

        Under ``torch.autocast`` ``x_t`` and ``state`` may have any floating dtype: the step runs
        in the parameters' dtype (as torch.nn's cells and rnnkit's layers do)."""
        if not isinstance(x_t, Tensor) or x_t.dim() not in (1, 2) or x_t.shape[-1] != self.input_size:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t: expected shape (B, {self.input_size}) or ({self.input_size},), got {got}")
        unbatched = x_t.dim() == 1
        self._check_dtype("x_t", x_t)
        if state is not None:
            self._check_state(state, None if unbatched else x_t.shape[0])
            for part in state_parts(state):
                self._check_dtype("state", part)
        dtype = self.weight_ih.dtype
        x_t, state = x_t.to(dtype), _map_state(state, lambda s: s.to(dtype))  # themselves outside autocast
        if unbatched:
            x_t = x_t.unsqueeze(0)
            state = _map_state(state, lambda s: s.unsqueeze(0))
        if state is None:
            state = self.initial_state(x_t.shape[0], device=x_t.device, dtype=dtype)
        with torch.autocast(x_t.device.type, enabled=False):
            _, new_state = self.step(self.project(x_t), state)
        return _map_state(new_state, lambda s: s.squeeze(0)) if unbatched else new_state

    def _check_dtype(self, name: str, t: Tensor) -> None:
        """A ``ValueError`` unless ``t`` has the parameters' dtype and device (any floating dtype
        under ``torch.autocast``, whose ops cast it, as they do for ``torch.nn``'s cells)."""
        weight = self.weight_ih
        autocast = torch.is_autocast_enabled(t.device.type) and t.is_floating_point()
        if t.device != weight.device or not (t.dtype == weight.dtype or autocast):
            raise ValueError(
                f"{name}: dtype {t.dtype} on {t.device} does not match the cell's parameters "
                f"({weight.dtype} on {weight.device}); move one of them with .to()"
            )

    def _check_state(self, state: State, batch_size: int | None) -> None:
        """A ``ValueError`` unless ``state`` has :meth:`initial_state`'s structure and shapes
        (without the ``B`` axis when ``batch_size`` is None: an unbatched step)."""
        if "_state_layout" not in self.__dict__:  # (is a tuple, per-row shapes), once per cell
            zero = self.initial_state(1, device="meta")
            self._state_layout = (isinstance(zero, tuple), [tuple(z.shape[1:]) for z in state_parts(zero)])
        is_tuple, rows = self._state_layout
        expected = rows if batch_size is None else [(batch_size, *row) for row in rows]
        got = [tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__ for p in state_parts(state)]
        if got != expected:
            kind = f"a tuple of {len(expected)} tensors" if is_tuple else "one tensor"
            raise ValueError(f"state: expected {kind} of shape(s) {expected}, got {got}")

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


def is_integer(n: object) -> bool:
    """Whether ``n`` is an integer (a Python or NumPy one, not a bool)."""
    return isinstance(n, numbers.Integral) and not isinstance(n, bool)


def _check_eps(eps: float) -> float:
    """The layer norms' ``eps`` as a float, or a ``ValueError`` unless it is a number >= 0."""
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps >= 0:
        raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
    return float(eps)


def state_parts(state: State) -> tuple:
    """The tensors of a state as a tuple: ``(h, c)`` as given (a tuple or a list), ``h`` as ``(h,)``."""
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _map_state(state: State | None, fn) -> State | None:
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(fn(s) for s in state)
    return fn(state)


class RNNCell(RecurrentCell):
    r"""Elman RNN cell.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \quad \phi \in \{\tanh, \mathrm{ReLU}\}

    Args:
        input_size: ``I``, features of ``x_t``.
        hidden_size: ``H``, features of ``h_t``.
        bias: learn ``b_ih`` and ``b_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.

    Parameters: ``weight_ih: (H, I)``, ``weight_hh: (H, H)``, ``bias_ih: (H,)``, ``bias_hh: (H,)``.
    """

    num_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        *,
        device=None,
        dtype=None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self._activation = torch.tanh if nonlinearity == "tanh" else torch.relu

    def step(self, g_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h = self._activation(
            torch.addmm(g_t, state, self.weight_hh.t())
            if self.bias_hh is None
            else torch.addmm(g_t + self.bias_hh, state, self.weight_hh.t())
        )  # (B, H)
        return h, h

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(RecurrentCell):
    r"""Long short-term memory cell (Hochreiter & Schmidhuber 1997), optionally with a projection.

    .. math::
        \begin{array}{ll}
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t) \quad (\text{then } h_t = W_{hr} h_t \text{ if } proj\_size > 0)
        \end{array}

    Args:
        input_size: ``I``.
        hidden_size: ``H``, size of the cell state ``c``.
        bias: learn ``b_ih`` and ``b_hh``.
        proj_size: ``P``; if > 0, ``h`` is projected to size ``P`` (Sak et al. 2014), as torch.nn.LSTM.

    Parameters: ``weight_ih: (4H, I)``, ``weight_hh: (4H, H_out)``, ``bias_ih, bias_hh: (4H,)``,
    ``weight_hr: (P, H)`` when ``proj_size > 0``; gate order i, f, g, o. ``H_out = P or H``.
    State: ``(h: (B, H_out), c: (B, H))``.
    """

    num_gates = 4
    state_size = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        proj_size: int = 0,
        *,
        device=None,
        dtype=None,
    ) -> None:
        if not is_integer(proj_size) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(
                f"proj_size: expected an integer, 0 <= proj_size < hidden_size={hidden_size}, got {proj_size!r}"
            )
        self.proj_size = int(proj_size)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        if proj_size:
            self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size, device=device, dtype=dtype))
            bound = 1.0 / math.sqrt(hidden_size)
            nn.init.uniform_(self.weight_hr, -bound, bound)
        else:
            self.register_parameter("weight_hr", None)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        device = device if device is not None else self.weight_ih.device
        dtype = dtype if dtype is not None else self.weight_ih.dtype
        h = torch.zeros(batch_size, self.output_size, device=device, dtype=dtype)  # (B, H_out)
        c = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)  # (B, H)
        return h, c

    def step(self, g_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = state
        if self.bias_hh is not None:
            g_t = g_t + self.bias_hh
        gates = torch.addmm(g_t, h, self.weight_hh.t())  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (B, H)
        h = torch.sigmoid(o) * torch.tanh(c)  # (B, H)
        if self.weight_hr is not None:
            h = h @ self.weight_hr.t()  # (B, P)
        return h, (h, c)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", proj_size={self.proj_size}" if self.proj_size else "")


class GRUCell(RecurrentCell):
    r"""Gated recurrent unit cell (Cho et al. 2014), torch.nn's variant (reset gate after the matmul).

    .. math::
        \begin{array}{ll}
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{array}

    Parameters: ``weight_ih: (3H, I)``, ``weight_hh: (3H, H)``, ``bias_ih, bias_hh: (3H,)``;
    gate order r, z, n.
    """

    num_gates = 3

    def step(self, g_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h = gru_update(g_t, self.recurrent_gates(state), state)
        return h, h

    def step_dropped(self, g_t: Tensor, state: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # The mask acts on h_{t-1} inside W_hh h_{t-1} only, not in the interpolation with z.
        h = gru_update(g_t, self.recurrent_gates(state * mask), state)
        return h, h

    def recurrent_gates(self, h: Tensor) -> Tensor:
        """``W_hh h + b_hh: (B, 3H)``."""
        return F.linear(h, self.weight_hh, self.bias_hh)


def gru_update(gx: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """torch.nn's GRU step from input gates ``gx: (B, 3H)``, recurrent gates ``gh: (B, 3H)``, ``h: (B, H)``."""
    xr, xz, xn = gx.chunk(3, dim=1)
    hr, hz, hn = gh.chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)  # (B, H)
    return torch.lerp(n, h, z)  # (1 - z) * n + z * h


class LayerNormLSTMCell(RecurrentCell):
    r"""LSTM cell with layer normalization (Ba et al. 2016), as in lmnt-com/haste's LayerNormLSTM.

    .. math::
        \begin{array}{ll}
        a_t = \mathrm{LN}_{ih}(W_{ih} x_t) + \mathrm{LN}_{hh}(W_{hh} h_{t-1}) \quad (4H \text{ gates, } i, f, g, o) \\
        c_t = \sigma(a_f) \odot c_{t-1} + \sigma(a_i) \odot \tanh(a_g) \\
        h_t = \sigma(a_o) \odot \tanh(\mathrm{LN}_c(c_t))
        \end{array}

    where :math:`\mathrm{LN}(v) = \gamma \odot (v - \mathrm{mean}(v)) / \sqrt{\mathrm{var}(v) + \epsilon} + \beta`
    over the feature axis. ``LN_ih`` and ``LN_hh`` normalize all ``4H`` gate pre-activations
    together; their shifts :math:`\beta` are ``bias_ih`` and ``bias_hh`` (torch.nn's names).

    Args:
        input_size: ``I``. hidden_size: ``H``.
        bias: learn ``bias_ih``, ``bias_hh`` and the shift of ``LN_c``.
        forget_bias: initial value of the forget gate's part of ``bias_ih`` (other biases start at 0).
        eps: the layer norms' :math:`\epsilon`.

    Parameters: ``weight_ih: (4H, I)``, ``weight_hh: (4H, H)``, ``bias_ih, bias_hh: (4H,)``,
    ``ln_ih_weight, ln_hh_weight: (4H,)`` (gains), ``ln_c_weight, ln_c_bias: (H,)``.
    State: ``(h: (B, H), c: (B, H))``.
    """

    num_gates = 4
    state_size = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        forget_bias: float = 1.0,
        eps: float = 1e-5,
        *,
        device=None,
        dtype=None,
    ) -> None:
        if not isinstance(forget_bias, numbers.Real) or isinstance(forget_bias, bool):
            raise ValueError(f"forget_bias: expected a number, got {forget_bias!r}")
        self.forget_bias = float(forget_bias)
        self.eps = _check_eps(eps)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        factory = {"device": device, "dtype": dtype}
        self.ln_ih_weight = nn.Parameter(torch.empty(4 * hidden_size, **factory))
        self.ln_hh_weight = nn.Parameter(torch.empty(4 * hidden_size, **factory))
        self.ln_c_weight = nn.Parameter(torch.empty(hidden_size, **factory))
        self.ln_c_bias = nn.Parameter(torch.empty(hidden_size, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ``±1/sqrt(H)``, gains 1, biases 0 except the forget gate's ``forget_bias``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        for name in ("bias_ih", "bias_hh", "ln_c_bias"):
            if getattr(self, name, None) is not None:
                nn.init.zeros_(getattr(self, name))
        if self.bias_ih is not None:
            with torch.no_grad():
                self.bias_ih[self.hidden_size : 2 * self.hidden_size] = self.forget_bias
        for name in ("ln_ih_weight", "ln_hh_weight", "ln_c_weight"):
            if getattr(self, name, None) is not None:
                nn.init.ones_(getattr(self, name))

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        h = super().initial_state(batch_size, device=device, dtype=dtype)  # (B, H)
        return h, torch.zeros_like(h)

    def project(self, x: Tensor) -> Tensor:
        """``LN_ih(W_ih x)`` for all time steps: ``x: (..., I) -> (..., 4H)``."""
        gates = F.linear(x, self.weight_ih)  # (..., 4H)
        return F.layer_norm(gates, gates.shape[-1:], self.ln_ih_weight, self.bias_ih, self.eps)

    def step(self, g_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = state
        gh = F.layer_norm(h @ self.weight_hh.t(), g_t.shape[-1:], self.ln_hh_weight, self.bias_hh, self.eps)
        i, f, g, o = (g_t + gh).chunk(4, dim=1)  # each (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_norm = F.layer_norm(c, c.shape[-1:], self.ln_c_weight, self.ln_c_bias, self.eps)
        h = torch.sigmoid(o) * torch.tanh(c_norm)  # (B, H)
        return h, (h, c)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", forget_bias={self.forget_bias}"


class LayerNormGRUCell(RecurrentCell):
    r"""GRU cell (torch.nn's variant) with layer normalization of the input and recurrent pre-activations.

    .. math::
        \begin{array}{ll}
        a_t = \mathrm{LN}_{ih}(W_{ih} x_t), \quad b_t = \mathrm{LN}_{hh}(W_{hh} h_{t-1}) \quad (r, z, n) \\
        r_t = \sigma(a_r + b_r), \quad z_t = \sigma(a_z + b_z), \quad n_t = \tanh(a_n + r_t \odot b_n) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{array}

    The layer norms' shifts are ``bias_ih`` and ``bias_hh``; their gains ``ln_ih_weight``,
    ``ln_hh_weight: (3H,)``. Other parameters as :class:`GRUCell`. State: ``h: (B, H)``.
    """

    num_gates = 3

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, eps: float = 1e-5, *, device=None, dtype=None
    ) -> None:
        self.eps = _check_eps(eps)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        factory = {"device": device, "dtype": dtype}
        self.ln_ih_weight = nn.Parameter(torch.empty(3 * hidden_size, **factory))
        self.ln_hh_weight = nn.Parameter(torch.empty(3 * hidden_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ``±1/sqrt(H)``, layer-norm gains 1, biases 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        for name in ("bias_ih", "bias_hh"):
            if getattr(self, name) is not None:
                nn.init.zeros_(getattr(self, name))
        for name in ("ln_ih_weight", "ln_hh_weight"):
            if getattr(self, name, None) is not None:
                nn.init.ones_(getattr(self, name))

    def project(self, x: Tensor) -> Tensor:
        """``LN_ih(W_ih x)`` for all time steps: ``x: (..., I) -> (..., 3H)``."""
        gates = F.linear(x, self.weight_ih)  # (..., 3H)
        return F.layer_norm(gates, gates.shape[-1:], self.ln_ih_weight, self.bias_ih, self.eps)

    def recurrent_gates(self, h: Tensor) -> Tensor:
        """``LN_hh(W_hh h): (B, 3H)``."""
        gh = h @ self.weight_hh.t()  # (B, 3H)
        return F.layer_norm(gh, gh.shape[-1:], self.ln_hh_weight, self.bias_hh, self.eps)

    def step(self, g_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h = gru_update(g_t, self.recurrent_gates(state), state)
        return h, h

    def step_dropped(self, g_t: Tensor, state: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h = gru_update(g_t, self.recurrent_gates(state * mask), state)
        return h, h


class IndRNNCell(RecurrentCell):
    r"""Independently recurrent cell (Li et al. 2018): each unit sees only its own past.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + u \odot h_{t-1}), \quad |u_j| \le u_{max}

    Args:
        input_size: ``I``. hidden_size: ``H``. bias: learn ``b_ih``.
        nonlinearity: ``"relu"`` (the paper's) or ``"tanh"``.
        recurrent_max: the bound ``u_max`` on each recurrent weight, enforced by clamping ``u``
            in every step (so it holds whatever the optimizer does); ``None`` for no bound.
            The paper uses ``2 ** (1 / T)`` to keep gradients alive over ``T`` steps.

    Parameters: ``weight_ih: (H, I)``, ``weight_hh: (H,)`` (the vector ``u``), ``bias_ih: (H,)``.
    State: ``h: (B, H)``.
    """

    num_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "relu",
        recurrent_max: float | None = 1.0,
        *,
        device=None,
        dtype=None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        positive = isinstance(recurrent_max, numbers.Real) and not isinstance(recurrent_max, bool) and recurrent_max > 0
        if not (recurrent_max is None or positive):
            raise ValueError(f"recurrent_max: expected a positive number or None, got {recurrent_max!r}")
        self.nonlinearity = nonlinearity
        self.recurrent_max = recurrent_max
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias_hh", None)
        self._activation = torch.tanh if nonlinearity == "tanh" else torch.relu
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``W_ih`` uniform in ``±1/sqrt(H)``, ``u`` uniform in ``[0, min(1, u_max))``, ``b_ih`` zero."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, 0.0, min(1.0, self.recurrent_max or 1.0))
        if self.bias_ih is not None:
            nn.init.zeros_(self.bias_ih)

    def recurrent_weight(self) -> Tensor:
        """``u: (H,)`` clamped to ``[-u_max, u_max]``."""
        u = self.weight_hh
        return u if self.recurrent_max is None else u.clamp(-self.recurrent_max, self.recurrent_max)

    def step(self, g_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h = self._activation(torch.addcmul(g_t, self.recurrent_weight(), state))  # (B, H)
        return h, h

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}, recurrent_max={self.recurrent_max}"
