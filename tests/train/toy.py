"""A tiny, seeded sequence task for the training-engine tests (and the torchrun entry point).

The model embeds tokens, runs an rnnkit LSTM and predicts a token per step. The stream task is
"repeat the previous token": every position is learnable inside a chunk except the first one of
each chunk, whose answer lies in the previous chunk — only a carried state can get it right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.data.batching import StreamChunk, TBPTTStream
from rnnkit.nn import LSTM
from rnnkit.train import StepOutput

VOCAB = 8


class TinyLM(nn.Module):
    """``tokens: (B, T)`` -> logits ``(B, T, V)``, final LSTM state."""

    def __init__(self, vocab: int = VOCAB, hidden: int = 24, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 12)
        self.drop = nn.Dropout(dropout)
        self.rnn = LSTM(12, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.drop(self.embed(tokens)), state)  # (B, T, H)
        return self.head(out), state


def repeat_previous_stream(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens ``(n,)`` and targets ``(n,)`` where ``targets[t] = tokens[t - 1]``."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (n,), generator=g)
    targets = torch.cat([tokens[:1], tokens[:-1]])
    return tokens, targets


def stream(batch_size: int = 8, bptt: int = 4, n: int = 4000) -> TBPTTStream:
    tokens, targets = repeat_previous_stream(n)
    return TBPTTStream(tokens, batch_size, bptt, targets=targets)


def carried_step(model, batch: StreamChunk, state):
    """Truncated BPTT: return the final state so the trainer carries it into the next chunk."""
    logits, state = model(batch.inputs, state)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())
    return StepOutput(loss, state=state, items=batch.targets.numel())


def reset_step(model, batch: StreamChunk, state):
    """Each chunk on its own (no state returned, so none is carried)."""
    logits, _ = model(batch.inputs)
    return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())


@torch.no_grad()
def first_position_accuracy(model, batches: TBPTTStream, carry: bool, chunks: int = 40) -> float:
    """Accuracy on the first step of each chunk (the one that needs the previous chunk)."""
    state, right, total = None, 0, 0
    for k in range(chunks):
        chunk = batches(k)
        logits, new_state = model(chunk.inputs, state if carry else None)
        state = new_state
        right += int((logits[:, 0].argmax(-1) == chunk.targets[:, 0]).sum())
        total += chunk.targets.shape[0]
    return right / total


def sequence_batches(n: int = 256, length: int = 6, seed: int = 1):
    """Whole short sequences (full BPTT): ``(tokens (N, T), targets (N, T))`` for the same task."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (n, length), generator=g)
    targets = torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1)
    return tokens, targets
