"""What the experiments share: a recurrent model with a linear head, and a short training loop.

The experiments train dozens of tiny models for a few hundred steps each, on batches drawn fresh
from a generator; they keep no checkpoints and resume nothing. :func:`train_steps` is that loop
(batch -> loss -> backward -> clip -> step), written here rather than taken from
:mod:`rnnkit.train`, whose run folders, checkpoints and resume are made for one long run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

import rnnkit.nn as rnn
from rnnkit.errors import ConfigError


def _lstm(input_size: int, hidden_size: int) -> nn.Module:
    layer = rnn.LSTM(input_size, hidden_size)
    set_forget_bias(layer, 1.0)
    return layer


# kind -> builder(input_size, hidden_size) of a one-layer, batch-first recurrent layer whose
# forward is ``out, state = layer(x, lengths=lengths)`` with ``out: (B, T, H)``.
BUILDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "rnn": lambda i, h: rnn.RNN(i, h, nonlinearity="tanh"),
    "lstm": _lstm,
    "gru": lambda i, h: rnn.GRU(i, h),
}

# The cells of rnnkit.nn beyond torch's, included wherever rnnkit.nn has them.
_BEYOND_TORCH = (
    ("layernorm_lstm", "LayerNormLSTM"),
    ("layernorm_gru", "LayerNormGRU"),
    ("indrnn", "IndRNN"),
    ("mingru", "MinGRU"),
    ("minlstm", "MinLSTM"),
)
for _kind, _name in _BEYOND_TORCH:
    if hasattr(rnn, _name):
        BUILDERS[_kind] = getattr(rnn, _name)


def set_forget_bias(lstm: nn.Module, value: float) -> None:
    """Set the forget-gate bias of every layer of an LSTM to ``value`` (Gers et al. 2000).

    torch's initialization draws it near 0, so the forget gate starts near 0.5 and the memory
    halves every step; a bias of 1 (Jozefowicz et al. 2015) starts it near 0.73.
    """
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if name.startswith("bias_ih"):
                H = param.shape[0] // 4
                param[H : 2 * H] = value  # gate order i, f, g, o
            elif name.startswith("bias_hh"):
                H = param.shape[0] // 4
                param[H : 2 * H] = 0.0


class SequenceModel(nn.Module):
    """Optional embedding -> one recurrent layer -> linear head.

    Args:
        kind: a key of :data:`BUILDERS`.
        input_size: features per step ``I``, or the vocabulary size when ``vocab=True``.
        hidden_size: ``H``.
        output_size: ``O``, outputs of the head.
        vocab: the input is token ids ``(B, T)``, embedded to ``hidden_size`` features.

    ``forward(x, lengths=None, every_step=False)``: ``x: (B, T, I)`` or ids ``(B, T)`` ->
    ``(B, O)`` from each sequence's last step, or ``(B, T, O)`` from every step.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, output_size: int, vocab: bool = False) -> None:
        super().__init__()
        if kind not in BUILDERS:
            raise ValueError(f"kind: expected one of {sorted(BUILDERS)}, got {kind!r}")
        self.embed = nn.Embedding(input_size, hidden_size) if vocab else None
        self.rnn = BUILDERS[kind](hidden_size if vocab else input_size, hidden_size)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor, lengths: Tensor | None = None, every_step: bool = False) -> Tensor:
        if self.embed is not None:
            x = self.embed(x)  # (B, T, H)
        out, _ = self.rnn(x, lengths=lengths)  # (B, T, H)
        if every_step:
            return self.head(out)  # (B, T, O)
        if lengths is None:
            return self.head(out[:, -1])  # (B, O)
        last = out[torch.arange(out.shape[0]), lengths.long() - 1]  # (B, H)
        return self.head(last)


# The experiments seed their generators with ``seed + k`` for offsets k up to 20_000 (test and
# validation sets); a seed must leave room for those under torch's 64-bit limit.
MAX_SEED = 2**63 - 1


def check_seed(seed: int) -> None:
    """Raise :class:`ConfigError` unless ``0 <= seed <= MAX_SEED``."""
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed: expected an integer from 0 to {MAX_SEED}, got {seed}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_steps(
    model: nn.Module,
    batch_loss: Callable[[], Tensor],
    steps: int,
    lr: float,
    clip: float | None = 1.0,
    optimizer: str = "adam",
    stop: Callable[[int], bool] | None = None,
) -> tuple[list[float], list[float]]:
    """Train ``model`` for ``steps`` steps; ``batch_loss()`` draws a batch and returns its loss.

    Args:
        clip: clip the global gradient norm to this value (``None``: no clipping).
        optimizer: ``"adam"`` or ``"sgd"``.
        stop: called after every step with the number of steps done; ``True`` ends training early
            (the model is put back in training mode afterwards, so the callback may evaluate it).

    Returns:
        The loss and the (unclipped) global gradient norm of every step. A non-finite loss is
        recorded and its step skipped, so that a run that diverged shows it rather than crashing.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    losses: list[float] = []
    grad_norms: list[float] = []
    model.train()
    for _ in range(steps):
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        if not math.isfinite(loss.item()):
            losses.append(float("nan"))
            grad_norms.append(float("nan"))
            continue
        loss.backward()
        norm = nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
        losses.append(loss.item())
        grad_norms.append(float(norm))
        if torch.isfinite(norm):
            opt.step()
        if stop is not None:
            done = stop(len(losses))
            model.train()
            if done:
                break
    return losses, grad_norms
