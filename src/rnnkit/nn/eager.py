"""Keep rnnkit.nn's own kernels out of ``torch.compile``'s graphs.

The whole-sequence paths call C kernels through ``ctypes`` on tensors' memory and hand out
buffers from :mod:`rnnkit.nn.buffers`; torch's fused RNN ops have no working compiled form on the
CPU either (``mkldnn_rnn_layer`` fails in inductor, which is why Dynamo runs ``torch.nn.LSTM``
itself eagerly). Traced by Dynamo, pieces of them were compiled around the C calls and corrupted
the heap. :func:`eager_only` makes Dynamo break the graph there and run the function as it is,
what it does for ``torch.nn``'s RNN modules: the rest of a compiled model is still compiled.

``torch.compiler.disable`` imports Dynamo (about a second), so it is applied on the first call
made once Dynamo is loaded — ``torch.compile`` loads it before it traces anything — and a
program that never compiles never pays for it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def eager_only(fn: F) -> F:
    """``fn``, run outside ``torch.compile``'s graphs (``torch.compiler.disable``) once Dynamo is loaded."""
    disabled: list[Callable] = []

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if "torch._dynamo" not in sys.modules:
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(torch.compiler.disable(fn))
        return disabled[0](*args, **kwargs)

    return run  # type: ignore[return-value]
