"""The written-here fast path of the LSTM family and the GRU: a whole sequence as one autograd Function.

Running :meth:`LSTMCell.step` through :func:`rnnkit.nn.scan.scan` records ~10 autograd nodes per
time step, and its backward does ``T`` small weight-gradient products. :class:`LSTMSequence`
computes exactly the same numbers with

* the input projection of all time steps as one GEMM (done by the caller, ``gx``);
* a forward loop of one ``addmm`` and a few element-wise ops per step, writing every saved
  activation into preallocated ``(T, B, ·)`` buffers (no autograd graph at all);
* a hand-written backward whose element-wise gate math uses ATen's fused ``sigmoid_backward`` /
  ``tanh_backward`` / ``native_layer_norm_backward``, and whose weight gradient is one GEMM over
  all time steps (``dW_hh = dG^T h``, ``(4H, T*B) @ (T*B, H)``) instead of ``T`` small ones.

It covers :class:`LSTMCell` (no projection) and :class:`LayerNormLSTMCell`, with an optional
recurrent-dropout mask on ``h_{t-1}`` and ``lengths``. For float32 on the CPU, where a C compiler
exists (:mod:`rnnkit.nn.native`), the whole sequence is one C call — forward and backward, per
step the threads sharing out the recurrent product by columns (through torch's own ``sgemm_``) and
then the batch rows' element-wise math by rows (:class:`LSTMSequence`'s C branch for the plain
cell, :class:`LayerNormLSTMSequence` with ``LN_ih`` inside for the layer-norm cell) — or, where
torch's library exports no ``sgemm_``, each step's element-wise math is one C call beside torch's
``addmm``. :func:`lstm_scan` is the entry point the layers use; the generic loop stays the
reference, and the tests pin every path to the same values and gradients (and ``gradcheck`` the
torch code in float64).

torch.nn's GRU (with recurrent dropout or DropConnect too) has the same kind of whole-sequence C
call, :class:`GRUSequence` through :func:`gru_scan`, in float32 on the CPU where ``sgemm_`` is
found (:func:`supports_gru`); elsewhere GRUs run the generic loop.

Shapes: ``T`` time, ``B`` batch, ``H`` hidden size; buffers are time-major ``(T, B, ·)``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.nn import buffers, double_backward, native
from rnnkit.nn.cells import GRUCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell, gru_update
from rnnkit.nn.dropout import zone_out
from rnnkit.nn.eager import eager_only
from rnnkit.nn.scan import reverse_padded

_aten = torch.ops.aten
_WEIGHT_GRAD_ROWS = 2048  # rows (steps x batch) per weight-gradient GEMM of the chunked backward
_MIN_CALL_STEPS = 32  # LayerNormLSTMSequence's backward C calls cover >= this many steps: native's PACK_MIN_STEPS


class InputProjection(torch.autograd.Function):
    """``x W^T`` for all time steps, ``x: (N, I)``, ``weight: (G, I)`` -> ``(N, G)``, written into a
    buffer from :func:`buffers.empty` (cached: at N = 16384, G = 2048 a fresh 128 MiB output
    costs ~40 ms of 4 KiB page faults on one thread, a third of the GEMM). The bias is left to the
    sequence Function, which adds it as it reads each row instead of in a pass of its own."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        out = buffers.empty(x, x.shape[0], weight.shape[0])
        native.mm(x, weight.t(), out=out)
        ctx.save_for_backward(x, weight)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        dx = native.mm(grad, weight) if ctx.needs_input_grad[0] else None  # (N, I)
        d_weight = native.mm(grad.t(), x) if ctx.needs_input_grad[1] else None  # (G, I)
        return dx, d_weight


class LSTMSequence(torch.autograd.Function):
    """``(outputs (T, B, H), h_T (B, H), c_T (B, H))`` of an LSTM over pre-projected gates.

    Inputs: ``gx: (T, B, 4H)`` (input projection; for the layer-norm cell plus every bias that
    does not go through a layer norm), ``bias: (4H,)`` or ``None`` (the plain cell's ``b_ih + b_hh``,
    added to ``gx`` inside: the whole-sequence C call adds it as it reads each row),
    ``h0, c0: (B, H)``, ``weight_hh: (4H, H)``, ``mask: (B, H)`` or ``None`` (multiplies
    ``h_{t-1}`` in the recurrent product), ``valid: (T, B, 1)`` float 0/1 or ``None`` (state frozen
    and output zero where 0), and for the layer-norm cell ``ln_hh_weight: (4H,)``,
    ``ln_c_weight: (H,)``, ``ln_c_bias: (H,)`` or ``None`` (``ln_hh``'s shift is in ``gx``), ``eps``,
    and ``zh, zc: (T, B, H)`` or ``None``: zoneout weights of ``h`` and ``c`` (1 keeps a unit's old
    value, 0 takes the new one; the rate itself in eval), whole-sequence C call only.
    """

    @staticmethod
    def forward(
        ctx, gx, bias, h0, c0, weight_hh, mask, valid, ln_hh_weight, ln_c_weight, ln_c_bias, eps, zh, zc, keep=True,
        source=None,
    ):  # fmt: skip
        inputs = (gx, bias, h0, c0, weight_hh, mask, valid, ln_hh_weight, ln_c_weight, ln_c_bias, eps, zh, zc, keep)
        T, B, G = gx.shape
        H = G // 4
        layer_norm = ln_hh_weight is not None
        new = functools.partial(buffers.empty, gx)
        hs, cs, outs, c_news = _state_buffers(new, h0, c0, T, valid)
        use_c = native.usable(gx, weight_hh)
        whole = use_c and not layer_norm and native.sgemm() is not None  # the whole sequence in one C call
        saved_steps = T if keep or not whole else 1  # without a backward pass, the C call reuses one step
        acts, tcs = new(saved_steps, B, G), new(saved_steps, B, H)  # sigmoid(i, f, o), tanh(g); tanh of (LN) c
        if layer_norm:
            r, r_hats = new(B, G), new(T, B, G)  # W_hh h (this step) and its normalized value (all steps)
            stats = new(4, T, B, 1)  # mean and rstd of W_hh h, then of c
        c_hats = new(T, B, H) if use_c and layer_norm else None  # normalized c (C kernels only)
        lib, threads = (native.library(), native.threads()) if use_c else (None, 1)
        if whole:  # (the layer-norm cell's whole-sequence path is LayerNormLSTMSequence)
            weight_hh, work = weight_hh.contiguous(), new(B * (G + H) + threads * G)
            args = (gx, weight_hh, mask, valid, None, None, None, hs, cs, acts, tcs, outs, c_news, *(None,) * 5)
            args += (bias, None, None, zh, zc)  # bias in b_ih's place: the plain cell adds it to each row
            lib.lstm_sequence_forward(threads, native.sgemm(), T, B, H, 0.0, *map(native.ptr, args), int(keep),
                                      native.ptr(work))  # fmt: skip
        elif bias is not None:
            gx = gx + bias  # (T, B, 4H)
        if use_c and not layer_norm and not whole:
            gates = new(B, G)  # gx + W_hh h of this step
        for t in range(0 if whole else T):
            h_rec = hs[t] if mask is None else hs[t] * mask  # (B, H)
            if use_c and not layer_norm:  # the same step, fused in C (rnnkit.nn.native)
                torch.addmm(gx[t], h_rec, weight_hh.t(), out=gates)
                lib.lstm_forward(threads, B, H, *map(native.ptr, (gates, cs[t], acts[t], c_news[t], tcs[t], outs[t])))
                _freeze_past_ends(t, valid, hs, cs, outs, c_news)
                continue
            if use_c:
                torch.mm(h_rec, weight_hh.t(), out=r)
                args = (r, gx[t], ln_hh_weight, ln_c_weight, ln_c_bias, cs[t], r_hats[t], stats[1, t], acts[t])
                args += (c_news[t], c_hats[t], stats[3, t], tcs[t], outs[t])
                lib.ln_lstm_forward(threads, B, H, eps, *map(native.ptr, args))
                _freeze_past_ends(t, valid, hs, cs, outs, c_news)
                continue
            if layer_norm:
                torch.mm(h_rec, weight_hh.t(), out=r)
                _aten.native_layer_norm.out(
                    r, (G,), None, None, eps, out0=r_hats[t], out1=stats[0, t], out2=stats[1, t]
                )
                gates = torch.addcmul(gx[t], r_hats[t], ln_hh_weight)  # (B, 4H)
            else:
                gates = torch.addmm(gx[t], h_rec, weight_hh.t())  # (B, 4H)
            act = acts[t]
            torch.sigmoid(gates, out=act)
            torch.tanh(gates[:, 2 * H : 3 * H], out=act[:, 2 * H : 3 * H])
            i, f, g, o = act.chunk(4, dim=1)
            c_new = torch.mul(f, cs[t], out=c_news[t]).addcmul_(i, g)  # (B, H)
            if layer_norm:
                _aten.native_layer_norm.out(
                    c_new, (H,), ln_c_weight, ln_c_bias, eps, out0=tcs[t], out1=stats[2, t], out2=stats[3, t]
                )
                tcs[t].tanh_()
            else:
                torch.tanh(c_new, out=tcs[t])
            torch.mul(o, tcs[t], out=outs[t])  # (B, H)
            _freeze_past_ends(t, valid, hs, cs, outs, c_news)
        if (zh is not None or zc is not None) and not whole:
            raise ValueError("LSTMSequence: zoneout runs only in the whole-sequence C call (see runs_whole_sequence)")
        saved = [hs, cs, acts, tcs, weight_hh, mask, valid] + ([zh, zc] if whole else [])
        if layer_norm:  # r, r_hat: (T, B, 4H); c: (T, B, H); statistics (T, B, 1)
            saved += [r_hats, c_news, stats, ln_hh_weight, ln_c_weight, ln_c_bias, c_hats]
        double_backward.save(ctx, saved, (*inputs, source), source)
        ctx.layer_norm, ctx.use_c, ctx.whole, ctx.has_bias = layer_norm, use_c, whole, bias is not None
        return outs, hs[T].clone(), cs[T].clone()

    @staticmethod
    def backward(ctx, d_out, d_hT, d_cT):
        if double_backward.graph_wanted():  # create_graph=True: differentiate lstm_reference instead
            return double_backward.recomputed_grads(ctx, lstm_reference, (d_out, d_hT, d_cT))
        if ctx.whole:
            grads = _backward_sequence_c(ctx, d_out, d_hT, d_cT)
        elif ctx.use_c:
            backward_c = _backward_layer_norm_c if ctx.layer_norm else _backward_plain_c
            grads = backward_c(ctx, d_out, d_hT, d_cT)
        else:
            grads = _backward_torch(ctx, d_out, d_hT, d_cT)
        d_gates = grads[0]  # (T, B, 4H)
        d_bias = d_gates.reshape(-1, d_gates.shape[-1]).sum(0) if ctx.has_bias else None
        return grads[0], d_bias, *grads[1:], None, None, None, None  # none for zoneout's weights, keep, source


def _backward_torch(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor) -> tuple:
    """:meth:`LSTMSequence.backward` in torch code (any dtype or device): the grads of ``gx`` and
    every input after ``bias``."""
    hs, cs, acts, tcs, weight_hh, mask, valid, *ln = double_backward.saved(ctx)
    T, B, G = acts.shape
    H = G // 4
    if ctx.layer_norm:
        r_hats, c_news, stats, ln_hh_weight, ln_c_weight, ln_c_bias, _ = ln
        zero_mean, unit_rstd = d_out.new_zeros(B, 1), d_out.new_ones(B, 1)
        d_recs = d_out.new_empty(T, B, G)  # grads of W_hh h
        d_ln_hh_weight, d_ln_c_weight, d_ln_c_bias = d_out.new_zeros(G), d_out.new_zeros(H), d_out.new_zeros(H)
    d_gates = d_out.new_empty(T, B, G)  # grads of the gate pre-activations (= of gx)
    d_act = d_out.new_empty(B, G)
    dh_next, dc_next = d_hT.clone(), d_cT.clone()  # grads of the carried h_t, c_t
    for t in reversed(range(T)):
        dh = d_out[t] + dh_next  # (B, H): grad of h_new
        dc = dc_next
        if valid is not None:
            keep = 1.0 - valid[t]
            dh_keep, dc_keep = dh_next * keep, dc_next * keep
            dh, dc = dh * valid[t], dc * valid[t]
        i, f, g, o = acts[t].chunk(4, dim=1)
        if ctx.layer_norm:
            d_cnorm = _aten.tanh_backward(dh * o, tcs[t])  # (B, H): grad of LN_c's output
            d_tc = _aten.native_layer_norm_backward(
                d_cnorm, c_news[t], (H,), stats[2, t], stats[3, t], ln_c_weight, ln_c_bias, (True, False, False)
            )[0]
            c_hat = (c_news[t] - stats[2, t]).mul_(stats[3, t])  # (B, H)
            d_ln_c_weight += (d_cnorm * c_hat).sum(0)
            d_ln_c_bias += d_cnorm.sum(0)
        else:
            d_tc = _aten.tanh_backward(dh * o, tcs[t])  # grad through tanh of c
        dc = dc + d_tc  # (B, H): grad of c_t
        torch.mul(dc, g, out=d_act[:, :H])
        torch.mul(dc, cs[t], out=d_act[:, H : 2 * H])
        torch.mul(dc, i, out=d_act[:, 2 * H : 3 * H])
        torch.mul(dh, tcs[t], out=d_act[:, 3 * H :])
        _aten.sigmoid_backward(d_act, acts[t], grad_input=d_gates[t])
        _aten.tanh_backward(d_act[:, 2 * H : 3 * H], g, grad_input=d_gates[t, :, 2 * H : 3 * H])
        d_rec = d_gates[t]
        if ctx.layer_norm:  # LN backward from the normalized value: mean 0, rstd 1, then times rstd
            d_rec = _aten.native_layer_norm_backward(
                d_rec, r_hats[t], (G,), zero_mean, unit_rstd, ln_hh_weight, None, (True, False, False)
            )[0]
            d_rec = torch.mul(d_rec, stats[1, t], out=d_recs[t])
            d_ln_hh_weight += (d_gates[t] * r_hats[t]).sum(0)
        dh_next = d_rec @ weight_hh  # (B, H)
        if mask is not None:
            dh_next.mul_(mask)
        dc_next = dc * f
        if valid is not None:
            dh_next += dh_keep
            dc_next += dc_keep
    h_rec = hs[:T] if mask is None else hs[:T] * mask  # (T, B, H)
    d_rec_all = d_recs if ctx.layer_norm else d_gates  # (T, B, 4H): grads of W_hh h
    d_weight_hh = d_rec_all.reshape(T * B, G).t() @ h_rec.reshape(T * B, H)  # (4H, H): one GEMM
    grads = [d_gates, dh_next, dc_next, d_weight_hh, None, None, None, None, None, None]
    if ctx.layer_norm:
        grads[6:9] = d_ln_hh_weight, d_ln_c_weight, d_ln_c_bias if ln_c_bias is not None else None
    return tuple(grads)


def _state_buffers(new, h0: Tensor, c0: Tensor, T: int, valid: Tensor | None) -> tuple[Tensor, ...]:
    """``(hs, cs, outs, c_news)`` for a sequence Function: the carried states ``(T + 1, B, H)``
    with ``[0]`` set to ``h0, c0``, and the outputs and new cells ``(T, B, H)`` — views of the
    carried states when no sequence ends early (``valid is None``). ``new`` allocates."""
    B, H = h0.shape
    hs, cs = new(T + 1, B, H), new(T + 1, B, H)
    hs[0], cs[0] = h0, c0
    outs = hs[1:] if valid is None else new(T, B, H)
    c_news = cs[1:] if valid is None else new(T, B, H)  # c before freezing past the ends
    return hs, cs, outs, c_news


def _freeze_past_ends(t: int, valid: Tensor | None, hs: Tensor, cs: Tensor, outs: Tensor, c_news: Tensor) -> None:
    """After step ``t``: where ``valid[t]`` is 0 (past a sequence's end) the carried state keeps
    its value and the output is zero; elsewhere the new ``h``, ``c`` are carried."""
    if valid is not None:
        torch.lerp(hs[t], outs[t], valid[t], out=hs[t + 1])
        torch.lerp(cs[t], c_news[t], valid[t], out=cs[t + 1])
        outs[t].mul_(valid[t])


def _backward_plain_c(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor) -> tuple:
    """:meth:`LSTMSequence.backward` of the plain LSTM cell with the C kernels of :mod:`rnnkit.nn.native`."""
    hs, cs, acts, tcs, weight_hh, mask, valid = double_backward.saved(ctx)
    T, B, G = acts.shape
    H = G // 4
    lib, threads = native.library(), native.threads()
    d_out = d_out.contiguous()  # (T, B, H)
    d_gates, zeros = d_out.new_empty(T, B, G), d_out.new_zeros(B, H)  # zeros: dh_next already added in
    dh_next, dc_next = d_hT.contiguous(), d_cT.contiguous()  # grads of the carried h_t, c_t
    for t in reversed(range(T)):
        d_step, dh_later, dc = d_out[t], dh_next, dc_next
        if valid is not None:  # past a sequence's end: the grads pass through to the frozen state
            keep = 1.0 - valid[t]
            dh_keep, dc_keep = dh_next * keep, dc_next * keep
            d_step, dh_later, dc = (d_out[t] + dh_next) * valid[t], zeros, dc_next * valid[t]
        dc_prev = torch.empty_like(dc)  # (B, H)
        args = (d_step, dh_later, dc, acts[t], tcs[t], cs[t], d_gates[t], dc_prev)
        lib.lstm_backward(threads, B, H, *map(native.ptr, args))
        dh_next = d_gates[t] @ weight_hh  # (B, H)
        if mask is not None:
            dh_next.mul_(mask)
        dc_next = dc_prev
        if valid is not None:
            dh_next += dh_keep
            dc_next += dc_keep
    h_rec = hs[:T] if mask is None else hs[:T] * mask  # (T, B, H)
    d_weight_hh = d_gates.reshape(T * B, G).t() @ h_rec.reshape(T * B, H)  # (4H, H): one GEMM
    return d_gates, dh_next, dc_next, d_weight_hh, None, None, None, None, None, None


def _backward_layer_norm_c(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor) -> tuple:
    """:meth:`LSTMSequence.backward` of the layer-norm cell with the C kernels of :mod:`rnnkit.nn.native`.

    The grads of ``W_hh h`` live in a buffer of ``block`` steps only: each time a block of steps is
    done, its share of ``dW_hh`` is one GEMM of ``block * B`` rows (at least 2048), so the backward
    pass does not hold a second ``(T, B, 4H)`` buffer beside ``d_gates``."""
    hs, cs, acts, tcs, weight_hh, mask, valid, r_hats, _, stats, g_hh, g_c, b_c, c_hats = double_backward.saved(ctx)
    T, B, G = acts.shape
    H = G // 4
    lib, threads = native.library(), native.threads()
    new = d_out.new_empty
    block = min(T, -(-_WEIGHT_GRAD_ROWS // B))  # steps per dW_hh GEMM
    d_gates, d_recs, dc_prev, scratch = new(T, B, G), new(block, B, G), new(B, H), new(B, 2 * H)
    zeros = d_out.new_zeros
    d_weight_hh, d_g_hh, d_g_c, d_b_c = zeros(G, H), zeros(G), zeros(H), zeros(H)
    dh_next, dc_next = d_hT.contiguous(), d_cT.contiguous()  # grads of the carried h_t, c_t
    for t in reversed(range(T)):
        dh, dc = d_out[t] + dh_next, dc_next  # (B, H): grads of h_new and of c_t from later steps
        if valid is not None:
            keep = 1.0 - valid[t]
            dh_keep, dc_keep = dh_next * keep, dc_next * keep
            dh, dc = dh * valid[t], dc * valid[t]
        dc = dc.contiguous()
        d_rec = d_recs[t % block]  # (B, 4H): grad of W_hh h_{t-1}
        args = (dh, dc, acts[t], tcs[t], cs[t], c_hats[t], stats[3, t], r_hats[t], stats[1, t], g_hh, g_c)
        args += (d_gates[t], d_rec, dc_prev, d_g_hh, d_g_c, d_b_c, scratch)
        lib.ln_lstm_backward(threads, B, H, *map(native.ptr, args))
        dh_next = d_rec @ weight_hh  # (B, H)
        if mask is not None:
            dh_next.mul_(mask)
        dc_next = dc_prev.clone()
        if valid is not None:
            dh_next += dh_keep
            dc_next += dc_keep
        if t % block == 0:  # steps t .. end-1 done: their share of dW_hh = dG^T h, one GEMM
            end = min(t + block, T)
            h_rec = hs[t:end] if mask is None else hs[t:end] * mask  # (end - t, B, H)
            d_weight_hh.addmm_(d_recs[: end - t].reshape(-1, G).t(), h_rec.reshape(-1, H))
    return d_gates, dh_next, dc_next, d_weight_hh, None, None, d_g_hh, d_g_c, d_b_c if b_c is not None else None, None


def _backward_sequence_c(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor) -> tuple:
    """:meth:`LSTMSequence.backward` of the plain cell in one whole-sequence C call
    (``lstm_sequence_backward``), then ``dW_hh`` as one GEMM."""
    hs, cs, acts, tcs, weight_hh, mask, valid, zh, zc = double_backward.saved(ctx)
    T, B, G = acts.shape
    H = G // 4
    lib, threads = native.library(), native.threads()
    (d_out, d_layout), weight_hh = native.grad_rows(d_out), weight_hh.contiguous()  # (T, B, H), (4H, H)
    dh, dc = d_hT.contiguous().clone(), d_cT.contiguous().clone()  # (B, H) each: carried back in place
    d_gates, work = buffers.empty(d_out, T, B, G), d_out.new_empty(_backward_work(B, H, threads))
    args = (weight_hh, mask, valid, d_out.data_ptr(), d_layout, dh, dc, acts, tcs, cs, *(None,) * 6, d_gates)
    args += (*(None,) * 11, zh, zc, work)
    lib.lstm_sequence_backward(threads, native.sgemm(), 0, T, B, H, *map(native.ptr, args))
    h_rec = hs[:T] if mask is None else hs[:T] * mask  # (T, B, H): what multiplied W_hh
    d_weight_hh = native.mm(d_gates.reshape(T * B, G).t(), h_rec.reshape(T * B, H))  # (4H, H): one GEMM
    return d_gates, dh, dc, d_weight_hh, None, None, None, None, None, None


def _backward_work(B: int, H: int, threads: int) -> int:
    """Floats of work space ``lstm_sequence_backward`` needs."""
    return B * 4 * H + threads * (6 * 4 * H + 5 * H)


class LayerNormLSTMSequence(torch.autograd.Function):
    """``(outputs (T, B, H), h_T, c_T)`` of a :class:`LayerNormLSTMCell` over a whole sequence in
    C calls (``lstm_sequence_forward`` / ``_backward`` in :mod:`rnnkit.nn.native`), ``LN_ih``
    included: per step the threads share out the recurrent product by columns (through torch's own
    ``sgemm_``), then each runs its block of batch rows' layer norms of ``W_ih x``, ``W_hh h`` and ``c`` and the
    gates row by row. Needs float32 CPU tensors and :func:`native.sgemm`.

    Inputs: ``raw: (T, B, 4H)`` = ``W_ih x`` (no bias), ``ln_ih_weight: (4H,)``, ``bias: (4H,)``
    (``b_ih + b_hh``) or ``None``, ``h0, c0: (B, H)``, ``weight_hh: (4H, H)``, ``mask: (B, H)`` or
    ``None`` (on ``h_{t-1}``), ``valid: (T, B, 1)`` float 0/1 or ``None``, ``ln_hh_weight: (4H,)``,
    ``ln_c_weight, ln_c_bias: (H,)`` (the shift may be ``None``), ``eps``, ``zh, zc: (T, B, H)`` or
    ``None`` (zoneout weights, as in :class:`LSTMSequence`). The same numbers as
    :class:`LSTMSequence` after ``LN_ih`` (tests pin it). Saves ``raw`` and the row statistics
    instead of a normalized copy, nor the gates' activations (the backward pass computes each row's
    again from ``raw``, its statistics, ``bias`` and the normalized ``W_hh h``), and keeps no
    ``(T, B, 4H)`` gate gradients: each row's are turned into the grads of ``raw`` on the spot.
    """

    @staticmethod
    def forward(ctx, raw, ln_ih_weight, bias, h0, c0, weight_hh, mask, valid, ln_hh_weight, ln_c_weight, ln_c_bias,
                eps, zh, zc, keep=True):  # fmt: skip
        inputs = (raw, ln_ih_weight, bias, h0, c0, weight_hh, mask, valid, ln_hh_weight, ln_c_weight, ln_c_bias, eps,
                  zh, zc, keep)  # fmt: skip
        T, B, G = raw.shape
        H = G // 4
        new, threads = functools.partial(buffers.empty, raw), native.threads()
        hs, cs, outs, c_news = _state_buffers(new, h0, c0, T, valid)
        S = T if keep else 1  # steps of saved values: without a backward pass the C call reuses one
        acts, tcs, r_hats, c_hats = new(1, B, G), new(S, B, H), new(S, B, G), new(S, B, H)  # acts: one step
        stats = raw.new_empty(4, S, B)  # rstd of W_hh h, rstd of c, mean and rstd of W_ih x
        weight_hh = weight_hh.contiguous()
        args = (raw, weight_hh, mask, valid, ln_hh_weight, ln_c_weight, ln_c_bias, hs, cs, acts, tcs, outs, c_news)
        args += (r_hats, stats[0], c_hats, stats[1], ln_ih_weight, bias, stats[2], stats[3])
        args += (zh, zc)  # zoneout weights
        work = raw.new_empty(B * (G + H) + threads * G)
        native.library().lstm_sequence_forward(threads, native.sgemm(), T, B, H, eps, *map(native.ptr, args), int(keep),
                                               native.ptr(work))  # fmt: skip
        saved = (raw, ln_ih_weight, bias, hs, cs, tcs, weight_hh, mask, valid, r_hats, c_hats, stats, ln_hh_weight,
                 ln_c_weight, zh, zc)  # fmt: skip
        double_backward.save(ctx, saved, inputs)
        ctx.has_bias, ctx.has_c_bias = bias is not None, ln_c_bias is not None
        return outs, hs[T].clone(), cs[T].clone()

    @staticmethod
    def backward(ctx, d_out, d_hT, d_cT):
        if double_backward.graph_wanted():  # create_graph=True: differentiate layer_norm_lstm_reference instead
            return double_backward.recomputed_grads(ctx, layer_norm_lstm_reference, (d_out, d_hT, d_cT))
        raw, g_ih, bias, hs, cs, tcs, weight_hh, mask, valid, r_hats, c_hats, stats, g_hh, g_c, *zoneout = (
            double_backward.saved(ctx)
        )
        T, B, G = raw.shape
        H = G // 4
        lib, threads = native.library(), native.threads()
        zeros = raw.new_zeros
        d_out, d_layout = native.grad_rows(d_out)  # (T, B, H), read in place
        dh, dc = d_hT.contiguous().clone(), d_cT.contiguous().clone()  # (B, H) each: carried back in place
        d_raw, work = buffers.empty(raw, T, B, G), raw.new_empty(_backward_work(B, H, threads))
        block = min(T, max(_MIN_CALL_STEPS, -(-_WEIGHT_GRAD_ROWS // B)))  # steps per C call and dW_hh GEMM
        d_recs, d_weight_hh = buffers.empty(raw, block, B, G), zeros(G, H)  # grads of W_hh h for a block
        d_g_hh, d_g_c, d_b_c, d_g_ih, d_b_ih = zeros(G), zeros(H), zeros(H), zeros(G), zeros(G)
        h_rec = hs[:T] if mask is None else hs[:T] * mask  # (T, B, H): what multiplied W_hh
        for end in range(T, 0, -block):
            start = max(0, end - block)
            args = (weight_hh, mask, valid, d_out.data_ptr(), d_layout, dh, dc, None, tcs, cs, c_hats, stats[1])
            args += (r_hats, stats[0], g_hh, g_c, d_raw, d_recs, d_g_hh, d_g_c, d_b_c, raw, stats[2], stats[3])
            args += (g_ih, bias, d_g_ih, d_b_ih, *zoneout)  # zoneout: zh, zc
            lib.lstm_sequence_backward(threads, native.sgemm(), start, end, B, H, *map(native.ptr, (*args, work)))
            d_rec_rows, h_rows = d_recs[: end - start].reshape(-1, G), h_rec[start:end].reshape(-1, H)
            native.mm(d_rec_rows.t(), h_rows, out=d_weight_hh, accumulate=True)  # (4H, H) += this block's
        return (d_raw, d_g_ih, d_b_ih if ctx.has_bias else None, dh, dc, d_weight_hh, None, None,
                d_g_hh, d_g_c, d_b_c if ctx.has_c_bias else None, None, None, None, None)  # fmt: skip


class LayerNormRows(torch.autograd.Function):
    """``F.layer_norm(x, (n,), gain, bias, eps)`` over the last axis of a contiguous float32 CPU
    tensor, in C (``layer_norm_rows_*`` in :mod:`rnnkit.nn.native`): ``x: (..., n)``,
    ``gain: (n,)``, ``bias: (n,)`` or ``None``. Saves the normalized ``x`` and ``1/std`` per row."""

    @staticmethod
    def forward(ctx, x: Tensor, gain: Tensor, bias: Tensor | None, eps: float, source=None) -> Tensor:
        n = x.shape[-1]
        rows = x.numel() // n
        x_hat, rstd, y = buffers.empty(x, *x.shape), x.new_empty(rows), buffers.empty(x, *x.shape)
        args = (x, gain, bias, x_hat, rstd, y)
        native.library().layer_norm_rows_forward(native.threads(), rows, n, eps, *map(native.ptr, args))
        double_backward.save(ctx, (x_hat, rstd, gain), (x, gain, bias, eps, source), source)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        if double_backward.graph_wanted():  # create_graph=True: differentiate F.layer_norm instead
            return double_backward.recomputed_grads(ctx, _layer_norm_reference, (dy,))
        x_hat, rstd, gain = double_backward.saved(ctx)
        n, threads = x_hat.shape[-1], native.threads()
        dy, dx = dy.contiguous(), buffers.empty(x_hat, *x_hat.shape)
        d_gain, d_bias = gain.new_zeros(n), gain.new_zeros(n) if ctx.has_bias else None
        args = (dy, x_hat, rstd, gain, dx, d_gain, d_bias, dy.new_empty(threads * 2 * n))
        native.library().layer_norm_rows_backward(threads, rstd.numel(), n, *map(native.ptr, args))
        return dx, d_gain, d_bias, None, None


def lstm_reference(gx, bias, h0, c0, weight_hh, mask, valid, ln_hh_weight, ln_c_weight, ln_c_bias, eps, zh, zc,
                   *_) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """:class:`LSTMSequence`'s outputs from its arguments in differentiable torch ops, step by step
    (``gx: (T, B, 4H)``, the rest as there): what its backward pass differentiates when autograd
    records it (:mod:`rnnkit.nn.double_backward`). Returns ``(outputs (T, B, H), h_T, c_T)``."""
    H = h0.shape[-1]
    h, c, outs = h0, c0, []
    for t in range(gx.shape[0]):
        r = (h if mask is None else h * mask) @ weight_hh.t()  # (B, 4H)
        if ln_hh_weight is not None:
            r = F.layer_norm(r, r.shape[-1:], ln_hh_weight, None, eps)
        gates = gx[t] + r if bias is None else gx[t] + r + bias
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (B, H)
        c_out = c_new if ln_c_weight is None else F.layer_norm(c_new, (H,), ln_c_weight, ln_c_bias, eps)
        h_new, c_new = zone_out(h, torch.sigmoid(o) * torch.tanh(c_out), zh, t), zone_out(c, c_new, zc, t)
        outs.append(h_new if valid is None else h_new * valid[t])  # zero past a sequence's end
        h, c = _carried(h, h_new, valid, t), _carried(c, c_new, valid, t)
    return torch.stack(outs), h, c


def layer_norm_lstm_reference(raw, ln_ih_weight, bias, h0, c0, weight_hh, mask, valid, ln_hh_weight, ln_c_weight,
                              ln_c_bias, eps, zh, zc, *_) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """:class:`LayerNormLSTMSequence`'s outputs in differentiable torch ops (as :func:`lstm_reference`)."""
    gx = F.layer_norm(raw, raw.shape[-1:], ln_ih_weight, bias, eps)  # (T, B, 4H)
    return lstm_reference(gx, None, h0, c0, weight_hh, mask, valid, ln_hh_weight, ln_c_weight, ln_c_bias, eps, zh, zc)


def gru_reference(gx, b_ih, b_hh, h0, weight_hh, mask, valid, ln_hh_weight, eps, zh, *_) -> tuple[Tensor, Tensor]:
    """:class:`GRUSequence`'s outputs in differentiable torch ops, step by step (as :func:`lstm_reference`)."""
    h, outs = h0, []
    for t in range(gx.shape[0]):
        p = (h if mask is None else h * mask) @ weight_hh.t()  # (B, 3H)
        if ln_hh_weight is not None:
            p = F.layer_norm(p, p.shape[-1:], ln_hh_weight, b_hh, eps)
        elif b_hh is not None:
            p = p + b_hh
        h_new = zone_out(h, gru_update(gx[t] if b_ih is None else gx[t] + b_ih, p, h), zh, t)
        outs.append(h_new if valid is None else h_new * valid[t])  # zero past a sequence's end
        h = _carried(h, h_new, valid, t)
    return torch.stack(outs), h


def _carried(old: Tensor, new: Tensor, valid: Tensor | None, t: int) -> Tensor:
    """The state carried after step ``t``: ``new``, or ``old`` (frozen) where ``valid[t]`` is 0."""
    return new if valid is None else old + valid[t] * (new - old)


def _layer_norm_reference(x, gain, bias, eps, *_) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], gain, bias, eps)


def _projection(x_rows: Tensor, weight: Tensor, T: int, B: int) -> Tensor:
    """``(T, B, G)`` = ``x_rows (T * B, I) @ weight.t()``: a source of the projected input (:mod:`double_backward`)."""
    return (x_rows @ weight.t()).view(T, B, -1)


def _normalized_projection(x_rows, weight, gain, bias, T: int, B: int, eps: float) -> Tensor:
    """``LN(x_rows @ weight.t()) * gain + bias`` as ``(T, B, G)``: a source, as :func:`_projection`."""
    raw = _projection(x_rows, weight, T, B)
    return F.layer_norm(raw, raw.shape[-1:], gain, bias, eps)


def _layer_norm(x: Tensor, gain: Tensor, bias: Tensor | None, eps: float, source=None) -> Tensor:
    """Layer norm over the last axis: :class:`LayerNormRows` where the C kernels apply (``source``
    rebuilds ``x`` for a double backward), else ``F.layer_norm``."""
    if native.usable(x, gain) and x.is_contiguous() and gain.is_contiguous():
        return LayerNormRows.apply(x, gain, bias, eps, source)
    return F.layer_norm(x, x.shape[-1:], gain, bias, eps)


@eager_only
def lstm_scan(
    cell: LSTMCell | LayerNormLSTMCell,
    x: Tensor,
    state: tuple[Tensor, Tensor] | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
    *,
    weight_hh: Tensor | None = None,
    mask: Tensor | None = None,
    zoneout: tuple[Tensor | None, Tensor | None] | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """What :func:`rnnkit.nn.scan.scan` returns for ``cell``, computed by :class:`LSTMSequence`.

    Args: as :func:`rnnkit.nn.scan.scan` (``x: (B, T, I)``, ``state: ((B, H), (B, H))``,
    ``lengths: (B,)``), plus ``weight_hh`` to use instead of the cell's (DropConnect),
    ``mask: (B, H)`` on ``h_{t-1}`` (recurrent dropout) and ``zoneout``: the weights ``(T, B, H)``
    of ``h`` and ``c`` (either ``None``) in the order the steps run, only where
    :func:`runs_whole_sequence`.

    Returns ``outputs: (B, T, H)`` and ``(h_n, c_n)``, each ``(B, H)``.
    """
    B, T, _ = x.shape
    h0, c0 = state if state is not None else cell.initial_state(B, device=x.device, dtype=x.dtype)
    if reverse:
        x = reverse_padded(x, lengths)
    weight_hh = cell.weight_hh if weight_hh is None else weight_hh
    mask = None if mask is None else mask.contiguous()  # (B, H): the C kernels read it row by row
    valid = _valid_steps(lengths, T, x)  # (T, B, 1) or None
    zh, zc = (None, None) if zoneout is None else (_contiguous(z) for z in zoneout)  # (T, B, H) each
    x_rows = x.transpose(0, 1).reshape(T * B, -1)  # (T * B, I), time-major
    G = cell.weight_ih.shape[0]
    source = (functools.partial(_projection, T=T, B=B), x_rows, cell.weight_ih)  # rebuilds W_ih x (double backward)
    if isinstance(cell, LayerNormLSTMCell):
        gates = InputProjection.apply(x_rows, cell.weight_ih).view(T, B, G)  # (T, B, 4H): W_ih x
        bias = None if cell.bias_ih is None else cell.bias_ih + cell.bias_hh  # LN_hh's shift folded in here
        if native.whole_sequence(gates, weight_hh):  # all of it in whole-sequence C calls
            ln_cell = (cell.ln_hh_weight, cell.ln_c_weight, cell.ln_c_bias, cell.eps)
            args = (gates, cell.ln_ih_weight, bias, h0, c0, weight_hh, mask, valid, *ln_cell, zh, zc, _keep())
            out, h_n, c_n = LayerNormLSTMSequence.apply(*args)
            return _batch_major(out, lengths, reverse), (h_n, c_n)
        gx = _layer_norm(gates, cell.ln_ih_weight, bias, cell.eps, source)  # LN_ih(W_ih x) + b_ih + b_hh
        normalized = functools.partial(_normalized_projection, T=T, B=B, eps=cell.eps)
        source = (normalized, x_rows, cell.weight_ih, cell.ln_ih_weight, bias)
        bias, ln = None, (cell.ln_hh_weight, cell.ln_c_weight, cell.ln_c_bias, cell.eps)  # bias now in gx
    else:
        bias = None if cell.bias_ih is None else cell.bias_ih + cell.bias_hh  # (4H,): added inside LSTMSequence
        gx = InputProjection.apply(x_rows, cell.weight_ih).view(T, B, G)  # (T, B, 4H): W_ih x
        ln = (None, None, None, 0.0)
    out, h_n, c_n = LSTMSequence.apply(gx, bias, h0, c0, weight_hh, mask, valid, *ln, zh, zc, _keep(), source)
    return _batch_major(out, lengths, reverse), (h_n, c_n)


def _keep() -> bool:
    """Whether a sequence Function called now must keep every step's activations: only when
    autograd records (in ``torch.no_grad()`` / ``inference_mode()`` no backward pass can come)."""
    return torch.is_grad_enabled()


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def _valid_steps(lengths: Tensor | None, T: int, x: Tensor) -> Tensor | None:
    """``(T, B, 1)`` float 1 where step ``t`` is inside sequence ``b``, 0 past its end; ``None``
    when no sequence ends early."""
    if lengths is None or int(lengths.min()) >= T:
        return None
    return (torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)).to(x.dtype).unsqueeze(-1)


def _batch_major(out: Tensor, lengths: Tensor | None, reverse: bool) -> Tensor:
    """``(T, B, H)`` outputs back to ``(B, T, H)``, each sequence turned back in time if it was reversed."""
    out = out.transpose(0, 1)  # (B, T, H)
    return reverse_padded(out, lengths) if reverse else out


def supports(cell) -> bool:
    """Whether :func:`lstm_scan` computes this cell (an LSTM without projection, or a layer-norm LSTM)."""
    return isinstance(cell, LayerNormLSTMCell) or (isinstance(cell, LSTMCell) and not cell.proj_size)


def supports_gru(cell, x: Tensor) -> bool:
    """Whether :func:`gru_scan` computes this cell on ``x``: torch.nn's GRU cell or the layer-norm
    GRU, in the whole-sequence C calls (otherwise the generic loop runs it)."""
    return type(cell) in (GRUCell, LayerNormGRUCell) and native.whole_sequence(x, cell.weight_hh)


def runs_whole_sequence(cell, x: Tensor) -> bool:
    """Whether the whole-sequence C calls (the LSTM family's and the GRUs') run ``cell`` on ``x``:
    the only fast path with zoneout."""
    return (supports(cell) and native.whole_sequence(x, cell.weight_hh)) or supports_gru(cell, x)


class GRUSequence(torch.autograd.Function):
    """``(outputs (T, B, H), h_T (B, H))`` of torch.nn's GRU, or of the layer-norm GRU, over a
    whole sequence in C calls (``gru_sequence_forward`` / ``_backward`` in :mod:`rnnkit.nn.native`):
    per step the threads share out the recurrent product by columns (through torch's own
    ``sgemm_``), then each runs its block of batch rows' ``LN_hh`` and gates; the backward pass the same back in
    time, then ``dW_hh`` as one GEMM.

    Inputs: ``gx: (T, B, 3H)`` = ``W_ih x`` (plain GRU; no bias) or ``LN_ih(W_ih x) + b_ih``
    (layer-norm GRU), ``b_ih: (3H,)`` or ``None`` (added in C as each row is read; ``None`` for
    the layer-norm GRU), ``b_hh: (3H,)`` or ``None`` (``LN_hh``'s shift for the layer-norm GRU),
    ``h0: (B, H)``, ``weight_hh: (3H, H)``, ``mask: (B, H)`` or ``None`` (on ``h_{t-1}`` inside the
    recurrent product only, as :meth:`GRUCell.step_dropped`), ``valid: (T, B, 1)`` float 0/1 or
    ``None`` (state frozen and output zero where 0), ``ln_hh_weight: (3H,)`` or ``None`` (the plain
    GRU), ``eps``, ``zh: (T, B, H)`` or ``None`` (zoneout weights of ``h``, as in
    :class:`LSTMSequence`). Float32 CPU tensors; the same numbers as the cell's ``step`` through the
    generic loop (tests pin it).
    """

    @staticmethod
    def forward(ctx, gx, b_ih, b_hh, h0, weight_hh, mask, valid, ln_hh_weight, eps, zh, keep=True, source=None):
        inputs = (gx, b_ih, b_hh, h0, weight_hh, mask, valid, ln_hh_weight, eps, zh, keep, source)
        T, B, G = gx.shape
        H = G // 3
        new = functools.partial(buffers.empty, gx)
        hs = new(T + 1, B, H)  # carried states, hs[0] = h0
        hs[0] = h0
        outs = hs[1:] if valid is None else new(T, B, H)
        S = T if keep else 1  # steps of saved values: without a backward pass the C call reuses one
        acts = new(S, B, 4 * H)  # r, z, n, W_hn h + b_hn
        layer_norm = ln_hh_weight is not None
        r_hats, r_rstd = (new(S, B, G), gx.new_empty(S, B)) if layer_norm else (None, None)  # LN_hh's x_hat, rstd
        weight_hh = weight_hh.contiguous()
        biases = [gx.new_zeros(G) if b is None else b.contiguous() for b in (b_ih, b_hh)]  # the kernel reads both
        args = (gx, weight_hh, *biases, mask, valid, ln_hh_weight, hs, outs, acts, r_hats, r_rstd, zh)
        lib, work = native.library(), gx.new_empty(B * (G + H))
        lib.gru_sequence_forward(native.threads(), native.sgemm(), T, B, H, eps, *map(native.ptr, args), int(keep),
                                 native.ptr(work))  # fmt: skip
        double_backward.save(ctx, (hs, acts, weight_hh, mask, valid, ln_hh_weight, r_hats, r_rstd, zh), inputs, source)
        ctx.has_bias = b_ih is not None, b_hh is not None
        return outs, hs[T].clone()

    @staticmethod
    def backward(ctx, d_out, d_hT):
        if double_backward.graph_wanted():  # create_graph=True: differentiate gru_reference instead
            return double_backward.recomputed_grads(ctx, gru_reference, (d_out, d_hT))
        hs, acts, weight_hh, mask, valid, ln_hh_weight, r_hats, r_rstd, zh = double_backward.saved(ctx)
        T, B, G = acts.shape[0], acts.shape[1], acts.shape[2] // 4 * 3
        H, threads = G // 3, native.threads()
        (d_out, d_layout), dh = native.grad_rows(d_out), d_hT.contiguous().clone()  # (T, B, H) read in place; (B, H)
        d_gx, d_rec = buffers.empty(d_out, T, B, G), buffers.empty(d_out, T, B, G)  # grads of gx, of W_hh h
        partials = d_out.new_zeros(threads, 2, G) if ln_hh_weight is not None else None  # grads of g_hh, b_hh
        args = (weight_hh, mask, valid, d_out.data_ptr(), d_layout, dh, hs, acts, ln_hh_weight, r_hats, r_rstd)
        args += (d_gx, d_rec, partials, zh)
        args += (d_out.new_empty(B * 2 * H + threads * 2 * H),)  # work space
        native.library().gru_sequence_backward(threads, native.sgemm(), T, B, H, *map(native.ptr, args))
        h_rec = hs[:T] if mask is None else hs[:T] * mask  # (T, B, H): what multiplied W_hh
        d_weight_hh = native.mm(d_rec.view(T * B, G).t(), h_rec.reshape(T * B, H))  # (3H, H): one GEMM
        d_b_ih = d_gx.view(T * B, G).sum(0) if ctx.has_bias[0] else None
        d_ln_hh_weight = None
        if partials is not None:  # layer-norm GRU: d_rec went through LN_hh; its gain's and shift's grads
            d_ln_hh_weight, d_b_hh = partials.sum(0)
        else:
            d_b_hh = d_rec.view(T * B, G).sum(0)
        d_b_hh = d_b_hh if ctx.has_bias[1] else None
        return d_gx, d_b_ih, d_b_hh, dh, d_weight_hh, None, None, d_ln_hh_weight, None, None, None, None


@eager_only
def gru_scan(
    cell: GRUCell | LayerNormGRUCell,
    x: Tensor,
    state: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
    *,
    weight_hh: Tensor | None = None,
    mask: Tensor | None = None,
    zoneout: tuple[Tensor | None] | None = None,
) -> tuple[Tensor, Tensor]:
    """What :func:`rnnkit.nn.scan.scan` returns for a :class:`GRUCell` or :class:`LayerNormGRUCell`, computed by
    :class:`GRUSequence` (only where :func:`supports_gru`).

    Args: as :func:`lstm_scan` (``x: (B, T, I)``, ``state: (B, H)``, ``lengths: (B,)``,
    ``weight_hh``: DropConnect's, ``mask: (B, H)``: recurrent dropout's, ``zoneout``: ``(zh,)``,
    the weights ``(T, B, H)`` of ``h``).
    Returns ``outputs: (B, T, H)`` and ``h_n: (B, H)``.
    """
    B, T, _ = x.shape
    h0 = state if state is not None else cell.initial_state(B, device=x.device, dtype=x.dtype)
    if reverse:
        x = reverse_padded(x, lengths)
    weight_hh = cell.weight_hh if weight_hh is None else weight_hh
    mask = None if mask is None else mask.contiguous()  # (B, H): the C kernels read it row by row
    x_rows = x.transpose(0, 1).reshape(T * B, -1)  # (T * B, I), time-major
    gx = InputProjection.apply(x_rows, cell.weight_ih).view(T, B, -1)  # (T, B, 3H): W_ih x
    b_ih, ln = cell.bias_ih, (None, 0.0)
    source = (functools.partial(_projection, T=T, B=B), x_rows, cell.weight_ih)  # rebuilds gx (double backward)
    if isinstance(cell, LayerNormGRUCell):  # LN_ih over all steps in torch; LN_hh in the C call
        gx = _layer_norm(gx, cell.ln_ih_weight, cell.bias_ih, cell.eps, source)
        normalized = functools.partial(_normalized_projection, T=T, B=B, eps=cell.eps)
        source = (normalized, x_rows, cell.weight_ih, cell.ln_ih_weight, cell.bias_ih)
        b_ih, ln = None, (cell.ln_hh_weight, cell.eps)
    zh = None if zoneout is None else _contiguous(zoneout[0])  # (T, B, H)
    args = (gx, b_ih, cell.bias_hh, h0, weight_hh, mask, _valid_steps(lengths, T, x), *ln, zh, _keep(), source)
    out, h_n = GRUSequence.apply(*args)
    return _batch_major(out, lengths, reverse), h_n
