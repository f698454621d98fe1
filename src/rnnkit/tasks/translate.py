"""`rnnkit translate`: machine translation with an attentional encoder-decoder (seq2seq).

A sentence in one language in, its translation out::

    rnnkit translate train --train-source train.de --train-target train.en \\
                           --val-source val.de --val-target val.en
    rnnkit translate eval --run runs/translate/<id> --source val.de --target val.en --beam 5
    rnnkit translate predict --run runs/translate/<id> --input file.de --beam 5   # or - for stdin

and the same from Python::

    from rnnkit.tasks import translate
    result = translate.train(translate.Config(data=translate.DataConfig(
        train_source="train.de", train_target="train.en", val_source="val.de", val_target="val.en")))
    translator = translate.Translator.load(result.run_dir)
    translator.translate(["Ein Mann fährt Fahrrad."], beam_size=5)      # ['a man is riding a bike .']

The model (Luong, Pham & Manning 2015: global attention, no input feeding, so in training the
decoder runs over the whole target in one call of the recurrent layer):

* encoder: embedding → dropout → bidirectional :mod:`rnnkit.nn` GRU or LSTM run with ``lengths``
  → outputs ``(B, S, 2H)``; each layer's final states (both directions) start the decoder's layer
  through ``tanh(Linear(2H, 2H))`` (the *bridge*);
* decoder: embedding → dropout → a GRU or LSTM of ``2H`` units → ``o: (B, T, 2H)``;
* attention (:mod:`rnnkit.nn.attention`, ``dot``, ``general`` or ``additive``) of every ``o_t``
  over the source positions (padding masked) → context ``c_t: (B, T, 2H)`` (``none``, the
  ablation: the same context at every step, the mean of the encoder's outputs);
* ``h̃_t = tanh(W_c [o_t; c_t])`` → dropout → ``logits = W_out h̃_t`` over the target vocabulary
  (``W_out`` tied to the target embedding with ``--tie-weights``, which needs ``embed_dim = 2H``).

Training minimizes the cross-entropy of each target word given the previous reference words
(teacher forcing), padding ignored, with optional label smoothing. Translation is greedy or beam
search (:func:`beam_search`: a finished hypothesis leaves the beam; the best by
``log p / length ** length_penalty``), stopped at ``max_len_a * S + max_len_b`` words.

Text: both sides are tokenized with :func:`rnnkit.data.vocab.word_tokenize` (optionally
lower-cased) into word vocabularies built from the training pair files only (words seen fewer
than ``min_freq`` times → ``<unk>``). Output is the target words joined back into text
(:func:`~rnnkit.data.vocab.detokenize`: no space before ``.`` or inside ``t-shirt``). BLEU and chrF
are sacrebleu's corpus scores of that output against the raw reference lines (its default 13a
tokenization, ``lowercase`` as the run's), so they compare with other systems' sacrebleu figures
on the same references.

``--vocab subword`` learns a byte-level BPE per side instead (``--subword-size`` tokens, the
``tokenizers`` library): no word is unknown, and the output is the decoded text.

A run folder holds, besides the engine's files, ``source_vocab.json`` and ``target_vocab.json``
(``source_tokenizer.json`` and ``target_tokenizer.json`` for subwords), so ``eval`` and
``predict`` need nothing but the folder.

Shape legend: ``B`` batch, ``S`` source words, ``T`` target words, ``E`` embedding size, ``H``
encoder units per direction, ``V`` target vocabulary, ``K`` beam size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import BucketedBatches, pad_batch
from rnnkit.data.parallel import ParallelText, read_parallel, read_sentences, split_sentences
from rnnkit.data.tabular import decode_text
from rnnkit.data.vocab import SubwordVocab, WordVocab, detokenize, word_tokenize
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.io import atomic_write_json, atomic_write_text, pyplot, save_figure
from rnnkit.nn import GRU, LSTM
from rnnkit.nn.attention import ATTENTIONS, make_attention
from rnnkit.tasks.common import (
    HelpFormatter,
    check_fraction,
    check_positive,
    checked_sections,
    load_task_run,
    refuse_resume_changes,
    require,
    resumed_run_config,
    section_from_args,
)
from rnnkit.train import (
    FitResult,
    StepOutput,
    TrainConfig,
    Trainer,
    add_train_args,
    append_report,
    config_from_args,
    load_weights_into,
    seed_everything,
)

CELLS = ("gru", "lstm")
ATTENTION_CHOICES = (*ATTENTIONS, "none")  # none: the ablation, a fixed context (the mean encoder output)
VOCABS = ("word", "subword")
BOS, EOS = "<s>", "</s>"


# ===================================================================== configuration
@dataclass
class DataConfig:
    """Where the sentence pairs are and how text becomes ids."""

    train_source: str = ""  # one source sentence a line
    train_target: str = ""  # its translations, line for line
    val_source: str | None = None
    val_target: str | None = None
    lowercase: bool = True
    min_freq: int = 2  # keep words seen at least this often in the training files (else <unk>)
    max_vocab: int | None = None  # at most this many words per side (most frequent)
    vocab: str = "word"  # word | subword (byte-level BPE per side, learned on the training pairs)
    subword_size: int = 8000  # subword: BPE tokens per side (bytes + merges)
    max_train_pairs: int | None = None  # use only the first N training pairs (quick runs)
    bucket: bool = True  # group similar lengths into batches

    def validate(self) -> None:
        if not self.train_source or not self.train_target:
            raise ConfigError("train_source, train_target: both required (--train-source FILE --train-target FILE)")
        if (self.val_source is None) != (self.val_target is None):
            raise ConfigError("val_source, val_target: give both or neither (--val-source FILE --val-target FILE)")
        if self.min_freq < 1:
            raise ConfigError(f"min_freq: expected an integer >= 1, got {self.min_freq!r}")
        if self.max_vocab is not None and self.max_vocab < 1:
            raise ConfigError(f"max_vocab: expected an integer >= 1 or None (no limit), got {self.max_vocab!r}")
        if self.vocab not in VOCABS:
            raise ConfigError(f"vocab: expected one of {list(VOCABS)}, got {self.vocab!r}")
        if self.vocab == "subword" and self.subword_size < 257:
            raise ConfigError(f"subword_size: expected >= 257 (256 bytes + merges), got {self.subword_size!r}")
        if self.max_train_pairs is not None and self.max_train_pairs < 1:
            raise ConfigError(f"max_train_pairs: expected an integer >= 1, got {self.max_train_pairs!r}")


@dataclass
class ModelConfig:
    """The encoder-decoder's shape."""

    cell: str = "gru"  # gru | lstm
    embed_dim: int = 256
    hidden_size: int = 256  # encoder units per direction; the decoder has twice as many
    num_layers: int = 1  # encoder and decoder layers
    attention: str = "general"  # dot | general | additive
    attention_size: int = 256  # additive attention's hidden layer
    dropout: float = 0.3  # on embeddings, between layers and before the output layer
    tie_weights: bool = False  # output layer = target embedding (needs embed_dim == 2 * hidden_size)
    label_smoothing: float = 0.0

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell: expected one of {list(CELLS)}, got {self.cell!r}")
        if self.attention not in ATTENTION_CHOICES:
            raise ConfigError(f"attention: expected one of {list(ATTENTION_CHOICES)}, got {self.attention!r}")
        check_positive(self, "embed_dim", "hidden_size", "num_layers", "attention_size")
        check_fraction(self, "dropout", "label_smoothing")
        if self.tie_weights and self.embed_dim != 2 * self.hidden_size:
            raise ConfigError(
                f"tie_weights: needs embed_dim == 2 * hidden_size (the decoder's size), "
                f"got embed_dim {self.embed_dim} and hidden_size {self.hidden_size}"
            )


@dataclass
class DecodeConfig:
    """How ``eval`` (and the end-of-run report) translate: beam size and output length."""

    beam_size: int = 5  # 1: greedy
    length_penalty: float = 1.0  # rank finished hypotheses by log p / length ** this (0: raw log p)
    max_len_a: float = 1.5  # stop a translation at max_len_a * S + max_len_b words
    max_len_b: int = 10

    def validate(self) -> None:
        if self.beam_size < 1:
            raise ConfigError(f"beam_size: expected an integer >= 1, got {self.beam_size!r}")
        if not (math.isfinite(self.length_penalty) and self.length_penalty >= 0.0):
            raise ConfigError(f"length_penalty: expected a finite number >= 0, got {self.length_penalty!r}")
        if not (math.isfinite(self.max_len_a) and self.max_len_a >= 0.0) or self.max_len_b < 1:
            raise ConfigError(
                f"max_len_a, max_len_b: expected a number >= 0 and an integer >= 1, "
                f"got {self.max_len_a!r}, {self.max_len_b!r}"
            )

    def max_length(self, source_length: int) -> int:
        return int(self.max_len_a * source_length) + self.max_len_b


def default_train_config() -> TrainConfig:
    """The training options ``rnnkit translate train`` starts from: epochs, keep the best val loss."""
    return TrainConfig(
        steps=None, epochs=10, batch_size=64, lr=2e-3, clip_norm=1.0, schedule="cosine", warmup=200, eval_every=500
    )


@dataclass
class Config:
    """Everything a translation run needs; saved in the run folder's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=default_train_config)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.decode.validate()
        self.train.validate()


# ===================================================================== text → ids
class SentenceVocab:
    """One side's words → ids: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3, then the training
    words, most frequent first (a :class:`WordVocab` with two more reserved words)."""

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, vocab: WordVocab, lowercase: bool = True) -> None:
        if vocab.words[2:4] != [BOS, EOS]:
            raise ValueError(f"vocab: expected ids 2 and 3 to be {[BOS, EOS]}, got {vocab.words[2:4]}")
        self.vocab = vocab
        self.lowercase = lowercase

    @classmethod
    def build(
        cls, sentences: Sequence[str], lowercase: bool = True, min_freq: int = 1, max_size: int | None = None
    ) -> SentenceVocab:
        words = WordVocab.build((word_tokenize(s, lowercase) for s in sentences), min_freq, max_size).words[2:]
        words = [w for w in words if w not in (BOS, EOS)]
        return cls(WordVocab([WordVocab.PAD, WordVocab.UNK, BOS, EOS, *words]), lowercase)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, sentence: str) -> list[int]:
        """Word ids of a sentence (no ``<s>``/``</s>``); unseen words are ``unk_id``."""
        return self.vocab.encode(word_tokenize(sentence, self.lowercase))

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (:func:`~rnnkit.data.vocab.detokenize`), up to the first ``</s>``;
        ``<pad>`` and ``<s>`` dropped, an unknown word shown as ``<unk>``."""
        words = []
        for i in ids:
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                words.append(self.vocab.words[i])
        return detokenize(words)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The token of each id (specials included), for display."""
        return [self.vocab.words[i] for i in ids]

    def save(self, path: Path) -> None:
        self.vocab.save(path)

    @classmethod
    def load(cls, path: Path, lowercase: bool) -> SentenceVocab:
        vocab = WordVocab.load(path)
        try:
            return cls(vocab, lowercase)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None


class SubwordSentenceVocab:
    """One side's byte-level BPE (:class:`~rnnkit.data.vocab.SubwordVocab`) with the ids of
    :class:`SentenceVocab`'s four reserved tokens in front (BPE id ``i`` is ``i + 4`` here):
    nothing is unknown, and the output is the decoded bytes, spaces as they were learned."""

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<unk>", BOS, EOS)

    def __init__(self, bpe: SubwordVocab, lowercase: bool = True) -> None:
        self.bpe, self.lowercase = bpe, lowercase

    @classmethod
    def build(cls, sentences: Sequence[str], lowercase: bool = True, size: int = 8000) -> SubwordSentenceVocab:
        return cls(SubwordVocab.train([s.lower() if lowercase else s for s in sentences], vocab_size=size), lowercase)

    def __len__(self) -> int:
        return len(self.bpe) + 4

    def encode(self, sentence: str) -> list[int]:
        return [i + 4 for i in self.bpe.encode(sentence.lower() if self.lowercase else sentence)]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` up to the first ``</s>`` (reserved ids dropped)."""
        kept = []
        for i in ids:
            if i == self.eos_id:
                break
            if i >= 4:
                kept.append(i - 4)
        return self.bpe.decode(kept).strip()

    def tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.SPECIALS[i] if i < 4 else self.bpe.tokenizer.id_to_token(i - 4) for i in ids]

    def save(self, path: Path) -> None:
        self.bpe.save(path)

    @classmethod
    def load(cls, path: Path, lowercase: bool) -> SubwordSentenceVocab:
        return cls(SubwordVocab.load(path), lowercase)


Vocab = SentenceVocab | SubwordSentenceVocab


def vocab_files(run_dir: Path, kind: str) -> tuple[Path, Path]:
    """Where a run keeps its source and target vocabularies (``kind``: word or subword)."""
    suffix = "vocab.json" if kind == "word" else "tokenizer.json"
    return run_dir / f"source_{suffix}", run_dir / f"target_{suffix}"


def load_vocabs(run_dir: Path, config: DataConfig) -> tuple[Vocab, Vocab]:
    kind = SentenceVocab if config.vocab == "word" else SubwordSentenceVocab
    source, target = vocab_files(run_dir, config.vocab)
    return kind.load(source, config.lowercase), kind.load(target, config.lowercase)


def build_vocabs(text: ParallelText, config: DataConfig) -> tuple[Vocab, Vocab]:
    """Both sides' vocabularies, learned from the training pairs only."""
    if config.vocab == "subword":
        return (
            SubwordSentenceVocab.build(text.sources, config.lowercase, config.subword_size),
            SubwordSentenceVocab.build(text.targets, config.lowercase, config.subword_size),
        )
    return (
        SentenceVocab.build(text.sources, config.lowercase, config.min_freq, config.max_vocab),
        SentenceVocab.build(text.targets, config.lowercase, config.min_freq, config.max_vocab),
    )


@dataclass
class Pairs:
    """Encoded sentence pairs: ``sources[i]`` word ids, ``targets[i]`` = ``[<s>, ids…, </s>]``."""

    sources: list[list[int]]
    targets: list[list[int]]

    def __len__(self) -> int:
        return len(self.sources)


def encode_pairs(text: ParallelText, source_vocab: Vocab, target_vocab: Vocab) -> Pairs:
    """Ids of every pair (a source sentence without words is a :class:`DataError`)."""
    sources, targets = [], []
    for i, (src, tgt) in enumerate(zip(text.sources, text.targets, strict=True)):
        ids = source_vocab.encode(src)
        if not ids:
            raise DataError("no words in this sentence; expected at least one", path=text.source_path, line=i + 1)
        sources.append(ids)
        targets.append([target_vocab.bos_id, *target_vocab.encode(tgt), target_vocab.eos_id])
    return Pairs(sources, targets)


@dataclass
class Batch:
    """``source: (B, S)`` ids padded with 0, ``source_lengths: (B,)``; ``target: (B, T + 1)``
    ``[<s>, words…, </s>]`` padded with 0 (the decoder reads ``[:, :-1]`` and predicts ``[:, 1:]``)."""

    source: Tensor
    source_lengths: Tensor
    target: Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.source.to(device), self.source_lengths, self.target.to(device))


def collate(pairs: Pairs, indices: Sequence[int]) -> Batch:
    source, lengths = pad_batch([torch.tensor(pairs.sources[i]) for i in indices])  # (B, S), (B,)
    target, _ = pad_batch([torch.tensor(pairs.targets[i]) for i in indices])  # (B, T + 1)
    return Batch(source, lengths, target)


# ===================================================================== the model
@dataclass
class Encoded:
    """A source batch as the decoder reads it: ``outputs: (N, S, 2H)``, ``lengths: (N,)``,
    ``keys``: the attention's projection of ``outputs`` (computed once per batch)."""

    outputs: Tensor
    lengths: Tensor
    keys: Tensor

    def select(self, index: Tensor) -> Encoded:
        """The rows ``index: (N',)`` (beam search repeats each sentence ``K`` times)."""
        return Encoded(self.outputs[index], self.lengths[index.cpu()], self.keys[index])


class Seq2Seq(nn.Module):
    """The attentional encoder-decoder of the module docstring.

    ``forward(source: (B, S), source_lengths: (B,), target_in: (B, T)) -> logits: (B, T, V)``
    (teacher forcing). For translation: :meth:`encode`, then :meth:`start` and :meth:`step` one
    word at a time (used by :func:`greedy_decode` and :func:`beam_search`).
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        E, H, L = config.embed_dim, config.hidden_size, config.num_layers
        layer = LSTM if config.cell == "lstm" else GRU
        between = config.dropout if L > 1 else 0.0
        self.source_embed = nn.Embedding(source_vocab_size, E, padding_idx=SentenceVocab.pad_id)
        self.target_embed = nn.Embedding(target_vocab_size, E, padding_idx=SentenceVocab.pad_id)
        self.encoder = layer(E, H, num_layers=L, bidirectional=True, dropout=between)
        self.bridge = nn.ModuleList(nn.Linear(2 * H, 2 * H) for _ in range(2 if config.cell == "lstm" else 1))
        self.decoder = layer(E, 2 * H, num_layers=L, dropout=between)
        self.attention = (
            None
            if config.attention == "none"
            else make_attention(config.attention, 2 * H, 2 * H, config.attention_size)
        )
        self.combine = nn.Linear(4 * H, 2 * H)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * H, target_vocab_size)
        if config.tie_weights:
            self.out.weight = self.target_embed.weight

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Encoded, Any]:
        """``source: (B, S)``, ``lengths: (B,)`` -> the :class:`Encoded` batch and the decoder's
        initial state (``(L, B, 2H)``, a ``(h, c)`` pair for an LSTM)."""
        outputs, state = self.encoder(self.drop(self.source_embed(source)), lengths=lengths)  # (B, S, 2H)
        parts = state if isinstance(state, tuple) else (state,)  # each (L * 2, B, H)
        L, B = self.config.num_layers, source.shape[0]
        start = []
        for bridge, part in zip(self.bridge, parts, strict=True):
            both = part.view(L, 2, B, -1).transpose(1, 2).reshape(L, B, -1)  # (L, B, 2H): [forward; backward]
            start.append(torch.tanh(bridge(both)))
        if self.attention is None:  # the ablation: one context for every step, the mean over the source words
            keys = outputs.sum(1) / lengths.to(outputs.device).unsqueeze(1).to(outputs.dtype)  # (B, 2H)
        else:
            keys = self.attention.project_keys(outputs)
        return Encoded(outputs, lengths, keys), (tuple(start) if len(start) == 2 else start[0])

    def decode(self, target_in: Tensor, state: Any, encoded: Encoded) -> tuple[Tensor, Any, Tensor]:
        """``target_in: (N, T)`` word ids -> ``logits: (N, T, V)``, the decoder's final state and the
        attention weights ``(N, T, S)``."""
        o, state = self.decoder(self.drop(self.target_embed(target_in)), state)  # (N, T, 2H)
        if self.attention is None:
            T, S = o.shape[1], encoded.outputs.shape[1]
            context = encoded.keys.unsqueeze(1).expand(-1, T, -1)  # (N, T, 2H)
            valid = torch.arange(S, device=o.device) < encoded.lengths.to(o.device).unsqueeze(1)  # (N, S)
            weights = (valid / valid.sum(1, keepdim=True)).unsqueeze(1).expand(-1, T, -1)  # (N, T, S): uniform
        else:
            context, weights = self.attention(o, encoded.outputs, lengths=encoded.lengths, projected_keys=encoded.keys)
        attended = torch.tanh(self.combine(torch.cat([o, context], dim=-1)))  # (N, T, 2H)
        return self.out(self.drop(attended)), state, weights  # (N, T, V)

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor) -> Tensor:
        encoded, state = self.encode(source, source_lengths)
        return self.decode(target_in, state, encoded)[0]

    def step(self, words: Tensor, state: Any, encoded: Encoded) -> tuple[Tensor, Any]:
        """One decoder step: ``words: (N,)`` the previous words -> log-probabilities ``(N, V)`` of
        the next word, and the new state."""
        logits, state, _ = self.decode(words.unsqueeze(1), state, encoded)  # (N, 1, V)
        return F.log_softmax(logits.squeeze(1).float(), dim=-1), state


def _select_state(state: Any, index: Tensor) -> Any:
    """The decoder state's batch rows ``index`` (the state is ``(L, N, ·)``, or a pair of them)."""
    if isinstance(state, tuple):
        return tuple(s[:, index] for s in state)
    return state[:, index]


def sequence_log_prob(model: Seq2Seq, source: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    """Sum of ``log p(target_t | target_<t, source)`` per sentence, ``target: (B, T + 1)``
    ``[<s>, words…, </s>]`` padded with 0 (padding not counted). Returns ``(B,)``."""
    logits = model(source, lengths, target[:, :-1]).float()  # (B, T, V)
    log_probs = F.log_softmax(logits, dim=-1).gather(-1, target[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (log_probs * (target[:, 1:] != SentenceVocab.pad_id)).sum(1)


# ===================================================================== translation
@dataclass
class Hypothesis:
    """A translation: word ids (ending in ``</s>`` unless cut at the length limit) and its
    ``log_prob`` under the model."""

    ids: list[int]
    log_prob: float


@torch.no_grad()
def greedy_decode(model: Seq2Seq, source: Tensor, lengths: Tensor, config: DecodeConfig) -> list[Hypothesis]:
    """The most probable next word at every step, for each sentence of ``source: (B, S)``."""
    model.eval()
    encoded, state = model.encode(source, lengths)
    B = source.shape[0]
    words = torch.full((B,), SentenceVocab.bos_id, dtype=torch.long, device=source.device)
    limits = [config.max_length(int(n)) for n in lengths]
    hyps = [Hypothesis([], 0.0) for _ in range(B)]
    done = [False] * B
    for t in range(max(limits)):
        log_probs, state = model.step(words, state, encoded)  # (B, V)
        best, words = log_probs.max(-1)
        for b, (word, lp) in enumerate(zip(words.tolist(), best.tolist(), strict=True)):
            if not done[b]:
                hyps[b].ids.append(word)
                hyps[b].log_prob += lp
                done[b] = word == SentenceVocab.eos_id or t + 1 >= limits[b]
        if all(done):
            break
    return hyps


@torch.no_grad()
def beam_search(model: Seq2Seq, source: Tensor, lengths: Tensor, config: DecodeConfig) -> list[Hypothesis]:
    """Beam search of ``config.beam_size`` hypotheses per sentence of ``source: (B, S)``.

    Each step extends every live hypothesis by every word and keeps the ``2K`` best extensions:
    those ending in ``</s>`` are finished (and leave the beam), the best ``K`` others stay live. A
    sentence is done when it has ``K`` finished hypotheses, or at its length limit (its live ones
    then count as finished, cut). Returns, per sentence, the finished hypothesis with the best
    ``log_prob / len(ids) ** config.length_penalty``. With ``K = 1`` this is :func:`greedy_decode`;
    with ``K`` at least the number of possible outputs it is exact search."""
    model.eval()
    K, B = config.beam_size, source.shape[0]
    device = source.device
    encoded, state = model.encode(source, lengths)
    rows = torch.arange(B, device=device).repeat_interleave(K)  # (B K,): each sentence K times
    encoded, state = encoded.select(rows), _select_state(state, rows)
    live = [[Hypothesis([], 0.0)] + [Hypothesis([], -math.inf) for _ in range(K - 1)] for _ in range(B)]
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    limits = [config.max_length(int(n)) for n in lengths]
    words = torch.full((B * K,), SentenceVocab.bos_id, dtype=torch.long, device=device)
    scores = torch.tensor([[h.log_prob for h in beams] for beams in live], device=device)  # (B, K)
    for t in range(max(limits)):
        log_probs, state = model.step(words, state, encoded)  # (B K, V)
        V = log_probs.shape[-1]
        total = (scores.unsqueeze(-1) + log_probs.view(B, K, V)).view(B, K * V)  # (B, K V)
        top_scores, top_index = total.topk(min(2 * K, K * V), dim=-1)  # (B, 2K)
        next_rows, next_words, next_scores = [], [], []
        for b in range(B):
            kept: list[tuple[int, int, float]] = []
            if not done[b]:
                for rank, (score, index) in enumerate(zip(top_scores[b].tolist(), top_index[b].tolist(), strict=True)):
                    if score == -math.inf:
                        break
                    beam, word = divmod(index, V)
                    if word == SentenceVocab.eos_id:
                        if rank < K:  # an end among the K best: finished (further down it is dropped)
                            finished[b].append(Hypothesis([*live[b][beam].ids, word], score))
                        if len(finished[b]) == K:
                            break
                    elif len(kept) < K:
                        kept.append((beam, word, score))
                if t + 1 >= limits[b]:  # cut: the live ones count as finished
                    finished[b].extend(Hypothesis([*live[b][beam].ids, word], score) for beam, word, score in kept)
                done[b] = len(finished[b]) >= K or t + 1 >= limits[b] or not kept
            if done[b]:
                kept = []
            kept += [(0, SentenceVocab.pad_id, -math.inf)] * (K - len(kept))  # dead rows: never chosen again
            live[b] = [Hypothesis([*live[b][beam].ids, word], score) for beam, word, score in kept]
            next_rows += [b * K + beam for beam, _, _ in kept]
            next_words += [word for _, word, _ in kept]
            next_scores.append([score for _, _, score in kept])
        if all(done):
            break
        index = torch.tensor(next_rows, device=device)
        state = _select_state(state, index)
        words = torch.tensor(next_words, device=device)
        scores = torch.tensor(next_scores, device=device)
    alpha = config.length_penalty
    return [max(hyps, key=lambda h: h.log_prob / len(h.ids) ** alpha) for hyps in finished]


def translate_ids(
    model: Seq2Seq, sources: Sequence[Sequence[int]], config: DecodeConfig, batch_size: int = 64
) -> list[Hypothesis]:
    """Translate encoded sentences (any order; batched by length), greedy for ``beam_size`` 1."""
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    search = greedy_decode if config.beam_size == 1 else beam_search
    out: list[Hypothesis | None] = [None] * len(sources)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        source, lengths = pad_batch([torch.tensor(sources[i]) for i in chunk])
        for i, hyp in zip(chunk, search(model, source.to(device), lengths, config), strict=True):
            out[i] = hyp
    return out  # type: ignore[return-value]


@torch.no_grad()
def mean_loss(model: Seq2Seq, pairs: Pairs, batch_size: int = 128) -> dict[str, float]:
    """Cross-entropy per target word (``</s>`` included, no label smoothing) and its perplexity."""
    model.eval()
    device = next(model.parameters()).device
    total, words = 0.0, 0
    order = sorted(range(len(pairs)), key=lambda i: len(pairs.sources[i]))
    for start in range(0, len(order), batch_size):
        batch = collate(pairs, order[start : start + batch_size]).to(device)
        total -= sequence_log_prob(model, batch.source, batch.source_lengths, batch.target).sum().item()
        words += int((batch.target[:, 1:] != SentenceVocab.pad_id).sum())
    loss = total / words
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str], lowercase: bool) -> dict[str, float]:
    """sacrebleu's corpus BLEU and chrF of ``hypotheses`` against one reference each."""
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(list(hypotheses), [list(references)], lowercase=lowercase)
    chrf = sacrebleu.corpus_chrf(
        [h.lower() for h in hypotheses] if lowercase else list(hypotheses),
        [[r.lower() for r in references] if lowercase else list(references)],
    )
    return {"bleu": bleu.score, "chrf": chrf.score, "bleu_brevity_penalty": bleu.bp}


@torch.no_grad()
def attention_map(model: Seq2Seq, source: Sequence[int], output: Sequence[int]) -> Tensor:
    """The attention weights ``(len(output), len(source))`` with which ``model`` produced each
    word of ``output`` (word ids, ``</s>`` included) from ``source`` (word ids): row ``t`` is the
    distribution over source words when predicting ``output[t]``."""
    model.eval()
    device = next(model.parameters()).device
    src = torch.tensor([list(source)], device=device)  # (1, S)
    target_in = torch.tensor([[SentenceVocab.bos_id, *output[:-1]]], device=device)  # (1, T)
    encoded, state = model.encode(src, torch.tensor([len(source)]))
    return model.decode(target_in, state, encoded)[2][0].cpu()  # (T, S)


def plot_attention(weights: Tensor, source_words: Sequence[str], output_words: Sequence[str], path: Path) -> None:
    """Save one translation's attention ``weights: (T, S)`` as a PNG heat map (atomically)."""
    plt = pyplot()
    T, S = weights.shape
    fig, ax = plt.subplots(figsize=(1.5 + 0.35 * S, 1.2 + 0.3 * T))
    ax.imshow(weights.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(S), list(source_words), rotation=60, ha="right")
    ax.set_yticks(range(T), list(output_words))
    ax.set(xlabel="source", ylabel="output", title="attention weights")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


# ===================================================================== a trained run
def saved_sections(run: Path, saved: dict[str, Any]) -> tuple[DataConfig, ModelConfig, DecodeConfig]:
    """The data, model and decode sections of ``run``'s ``config.json`` (read as ``saved``),
    checked (:func:`~rnnkit.tasks.common.checked_sections`)."""
    sections = {"data": DataConfig, "model": ModelConfig, "decode": DecodeConfig}
    data, model, decode = checked_sections(run, saved, sections)
    return data, model, decode


class Translator:
    """A trained run, ready to translate: the model and both vocabularies.

    Load with :meth:`load` from a run folder (``checkpoints/best`` if there is one, else ``last``).
    """

    def __init__(self, model: Seq2Seq, source_vocab: Vocab, target_vocab: Vocab, decode: DecodeConfig):
        self.model = model.eval()
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.decode = decode

    @classmethod
    def load(cls, run_dir: str | os.PathLike, which: str = "best", device: str = "cpu") -> Translator:
        run, saved, state_dict = load_task_run(run_dir, "translate", which, device)
        data, model_config, decode = saved_sections(run, saved)
        source_vocab, target_vocab = load_vocabs(run, data)
        model = Seq2Seq(len(source_vocab), len(target_vocab), model_config)
        load_weights_into(model, state_dict, run)
        return cls(model.to(device), source_vocab, target_vocab, decode)

    def translate(self, sentences: Sequence[str], beam_size: int | None = None, **decode: Any) -> list[str]:
        """Translate each sentence (words never seen in training count as ``<unk>``); ``beam_size``
        and the other :class:`DecodeConfig` fields override the run's."""
        config = self._decode_config(beam_size, **decode)
        ids = [self.source_vocab.encode(s) for s in sentences]
        for i, x in enumerate(ids):
            if not x:
                raise ValueError(f"sentences[{i}]: no words ({sentences[i]!r}); expected a sentence")
        return [self.target_vocab.decode(h.ids) for h in translate_ids(self.model, ids, config)]

    def _decode_config(self, beam_size: int | None, **decode: Any) -> DecodeConfig:
        values = {**asdict(self.decode), **decode, **({"beam_size": beam_size} if beam_size is not None else {})}
        config = DecodeConfig(**values)
        config.validate()
        return config

    def evaluate(self, text: ParallelText, beam_size: int | None = None, **decode: Any) -> dict[str, Any]:
        """BLEU, chrF (sacrebleu, against the raw reference lines), loss and perplexity on pairs."""
        config = self._decode_config(beam_size, **decode)
        hypotheses = self.translate(text.sources, **asdict(config))
        pairs = encode_pairs(text, self.source_vocab, self.target_vocab)
        return {
            **corpus_scores(hypotheses, text.targets, self.source_vocab.lowercase),
            **mean_loss(self.model, pairs),
            "sentences": len(text),
            "beam_size": config.beam_size,
            "hypotheses": hypotheses,
        }


def evaluate_files(
    run_dir: str | os.PathLike,
    source: str | os.PathLike,
    target: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    beam_size: int | None = None,
) -> dict[str, Any]:
    """Translate ``source``, score against ``target``; write ``report.json`` and the translations
    (``hypotheses.txt``, one a line) into ``out_dir`` (default ``<run>/eval/<source name>/``).
    Both files are validated before anything is written."""
    translator = Translator.load(run_dir)
    text = read_parallel(source, target)
    report = {"source": str(source), "target": str(target), **translator.evaluate(text, beam_size)}
    folder = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval" / Path(source).name
    folder.mkdir(parents=True, exist_ok=True)
    hypotheses = report.pop("hypotheses")
    atomic_write_text(folder / "hypotheses.txt", "\n".join(hypotheses) + "\n")
    atomic_write_json(folder / "report.json", report)
    report["out_dir"] = str(folder)
    return report


def read_input_sentences(path: str) -> list[str]:
    """One sentence a line from a file or ``-`` (stdin), UTF-8; an empty line is a :class:`DataError`."""
    if path != "-":
        return read_sentences(path)
    return split_sentences(decode_text(sys.stdin.buffer.read(), "<stdin>", "one sentence per line"), "<stdin>")


# ===================================================================== training
def load_training_data(
    config: DataConfig, run_dir: Path | None = None
) -> tuple[Vocab, Vocab, Pairs, ParallelText | None]:
    """Read and validate the training (and validation) pairs, then build (or, resuming
    ``run_dir``, reload) both vocabularies from the training pairs only."""
    train_text = read_parallel(config.train_source, config.train_target)
    val_text = read_parallel(config.val_source, config.val_target) if config.val_source and config.val_target else None
    if config.max_train_pairs is not None:
        train_text = train_text.head(config.max_train_pairs)
    source_vocab, target_vocab = (
        load_vocabs(run_dir, config) if run_dir is not None else build_vocabs(train_text, config)
    )
    return source_vocab, target_vocab, encode_pairs(train_text, source_vocab, target_vocab), val_text


def resumed(config: Config) -> Config:
    """``config``, or when it resumes a run (``config.train.resume``) ``config`` with that run's
    data, model and decode sections from its ``config.json``: a resumed run goes on training the
    same model on the same pairs, whatever those sections of ``config`` say (the command line's
    defaults, when ``--resume RUN_DIR`` comes without the run's other options)."""
    if not config.train.resume:
        return config
    run = Path(config.train.resume)
    data, model, decode = saved_sections(run, resumed_run_config(run, "translate"))
    return replace(config, data=data, model=model, decode=decode)


def translation_step(model: nn.Module, batch: Batch, state: Any = None, *, label_smoothing: float = 0.0) -> StepOutput:
    """Teacher-forced cross-entropy per target word of one batch (the trainer's ``train_step``)."""
    logits = model(batch.source, batch.source_lengths, batch.target[:, :-1])  # (B, T, V)
    targets = batch.target[:, 1:]  # (B, T)
    loss = F.cross_entropy(
        logits.flatten(0, 1).float(),
        targets.flatten(),
        ignore_index=SentenceVocab.pad_id,
        label_smoothing=label_smoothing,
    )
    return StepOutput(loss, items=int((targets != SentenceVocab.pad_id).sum()))


def train(config: Config, *, runs_root: str | os.PathLike = "runs") -> FitResult:
    """Train a translation model; returns the trainer's :class:`FitResult` (``run_dir``: the run folder).

    Every data file is validated before the run folder is created; a resumed run
    (``config.train.resume``) keeps its own data, model and decode sections (:func:`resumed`).
    Evaluations report the validation loss and perplexity (``monitor`` them), and greedy BLEU; at
    the end ``report.md`` gets the best checkpoint's BLEU and chrF on the validation pairs with
    ``config.decode``'s beam.
    """
    config = resumed(config)
    config.validate()
    resume = Path(config.train.resume) if config.train.resume else None
    source_vocab, target_vocab, train_pairs, val_text = load_training_data(config.data, resume)
    val_pairs = encode_pairs(val_text, source_vocab, target_vocab) if val_text is not None else None
    seed_everything(config.train.seed)
    model = Seq2Seq(len(source_vocab), len(target_vocab), config.model)
    batches = BucketedBatches(
        [len(s) for s in train_pairs.sources],
        config.train.batch_size,
        lambda indices: collate(train_pairs, indices),
        seed=config.train.seed,
        bucket_factor=50 if config.data.bucket else 0,
    )
    greedy = DecodeConfig(beam_size=1, max_len_a=config.decode.max_len_a, max_len_b=config.decode.max_len_b)

    def evaluate(trained: Seq2Seq) -> dict[str, float]:
        assert val_pairs is not None and val_text is not None
        hypotheses = [target_vocab.decode(h.ids) for h in translate_ids(trained, val_pairs.sources, greedy)]
        bleu = corpus_scores(hypotheses, val_text.targets, config.data.lowercase)["bleu"]
        return {**mean_loss(trained, val_pairs), "greedy_bleu": bleu}

    task_config = {"data": asdict(config.data), "model": asdict(config.model), "decode": asdict(config.decode)}
    trainer = Trainer(
        model,
        config.train,
        train_step=partial(translation_step, label_smoothing=config.model.label_smoothing),
        evaluate=evaluate if val_pairs is not None else None,
        task="translate",
        task_config=task_config,
        runs_root=runs_root,
    )
    if trainer.is_main and resume is None:
        source_file, target_file = vocab_files(trainer.run_dir, config.data.vocab)
        source_vocab.save(source_file)
        target_vocab.save(target_file)
    if not config.train.quiet:
        print(
            f"{len(train_pairs)} training pairs, vocabulary {len(source_vocab)} source / {len(target_vocab)} target "
            f"words, {sum(p.numel() for p in model.parameters()):,} parameters",
            file=sys.stderr,
        )
    result = trainer.fit(batches)
    if trainer.is_main and val_text is not None and result.run_dir is not None:
        _report_run(result.run_dir, val_text, config)
    return result


def _report_run(run_dir: Path, val_text: ParallelText, config: Config) -> None:
    """Add the best checkpoint's validation BLEU/chrF (with the run's beam) to ``report.md``."""
    translator = Translator.load(run_dir)
    report = translator.evaluate(val_text)
    hypotheses = report.pop("hypotheses")
    folder = run_dir / "eval" / Path(val_text.source_path).name
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "hypotheses.txt", "\n".join(hypotheses) + "\n")
    atomic_write_json(folder / "report.json", {"source": val_text.source_path, **report})
    (run_dir / "plots").mkdir(exist_ok=True)
    source_ids = translator.source_vocab.encode(val_text.sources[0])
    output_ids = translate_ids(translator.model, [source_ids], translator.decode)[0].ids
    plot_attention(
        attention_map(translator.model, source_ids, output_ids),
        translator.source_vocab.tokens(source_ids),
        translator.target_vocab.tokens(output_ids),
        run_dir / "plots" / "attention.png",
    )
    lines = [
        "## Translation",
        "",
        f"Best checkpoint on `{val_text.source_path}` → `{val_text.target_path}` ({len(val_text)} pairs, "
        f"beam {report['beam_size']}, sacrebleu 13a, lowercase {config.data.lowercase}):",
        "",
        f"- BLEU {report['bleu']:.2f}, chrF {report['chrf']:.2f}, brevity penalty {report['bleu_brevity_penalty']:.3f}",
        f"- loss {report['loss']:.4f} nats per word, perplexity {report['perplexity']:.2f}",
        "",
        "First translations:",
        "",
    ]
    for src, hyp, ref in list(zip(val_text.sources, hypotheses, val_text.targets, strict=True))[:5]:
        lines += [f"- source: {src}", f"  - output: {hyp}", f"  - reference: {ref}"]
    lines += ["", "The attention of the first translation (row: output word, column: source word):", ""]
    lines += ["![attention](plots/attention.png)"]
    append_report(run_dir, "\n".join(lines))


# ===================================================================== command line
def add_parser(subparsers) -> None:
    """``rnnkit translate train|eval|predict``."""
    from rnnkit.cli import add_config_option

    verb = subparsers.add_parser("translate", help="machine translation (seq2seq + attention): train, eval, predict")
    jobs = verb.add_subparsers(dest="job", metavar="JOB", required=True)
    fmt = HelpFormatter

    train_parser = jobs.add_parser("train", help="train on sentence-pair files", formatter_class=fmt)
    _add_data_args(train_parser)
    _add_model_args(train_parser)
    _add_decode_args(train_parser, DecodeConfig())
    add_train_args(train_parser, default_train_config())
    add_config_option(train_parser)
    train_parser.set_defaults(func=run_train)

    eval_parser = jobs.add_parser("eval", help="BLEU, chrF, loss on sentence-pair files", formatter_class=fmt)
    eval_parser.add_argument("--run", default=None, help="run folder of `rnnkit translate train`; required")
    eval_parser.add_argument("--source", default=None, help="source sentences, one a line; required")
    eval_parser.add_argument("--target", default=None, help="their reference translations, line for line; required")
    eval_parser.add_argument(
        "--out-dir", default=None, help="where report.json and hypotheses.txt go (default <run>/eval/<source name>)"
    )
    eval_parser.add_argument("--beam", type=int, default=None, help="beam size (default: the run's; 1: greedy)")
    eval_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_option(eval_parser)
    eval_parser.set_defaults(func=run_eval)

    predict_parser = jobs.add_parser("predict", help="translate each input line", formatter_class=fmt)
    predict_parser.add_argument("--run", default=None, help="run folder of `rnnkit translate train`; required")
    predict_parser.add_argument("--input", default="-", help="source sentences, one a line, or - for stdin")
    predict_parser.add_argument("--output", default="-", help="file to write (atomically), or - for stdout")
    predict_parser.add_argument("--beam", type=int, default=None, help="beam size (default: the run's; 1: greedy)")
    add_config_option(predict_parser)
    predict_parser.set_defaults(func=run_predict)


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    d = DataConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--train-source", default="", help="training source sentences, one a line; required")
    g.add_argument("--train-target", default="", help="their translations, line for line; required")
    g.add_argument("--val-source", default=None, help="validation source sentences")
    g.add_argument("--val-target", default=None, help="their translations")
    g.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=d.lowercase, help="lower-case text")
    g.add_argument("--min-freq", type=int, default=d.min_freq, help="minimum count of a word in training (else <unk>)")
    g.add_argument("--max-vocab", type=int, default=d.max_vocab, help="maximum words per side")
    g.add_argument("--vocab", choices=VOCABS, default=d.vocab, help="word vocabularies, or byte-level BPE subwords")
    g.add_argument("--subword-size", type=int, default=d.subword_size, help="--vocab subword: tokens per side")
    g.add_argument("--max-train-pairs", type=int, default=None, help="use only the first N training pairs")
    g.add_argument(
        "--bucket", action=argparse.BooleanOptionalAction, default=d.bucket, help="batch similar lengths together"
    )


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    m = ModelConfig()
    g = parser.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=m.cell, help="recurrent cell of encoder and decoder")
    g.add_argument("--embed-dim", type=int, default=m.embed_dim, help="word embedding size (both sides)")
    g.add_argument("--hidden-size", type=int, default=m.hidden_size, help="encoder units per direction")
    g.add_argument("--num-layers", type=int, default=m.num_layers, help="layers of encoder and decoder")
    g.add_argument(
        "--attention", choices=ATTENTION_CHOICES, default=m.attention, help="attention score (none: no attention)"
    )
    g.add_argument("--attention-size", type=int, default=m.attention_size, help="additive attention's hidden layer")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout on embeddings, layers, output")
    g.add_argument(
        "--tie-weights",
        action=argparse.BooleanOptionalAction,
        default=m.tie_weights,
        help="output layer shares the target embedding (embed_dim must be 2 * hidden_size)",
    )
    g.add_argument("--label-smoothing", type=float, default=m.label_smoothing, help="label smoothing of the loss")


def _add_decode_args(parser: argparse.ArgumentParser, d: DecodeConfig) -> None:
    g = parser.add_argument_group("translation (the end-of-run report; eval and predict default to it)")
    g.add_argument("--beam-size", type=int, default=d.beam_size, help="beam size (1: greedy)")
    g.add_argument(
        "--length-penalty", type=float, default=d.length_penalty, help="rank by log p / length ** this (0: log p)"
    )
    g.add_argument("--max-len-a", type=float, default=d.max_len_a, help="output at most a * source words + b")
    g.add_argument("--max-len-b", type=int, default=d.max_len_b, help="see --max-len-a")


def config_from_cli(args: argparse.Namespace) -> Config:
    """The :class:`Config` of ``rnnkit translate train`` options."""
    data = section_from_args(DataConfig, args)
    model = section_from_args(ModelConfig, args)
    decode = section_from_args(DecodeConfig, args)
    if args.resume:
        saved_data, saved_model, saved_decode = saved_sections(
            Path(args.resume), resumed_run_config(args.resume, "translate")
        )
        sections = {"data": (saved_data, data), "model": (saved_model, model), "decode": (saved_decode, decode)}
        refuse_resume_changes("translate", args.resume, args, sections)
    return Config(data, model, decode, config_from_args(args))


def run_train(args: argparse.Namespace) -> int:
    config = config_from_cli(args)
    result = train(config)
    print(f"run folder: {result.run_dir} ({result.stop_reason} after {result.steps} steps)")
    if result.best_metric is not None:
        print(f"best val {config.train.monitor}: {result.best_metric:.4f} (step {result.best_step})")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    require(args, "run", "source", "target")
    beam = _beam(args)
    report = evaluate_files(args.run, args.source, args.target, args.out_dir, beam)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"BLEU {report['bleu']:.2f}  chrF {report['chrf']:.2f}  loss {report['loss']:.4f}  "
            f"perplexity {report['perplexity']:.2f}  ({report['sentences']} sentences, beam {report['beam_size']})"
        )
        print(f"report.json and hypotheses.txt in {report['out_dir']}")
    return 0


def _beam(args: argparse.Namespace) -> int | None:
    if args.beam is not None and args.beam < 1:
        raise ConfigError(f"--beam: expected an integer >= 1, got {args.beam}")
    return args.beam


def run_predict(args: argparse.Namespace) -> int:
    require(args, "run")
    beam = _beam(args)
    translator = Translator.load(args.run)
    sentences = read_input_sentences(args.input)
    text = "\n".join(translator.translate(sentences, beam)) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(args.output), text)
    return 0
