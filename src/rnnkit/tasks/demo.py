"""`rnnkit demo`: a character-level LSTM language model on text that ships with Python.

Trains on the English help texts of ``pydoc_data.topics`` (no download, no data from the user)
for a few minutes with a progress bar, then prints a generated sample.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from rnnkit.nn import LSTM


def demo_text() -> str:
    """About 0.7 MB of English from Python's own documentation (``pydoc_data.topics``)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> linear over characters. ``tokens: (B, T)`` -> logits ``(B, T, V)``."""

    def __init__(self, vocab_size: int, hidden: int = 256, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden)
        self.rnn = LSTM(hidden, hidden, num_layers=layers, dropout=dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.embed(tokens), state)  # (B, T, H)
        return self.head(out), state


@torch.no_grad()
def sample(model: CharLSTM, chars: list[str], prompt: str, n: int, temperature: float = 0.8) -> str:
    """Generate ``n`` characters after ``prompt``, carrying the state (O(1) work per character)."""
    model.eval()
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([[index[c] for c in prompt if c in index] or [0]])
    logits, state = model(ids)
    out = []
    for _ in range(n):
        probs = F.softmax(logits[0, -1] / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1)
        out.append(chars[int(nxt)])
        logits, state = model(nxt.view(1, 1), state)
    return prompt + "".join(out)


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    text = demo_text()
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([lookup[c] for c in text], dtype=torch.long)  # (N,)
    model = CharLSTM(len(chars))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    B, T = 32, 128
    deadline = time.monotonic() + args.minutes * 60
    bar = tqdm(desc="training", unit="step", disable=args.quiet)
    step, first = 0, None
    while time.monotonic() < deadline:
        starts = torch.randint(0, len(data) - T - 1, (B,))
        batch = torch.stack([data[s : s + T + 1] for s in starts])  # (B, T+1)
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        first = first if first is not None else loss.item()
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    print(f"trained {step} steps: loss {first:.3f} -> {loss.item():.3f} nats/char")
    print(sample(model, chars, "The ", 400))
    return 0


def add_parser(subparsers) -> None:
    from rnnkit.cli import add_config_option

    p = subparsers.add_parser(
        "demo",
        help="train a character LSTM on Python's own docs, then generate text",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=2.0, help="training time budget")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_option(p)
    p.set_defaults(func=run)
