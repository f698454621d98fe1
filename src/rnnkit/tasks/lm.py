"""`rnnkit lm`: language modeling and text generation with a recurrent network.

From Python::

    from rnnkit.tasks import lm
    run_dir = lm.train(lm.Config(data=lm.DataConfig(files=["corpus.txt"]), train=TrainConfig(steps=2000)))
    for piece in lm.generate(run_dir, prompt="ROMEO:", max_new=200, seed=1):
        print(piece, end="")
    print(lm.evaluate_files(run_dir, ["test.txt"]))      # {"loss": ..., "perplexity": ..., "bpc": ...}

The pieces, top to bottom: the configs; :class:`LanguageModel` (embedding -> recurrent stack ->
linear, optionally tied); the corpus (tokenized once into a memory-mapped token file in the run
folder, ``<run>/data/``); evaluation over a whole token file with the state carried; generation
that carries the state (O(1) work per new token); training on the engine (:mod:`rnnkit.train`)
with truncated BPTT; the CLI verb ``lm`` with ``train``, ``generate`` and ``eval``.

Shape legend: ``B`` batch (streams), ``T`` tokens per chunk, ``V`` vocabulary size, ``E`` embedding
size, ``H`` hidden size.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import nn as rnn
from rnnkit.data.batching import StreamChunk, TBPTTStream
from rnnkit.data.text import (
    TokenFileInfo,
    TokenStreams,
    iter_corpus,
    list_text_files,
    open_token_file,
    slice_chars,
    token_dtype,
    write_token_file,
)
from rnnkit.data.vocab import CharVocab, SubwordVocab
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.io import chmod_as_created
from rnnkit.tasks.common import (
    HelpFormatter,
    checked_sections,
    load_task_run,
    refuse_resume_changes,
    resumed_run_config,
)
from rnnkit.train import StepOutput, TrainConfig, Trainer, add_train_args, distributed, seed_everything
from rnnkit.train import config_from_args as train_config_from_args
from rnnkit.train.run import append_report, load_weights_into, new_run_dir

LEVELS = ("char", "subword")
DATA_DIR = "data"  # inside the run folder: the token files and the vocabulary
CHAR_VOCAB_FILE = "vocab.json"
SUBWORD_VOCAB_FILE = "tokenizer.json"
RUN_CONFIG_FILE = "lm.json"  # the data and model configs, beside the engine's config.json

# ---------------------------------------------------------------- configuration


# `--cell` name -> the rnnkit.nn layer and its fixed keyword arguments.
_CELLS: dict[str, tuple[type[rnn.RecurrentLayer], dict[str, Any]]] = {
    "lstm": (rnn.LSTM, {}),
    "gru": (rnn.GRU, {}),
    "rnn": (rnn.RNN, {}),
    "rnn-relu": (rnn.RNN, {"nonlinearity": "relu"}),
    "layernorm-lstm": (rnn.LayerNormLSTM, {}),
    "layernorm-gru": (rnn.LayerNormGRU, {}),
    "indrnn": (rnn.IndRNN, {}),
    "mingru": (rnn.MinGRU, {}),
    "minlstm": (rnn.MinLSTM, {}),
}
_NO_RECURRENT_REGULARIZERS = ("mingru", "minlstm")  # parallel-scan layers: no recurrent_dropout/zoneout/weight_drop
CELLS = tuple(_CELLS)


@dataclass
class DataConfig:
    """Where the text comes from and how it becomes tokens.

    ``files``: UTF-8 text files or folders of them (training text). ``val``: validation files;
    if empty, the last ``val_fraction`` of the training tokens is held out (nanoGPT's split).
    ``level``: ``char`` (one token per character) or ``subword`` (byte-level BPE with up to
    ``vocab_size`` tokens, learned on the training files). ``seq_len``: tokens per truncated
    BPTT chunk (``T``).
    """

    files: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    level: str = "char"
    vocab_size: int = 2048
    seq_len: int = 128

    def validate(self) -> None:
        if not self.files:
            raise ConfigError("data.files: expected at least one text file or folder (--data)")
        if self.level not in LEVELS:
            raise ConfigError(f"data.level: expected one of {list(LEVELS)}, got {self.level!r}")
        if not self.val and not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction: expected a number in (0, 1), got {self.val_fraction!r}")
        if self.seq_len < 1:
            raise ConfigError(f"data.seq_len: expected an integer >= 1, got {self.seq_len!r}")
        if self.level == "subword" and self.vocab_size < 257:
            raise ConfigError(f"data.vocab_size: expected >= 257 (256 bytes + merges), got {self.vocab_size!r}")


@dataclass
class ModelConfig:
    """The network: embedding (``E``, 0 means ``H``) -> ``layers`` x ``cell`` (``H``) -> linear.

    ``dropout``: between recurrent layers and before the output layer. ``tie_weights``: the
    output layer shares the embedding matrix (needs ``E == H``). AWD-LSTM-style regularizers
    (Merity et al. 2017), all off by default: ``embed_dropout`` drops whole rows of the embedding
    (words, here characters or subwords); ``input_dropout`` drops embedding features; ``locked``
    makes the input and output dropout one mask per sequence (variational) instead of one per
    step; ``weight_drop`` is DropConnect on the recurrent weights; ``recurrent_dropout`` and
    ``zoneout`` act on the state inside the recurrence (the last three turn off torch's kernel).
    """

    cell: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 0
    dropout: float = 0.2
    tie_weights: bool = False
    embed_dropout: float = 0.0
    input_dropout: float = 0.0
    locked: bool = False
    weight_drop: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"model.cell: expected one of {list(CELLS)}, got {self.cell!r}")
        for name in ("layers", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        if self.embed < 0:
            raise ConfigError(f"model.embed: expected an integer >= 0 (0: same as hidden), got {self.embed!r}")
        for name in ("dropout", "embed_dropout", "input_dropout", "weight_drop", "recurrent_dropout", "zoneout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name}: expected a number in [0, 1), got {getattr(self, name)!r}")
        if self.tie_weights and self.embed not in (0, self.hidden):
            raise ConfigError(f"model.tie_weights: needs embed == hidden, got embed={self.embed}, hidden={self.hidden}")
        if self.cell in _NO_RECURRENT_REGULARIZERS and (self.weight_drop or self.recurrent_dropout or self.zoneout):
            raise ConfigError(f"model.cell: {self.cell} has no weight_drop/recurrent_dropout/zoneout (parallel scan)")

    def recurrent_layer(self, input_size: int) -> rnn.RecurrentLayer:
        """The configured ``rnnkit.nn`` layer stack reading ``input_size`` features."""
        layer_class, fixed = _CELLS[self.cell]
        options = {"num_layers": self.layers, "dropout": self.dropout if self.layers > 1 else 0.0, **fixed}
        for name in ("weight_drop", "recurrent_dropout", "zoneout"):
            if getattr(self, name):
                options[name] = getattr(self, name)
        return layer_class(input_size, self.hidden, **options)


# Training defaults of `rnnkit lm train` (the benchmark recipe: B=64 streams, T=128, AdamW 3e-3, cosine).
DEFAULT_TRAIN = TrainConfig(steps=2000, batch_size=64, lr=3e-3, schedule="cosine", eval_every=250, clip_norm=1.0)
EVAL_STREAMS = 16  # streams evaluated side by side (each starts from a zero state)


@dataclass
class Config:
    """Everything one `rnnkit lm train` run needs: data, model, training.

    ``minutes``: if set, ``train.steps`` is replaced by the number of steps that fit in about
    that many minutes, timed on this machine just before training (the engine counts steps),
    and ``train.eval_every=0`` means four evaluations spread over them.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: copy.deepcopy(DEFAULT_TRAIN))
    minutes: float | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field of any section."""
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if self.minutes is not None and not 0 < self.minutes < math.inf:
            raise ConfigError(f"minutes: expected a finite number > 0, got {self.minutes!r}")


# ---------------------------------------------------------------- model


class LanguageModel(nn.Module):
    """Embedding -> recurrent stack -> dropout -> linear over the vocabulary.

    ``forward(tokens: (B, T), state=None) -> (logits: (B, T, V), state)``; ``state`` is the
    recurrent layer's state, to be passed back in for the next chunk (or the next token).
    """

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        embed = config.embed or config.hidden
        if config.embed_dropout:
            self.embed = rnn.EmbeddingDropout(vocab_size, embed, p=config.embed_dropout)
        else:
            self.embed = nn.Embedding(vocab_size, embed)
        self.input_drop = _dropout(config.input_dropout, config.locked)
        self.rnn = config.recurrent_layer(embed)
        self.drop = _dropout(config.dropout, config.locked)
        self.head = nn.Linear(config.hidden, vocab_size)
        if config.tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        x = self.input_drop(self.embed(tokens))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One new token per sequence, ``tokens: (B, 1)`` -> ``(logits: (B, 1, V), state)``.

        Runs rnnkit's step-by-step path (same numbers as the fused one): on the CPU, torch's
        kernel repacks the weights for oneDNN on every call, which for a single time step costs
        some 20 times the step itself.
        """
        fused, self.rnn.impl = self.rnn.impl, "loop"
        try:
            return self(tokens, state)
        finally:
            self.rnn.impl = fused


def _dropout(p: float, locked: bool) -> nn.Module:
    if p == 0:
        return nn.Identity()
    return rnn.LockedDropout(p) if locked else nn.Dropout(p)


# ---------------------------------------------------------------- corpus


Vocab = CharVocab | SubwordVocab


@dataclass
class Corpus:
    """The tokenized text of a run: ``train`` and ``val`` ids (memory maps) and the vocabulary.

    ``train_chars``/``val_chars`` count the characters each part came from (bits per character).
    """

    vocab: Vocab
    train: np.ndarray
    val: np.ndarray
    train_chars: int
    val_chars: int


def load_vocab(folder: str | Path) -> Vocab:
    """The vocabulary saved in a run's data folder (``vocab.json`` or ``tokenizer.json``)."""
    folder = Path(folder)
    if (folder / CHAR_VOCAB_FILE).is_file():
        return CharVocab.load(folder / CHAR_VOCAB_FILE)
    if (folder / SUBWORD_VOCAB_FILE).is_file():
        return SubwordVocab.load(folder / SUBWORD_VOCAB_FILE)
    raise CheckpointError(f"{folder}: no {CHAR_VOCAB_FILE} or {SUBWORD_VOCAB_FILE}; not an rnnkit lm run")


# A re-readable text: each call streams it again from the files, as chunks (see iter_corpus).
TextSource = Callable[[], Iterator[str]]


def build_vocab(config: DataConfig, train_text: TextSource, val_text: TextSource) -> Vocab:
    """Read the text (this pass also validates the UTF-8) and build the vocabulary.

    A character vocabulary includes the validation text's characters, so evaluation never meets
    an unknown one; BPE is learned on the training text only (it can encode anything).
    """
    chars = CharVocab.build(itertools.chain(train_text(), val_text()))
    if config.level == "char":
        return chars
    return SubwordVocab.train(train_text(), vocab_size=config.vocab_size)


def split_text(config: DataConfig, train_files: list[Path], val_files: list[Path]) -> tuple[TextSource, TextSource]:
    """The training and the validation text. Without ``val`` files the training files are cut at
    a character: the first ``1 - val_fraction`` of their characters train, the rest validate
    (nanoGPT's split), so neither the model nor a BPE vocabulary ever sees validation text."""
    if val_files:
        return lambda: iter_corpus(train_files), lambda: iter_corpus(val_files)
    total = sum(len(text) for text in iter_corpus(train_files))  # also checks the UTF-8, file by file
    cut = int(total * (1.0 - config.val_fraction))
    return lambda: slice_chars(iter_corpus(train_files), 0, cut), lambda: slice_chars(iter_corpus(train_files), cut)


def stage_corpus(config: DataConfig, batch_size: int) -> Path:
    """Tokenize the text into a new temporary folder (the vocabulary and the token files) and
    return it; the caller moves it into the run folder (``<run>/data``).

    Everything is checked here, before anything is written where the user looks: on bad input
    (not UTF-8, empty, too short for one batch of ``batch_size`` x ``seq_len``) a
    :class:`DataError` is raised and the temporary folder is removed.
    """
    config.validate()
    train_files, val_files = list_text_files(config.files), list_text_files(config.val) if config.val else []
    train_text, val_text = split_text(config, train_files, val_files)
    vocab = build_vocab(config, train_text, val_text)
    staging = Path(tempfile.mkdtemp(prefix="rnnkit-lm-"))
    try:
        chmod_as_created(staging)
        _write_tokens(staging, vocab, train_text, val_text)
        _check_corpus_size(load_corpus(staging), config, batch_size)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def prepare_corpus(config: DataConfig, data_dir: str | Path, batch_size: int) -> Corpus:
    """The corpus in ``data_dir``, tokenized there first if it is not yet (see :func:`stage_corpus`)."""
    data_dir = Path(data_dir)
    if not (data_dir / "split.json").is_file():
        staging = stage_corpus(config, batch_size)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(data_dir))
    return load_corpus(data_dir)


def _write_tokens(folder: Path, vocab: Vocab, train_text: TextSource, val_text: TextSource) -> None:
    """``train.bin`` and ``val.bin``, the vocabulary, and ``split.json`` saying which ids are which."""
    if isinstance(vocab, CharVocab):
        vocab.save(folder / CHAR_VOCAB_FILE)
    else:
        vocab.save(folder / SUBWORD_VOCAB_FILE)
    dtype = token_dtype(len(vocab))
    split = {}
    for name, text in (("train", train_text), ("val", val_text)):
        info = write_token_file(text(), vocab.encode_array, folder / f"{name}.bin", dtype)
        split[name] = [f"{name}.bin", 0, info.count, info.chars]
    (folder / "split.json").write_text(json.dumps(split))


def load_corpus(data_dir: str | Path) -> Corpus:
    """Map the token files of a prepared data folder (nothing is read into memory)."""
    data_dir = Path(data_dir)
    try:
        split = json.loads((data_dir / "split.json").read_text())
        parts = {}
        for name in ("train", "val"):
            file, start, stop, chars = split[name]
            ids, _ = open_token_file(data_dir / file)
            parts[name] = (ids[start:stop], chars)
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{data_dir}: token files missing or unreadable ({e}); delete it to rebuild") from None
    return Corpus(load_vocab(data_dir), parts["train"][0], parts["val"][0], parts["train"][1], parts["val"][1])


def _check_corpus_size(corpus: Corpus, config: DataConfig, batch_size: int) -> None:
    where = ", ".join(config.files)
    need = batch_size * (config.seq_len + 1)  # TBPTTStream: B streams of at least T inputs + 1 target
    if len(corpus.train) < need:
        raise DataError(
            f"text too short: {len(corpus.train)} training tokens, but one training chunk of "
            f"batch {batch_size} x seq_len {config.seq_len} needs {need}; give more text or lower "
            "--batch-size / --seq-len",
            path=where,
        )
    if len(corpus.val) < 2:
        raise DataError(
            f"validation text too short: {len(corpus.val)} token(s), expected at least 2",
            path=", ".join(config.val) or where,
        )


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_tokens(
    model: LanguageModel, tokens: np.ndarray, chars: int, batch_size: int = 16, seq_len: int = 256
) -> dict[str, float]:
    """Loss over every next-token prediction of ``tokens`` (all but the first token).

    The text is cut into ``batch_size`` streams read chunk by chunk with the state carried, then
    the tail of every stream and the last few tokens, so each target is scored exactly once.
    Returns ``loss`` (nats per token), ``perplexity`` and ``bpc`` (bits per character of the
    ``chars`` characters the tokens came from).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size = max(1, min(batch_size, (len(tokens) - 1) // 2))
    streams = TokenStreams(tokens, batch_size, seq_len)
    total, state = 0.0, None

    def score(x: Tensor, y: Tensor, state: Any) -> tuple[float, Any]:
        logits, state = model(x.to(device), state)  # (B, t, V)
        nats = F.cross_entropy(logits.flatten(0, 1).float(), y.to(device).flatten(), reduction="sum")
        return float(nats), state

    for x, y in streams:
        nats, state = score(x, y, state)
        total += nats
    L, done = streams.stream_len, len(streams) * seq_len
    if done < L:  # the tail of every stream, shorter than one chunk (only those ids are read)
        index = streams.starts[:, None] + done + np.arange(L - done + 1)  # (B, L - done + 1)
        tail = torch.from_numpy(tokens[index].astype(np.int64))
        nats, state = score(tail[:, :-1], tail[:, 1:], state)
        total += nats
    rest = torch.from_numpy(np.asarray(tokens[batch_size * L :]).astype(np.int64))  # after the last stream
    if len(rest) > 1:
        last = None if state is None else _select_stream(state, batch_size - 1)
        nats, _ = score(rest[:-1].view(1, -1), rest[1:].view(1, -1), last)
        total += nats
    model.train(was_training)
    count = len(tokens) - 1
    loss = total / count
    chars_scored = chars * count / len(tokens)  # the first token is context, not scored
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bpc": total / chars_scored / math.log(2)}


def _select_stream(state: Any, index: int) -> Any:
    """One stream's state, ``(L, 1, H)`` pieces of an ``(L, B, H)`` state."""
    if isinstance(state, tuple):
        return tuple(s[:, index : index + 1].contiguous() for s in state)
    return state[:, index : index + 1].contiguous()


# ---------------------------------------------------------------- generation


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Draw one token id from ``logits: (V,)``: temperature (0 = greedy), then top-k (exactly the
    ``k`` most likely), then top-p (the smallest set of most likely tokens whose
    probability reaches ``top_p``). Any temperature > 0 works: the logits are shifted to a maximum
    of 0, which stays 0, so a tiny one is near-greedy, never ``inf - inf`` (nor ``0 / 0`` where
    denormal numbers flush to zero)."""
    if temperature == 0:
        return int(logits.argmax())
    shifted = logits.float() - logits.float().max()  # (V,), <= 0
    logits = torch.where(shifted == 0, shifted, shifted / temperature)  # (V,), max 0 however small the temperature
    if top_k is not None and 0 < top_k < logits.numel():
        keep = torch.topk(logits, top_k).indices  # (k,)
        logits = torch.full_like(logits, float("-inf")).scatter(0, keep, logits[keep])
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)  # (V,)
        drop = probs.cumsum(-1) - probs >= top_p  # the tokens before it already reach top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))


@torch.no_grad()
def generate_ids(
    model: LanguageModel,
    prompt_ids: Sequence[int],
    max_new: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """Yield ``max_new`` token ids after ``prompt_ids``, one at a time.

    The prompt is read once; after that each new token is one recurrent step from the carried
    state, so the work per token does not grow with the length of the text.
    """
    model.eval()
    device = next(model.parameters()).device
    logits, state = model(torch.tensor([list(prompt_ids)], device=device))  # (1, P, V)
    for _ in range(max_new):
        token = sample_next(logits[0, -1], temperature, top_k, top_p, generator)
        yield token
        logits, state = model.step(torch.tensor([[token]], device=device), state)  # (1, 1, V)


def prompt_ids(vocab: Vocab, prompt: str) -> list[int]:
    """The prompt's ids. Characters outside a character vocabulary are dropped with a note on
    stderr; a prompt of nothing but such characters is a :class:`DataError`. An empty prompt
    starts from a newline (or the first token)."""
    if not prompt:
        return vocab.encode("\n", skip_unknown=True) or [0]
    _check_utf8(prompt)
    unknown = vocab.unknown(prompt)
    ids = vocab.encode(prompt, skip_unknown=True)
    if not ids:
        raise DataError(f"prompt {prompt!r}: none of its characters is in the model's vocabulary")
    if unknown:
        print(f"rnnkit: note: prompt characters not in the vocabulary were dropped: {unknown!r}", file=sys.stderr)
    return ids


def _check_utf8(prompt: str) -> None:
    """A :class:`DataError` for a prompt holding bytes that are not UTF-8 (Python reads such bytes
    of the command line as lone surrogates, which neither a vocabulary nor a terminal takes)."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(
            f"prompt: {prompt[e.start]!r} at character {e.start} is not text (a byte that is not UTF-8?); "
            "expected UTF-8 text"
        ) from None


def generate(
    run_dir: str | Path,
    prompt: str = "",
    max_new: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    checkpoint: str = "best",
    device: str = "cpu",
) -> Iterator[str]:
    """Stream the text generated by a trained run after ``prompt``, piece by piece (the prompt
    itself is not repeated). ``seed`` makes it reproducible."""
    check_sampling(max_new, temperature, top_k, top_p)
    model, vocab = load_model(run_dir, checkpoint, device)
    yield from generate_text(model, vocab, prompt_ids(vocab, prompt), max_new, temperature, top_k, top_p, seed)


def generate_text(
    model: LanguageModel,
    vocab: Vocab,
    prompt: Sequence[int],
    max_new: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> Iterator[str]:
    """As :func:`generate`, for a model in memory and the prompt's ids (see :func:`prompt_ids`).

    The pieces join to ``vocab.decode`` of the generated ids: subword tokens that end the text in
    the middle of a UTF-8 character (the stream decoder holds them back) come out at the end,
    as U+FFFD."""
    check_sampling(max_new, temperature, top_k, top_p)
    generator = torch.Generator(device=next(model.parameters()).device)
    if seed is None:
        generator.seed()  # a fresh random seed, leaving torch's global generator alone
    else:
        generator.manual_seed(seed)
    decode = vocab.stream_decoder()
    pending: list[int] = []  # tokens held back since the last piece (an incomplete UTF-8 character)
    for token in generate_ids(model, prompt, max_new, temperature, top_k, top_p, generator):
        piece = decode(token)
        if piece:
            pending.clear()
            yield piece
        else:
            pending.append(token)
    if pending:
        yield vocab.decode(pending)


def check_sampling(max_new: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    """A :class:`ConfigError` naming the first sampling option out of its range."""
    if max_new < 0:
        raise ConfigError(f"max_new: expected an integer >= 0, got {max_new!r}")
    if not temperature >= 0:
        raise ConfigError(f"temperature: expected a number >= 0 (0: greedy), got {temperature!r}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k: expected an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p: expected a number in (0, 1], got {top_p!r}")


# ---------------------------------------------------------------- training


def train_step(model: nn.Module, batch: StreamChunk, state: Any) -> StepOutput:
    """One truncated-BPTT chunk: ``batch.inputs``/``targets: (B, T)``; the state is carried."""
    logits, state = model(batch.inputs.long(), state)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.long().flatten())
    return StepOutput(loss, state=state, items=batch.targets.numel())


def train_batches(corpus: Corpus, config: Config) -> TBPTTStream:
    """``B`` streams over the memory-mapped training tokens, read ``seq_len`` tokens at a time."""
    ids = torch.from_numpy(corpus.train)  # (N,), still the memory map: nothing is read here
    return TBPTTStream(ids, batch_size=config.train.batch_size, bptt=config.data.seq_len)


def train(config: Config) -> Path:
    """Train a language model; returns the run folder.

    The text is tokenized (and checked) before the run folder exists; a resumed run
    (``config.train.resume``) reuses the token files in its ``data/`` folder.
    """
    config = resumed(config)
    config.validate()
    # Under torchrun: join the process group first, so that the run folder is rank 0's on every
    # process; every process tokenizes into its own temporary folder, rank 0 moves its copy in.
    distributed.setup(config.train)
    run_dir, staging = _run_dir_and_data(config)
    try:
        corpus = load_corpus(staging or run_dir / DATA_DIR)
        seed_everything(config.train.seed)
        model = LanguageModel(len(corpus.vocab), config.model)
        if config.minutes is not None:  # rank 0's timing decides: every process runs the same steps
            steps = distributed.broadcast(steps_for_minutes(model, corpus, config) if distributed.is_main() else None)
            config.train.steps, config.train.epochs = steps, None
            config.train.eval_every = config.train.eval_every or math.ceil(config.train.steps / 4)  # the 4th: the end
        trainer = Trainer(
            model,
            config.train,
            train_step=train_step,
            evaluate=lambda m: evaluate_tokens(m, corpus.val, corpus.val_chars, EVAL_STREAMS, 2 * config.data.seq_len),
            task="lm",
            run_dir=run_dir,
            task_config={"data": asdict(config.data), "model": asdict(config.model)},
        )
        if staging is not None:
            del corpus
            if distributed.is_main():
                shutil.move(str(staging), str(run_dir / DATA_DIR))
            distributed.barrier()
            corpus = load_corpus(run_dir / DATA_DIR)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    trainer.fit(train_batches(corpus, config))
    if distributed.is_main():
        _report_sample(trainer.run_dir, model, corpus.vocab, config.train.seed)
    distributed.barrier()
    return trainer.run_dir


def resumed(config: Config) -> Config:
    """``config``, or when it resumes a run (``config.train.resume``) ``config`` with that run's
    data and model sections: a resumed run goes on training the same model on the same tokens,
    read in the same chunks, whatever those sections of ``config`` say."""
    if not config.train.resume:
        return config
    run = Path(config.train.resume)
    data, model = saved_sections(run, resumed_run_config(run, "lm"))
    return replace(config, data=data, model=model)


def _run_dir_and_data(config: Config) -> tuple[Path, Path | None]:
    """The run folder, and the staged token folder for a new run (``None`` when resuming)."""
    if config.train.resume:
        run_dir = Path(config.train.resume)
        if not (run_dir / DATA_DIR / "split.json").is_file():
            raise CheckpointError(f"{run_dir}: no {DATA_DIR}/split.json; --resume expects an lm run folder")
        return run_dir, None
    staging = stage_corpus(config.data, config.train.batch_size)
    if config.train.run_dir:
        run_dir = Path(config.train.run_dir)
        if (run_dir / DATA_DIR).exists():
            shutil.rmtree(staging, ignore_errors=True)
            raise ConfigError(f"run_dir: {run_dir} already holds a run; use --resume {run_dir} or another folder")
        return run_dir, staging
    return new_run_dir("lm"), staging


def steps_for_minutes(model: LanguageModel, corpus: Corpus, config: Config) -> int:
    """How many optimizer steps fit in ``config.minutes``: a few steps of a copy of the model are
    timed on real batches, with the engine's gradient clipping (the model itself and the random
    state are left as they were); the median step counts, not the fastest."""
    rng = torch.get_rng_state()
    probe = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW(probe.parameters(), lr=config.train.lr)
    batches = train_batches(corpus, config)
    per_step = []
    for k in range(6):  # the first is a warm-up
        start = time.perf_counter()
        out = train_step(probe, batches(k), None)
        out.loss.backward()
        if config.train.clip_norm:
            torch.nn.utils.clip_grad_norm_(probe.parameters(), config.train.clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        per_step.append(time.perf_counter() - start)
    torch.set_rng_state(rng)
    seconds = statistics.median(per_step[1:]) * config.train.accumulate
    return max(1, int(config.minutes * 60 / seconds))


def _report_sample(run_dir: Path, model: LanguageModel, vocab: Vocab, seed: int) -> None:
    """Add a short generated sample to ``report.md``."""
    sample = "".join(generate_text(model, vocab, prompt_ids(vocab, ""), 300, temperature=0.8, seed=seed))
    model.train()
    append_report(run_dir, f"## Sample (temperature 0.8, seed {seed})\n\n```text\n{sample}\n```")


# ---------------------------------------------------------------- a trained run


def load_model(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> tuple[LanguageModel, Vocab]:
    """The model (in eval mode) and vocabulary of a run folder written by :func:`train`.

    ``checkpoint``: ``best`` (falls back to ``last`` when the run never evaluated) or ``last``.
    Raises :class:`CheckpointError` when ``run_dir`` is not an lm run.
    """
    run_dir, saved, weights = load_task_run(run_dir, "lm", checkpoint, device)
    _, model_config = saved_sections(run_dir, saved)
    vocab = load_vocab(run_dir / DATA_DIR)
    model = LanguageModel(len(vocab), model_config).to(device)
    load_weights_into(model, weights, run_dir)
    return model.eval(), vocab


def saved_sections(run: Path, saved: dict[str, Any]) -> tuple[DataConfig, ModelConfig]:
    """The data and model sections of ``run``'s ``config.json`` (read as ``saved``), checked
    (:func:`~rnnkit.tasks.common.checked_sections`)."""
    data, model = checked_sections(run, saved, {"data": DataConfig, "model": ModelConfig})
    return data, model


def evaluate_files(
    run_dir: str | Path,
    files: Sequence[str | Path],
    checkpoint: str = "best",
    batch_size: int = 16,
    seq_len: int = 256,
    device: str = "cpu",
) -> dict[str, float]:
    """Loss (nats per token), perplexity and bits per character of a trained run on ``files``.

    The text is tokenized with the run's vocabulary in a streaming pass into a temporary token
    file; a character the vocabulary lacks is a :class:`DataError` naming the file and character.
    """
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if value < 1:
            raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
    model, vocab = load_model(run_dir, checkpoint, device)
    paths = list_text_files(files)
    with tempfile.TemporaryDirectory(prefix="rnnkit-lm-eval-") as tmp:
        info = _tokenize_for_eval(paths, vocab, Path(tmp) / "eval.bin")
        if info.count < 2:
            where = ", ".join(map(str, files))
            raise DataError(f"text too short: {info.count} token(s), expected at least 2", path=where)
        ids, _ = open_token_file(Path(tmp) / "eval.bin")
        result = evaluate_tokens(model, ids, info.chars, batch_size, seq_len)
        del ids
    return result


def _tokenize_for_eval(paths: list[Path], vocab: Vocab, out: Path) -> TokenFileInfo:
    """Write the token file of ``paths``; a :class:`DataError` naming the file, line and column
    of the first character a character vocabulary lacks."""

    def chunks() -> Iterator[str]:
        for path in paths:
            line = 1  # of the chunk's first character
            for text in iter_corpus([path]):
                missing = vocab.unknown(text)
                if missing:
                    at = text.index(missing[0])
                    column = at - text.rfind("\n", 0, at)
                    raise DataError(
                        f"column {column}: character {missing[0]!r} is not in the model's vocabulary "
                        f"({len(vocab)} characters of its training text)",
                        path=str(path),
                        line=line + text.count("\n", 0, at),
                    )
                line += text.count("\n")
                yield text

    return write_token_file(chunks(), vocab.encode_array, out, token_dtype(len(vocab)))


# ---------------------------------------------------------------- command line


def add_parser(subparsers) -> None:
    """``rnnkit lm train|generate|eval``."""
    from rnnkit.cli import add_config_option

    lm = subparsers.add_parser("lm", help="language modeling: train, generate text, evaluate")
    verbs = lm.add_subparsers(dest="lm_verb", metavar="SUBVERB", required=True)
    formatter = HelpFormatter

    p = verbs.add_parser("train", help="train a language model on text files", formatter_class=formatter)
    _add_data_and_model_args(p)
    add_train_args(p, DEFAULT_TRAIN)
    p.add_argument("--minutes", type=float, default=None, help="train about this long (sets --steps by timing)")
    add_config_option(p)
    p.set_defaults(func=train_command)

    p = verbs.add_parser("generate", help="generate text from a trained run", formatter_class=formatter)
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run folder written by `rnnkit lm train`")
    p.add_argument("--prompt", default="", help="text to continue (empty: start from a new line)")
    p.add_argument("--max-new", type=int, default=500, help="tokens to generate per sample")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with this probability")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same text)")
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (seeds seed, seed+1, ...)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint to use")
    add_config_option(p)
    p.set_defaults(func=generate_command)

    p = verbs.add_parser("eval", help="loss, perplexity and bits per character on text", formatter_class=formatter)
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run folder written by `rnnkit lm train`")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="UTF-8 text files or folders")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint to use")
    p.add_argument("--batch-size", type=int, default=16, help="streams evaluated side by side")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per chunk (the state is carried across)")
    add_config_option(p)
    p.set_defaults(func=eval_command)


def _add_data_and_model_args(p: argparse.ArgumentParser) -> None:
    d, m = DataConfig(), ModelConfig()
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="+", default=[], metavar="PATH", help="UTF-8 training text: files or folders")
    g.add_argument("--val", nargs="+", default=[], metavar="PATH", help="validation text (instead of --val-fraction)")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction, help="last fraction of the text held out")
    g.add_argument("--level", choices=LEVELS, default=d.level, help="characters or byte-level BPE subwords")
    g.add_argument("--vocab-size", type=int, default=d.vocab_size, help="subword vocabulary size (--level subword)")
    g.add_argument("--seq-len", type=int, default=d.seq_len, help="tokens per truncated-BPTT chunk")
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=m.cell, help="recurrent layer")
    g.add_argument("--layers", type=int, default=m.layers, help="stacked recurrent layers")
    g.add_argument("--hidden", type=int, default=m.hidden, help="hidden units per layer")
    g.add_argument("--embed", type=int, default=m.embed, help="embedding size (0: same as --hidden)")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout between layers and before the output")
    g.add_argument("--tie-weights", action="store_true", help="share the embedding and output matrices")
    g = p.add_argument_group("AWD-LSTM-style regularization")
    g.add_argument("--embed-dropout", type=float, default=m.embed_dropout, help="drop whole embedding rows")
    g.add_argument("--input-dropout", type=float, default=m.input_dropout, help="dropout on the embeddings")
    g.add_argument("--locked", action="store_true", help="one dropout mask per sequence (variational)")
    g.add_argument("--weight-drop", type=float, default=m.weight_drop, help="DropConnect on recurrent weights")
    g.add_argument("--recurrent-dropout", type=float, default=m.recurrent_dropout, help="dropout on h_{t-1}")
    g.add_argument("--zoneout", type=float, default=m.zoneout, help="probability a state unit keeps its value")


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` the command line (and ``--config`` file) describe; on ``--resume``
    the run's saved data and model sections."""
    train_config = train_config_from_args(args)
    if args.minutes is not None and (args.steps != DEFAULT_TRAIN.steps or args.epochs is not None):
        given = f"--steps {args.steps}" if args.epochs is None else f"--epochs {args.epochs}"
        raise ConfigError(f"minutes: sets the number of steps by timing; give it or {given}, not both")
    data = DataConfig(**{f.name: getattr(args, "data" if f.name == "files" else f.name) for f in fields(DataConfig)})
    model = ModelConfig(**{f.name: getattr(args, f.name) for f in fields(ModelConfig)})
    if args.resume:
        saved_data, saved_model = saved_sections(Path(args.resume), resumed_run_config(args.resume, "lm"))
        sections = {"data": (saved_data, data), "model": (saved_model, model)}
        refuse_resume_changes("lm", args.resume, args, sections, {"files": "data"})
        return Config(saved_data, saved_model, train_config, args.minutes)
    return Config(data, model, train_config, args.minutes)


def train_command(args: argparse.Namespace) -> int:
    run_dir = train(config_from_args(args))
    if not args.quiet:
        print(f"run folder: {run_dir}")
    return 0


def generate_command(args: argparse.Namespace) -> int:
    check_sampling(args.max_new, args.temperature, args.top_k, args.top_p)
    if args.num_samples < 1:
        raise ConfigError(f"num_samples: expected an integer >= 1, got {args.num_samples!r}")
    model, vocab = load_model(args.run, args.checkpoint)
    prompt = prompt_ids(vocab, args.prompt)  # a prompt of only unknown characters fails here
    seed = args.seed if args.seed is not None else torch.seed() % 2**31
    for i in range(args.num_samples):
        if i:
            print("\n" + "-" * 40)
        print(args.prompt, end="", flush=True)
        pieces = generate_text(model, vocab, prompt, args.max_new, args.temperature, args.top_k, args.top_p, seed + i)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
    return 0


def eval_command(args: argparse.Namespace) -> int:
    result = evaluate_files(args.run, args.data, args.checkpoint, args.batch_size, args.seq_len)
    print(json.dumps({k: round(v, 6) for k, v in result.items()}))
    return 0
