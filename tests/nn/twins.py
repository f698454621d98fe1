"""Shared helpers for the rnnkit.nn tests: build an rnnkit layer and its torch.nn twin."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit.nn as rnn

# kind -> (rnnkit class, torch class, extra constructor arguments)
KINDS = {
    "rnn_tanh": (rnn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnn.LSTM, torch.nn.LSTM, {}),
    "lstm_proj": (rnn.LSTM, torch.nn.LSTM, {"proj_size": 3}),
    "gru": (rnn.GRU, torch.nn.GRU, {}),
}


def make_pair(kind: str, input_size: int, hidden_size: int, **kwargs):
    """An rnnkit layer and a torch.nn layer holding the same weights (copied rnnkit -> torch)."""
    ours_cls, torch_cls, extra = KINDS[kind]
    impl = kwargs.pop("impl", "auto")
    ours = ours_cls(input_size, hidden_size, impl=impl, **extra, **kwargs)
    theirs = torch_cls(input_size, hidden_size, batch_first=True, **extra, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def torch_forward(layer: torch.nn.Module, x: torch.Tensor, state=None, lengths=None):
    """torch.nn's answer for a batch-first ``x: (B, T, I)``, packing when ``lengths`` is given."""
    if lengths is None:
        return layer(x, state)
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, hn = layer(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, hn


def as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def random_lengths(gen: torch.Generator, batch: int, T: int) -> torch.Tensor:
    """Unsorted lengths in 1..T that include 1 and T (when batch >= 2)."""
    lengths = torch.randint(1, T + 1, (batch,), generator=gen)
    lengths[0], lengths[-1] = T, 1
    return lengths[torch.randperm(batch, generator=gen)]


def graph_node_names(node) -> set[str]:
    """The class names of every autograd node behind ``node`` (a tensor's ``grad_fn``)."""
    names, stack = set(), [node]
    while stack:
        node = stack.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def assert_func_grad_matches_backward(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> None:
    """``torch.func.grad`` of ``layer``'s squared output sum equals what ``.backward()`` gives."""
    params = dict(layer.named_parameters())

    def loss(p):
        return torch.func.functional_call(layer, p, (x,), {"lengths": lengths})[0].square().sum()

    grads = torch.func.grad(loss)(params)
    loss(params).backward()
    for key, param in params.items():
        torch.testing.assert_close(grads[key], param.grad, rtol=1e-4, atol=1e-5)
