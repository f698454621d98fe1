"""The fused path: torch's own RNN kernels, for configurations torch computes identically.

:func:`forward` runs a :class:`rnnkit.nn.layers.RecurrentLayer` with the ``_VF`` ops that
``torch.nn.RNN/LSTM/GRU`` call, on the layer's own parameters, packing variable-length batches
the way ``pack_padded_sequence`` does. It must give what the written-here loop gives:

* ``lengths``: sequences are packed (unsorted is fine), so outputs past each end are zero and
  the final state is each sequence's own last state, as in the loop;
* inter-layer dropout in training is applied here, between single-layer kernel calls, with the
  same ``F.dropout`` on the same ``(B, T, D * H_out)`` tensor as the loop, so both paths draw the
  same random masks from the same generator.

Whether a layer can take this path is the layer's ``fused_unsupported_reason()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.nn.eager import eager_only

if TYPE_CHECKING:
    from rnnkit.nn.layers import RecurrentLayer

_KERNELS = {"RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu, "LSTM": _VF.lstm, "GRU": _VF.gru}


@eager_only
def forward(
    layer: RecurrentLayer, x: Tensor, hx: tuple[Tensor, ...] | None, lengths: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``layer`` with torch's kernel.

    Args:
        x: ``(B, T, I)``. hx: tuple of ``(L * D, B, ·)`` state tensors, or ``None`` for zeros.
        lengths: ``(B,)`` int64 or ``None``.

    Returns: ``output: (B, T, D * H_out)`` and the final state tuple, each ``(L * D, B, ·)``.
    """
    if _autocast_without_kernel(x.device.type):  # torch's kernel would raise: float32, the plain numbers
        with torch.autocast(x.device.type, enabled=False):
            return forward(layer, x, hx, lengths)
    B = x.shape[0]
    LD = layer.num_layers * layer.num_directions
    if hx is None:
        hx = tuple(x.new_zeros(LD, B, size) for size in layer.state_sizes)
    weights = layer.flat_weights()
    if not (layer.training and layer.dropout > 0 and layer.num_layers > 1):
        return _run(layer, x, hx, weights, layer.num_layers, lengths)
    # Dropout between layers: one kernel call per layer, with rnnkit's dropout in between.
    per_layer = len(weights) // layer.num_layers
    D = layer.num_directions
    finals: list[tuple[Tensor, ...]] = []
    out = x
    for k in range(layer.num_layers):
        hk = tuple(h[k * D : (k + 1) * D] for h in hx)
        out, hn = _run(layer, out, hk, weights[k * per_layer : (k + 1) * per_layer], 1, lengths)
        finals.append(hn)
        if k < layer.num_layers - 1:
            out = layer.between_layers(out)
    return out, tuple(torch.cat(parts) for parts in zip(*finals, strict=True))


def _autocast_without_kernel(device_type: str) -> bool:
    """Whether autocast is on for a CPU whose oneDNN has no RNN kernel in autocast's dtype: bf16
    needs AVX-512 (an AVX2-only CPU reports none), and there ``torch.nn.LSTM`` under
    ``torch.autocast("cpu")`` raises "could not create a primitive descriptor"."""
    if device_type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return False
    supported = {
        torch.bfloat16: torch.ops.mkldnn._is_mkldnn_bf16_supported,
        torch.float16: torch.ops.mkldnn._is_mkldnn_fp16_supported,
    }.get(torch.get_autocast_dtype("cpu"))
    return supported is not None and not supported()


def _run(
    layer: RecurrentLayer,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: list[Tensor],
    num_layers: int,
    lengths: Tensor | None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One ``_VF`` call over ``num_layers`` layers without dropout, padded or packed."""
    kernel = _KERNELS[layer.mode]
    state = hx if layer.mode == "LSTM" else hx[0]
    if lengths is None:
        result = kernel(x, state, weights, layer.bias, num_layers, 0.0, layer.training, layer.bidirectional, True)
        return result[0], tuple(result[1:])
    T = x.shape[1]
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    order = packed.sorted_indices  # (B,): state rows in the packed (sorted) order
    sorted_state = tuple(h.index_select(1, order) for h in hx)
    state = sorted_state if layer.mode == "LSTM" else sorted_state[0]
    result = kernel(
        packed.data,
        packed.batch_sizes,
        state,
        weights,
        layer.bias,
        num_layers,
        0.0,
        layer.training,
        layer.bidirectional,
    )
    out_packed = PackedSequence(result[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)  # (B, T, D*H_out)
    return out, tuple(h.index_select(1, packed.unsorted_indices) for h in result[1:])
