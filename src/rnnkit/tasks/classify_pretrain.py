"""Pretraining a classifier's embedding and recurrent encoder as a bidirectional language model.

Semi-supervised sequence learning (Dai & Le 2015) with the biLM objective of ELMo (Peters et al.
2018), on **the training split's own text only** (no outside data): before the classifier is
trained, its embedding and its one-layer encoder learn to predict words. The forward direction's
output at word ``t`` predicts word ``t+1``, the backward direction's output at ``t`` predicts word
``t-1``. With one layer the two directions never see each other, so neither sees the word it
predicts. The softmax is shared by both directions and by default tied to the embedding
(Press & Wolf 2017): ``logits = (W_p h_t) · E^T + b``; ``tie_weights=False`` uses a separate
``Linear(H, V)``. After pretraining, the classifier starts from the pretrained ``embed.*`` and
``encoder.*`` weights (:func:`copy_pretrained`); its pooling and output layer start fresh.

The text: the unique token sequences of the training split. ``text="longest"`` (default) keeps
only those not contained in a longer one (SST-2's 67,349 phrases are mostly pieces of about 6,900
sentences: 140k tokens instead of 667k, and no sentence counted many times over); ``"all"``
keeps every unique sequence. Sequences of one token teach nothing and are left out. One in 50
sequences (seeded) is held out to measure the language model's loss (nats per predicted word).

Shape legend: ``B`` batch, ``T`` time steps (tokens), ``E`` embedding size, ``H`` hidden size
per direction, ``D`` directions, ``V`` vocabulary, ``N`` predicted words.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import pad_batch
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.tasks.pooling import valid_mask
from rnnkit.train import FitResult, StepOutput, TrainConfig, Trainer

PRETRAIN_TEXTS = ("longest", "all")
HELDOUT_EVERY = 50  # one sequence in this many is held out to measure the language model


@dataclass
class PretrainConfig:
    """Bidirectional language-model pretraining of the embedding and encoder (``epochs=0``: off)."""

    epochs: int = 0  # passes over the pretraining text; 0: no pretraining
    text: str = "longest"  # longest: unique sequences not inside a longer one | all: every unique sequence
    tie_weights: bool = True  # softmax tied to the embedding (with a Linear(H, E) projection)
    lr: float = 5e-3  # peak learning rate (AdamW, linear warmup, cosine decay to 0)
    batch_size: int = 16  # small batches: more updates per epoch (SST-2: LM loss 6.23 vs 6.53 nats at 64, lr 2e-3)
    dropout: float = 0.5  # on the encoder's outputs before the softmax

    def validate(self, model: Any = None) -> None:
        """Raise :class:`ConfigError` naming the first bad field; ``model`` (a classify
        ``ModelConfig``) is checked for an encoder that can be pretrained without a leak."""
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise ConfigError(f"pretrain.epochs (--pretrain-lm-epochs): expected an integer >= 0, got {self.epochs!r}")
        if self.text not in PRETRAIN_TEXTS:
            raise ConfigError(f"pretrain.text: expected one of {list(PRETRAIN_TEXTS)}, got {self.text!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"pretrain.lr: expected a number > 0, got {self.lr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"pretrain.batch_size: expected an integer >= 1, got {self.batch_size!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"pretrain.dropout: expected a probability in [0, 1), got {self.dropout!r}")
        if self.epochs and model is not None:
            _check_pretrainable(model)


def _check_pretrainable(model: Any) -> None:
    if model.cell == "bow":
        raise ConfigError(
            "pretrain.epochs (--pretrain-lm-epochs): cell 'bow' has no recurrent encoder to pretrain; "
            "expected --cell lstm, gru or rnn, or --pretrain-lm-epochs 0"
        )
    if model.bidirectional and model.num_layers != 1:
        raise ConfigError(
            f"pretrain.epochs (--pretrain-lm-epochs): a bidirectional encoder must have num_layers 1 to be "
            f"pretrained as a language model (a second layer sees both directions, so it would see the word it "
            f"predicts); got num_layers {model.num_layers}"
        )


# ===================================================================== the text
def pretraining_sequences(ids: Sequence[Sequence[int]], text: str = "longest") -> list[list[int]]:
    """The unique token sequences of length >= 2 in ``ids``; with ``text="longest"`` only those
    that are not a contiguous part of a longer one. Longest first, then in first-seen order."""
    if text not in PRETRAIN_TEXTS:
        raise ValueError(f"text: expected one of {list(PRETRAIN_TEXTS)}, got {text!r}")
    unique = list(dict.fromkeys(tuple(x) for x in ids if len(x) >= 2))
    unique.sort(key=len, reverse=True)  # stable: first-seen order within a length
    if text == "all":
        return [list(x) for x in unique]
    kept: list[list[int]] = []
    haystack = ""  # the kept sequences as " 4 17 9 " strings, one per line
    for seq in unique:
        needle = " " + " ".join(map(str, seq)) + " "
        if needle not in haystack:
            kept.append(list(seq))
            haystack += needle + "\n"  # appended in place (CPython), not copied each time
    return kept


def split_heldout(sequences: list[list[int]], seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """(training, held-out) sequences: one in :data:`HELDOUT_EVERY` (seeded) is held out, none when
    there are fewer than two sequences."""
    if len(sequences) < 2:
        return sequences, []
    order = list(range(len(sequences)))
    random.Random(seed).shuffle(order)
    held = set(order[::HELDOUT_EVERY]) if len(sequences) >= HELDOUT_EVERY else {order[0]}
    train = [s for i, s in enumerate(sequences) if i not in held]
    return train, [sequences[i] for i in sorted(held)]


# ===================================================================== the model
class BiLM(nn.Module):
    """A (bi)directional language model over a classifier's ``embed`` and one-layer ``encoder``.

    Call: ``model(tokens, lengths)`` with ``tokens: (B, T)`` (``0`` = padding), ``lengths: (B,)``
    → ``(loss, n)``: the mean cross-entropy (nats) over the ``n`` predicted words (whatever sits
    past a sequence's length is neither read nor predicted). A one-direction encoder gives a
    forward language model only.
    """

    def __init__(
        self,
        embed: nn.Embedding,
        encoder: nn.Module,
        hidden_size: int,
        bidirectional: bool,
        tie_weights: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.embed = embed
        self.encoder = encoder
        self.hidden_size = hidden_size
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        vocab, embed_dim = embed.weight.shape
        self.tie_weights = tie_weights
        if tie_weights:
            self.project = nn.Linear(hidden_size, embed_dim)
            self.bias = nn.Parameter(torch.zeros(vocab))
        else:
            self.decoder = nn.Linear(hidden_size, vocab)

    def decode(self, h: Tensor) -> Tensor:
        """Logits ``(N, V)`` of the encoder outputs ``h: (N, H)``."""
        if self.tie_weights:
            return F.linear(self.project(h), self.embed.weight, self.bias)  # (N, V)
        return self.decoder(h)  # (N, V)

    def predictions(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The outputs that predict a word and the words they predict: ``(N, H)``, ``(N,)``."""
        if tokens.dim() != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(
                f"tokens, lengths: expected (B, T) and (B,), got {tuple(tokens.shape)} and {tuple(lengths.shape)}"
            )
        H, T = self.hidden_size, tokens.shape[1]
        outputs, _ = self.encoder(self.embed(tokens), lengths=lengths)  # (B, T, D*H)
        valid = valid_mask(lengths.to(tokens.device), T)  # (B, T)
        nxt = F.pad(tokens[:, 1:], (0, 1))  # (B, T): word t+1
        parts = [(outputs[..., :H], nxt, F.pad(valid[:, 1:], (0, 1), value=False))]  # t + 1 < length
        if self.directions == 2:
            prev = F.pad(tokens[:, :-1], (1, 0))  # (B, T): word t-1
            parts.append((outputs[..., H:], prev, F.pad(valid[:, :-1], (1, 0), value=False) & valid))  # 0 < t < length
        h = torch.cat([o[keep] for o, _, keep in parts])  # (N, H)
        targets = torch.cat([y[keep] for _, y, keep in parts])  # (N,)
        return h, targets

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, int]:
        h, targets = self.predictions(tokens, lengths)  # (N, H), (N,)
        logits = self.decode(self.dropout(h))  # (N, V)
        return F.cross_entropy(logits, targets), int(targets.numel())


@dataclass
class LMBatch:
    """Padded sequences ``tokens: (B, T)`` (``0`` = padding) and ``lengths: (B,)``."""

    tokens: Tensor
    lengths: Tensor

    def to(self, device: torch.device | str) -> LMBatch:
        return LMBatch(self.tokens.to(device), self.lengths.to(device))


def collate_lm(sequences: Sequence[Sequence[int]], indices: Sequence[int]) -> LMBatch:
    """The :class:`LMBatch` of ``sequences`` at ``indices``."""
    tokens, lengths = pad_batch([torch.tensor(sequences[i], dtype=torch.long) for i in indices])  # (B, T), (B,)
    return LMBatch(tokens, lengths)


def lm_step(model: nn.Module, batch: LMBatch, state: Any = None) -> StepOutput:
    """The trainer's ``train_step``: the language model's mean cross-entropy over the batch."""
    loss, n = model(batch.tokens, batch.lengths)
    return StepOutput(loss, items=n)


@torch.no_grad()
def lm_loss(model: BiLM, sequences: Sequence[Sequence[int]], batch_size: int = 256) -> float:
    """Mean cross-entropy (nats per predicted word) of ``sequences``; eval mode, no dropout."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    total, count = 0.0, 0
    for k in range(0, len(order), batch_size):
        batch = collate_lm(sequences, order[k : k + batch_size]).to(device)
        h, targets = model.predictions(batch.tokens, batch.lengths)  # (N, H), (N,)
        total += F.cross_entropy(model.decode(h), targets, reduction="sum").item()
        count += targets.numel()
    return total / max(1, count)


# ===================================================================== pretraining through the engine
def pretrain_train_config(pretrain: PretrainConfig, train: TrainConfig, run_dir: Path, n: int) -> TrainConfig:
    """The engine's options for pretraining on ``n`` sequences: ``pretrain``'s length, batch and
    lr (warmup then cosine decay), and ``train``'s optimizer, clipping, seed, device and logging."""
    steps_per_epoch = math.ceil(n / pretrain.batch_size)
    return TrainConfig(
        steps=None,
        epochs=pretrain.epochs,
        batch_size=pretrain.batch_size,
        lr=pretrain.lr,
        optimizer=train.optimizer,
        weight_decay=train.weight_decay,
        schedule="cosine",
        warmup=min(200, steps_per_epoch * pretrain.epochs // 10),
        clip_norm=train.clip_norm,
        seed=train.seed,
        device=train.device,
        precision=train.precision,
        monitor="loss",
        mode="min",
        quiet=train.quiet,
        log_format=train.log_format,
        log_every=train.log_every,
        plots=train.plots,
        run_dir=str(run_dir),
    )


def pretrain(
    model: BiLM,
    sequences: list[list[int]],
    config: PretrainConfig,
    train: TrainConfig,
    run_dir: Path,
    make_batches: Callable[[list[list[int]], int, int], Any],
    task_config: dict[str, Any],
) -> FitResult:
    """Train ``model`` as a language model on ``sequences`` (one in 50 held out for its loss) with
    the engine, in the run folder ``run_dir``; ``make_batches(sequences, batch_size, seed)`` gives
    the engine its batches. Returns the engine's :class:`FitResult`."""
    train_seqs, heldout = split_heldout(sequences, train.seed)
    if not train_seqs:
        raise ConfigError("pretrain.epochs: the training split has no text of two or more tokens to pretrain on")
    cfg = pretrain_train_config(config, train, run_dir, len(train_seqs))

    def evaluate(trained: nn.Module) -> dict[str, float]:
        loss = lm_loss(trained, heldout)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}

    trainer = Trainer(
        model,
        cfg,
        train_step=lm_step,
        evaluate=evaluate if heldout else None,
        task="classify-pretrain",
        task_config={**task_config, "pretrain_sequences": len(train_seqs), "heldout_sequences": len(heldout)},
    )
    return trainer.fit(make_batches(train_seqs, cfg.batch_size, cfg.seed))


def copy_pretrained(classifier: nn.Module, pretrained: dict[str, Tensor]) -> list[str]:
    """Copy the ``embed.*`` and ``encoder.*`` tensors of a :class:`BiLM` state dict into the
    classifier (in place, so an optimizer built on its parameters keeps them). Returns the names
    copied; a missing name or a shape that differs is a :class:`CheckpointError`."""
    own = classifier.state_dict()
    names = [k for k in own if k.startswith(("embed.", "encoder."))]
    missing = [k for k in names if k not in pretrained]
    if missing or not names:
        raise CheckpointError(f"pretrained weights: missing {missing or 'embed.* / encoder.*'}")
    for k in names:
        if pretrained[k].shape != own[k].shape:
            raise CheckpointError(
                f"pretrained weights: {k} has shape {tuple(pretrained[k].shape)}, expected {tuple(own[k].shape)}"
            )
    with torch.no_grad():
        for k in names:
            own[k].copy_(pretrained[k])
    return names
