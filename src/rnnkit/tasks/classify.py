"""`rnnkit classify`: text classification (e.g. sentiment) with a bidirectional recurrent encoder.

A sentence in, a label out::

    rnnkit classify train --train train.tsv --val dev.tsv --cell lstm --pool max
    rnnkit classify eval --run runs/classify/<id> --data dev.tsv
    rnnkit classify predict --run runs/classify/<id> --input file.txt   # or - for stdin

and the same from Python::

    from rnnkit.tasks import classify
    run_dir = classify.train(classify.Config(data=classify.DataConfig(train="train.tsv", val="dev.tsv"))).run_dir
    report = classify.evaluate_file(run_dir, "dev.tsv")
    predictions = classify.Classifier.load(run_dir).predict(["a gripping , funny film"])

The model: token ids ``(B, T)`` → embedding (with embedding dropout) → a recurrent encoder from
:mod:`rnnkit.nn` run with ``lengths`` (so padding never reaches the result) → pooling over time
(:mod:`rnnkit.tasks.pooling`: last, max, mean or additive attention) → dropout → linear classifier.
``--cell bow`` replaces the recurrent encoder with the mean of the word embeddings and a hidden
layer: the bag-of-words MLP baseline, blind to word order.

``--adversarial-eps EPS`` adds adversarial training on the embeddings (Miyato, Dai & Goodfellow
2017): each step's loss is ``loss(clean) + loss(embedded + r)``, ``r`` the fast-gradient
perturbation of L2 norm ``EPS`` per sentence (:func:`adversarial_classification_step`);
``--vat-eps EPS_V`` the same paper's virtual adversarial training, a KL term that needs no label.

``--char-ngrams BUCKETS`` adds fastText's subword features: each word's character n-grams,
hashed into ``BUCKETS`` rows of a second embedding (:mod:`rnnkit.data.ngrams`), add their mean
vector to the word's, so a word never seen in training is more than ``<unk>``.

``--pretrain-lm-epochs N`` first trains the embedding and the (one-layer) encoder as a
bidirectional language model on the training split's own text, then the classifier starts from
those weights (:mod:`rnnkit.tasks.classify_pretrain`; Dai & Le 2015). The pretraining is a run of
the same engine in ``<run>/pretrain/``.

Data: a TSV, CSV or JSON-lines table (:mod:`rnnkit.data.tabular`) with a text and a label column;
any number of classes, string or integer labels. The vocabulary (word-level with
:func:`rnnkit.data.vocab.word_tokenize`, or byte-level BPE) and the label set are built from the
training split only; words never seen in training map to ``<unk>``. Batches group sentences of
similar length (bucketing), and the padding fraction is reported.

A run folder holds, besides the engine's files, ``vocab.json`` (or ``tokenizer.json``) and
``labels.json``, so ``eval`` and ``predict`` need nothing but the folder.

Shape legend: ``B`` batch, ``T`` time steps (tokens), ``K`` n-grams of a token, ``E`` embedding
size, ``H`` hidden size, ``D`` directions, ``C`` classes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import BucketedBatches, pad_batch
from rnnkit.data.ngrams import CharNgramHasher
from rnnkit.data.tabular import TextTable, decode_text, read_table, read_text_file
from rnnkit.data.vocab import SubwordVocab, WordVocab, word_tokenize
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.io import atomic_write_json, atomic_write_text, pyplot, save_figure
from rnnkit.nn import GRU, LSTM, RNN, EmbeddingDropout
from rnnkit.tasks.classify_pretrain import (
    PRETRAIN_TEXTS,
    BiLM,
    PretrainConfig,
    collate_lm,
    copy_pretrained,
    pretrain,
    pretraining_sequences,
)
from rnnkit.tasks.common import (
    HelpFormatter,
    check_resumed_model,
    dataclass_from,
    load_task_run,
    require,
    resumed_run_config,
    resumed_section,
    section_from_args,
)
from rnnkit.tasks.pooling import POOLINGS, Pooling, checked_lengths, valid_mask
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
from rnnkit.train.averaging import AVERAGES, WeightAverage
from rnnkit.train.distributed import world_size
from rnnkit.train.trainer import total_steps

CELLS = ("lstm", "gru", "rnn", "bow")
VOCABS = ("word", "subword")
AVERAGE_CHOICES = ("none", *AVERAGES)
MONITOR_MODES = {"loss": "min", "accuracy": "max", "macro_f1": "max"}  # evaluate()'s metrics; which way is better


# ===================================================================== configuration
@dataclass
class DataConfig:
    """Where the data is and how text becomes ids."""

    train: str = ""  # training table (.tsv, .csv or .jsonl)
    val: str | None = None  # validation table, same columns
    text_column: str = "sentence"
    label_column: str = "label"
    val_text_column: str | None = None  # the validation table's text column, if named differently
    val_label_column: str | None = None  # the validation table's label column, if named differently
    format: str | None = None  # tsv | csv | jsonl; None: from the file suffix
    vocab: str = "word"  # word | subword (byte-level BPE)
    lowercase: bool = True
    min_freq: int = 1  # word vocabulary: keep words seen at least this often in training
    max_vocab: int | None = None  # word vocabulary: at most this many words (most frequent)
    subword_size: int = 4000  # subword vocabulary: BPE tokens (bytes + merges)
    char_ngrams: int = 0  # word vocabulary: hash each word's character n-grams into this many ids (0: off)
    ngram_min: int = 3  # char_ngrams: the shortest n-gram (characters, with the "<" ">" word marks)
    ngram_max: int = 5  # char_ngrams: the longest n-gram
    bucket: bool = True  # group similar lengths into batches
    max_train_examples: int | None = None  # use only the first N training rows (quick runs)

    def validate(self) -> None:
        if self.vocab not in VOCABS:
            raise ConfigError(f"vocab: expected one of {list(VOCABS)}, got {self.vocab!r}")
        if self.min_freq < 1:
            raise ConfigError(f"min_freq: expected an integer >= 1, got {self.min_freq!r}")
        if self.max_vocab is not None and self.max_vocab < 1:
            raise ConfigError(f"max_vocab: expected an integer >= 1 or None (no limit), got {self.max_vocab!r}")
        if self.vocab == "subword" and self.subword_size < 257:
            raise ConfigError(f"subword_size: expected >= 257 (256 bytes + merges), got {self.subword_size!r}")
        if self.char_ngrams < 0:
            raise ConfigError(f"char_ngrams: expected an integer >= 0 (0: off), got {self.char_ngrams!r}")
        if self.char_ngrams and self.vocab != "word":
            raise ConfigError(f"char_ngrams: needs the word vocabulary (vocab 'word'), found vocab {self.vocab!r}")
        if not 1 <= self.ngram_min <= self.ngram_max:
            raise ConfigError(
                "ngram_min, ngram_max: expected 1 <= ngram_min <= ngram_max, "
                f"got {self.ngram_min!r}, {self.ngram_max!r}"
            )
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ConfigError(f"max_train_examples: expected an integer >= 1, got {self.max_train_examples!r}")


@dataclass
class ModelConfig:
    """The classifier's shape. ``cell="bow"`` is the bag-of-words MLP baseline (no recurrence)."""

    cell: str = "lstm"  # lstm | gru | rnn | bow
    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    pool: str = "attention"  # last | max | mean | attention
    attention_size: int = 64
    embed_dropout: float = 0.1  # drop whole word types from the embedding (Gal & Ghahramani 2016)
    recurrent_dropout: float = 0.0  # dropout on the recurrent state, the same mask at every step
    dropout: float = 0.5  # between recurrent layers and before the classifier
    word_dropout: float = 0.0  # in training, replace each input token by <unk> with this probability
    average: str = "none"  # none | ema | swa: evaluate and keep an average of the training weights
    average_decay: float = 0.999  # ema: the moving average's decay per optimizer step
    average_start: float | None = None  # fraction of the steps before averaging starts (None: ema 0, swa 0.5)
    embed_lr_scale: float = 1.0  # the embedding's learning rate is the run's lr times this
    adversarial_eps: float = 0.0  # training: add the loss at embeddings + eps * g / ||g||_2 per sentence (0: off)
    vat_eps: float = 0.0  # training: add virtual adversarial training's KL at this L2 norm per sentence (0: off)
    vat_xi: float = 0.1  # vat_eps: the norm of the random probe whose gradient finds the direction

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell: expected one of {list(CELLS)}, got {self.cell!r}")
        if self.pool not in POOLINGS:
            raise ConfigError(f"pool: expected one of {list(POOLINGS)}, got {self.pool!r}")
        for name in ("embed_dim", "hidden_size", "num_layers", "attention_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        for name in ("embed_dropout", "recurrent_dropout", "dropout", "word_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name}: expected a probability in [0, 1), got {getattr(self, name)!r}")
        if self.average not in AVERAGE_CHOICES:
            raise ConfigError(f"average: expected one of {list(AVERAGE_CHOICES)}, got {self.average!r}")
        if not 0.0 <= self.average_decay < 1.0:
            raise ConfigError(f"average_decay: expected a number in [0, 1), got {self.average_decay!r}")
        if not self.embed_lr_scale > 0.0:
            raise ConfigError(f"embed_lr_scale: expected a number > 0, got {self.embed_lr_scale!r}")
        for name in ("adversarial_eps", "vat_eps"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0.0):
                raise ConfigError(f"{name}: expected a finite number >= 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.vat_xi) and self.vat_xi > 0.0):
            raise ConfigError(f"vat_xi: expected a finite number > 0, got {self.vat_xi!r}")
        if self.average_start is not None and not 0.0 <= self.average_start < 1.0:
            raise ConfigError(f"average_start: expected a fraction in [0, 1) or None, got {self.average_start!r}")

    def average_start_fraction(self) -> float:
        """The fraction of the training steps taken before the first averaging update."""
        if self.average_start is not None:
            return self.average_start
        return 0.5 if self.average == "swa" else 0.0


def default_train_config() -> TrainConfig:
    """The training options ``rnnkit classify train`` starts from: epochs, keep the best dev accuracy."""
    return TrainConfig(steps=None, epochs=4, batch_size=64, lr=2e-3, clip_norm=5.0, monitor="accuracy", mode="max")


@dataclass
class Config:
    """Everything a classification run needs; saved in the run folder's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def validate(self) -> None:
        if not self.data.train:
            raise ConfigError("data.train: expected the path of a training table (--train FILE)")
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.pretrain.validate(self.model)
        monitor, mode = self.train.monitor, self.train.mode
        if monitor not in MONITOR_MODES:
            raise ConfigError(
                f"monitor: expected one of {list(MONITOR_MODES)} (what the validation reports), got {monitor!r}"
            )
        if mode != MONITOR_MODES[monitor]:
            raise ConfigError(
                f"mode: {mode!r} with monitor {monitor!r} would keep the worst checkpoint; "
                f"expected {MONITOR_MODES[monitor]!r}"
            )
        if self.data.char_ngrams and self.pretrain.epochs:
            raise ConfigError("char_ngrams: not supported with language-model pretraining (pretrain.epochs > 0)")
        if self.model.word_dropout and self.data.vocab != "word":
            raise ConfigError(
                f"word_dropout: needs the word vocabulary's <unk> (vocab 'word'), found vocab {self.data.vocab!r}"
            )


# ===================================================================== text and labels → ids
class TextEncoder:
    """Text → token ids with ``0`` reserved for padding: a :class:`WordVocab` over
    :func:`word_tokenize` (unseen words → ``<unk>``), or a byte-level BPE :class:`SubwordVocab`
    (nothing is unseen; its ids are shifted by one to make room for padding).

    With a word vocabulary and a :class:`~rnnkit.data.ngrams.CharNgramHasher` (``hasher``),
    :meth:`ngrams` gives each token its hashed character n-gram ids too, seen word or not."""

    pad_id = 0

    def __init__(
        self, vocab: WordVocab | SubwordVocab, lowercase: bool = True, hasher: CharNgramHasher | None = None
    ) -> None:
        if hasher is not None and not isinstance(vocab, WordVocab):
            raise ValueError("hasher: character n-grams need a word vocabulary")
        self.vocab = vocab
        self.lowercase = lowercase
        self.hasher = hasher

    @classmethod
    def build(cls, texts: Sequence[str], config: DataConfig) -> TextEncoder:
        """Learn the vocabulary from the training texts only."""
        if config.vocab == "subword":
            prepared = [t.lower() if config.lowercase else t for t in texts]
            return cls(SubwordVocab.train(prepared, vocab_size=config.subword_size), config.lowercase)
        tokens = (word_tokenize(t, config.lowercase) for t in texts)
        vocab = WordVocab.build(tokens, min_freq=config.min_freq, max_size=config.max_vocab)
        return cls(vocab, config.lowercase, _hasher(config))

    @property
    def kind(self) -> str:
        return "word" if isinstance(self.vocab, WordVocab) else "subword"

    def __len__(self) -> int:
        return len(self.vocab) + (1 if self.kind == "subword" else 0)  # subword ids are shifted past padding

    def encode(self, text: str) -> list[int]:
        """Token ids of one text (at least one id for any text with a non-space character)."""
        if self.kind == "word":
            return self.vocab.encode(word_tokenize(text, self.lowercase))
        return [i + 1 for i in self.vocab.encode(text.lower() if self.lowercase else text)]

    def ngrams(self, text: str) -> list[tuple[int, ...]]:
        """Each token's character n-gram ids (``1 .. buckets``), aligned with :meth:`encode`."""
        if self.hasher is None:
            raise ValueError("this encoder has no character n-grams (DataConfig.char_ngrams = 0)")
        return [self.hasher(w) for w in word_tokenize(text, self.lowercase)]

    def encode_many(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[tuple[int, ...]]] | None]:
        """``(ids, ngrams)`` of every text: :meth:`encode`'s ids, and :meth:`ngrams` when the
        encoder has a hasher (else None), each text tokenized once."""
        if self.hasher is None:
            return [self.encode(t) for t in texts], None
        tokens = [word_tokenize(t, self.lowercase) for t in texts]
        return [self.vocab.encode(ws) for ws in tokens], [[self.hasher(w) for w in ws] for ws in tokens]

    def save(self, run_dir: Path) -> None:
        name = "vocab.json" if self.kind == "word" else "tokenizer.json"
        self.vocab.save(run_dir / name)

    @classmethod
    def load(cls, run_dir: Path, config: DataConfig) -> TextEncoder:
        """The encoder a run saved, with the hashing of its data ``config``."""
        if (run_dir / "vocab.json").exists():
            return cls(WordVocab.load(run_dir / "vocab.json"), config.lowercase, _hasher(config))
        if (run_dir / "tokenizer.json").exists():
            if config.char_ngrams:
                raise CheckpointError(f"{run_dir}: a BPE tokenizer.json, but the config asks for char_ngrams")
            return cls(SubwordVocab.load(run_dir / "tokenizer.json"), config.lowercase)
        raise CheckpointError(f"{run_dir}: no vocab.json or tokenizer.json; expected a `rnnkit classify` run folder")


def _hasher(config: DataConfig) -> CharNgramHasher | None:
    return CharNgramHasher(config.char_ngrams, config.ngram_min, config.ngram_max) if config.char_ngrams else None


class LabelSet:
    """The classes seen in training, in a fixed order: numerically if every label is an integer,
    else alphabetically. ``index`` of a label training never saw is a :class:`DataError`."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.ids = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def build(cls, labels: Sequence[str]) -> LabelSet:
        distinct = set(labels)
        numeric = all(_is_int(x) for x in distinct)
        return cls(sorted(distinct, key=(lambda x: (int(x), x)) if numeric else None))

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, table: TextTable) -> list[int]:
        """The class ids of a table's labels, validating each against the training classes."""
        assert table.labels is not None
        ids = []
        for label, line in zip(table.labels, table.lines, strict=True):
            if label not in self.ids:
                raise DataError(
                    f"label {label!r} was never seen in training; expected one of {self.names}",
                    path=table.path,
                    line=line,
                )
            ids.append(self.ids[label])
        return ids

    def save(self, run_dir: Path) -> None:
        atomic_write_json(run_dir / "labels.json", {"labels": self.names})

    @classmethod
    def load(cls, run_dir: Path) -> LabelSet:
        data = _read_json(run_dir / "labels.json")
        if not isinstance(data.get("labels"), list) or not data["labels"]:
            raise CheckpointError(f"{run_dir / 'labels.json'}: expected {{'labels': [...]}} with at least one label")
        return cls(data["labels"])


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@dataclass
class Examples:
    """Encoded sentences: ``ids[i]`` (a list of token ids) with class ``labels[i]``, and with
    character n-grams ``ngrams[i][t]``, the n-gram ids of token ``t`` (else ``ngrams`` is None)."""

    ids: list[list[int]]
    labels: list[int]
    ngrams: list[list[tuple[int, ...]]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def encode_table(table: TextTable, encoder: TextEncoder, labels: LabelSet) -> Examples:
    """Encode every row of ``table`` (labels checked against the training classes)."""
    ids, ngrams = encoder.encode_many(table.texts)
    return Examples(ids, labels.encode(table), ngrams)


# ===================================================================== batches
@dataclass
class Batch:
    """Padded sentences ``tokens: (B, T)`` (``0`` = padding), ``lengths: (B,)``, ``labels: (B,)``,
    and with character n-grams ``ngrams: (B, T, K)`` (each token's ids, ``0``-padded), else None."""

    tokens: Tensor
    lengths: Tensor
    labels: Tensor
    ngrams: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        ngrams = self.ngrams.to(device) if self.ngrams is not None else None
        return Batch(self.tokens.to(device), self.lengths.to(device), self.labels.to(device), ngrams)


def pad_ngrams(sentences: Sequence[Sequence[tuple[int, ...]]]) -> Tensor:
    """``(B, T, K)`` n-gram ids of ``B`` sentences (``T`` the longest sentence, ``K`` the most
    n-grams of any token), ``0`` where a sentence or a token's n-grams have ended."""
    T = max((len(s) for s in sentences), default=0)
    K = max((len(g) for s in sentences for g in s), default=0)
    out = np.zeros((len(sentences), T, max(K, 1)), dtype=np.int64)  # (B, T, K)
    for b, sentence in enumerate(sentences):
        for t, grams in enumerate(sentence):
            out[b, t, : len(grams)] = grams
    return torch.from_numpy(out)


def collate(examples: Examples, indices: Sequence[int]) -> Batch:
    """The :class:`Batch` of ``examples`` at ``indices``."""
    tokens, lengths = pad_batch([torch.tensor(examples.ids[i], dtype=torch.long) for i in indices])  # (B, T), (B,)
    ngrams = pad_ngrams([examples.ngrams[i] for i in indices]) if examples.ngrams is not None else None
    return Batch(tokens, lengths, torch.tensor([examples.labels[i] for i in indices], dtype=torch.long), ngrams)


def length_sorted_chunks(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices sorted by length, cut into chunks of ``size``: inference batches with little padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[k : k + size] for k in range(0, len(order), size)]


# ===================================================================== model
class TextClassifier(nn.Module):
    """Embedding → recurrent encoder (with ``lengths``) → pooling → dropout → linear.

    With ``cell="bow"`` the encoder is the mean of the embeddings followed by a hidden
    ``Linear(E, H)`` + ReLU: a bag-of-words MLP that cannot see word order.

    In training, ``word_dropout`` replaces each (non-padding) token by ``<unk>`` (id 1) with that
    probability (Iyyer et al. 2015), unlike ``embed_dropout``, which zeroes every occurrence of a
    word type. With ``average`` other than ``"none"`` the model carries a
    :class:`~rnnkit.train.averaging.WeightAverage` of its parameters (``model.average``, in its
    ``state_dict``); :func:`train` updates it after each optimizer step, and
    :meth:`Classifier.load` puts the averaged weights in place.

    With ``ngram_buckets > 0`` a token's input is its word vector plus the mean of its character
    n-grams' vectors (``ngram_embed``, ``ngram_buckets + 1`` rows, row 0 padding): fastText's
    subword features (Bojanowski et al. 2017), so a word never seen in training (``<unk>``)
    still gets a vector of its own. Word dropout replaces the word, not its n-grams.

    Call: ``model(tokens, lengths)`` with ``tokens: (B, T)`` (``0`` = padding) and
    ``lengths: (B,)`` → logits ``(B, C)``; with n-grams, ``model(tokens, lengths, ngrams)`` with
    ``ngrams: (B, T, K)`` (``0`` = none). Steps past a sentence's length never affect its logits.
    ``model(tokens, lengths, ngrams, embedded=x)`` reads ``x: (B, T, E)`` instead of
    :meth:`embed_tokens` (adversarial training passes a perturbed copy of it).
    """

    unk_id = WordVocab.unk_id

    def __init__(self, vocab_size: int, num_classes: int, config: ModelConfig, ngram_buckets: int = 0) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embed = EmbeddingDropout(vocab_size, config.embed_dim, p=config.embed_dropout, padding_idx=0)
        self.ngram_embed = nn.Embedding(ngram_buckets + 1, config.embed_dim, padding_idx=0) if ngram_buckets else None
        self.encoder = _make_encoder(config)
        features = config.hidden_size * (2 if config.bidirectional and config.cell != "bow" else 1)
        self.pool = None if config.cell == "bow" else Pooling(config.pool, features, config.attention_size)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(features, num_classes)
        self.average = None
        if config.average != "none":  # last: it averages every parameter above
            self.average = WeightAverage(self, config.average, config.average_decay)

    def embed_tokens(self, tokens: Tensor, ngrams: Tensor | None = None) -> Tensor:
        """The encoder's input ``(B, T, E)`` for ``tokens: (B, T)`` (and ``ngrams: (B, T, K)``
        when the model has n-gram embeddings): word dropout (in training), then the embedding
        with its dropout, plus the mean n-gram vector. Padding (id 0) gets the zero vector."""
        if self.training and self.config.word_dropout > 0.0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.config.word_dropout) & (tokens != 0)
            tokens = tokens.masked_fill(drop, self.unk_id)  # (B, T)
        x = self.embed(tokens)  # (B, T, E)
        if self.ngram_embed is None:
            if ngrams is not None:
                raise ValueError("ngrams: this model has no n-gram embeddings (ngram_buckets = 0); pass None")
            return x
        if ngrams is None or ngrams.shape[:2] != tokens.shape:
            got = None if ngrams is None else tuple(ngrams.shape)
            raise ValueError(f"ngrams: expected (B, T, K) with (B, T) = {tuple(tokens.shape)}, got {got}")
        count = (ngrams != 0).sum(-1, keepdim=True).clamp(min=1).to(x.dtype)  # (B, T, 1)
        return x + self.ngram_embed(ngrams).sum(2) / count  # (B, T, E)

    def forward(
        self, tokens: Tensor, lengths: Tensor, ngrams: Tensor | None = None, embedded: Tensor | None = None
    ) -> Tensor:
        if embedded is None:
            x = self.embed_tokens(tokens, ngrams)  # (B, T, E)
        elif embedded.shape != (*tokens.shape, self.config.embed_dim):
            expected = (*tokens.shape, self.config.embed_dim)
            raise ValueError(f"embedded: expected shape (B, T, E) = {expected}, got {tuple(embedded.shape)}")
        else:
            x = embedded
        if self.pool is None:
            lengths = checked_lengths(x, lengths)  # no recurrent layer checks them here
            mask = valid_mask(lengths, tokens.shape[1]).unsqueeze(-1)  # (B, T, 1)
            mean = (x * mask).sum(dim=1) / lengths.unsqueeze(1).to(x.dtype)  # (B, E)
            return self.head(self.dropout(self.encoder(mean)))  # (B, C)
        outputs, state = self.encoder(x, lengths=lengths)  # (B, T, D*H)
        h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
        D = 2 if self.config.bidirectional else 1
        final = torch.cat(list(h_n[-D:]), dim=-1)  # (B, D*H): the last layer's directions
        return self.head(self.dropout(self.pool(outputs, lengths, final)))  # (B, C)


def build_bilm(vocab_size: int, model: ModelConfig, config: PretrainConfig) -> BiLM:
    """A language model over a fresh embedding and encoder of the classifier's shape, whose
    ``embed.*`` and ``encoder.*`` weights :func:`copy_pretrained` can load into a classifier."""
    model.validate()
    config.validate(model)
    embed = EmbeddingDropout(vocab_size, model.embed_dim, p=model.embed_dropout, padding_idx=0)
    return BiLM(embed, _make_encoder(model), model.hidden_size, model.bidirectional, config.tie_weights, config.dropout)


def _make_encoder(config: ModelConfig) -> nn.Module:
    if config.cell == "bow":
        return nn.Sequential(nn.Linear(config.embed_dim, config.hidden_size), nn.ReLU())
    layer = {"lstm": LSTM, "gru": GRU, "rnn": RNN}[config.cell]
    dropout = config.dropout if config.num_layers > 1 else 0.0
    return layer(
        config.embed_dim,
        config.hidden_size,
        num_layers=config.num_layers,
        dropout=dropout,
        bidirectional=config.bidirectional,
        recurrent_dropout=config.recurrent_dropout,
    )


# ===================================================================== evaluation
@torch.no_grad()
def predict_proba(
    model: TextClassifier,
    ids: Sequence[Sequence[int]],
    ngrams: Sequence[Sequence[tuple[int, ...]]] | None = None,
    batch_size: int = 256,
) -> Tensor:
    """Class probabilities ``(N, C)`` for encoded sentences (and their tokens' n-grams, for a
    model with n-gram embeddings), in their order (eval mode; batches of similar lengths, which
    changes nothing but speed)."""
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(x) for x in ids]
    probs = torch.empty(len(ids), model.head.out_features)  # (N, C)
    for batch in length_sorted_chunks(lengths, batch_size):
        tokens, lens = pad_batch([torch.tensor(ids[i], dtype=torch.long) for i in batch])  # (b, T), (b,)
        grams = pad_ngrams([ngrams[i] for i in batch]).to(device) if ngrams is not None else None  # (b, T, K)
        probs[batch] = F.softmax(model(tokens.to(device), lens.to(device), grams), dim=-1).float().cpu()
    return probs


def confusion_matrix(targets: Sequence[int], predictions: Sequence[int], num_classes: int) -> Tensor:
    """``(C, C)`` counts: row = true class, column = predicted class."""
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)  # (C, C)
    matrix.index_put_((torch.as_tensor(targets), torch.as_tensor(predictions)), torch.tensor(1), accumulate=True)
    return matrix


def classification_report(matrix: Tensor, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support from a confusion matrix.

    Macro-F1 is the mean F1 of the classes that occur in the data or in the predictions (as
    scikit-learn's ``f1_score(average="macro")``): a training class absent from both has no F1 and
    is left out, where counting it as 0 would lower the mean for no error. A class with no
    prediction (or no example) has precision (or recall) 0."""
    m = matrix.double()
    true_pos = m.diag()
    predicted, actual = m.sum(dim=0), m.sum(dim=1)
    precision = torch.where(predicted > 0, true_pos / predicted.clamp(min=1), torch.zeros_like(m[0]))
    recall = torch.where(actual > 0, true_pos / actual.clamp(min=1), torch.zeros_like(m[0]))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    per_class = {
        name: {"precision": p, "recall": r, "f1": f, "support": int(s)}
        for name, p, r, f, s in zip(
            names, precision.tolist(), recall.tolist(), f1.tolist(), actual.tolist(), strict=True
        )
    }
    return {
        "accuracy": float(true_pos.sum() / m.sum()),
        "macro_f1": float(f1[(predicted > 0) | (actual > 0)].mean()),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(names),
    }


def evaluate_examples(model: TextClassifier, examples: Examples, labels: LabelSet) -> dict[str, Any]:
    """Loss (mean cross-entropy, nats), accuracy, macro-F1, per-class table and confusion matrix."""
    probs = predict_proba(model, examples.ids, examples.ngrams)  # (N, C)
    targets = torch.tensor(examples.labels)  # (N,)
    loss = F.nll_loss(probs.clamp(min=1e-12).log(), targets).item()
    report = classification_report(
        confusion_matrix(examples.labels, probs.argmax(1).tolist(), len(labels)), labels.names
    )
    return {"loss": loss, **report}


def format_report(report: dict[str, Any]) -> str:
    """The report as a text table: overall figures, then one row per class."""
    width = max(8, *(len(n) for n in report["labels"]))
    lines = [
        f"examples {sum(c['support'] for c in report['per_class'].values())}  "
        f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  loss {report['loss']:.4f}",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for name, c in report["per_class"].items():
        lines.append(f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:.4f}  {c['support']:7d}")
    return "\n".join(lines)


def plot_confusion(matrix: Tensor, names: Sequence[str], path: Path, title: str) -> None:
    """Save the confusion matrix as a PNG (written to a temp file, then renamed)."""
    plt = pyplot()

    size = 2.5 + 0.5 * len(names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    high = int(matrix.max()) if matrix.numel() else 0
    for row, counts in enumerate(matrix.tolist()):
        for col, count in enumerate(counts):
            ax.text(col, row, str(count), ha="center", va="center", color="white" if count > high / 2 else "black")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


# ===================================================================== a trained run


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; expected a `rnnkit classify train` run folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


@dataclass
class Prediction:
    """One sentence's predicted ``label`` and the probability of every class."""

    label: str
    probabilities: dict[str, float]


class Classifier:
    """A trained run, ready to classify any text: model, text encoder and label set.

    Load with :meth:`load` from a run folder (``checkpoints/best`` if there is one, else
    ``checkpoints/last``); classify with :meth:`predict` or evaluate with :meth:`evaluate`.
    """

    def __init__(self, model: TextClassifier, encoder: TextEncoder, labels: LabelSet, data: DataConfig) -> None:
        self.model = model.eval()
        self.encoder = encoder
        self.labels = labels
        self.data = data

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike, which: str = "best", device: str = "cpu", averaged: bool = True
    ) -> Classifier:
        """Load a run folder: ``config.json``, the vocabulary, ``labels.json`` and the weights of
        checkpoint ``which`` (``best``, falling back to ``last`` when the run never evaluated).
        A run trained with ``average`` gets its averaged weights, unless ``averaged=False``."""
        run, saved, state_dict = load_task_run(run_dir, "classify", which, device)
        data = dataclass_from(DataConfig, saved.get("data"), f"{run / 'config.json'}: field 'data'")
        model_config = dataclass_from(ModelConfig, saved.get("model"), f"{run / 'config.json'}: field 'model'")
        try:
            data.validate()
        except ConfigError as e:
            raise CheckpointError(f"{run / 'config.json'}: field 'data': {e}") from None
        encoder = TextEncoder.load(run, data)
        labels = LabelSet.load(run)
        model = TextClassifier(len(encoder), len(labels), model_config, data.char_ngrams)
        load_weights_into(model, state_dict, run)
        if averaged and model.average is not None:
            model.average.copy_to(model)
        return cls(model.to(device), encoder, labels, data)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Classify each text (any text: words never seen in training count as ``<unk>``, plus
        their character n-grams when the run has them)."""
        ids, ngrams = self.encoder.encode_many(texts)
        empty = [i for i, x in enumerate(ids) if not x]
        if empty:
            raise ValueError(f"texts[{empty[0]}]: empty text ({texts[empty[0]]!r}); expected some words")
        probs = predict_proba(self.model, ids, ngrams)  # (N, C)
        return [
            Prediction(self.labels.names[int(p.argmax())], dict(zip(self.labels.names, p.tolist(), strict=True)))
            for p in probs
        ]

    def evaluate(self, table: TextTable) -> dict[str, Any]:
        """Loss, accuracy, macro-F1, per-class table and confusion matrix on a labelled table."""
        return evaluate_examples(self.model, encode_table(table, self.encoder, self.labels), self.labels)


def evaluate_file(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Evaluate a run on a labelled table; write ``report.json`` and ``confusion.png`` into
    ``out_dir`` (default ``<run>/eval/<data stem>/``). The columns are the training table's unless
    given. Every row is validated before anything is written."""
    classifier = Classifier.load(run_dir)
    cfg = classifier.data
    table = read_table(data, text_column or cfg.text_column, label_column or cfg.label_column, cfg.format)
    report = {"data": str(data), **classifier.evaluate(table)}
    folder = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval" / Path(data).stem
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "report.json", report)
    title = f"{Path(data).name}: accuracy {report['accuracy']:.3f}"
    plot_confusion(torch.tensor(report["confusion_matrix"]), classifier.labels.names, folder / "confusion.png", title)
    report["out_dir"] = str(folder)
    return report


def read_input_lines(path: str) -> list[str]:
    """One text per line from a file or ``-`` (stdin), UTF-8; an empty line is a :class:`DataError`."""
    name = "<stdin>" if path == "-" else path
    if path == "-":
        text = decode_text(sys.stdin.buffer.read(), name, expected="one text per line")
    else:
        text = read_text_file(path, expected="one text per line")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError("empty text; expected one text per line", path=name, line=number)
    return [line.rstrip("\r") for line in lines]


def format_predictions(texts: Sequence[str], predictions: Sequence[Prediction], as_json: bool) -> str:
    """One line per text: ``label<TAB>class:prob …`` or a JSON object."""
    lines = []
    for text, p in zip(texts, predictions, strict=True):
        if as_json:
            lines.append(
                json.dumps({"text": text, "label": p.label, "probabilities": p.probabilities}, ensure_ascii=False)
            )
        else:
            lines.append(p.label + "\t" + " ".join(f"{k}:{v:.4f}" for k, v in p.probabilities.items()))
    return "\n".join(lines) + "\n"


# ===================================================================== training
def load_training_data(
    config: DataConfig, run_dir: Path | None = None
) -> tuple[TextEncoder, LabelSet, Examples, Examples | None]:
    """Read and validate both splits, then build (or, resuming ``run_dir``, reload) the
    vocabulary and label set from the training split only and encode both splits."""
    train_table = read_table(config.train, config.text_column, config.label_column, config.format)
    val_table = None
    if config.val:
        text_column, label_column = (
            config.val_text_column or config.text_column,
            config.val_label_column or config.label_column,
        )
        val_table = read_table(config.val, text_column, label_column, config.format)
    if config.max_train_examples is not None:
        n = config.max_train_examples
        train_table = TextTable(train_table.path, train_table.texts[:n], train_table.labels[:n], train_table.lines[:n])
    if run_dir is not None:
        encoder, labels = TextEncoder.load(run_dir, config), LabelSet.load(run_dir)
    else:
        encoder, labels = TextEncoder.build(train_table.texts, config), LabelSet.build(train_table.labels)
    if len(labels) < 2:
        raise DataError(f"found only the label {labels.names}; expected at least two classes", path=train_table.path)
    train = encode_table(train_table, encoder, labels)
    val = encode_table(val_table, encoder, labels) if val_table is not None else None
    return encoder, labels, train, val


def classification_step(model: nn.Module, batch: Batch, state: Any = None) -> StepOutput:
    """Cross-entropy of one batch (the trainer's ``train_step``); logs the batch accuracy too."""
    logits = model(batch.tokens, batch.lengths, batch.ngrams)  # (B, C)
    loss = F.cross_entropy(logits, batch.labels)
    accuracy = (logits.argmax(-1) == batch.labels).float().mean().item()
    return StepOutput(loss, metrics={"accuracy": accuracy}, items=len(batch.labels))


def adversarial_perturbation(loss: Tensor, embedded: Tensor, lengths: Tensor, eps: float) -> Tensor:
    """The fast-gradient perturbation of Miyato et al. (2017), ``r = eps * g / ||g||_2`` with
    ``g = d loss / d embedded`` and the norm taken per sentence over its ``(T, E)`` block.

    ``embedded: (B, T, E)`` (part of ``loss``'s graph, which is kept for the caller's backward),
    ``lengths: (B,)``. Returns ``r: (B, T, E)``, detached, zero at padding positions (``t >=
    lengths[b]``); a sentence whose gradient is zero gets ``r = 0``."""
    (grad,) = torch.autograd.grad(loss, embedded, retain_graph=True)  # (B, T, E)
    return _per_sentence_direction(grad, lengths, eps).detach()  # (B, T, E)


def _per_sentence_direction(v: Tensor, lengths: Tensor, norm: float) -> Tensor:
    """``v: (B, T, E)`` zeroed past each length and scaled to L2 norm ``norm`` per sentence
    (over its ``(T, E)`` block; a zero block stays zero)."""
    v = v * valid_mask(lengths, v.shape[1]).unsqueeze(-1).to(v.dtype)  # (B, T, E)
    return norm * v / v.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None]


def _kl_from(clean_logits: Tensor, logits: Tensor) -> Tensor:
    """``KL(p_clean || p)`` averaged over the batch, ``p_clean`` held fixed."""
    target = F.log_softmax(clean_logits.detach(), dim=-1)  # (B, C)
    return F.kl_div(F.log_softmax(logits, dim=-1), target, reduction="batchmean", log_target=True)


def virtual_adversarial_perturbation(
    model: nn.Module, batch: Batch, embedded: Tensor, clean_logits: Tensor, eps: float, xi: float
) -> Tensor:
    """Virtual adversarial training's perturbation (Miyato et al. 2017, one power iteration):
    the direction in which the model's prediction changes most, found without labels.

    A random ``d`` of norm ``xi`` per sentence probes ``KL(p(x) || p(x + d))``; its gradient
    ``g`` at ``d`` gives ``r = eps * g / ||g||_2`` per sentence. ``embedded: (B, T, E)`` is ``x``
    (read, not differentiated), ``clean_logits: (B, C)`` the prediction at ``x``. Returns ``r:
    (B, T, E)``, detached, zero at padding positions."""
    d = _per_sentence_direction(torch.randn_like(embedded), batch.lengths, xi).requires_grad_()  # (B, T, E)
    probe = _kl_from(clean_logits, model(batch.tokens, batch.lengths, embedded=embedded.detach() + d))
    (grad,) = torch.autograd.grad(probe, d)  # (B, T, E)
    return _per_sentence_direction(grad, batch.lengths, eps).detach()


def adversarial_classification_step(
    model: nn.Module, batch: Batch, state: Any = None, *, eps: float, vat_eps: float = 0.0, vat_xi: float = 0.1
) -> StepOutput:
    """``loss(clean) + loss(embedded + r)`` with ``r`` from :func:`adversarial_perturbation`:
    adversarial training on the embeddings (with ``eps > 0``); with ``vat_eps > 0`` also
    ``KL(p(embedded) || p(embedded + r_v))``, ``r_v`` from
    :func:`virtual_adversarial_perturbation` (virtual adversarial training). Every pass reads the
    same embedded batch (the same word and embedding dropout); the logged ``accuracy`` and
    ``clean_loss`` are the clean pass's."""
    embedded = model.embed_tokens(batch.tokens, batch.ngrams)  # (B, T, E)
    logits = model(batch.tokens, batch.lengths, embedded=embedded)  # (B, C)
    clean = F.cross_entropy(logits, batch.labels)
    loss = clean
    accuracy = (logits.argmax(-1) == batch.labels).float().mean().item()
    metrics = {"accuracy": accuracy, "clean_loss": clean.item()}
    if eps > 0.0:
        r = adversarial_perturbation(clean, embedded, batch.lengths, eps)  # (B, T, E)
        adversarial = F.cross_entropy(model(batch.tokens, batch.lengths, embedded=embedded + r), batch.labels)
        loss, metrics["adversarial_loss"] = loss + adversarial, adversarial.item()
    if vat_eps > 0.0:
        r_v = virtual_adversarial_perturbation(model, batch, embedded, logits, vat_eps, vat_xi)  # (B, T, E)
        vat = _kl_from(logits, model(batch.tokens, batch.lengths, embedded=embedded + r_v))
        loss, metrics["vat_loss"] = loss + vat, vat.item()
    return StepOutput(loss, metrics=metrics, items=len(batch.labels))


def train_step_for(config: ModelConfig):
    """The ``train_step`` of a model config: :func:`classification_step`, or with
    ``adversarial_eps > 0`` or ``vat_eps > 0`` :func:`adversarial_classification_step`."""
    if config.adversarial_eps == 0.0 and config.vat_eps == 0.0:
        return classification_step
    return functools.partial(
        adversarial_classification_step, eps=config.adversarial_eps, vat_eps=config.vat_eps, vat_xi=config.vat_xi
    )


def train(config: Config, *, runs_root: str | os.PathLike = "runs") -> FitResult:
    """Train a classifier; returns the trainer's :class:`FitResult` (``run_dir`` is the run folder).

    Both data files are validated completely before the run folder is created. The run folder
    gets ``vocab.json``/``tokenizer.json`` and ``labels.json``, and its ``report.md`` a section with
    the padding fraction and the best checkpoint's per-class table on the validation split.
    """
    config.validate()
    if (config.model.adversarial_eps or config.model.vat_eps) and world_size() > 1:  # it embeds outside DDP
        name = "adversarial_eps" if config.model.adversarial_eps else "vat_eps"
        raise ConfigError(f"{name}: not supported under torchrun (more than one process); run it alone")
    resume = Path(config.train.resume) if config.train.resume else None
    if resume is not None:
        check_resumed_run(config, resume)
    encoder, labels, train_examples, val_examples = load_training_data(config.data, resume)
    lm_texts = pretraining_texts(train_examples, config) if config.pretrain.epochs and resume is None else None
    seed_everything(config.train.seed)
    model = TextClassifier(len(encoder), len(labels), config.model, config.data.char_ngrams)
    batches = BucketedBatches(
        train_examples.lengths,
        config.train.batch_size,
        lambda indices: collate(train_examples, indices),
        seed=config.train.seed,
        bucket_factor=50 if config.data.bucket else 0,
    )

    def evaluate(trained: TextClassifier) -> dict[str, float]:
        averaged = trained.average.applied(trained) if trained.average is not None else contextlib.nullcontext()
        with averaged:
            report = evaluate_examples(trained, val_examples, labels)
        return {name: report[name] for name in MONITOR_MODES}

    trainer = Trainer(
        model,
        config.train,
        train_step=train_step_for(config.model),
        evaluate=evaluate if val_examples is not None else None,
        task="classify",
        task_config={"data": asdict(config.data), "model": asdict(config.model), "pretrain": asdict(config.pretrain)},
        runs_root=runs_root,
    )
    if config.model.embed_lr_scale != 1.0:
        scale_embedding_lr(trainer.optimizer, model.embed.weight, config.model.embed_lr_scale)
    if model.average is not None:
        start_averaging(trainer, len(batches))
    if resume is None:
        encoder.save(trainer.run_dir)
        labels.save(trainer.run_dir)
    if lm_texts is not None:
        pretrained, _ = pretrain_classifier(trainer.model, config, len(encoder), lm_texts, trainer.run_dir / "pretrain")
        if pretrained.stop_reason != "completed":  # SIGINT/SIGTERM: no classifier training
            return replace(
                pretrained, run_dir=trainer.run_dir, stop_reason=f"{pretrained.stop_reason} during pretraining"
            )
    padding = batches.padding_fraction()
    if not config.train.quiet:
        print(
            f"{len(train_examples)} training sentences, {len(labels)} classes, vocabulary {len(encoder)}, "
            f"padding {padding:.1%} of the batch grid ({'bucketed' if config.data.bucket else 'not bucketed'})",
            file=sys.stderr,
        )
    result = trainer.fit(batches)
    if trainer.is_main:
        _report_run(result, padding, val_examples, config.data.val)
    return result


def text_encoding(data: DataConfig) -> dict[str, Any]:
    """The data options that decide how text becomes ids (with the saved vocabulary)."""
    ngrams = {"ngram_min": data.ngram_min, "ngram_max": data.ngram_max} if data.char_ngrams else {}
    return {"vocab": data.vocab, "lowercase": data.lowercase, "char_ngrams": data.char_ngrams, **ngrams}


def check_resumed_run(config: Config, run: Path) -> None:
    """A :class:`ConfigError`, before anything is read or written, unless ``run`` is a classify run
    that ``config`` can continue: the same ``model`` section and :func:`text_encoding` (its weights
    and vocabulary fit no other), and past its language-model pretraining, which cannot be resumed."""
    saved = resumed_run_config(run, "classify")
    check_resumed_model(saved, config.model, run)
    was = text_encoding(dataclass_from(DataConfig, saved.get("data"), f"{run / 'config.json'}: field 'data'"))
    now = text_encoding(config.data)
    if was != now:
        raise ConfigError(
            f"resume: {run} encoded its text with the data options {was}; a resumed run keeps them, got {now}"
        )
    if config.pretrain.epochs and not (run / "checkpoints" / "last").exists():
        raise ConfigError(
            f"resume: {run} stopped during its language-model pretraining, which cannot be resumed; start the run again"
        )


def scale_embedding_lr(optimizer: torch.optim.Optimizer, weight: nn.Parameter, scale: float) -> None:
    """Move the embedding ``weight`` into a parameter group of its own whose learning rate is
    ``scale`` times the others' (before the schedule is built, which then scales both alike)."""
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if p is not weight]
    optimizer.add_param_group({"params": [weight], "lr": optimizer.param_groups[0]["lr"] * scale})


def start_averaging(trainer: Trainer, batches_per_epoch: int) -> None:
    """Fold the weights into ``trainer.model.average`` after every optimizer step, from the
    configured fraction of the run's steps on (the average is evaluated and saved with the model)."""
    model = trainer.model
    model.average.start = int(model.config.average_start_fraction() * total_steps(trainer.config, batches_per_epoch))
    trainer.optimizer.register_step_post_hook(lambda *_: model.average.step(model))


def pretraining_texts(train_examples: Examples, config: Config) -> list[list[int]]:
    """The token sequences the language model is pretrained on (``config.pretrain.text`` of the
    training split); a :class:`DataError` naming the training table if there are none, found
    before the run folder is made."""
    sequences = pretraining_sequences(train_examples.ids, config.pretrain.text)
    if not sequences:
        raise DataError(
            "no text of two or more tokens; expected some to pretrain the language model on (--pretrain-lm-epochs)",
            path=config.data.train,
        )
    return sequences


def pretrain_classifier(
    model: TextClassifier, config: Config, vocab_size: int, sequences: list[list[int]], run_dir: Path
) -> tuple[FitResult, list[str]]:
    """Pretrain a :class:`BiLM` of ``config.model``'s shape on ``sequences`` (token ids of the
    training split's text, :func:`pretraining_texts`; a run of the engine in ``run_dir``), then
    copy its ``embed.*`` and ``encoder.*`` weights into ``model`` (in place). Returns the
    pretraining's :class:`FitResult` and the names copied (none when the pretraining was
    interrupted)."""
    bilm = build_bilm(vocab_size, config.model, config.pretrain)

    def batches(seqs: list[list[int]], batch_size: int, seed: int) -> BucketedBatches:
        lengths = [len(s) for s in seqs]
        factor = 50 if config.data.bucket else 0
        return BucketedBatches(lengths, batch_size, lambda idx: collate_lm(seqs, idx), seed=seed, bucket_factor=factor)

    task_config = {"model": asdict(config.model), "pretrain": asdict(config.pretrain)}
    result = pretrain(bilm, sequences, config.pretrain, config.train, run_dir, batches, task_config)
    if result.stop_reason != "completed":
        return result, []
    return result, copy_pretrained(model, bilm.state_dict())


def _report_run(result: FitResult, padding: float, val: Examples | None, val_path: str | None) -> None:
    """Add the padding fraction and the best checkpoint's validation table to ``report.md``."""
    assert result.run_dir is not None
    lines = ["## Classification", "", f"Padding: {padding:.2%} of the padded batch grid is padding."]
    if val is not None and val_path is not None:
        classifier = Classifier.load(result.run_dir)
        report = evaluate_examples(classifier.model, val, classifier.labels)
        title = f"{Path(val_path).name}: accuracy {report['accuracy']:.3f}"
        (result.run_dir / "plots").mkdir(exist_ok=True)
        plot_confusion(
            torch.tensor(report["confusion_matrix"]),
            report["labels"],
            result.run_dir / "plots" / "confusion.png",
            title,
        )
        table = format_report(report)
        lines += [
            "",
            f"Best checkpoint on `{val_path}`:",
            "",
            "```",
            table,
            "```",
            "",
            "![confusion](plots/confusion.png)",
        ]
    append_report(result.run_dir, "\n".join(lines))


# ===================================================================== command line
def add_parser(subparsers) -> None:
    """``rnnkit classify train|eval|predict``."""
    from rnnkit.cli import add_config_option

    verb = subparsers.add_parser("classify", help="text classification (sentiment): train, eval, predict")
    jobs = verb.add_subparsers(dest="job", metavar="JOB", required=True)
    fmt = HelpFormatter

    train_parser = jobs.add_parser("train", help="train a classifier on a labelled table", formatter_class=fmt)
    _add_data_args(train_parser)
    _add_model_args(train_parser)
    _add_pretrain_args(train_parser)
    add_train_args(train_parser, default_train_config())
    add_config_option(train_parser)
    train_parser.set_defaults(func=run_train)

    eval_parser = jobs.add_parser(
        "eval", help="accuracy, macro-F1, per-class table, confusion matrix", formatter_class=fmt
    )
    eval_parser.add_argument("--run", default=None, help="run folder of `rnnkit classify train`; required")
    eval_parser.add_argument("--data", default=None, help="labelled table to evaluate on; required")
    eval_parser.add_argument(
        "--out-dir", default=None, help="where report.json and confusion.png go (default <run>/eval/<data stem>)"
    )
    eval_parser.add_argument("--text-column", default=None, help="text column (default: the training table's)")
    eval_parser.add_argument("--label-column", default=None, help="label column (default: the training table's)")
    eval_parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    add_config_option(eval_parser)
    eval_parser.set_defaults(func=run_eval)

    predict_parser = jobs.add_parser(
        "predict", help="label and class probabilities for each input line", formatter_class=fmt
    )
    predict_parser.add_argument("--run", default=None, help="run folder of `rnnkit classify train`; required")
    predict_parser.add_argument("--input", default="-", help="text file, one text per line, or - for stdin")
    predict_parser.add_argument("--output", default="-", help="file to write (atomically), or - for stdout")
    predict_parser.add_argument(
        "--output-format", choices=("text", "json"), default="text", help="label<TAB>class:prob … or JSON lines"
    )
    add_config_option(predict_parser)
    predict_parser.set_defaults(func=run_predict)


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    d = DataConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--train", default="", help="training table (.tsv, .csv or .jsonl); required")
    g.add_argument("--val", default=None, help="validation table (same columns)")
    g.add_argument("--text-column", default=d.text_column, help="column (or JSON key) with the text")
    g.add_argument("--label-column", default=d.label_column, help="column (or JSON key) with the label")
    g.add_argument(
        "--val-text-column", default=None, help="the validation table's text column (default: --text-column)"
    )
    g.add_argument(
        "--val-label-column", default=None, help="the validation table's label column (default: --label-column)"
    )
    g.add_argument(
        "--format", choices=("tsv", "csv", "jsonl"), default=None, help="table format (default: from the suffix)"
    )
    g.add_argument("--vocab", choices=VOCABS, default=d.vocab, help="word vocabulary or byte-level BPE subwords")
    g.add_argument(
        "--lowercase", action=argparse.BooleanOptionalAction, default=d.lowercase, help="lower-case all text"
    )
    g.add_argument("--min-freq", type=int, default=d.min_freq, help="word vocabulary: minimum count in training")
    g.add_argument("--max-vocab", type=int, default=d.max_vocab, help="word vocabulary: maximum size")
    g.add_argument("--subword-size", type=int, default=d.subword_size, help="subword vocabulary size")
    g.add_argument(
        "--char-ngrams",
        type=int,
        default=d.char_ngrams,
        metavar="BUCKETS",
        help="word vocabulary: add each word's hashed character n-grams, in this many ids, to its vector (0: off)",
    )
    g.add_argument("--ngram-min", type=int, default=d.ngram_min, help="--char-ngrams: shortest n-gram")
    g.add_argument("--ngram-max", type=int, default=d.ngram_max, help="--char-ngrams: longest n-gram")
    g.add_argument(
        "--bucket", action=argparse.BooleanOptionalAction, default=d.bucket, help="batch similar lengths together"
    )
    g.add_argument("--max-train-examples", type=int, default=None, help="use only the first N training rows")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    m = ModelConfig()
    g = parser.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=m.cell, help="recurrent cell, or bow (bag-of-words MLP baseline)")
    g.add_argument("--embed-dim", type=int, default=m.embed_dim, help="embedding size")
    g.add_argument("--hidden-size", type=int, default=m.hidden_size, help="hidden units per direction")
    g.add_argument("--num-layers", type=int, default=m.num_layers, help="stacked recurrent layers")
    g.add_argument(
        "--bidirectional", action=argparse.BooleanOptionalAction, default=m.bidirectional, help="read both ways"
    )
    g.add_argument("--pool", choices=POOLINGS, default=m.pool, help="pooling over time")
    g.add_argument("--attention-size", type=int, default=m.attention_size, help="scoring layer of --pool attention")
    g.add_argument("--embed-dropout", type=float, default=m.embed_dropout, help="probability of dropping a word type")
    g.add_argument(
        "--recurrent-dropout", type=float, default=m.recurrent_dropout, help="dropout on h inside the recurrence"
    )
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout between layers and before the classifier")
    g.add_argument(
        "--word-dropout", type=float, default=m.word_dropout, help="training: replace each token by <unk> with this p"
    )
    g.add_argument(
        "--embed-lr-scale", type=float, default=m.embed_lr_scale, help="embedding learning rate = --lr times this"
    )
    g.add_argument(
        "--adversarial-eps",
        type=float,
        default=m.adversarial_eps,
        help="training: add the loss at the embeddings moved by eps along the loss gradient (L2 per sentence; 0: off)",
    )
    g.add_argument(
        "--vat-eps",
        type=float,
        default=m.vat_eps,
        help="training: add virtual adversarial training's KL at a perturbation of this L2 norm per sentence (0: off)",
    )
    g.add_argument("--vat-xi", type=float, default=m.vat_xi, help="--vat-eps: norm of the random probe per sentence")
    g.add_argument(
        "--average",
        choices=AVERAGE_CHOICES,
        default=m.average,
        help="evaluate and keep an average of the weights: ema (moving average) or swa (mean of every step's)",
    )
    g.add_argument("--average-decay", type=float, default=m.average_decay, help="--average ema: decay per step")
    g.add_argument(
        "--average-start",
        type=float,
        default=m.average_start,
        help="fraction of the steps before averaging starts (default: ema 0, swa 0.5)",
    )


def _add_pretrain_args(parser: argparse.ArgumentParser) -> None:
    p = PretrainConfig()
    g = parser.add_argument_group(
        "language-model pretraining",
        "pretrain the embedding and the one-layer encoder as a bidirectional language model on the training "
        "split's own text (the forward direction predicts the next word, the backward one the previous word), "
        "then train the classifier from those weights; a run of the engine in <run>/pretrain/",
    )
    g.add_argument(
        "--pretrain-lm-epochs", type=int, default=p.epochs, help="passes over the training text (0: no pretraining)"
    )
    g.add_argument(
        "--pretrain-lm-text",
        choices=PRETRAIN_TEXTS,
        default=p.text,
        help="longest: unique texts not inside a longer one; all: every unique text",
    )
    g.add_argument(
        "--pretrain-lm-tie-weights",
        action=argparse.BooleanOptionalAction,
        default=p.tie_weights,
        help="tie the softmax to the embedding (else a separate Linear(H, V))",
    )
    g.add_argument("--pretrain-lm-lr", type=float, default=p.lr, help="peak learning rate (warmup, cosine decay)")
    g.add_argument("--pretrain-lm-batch-size", type=int, default=p.batch_size, help="texts per step")
    g.add_argument("--pretrain-lm-dropout", type=float, default=p.dropout, help="dropout before the softmax")


def config_from_cli(args: argparse.Namespace) -> Config:
    """The :class:`Config` of ``rnnkit classify train`` options. With ``--resume RUN`` the run's
    own ``data``, ``model`` and ``pretrain`` sections, but for the options given
    (:func:`~rnnkit.tasks.common.resumed_section`; so ``--resume RUN`` alone continues the run as it was)."""
    data = section_from_args(DataConfig, args)
    model = section_from_args(ModelConfig, args)
    pretrain = section_from_args(PretrainConfig, args, "pretrain_lm_")
    if args.resume:
        saved = resumed_run_config(args.resume, "classify")
        data = resumed_section(DataConfig, saved, "data", data, args.resume, args)
        model = resumed_section(ModelConfig, saved, "model", model, args.resume, args)
        pretrain = resumed_section(PretrainConfig, saved, "pretrain", pretrain, args.resume, args, "pretrain_lm_")
    return Config(data, model, config_from_args(args), pretrain)


def run_train(args: argparse.Namespace) -> int:
    if not args.resume:  # a resumed run has its own
        require(args, "train")
    config = config_from_cli(args)
    result = train(config)
    print(f"run folder: {result.run_dir} ({result.stop_reason} after {result.steps} steps)")
    if result.best_metric is not None:
        print(f"best val {config.train.monitor}: {result.best_metric:.4f} (step {result.best_step})")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    require(args, "run", "data")
    report = evaluate_file(args.run, args.data, args.out_dir, args.text_column, args.label_column)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        print(f"report.json and confusion.png in {report['out_dir']}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    require(args, "run")
    classifier = Classifier.load(args.run)
    texts = read_input_lines(args.input)
    text = format_predictions(texts, classifier.predict(texts), args.output_format == "json")
    if args.output == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(args.output), text)
    return 0
