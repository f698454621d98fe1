"""`rnnkit speech`: speech to text with a bidirectional recurrent acoustic model trained by CTC.

Audio in, its transcript out::

    rnnkit speech train --train train.tsv --val val.tsv          # manifests: path<TAB>transcript
    rnnkit speech eval --run runs/speech/<id> --data test.tsv     # WER, CER (jiwer), CTC loss
    rnnkit speech transcribe --run runs/speech/<id> a.wav b.wav
    rnnkit speech lm --manifest train.tsv --order 4 --out lm.json   # a character n-gram LM
    rnnkit speech eval --run runs/speech/<id> --data test.tsv --beam 8 --lm lm.json

and the same from Python::

    from rnnkit.tasks import speech
    result = speech.train(speech.Config(data=speech.DataConfig(train="train.tsv", val="val.tsv")))
    speech.Recognizer.load(result.run_dir).transcribe(["a.wav"])        # ['three seven one']
    speech.build_lm(manifest="train.tsv", order=4).save("lm.json")
    speech.evaluate_file(result.run_dir, "test.tsv", decode=speech.DecodeConfig(beam=8, lm="lm.json"))

The model (Graves et al. 2006; the acoustic model of Deep Speech, Hannun et al. 2014, without its
language model): log-mel features ``(B, T, M)`` (:class:`rnnkit.data.audio.LogMel`: 25 ms windows
every 10 ms, normalized by the training set's mean and deviation per feature) → every two frames
stacked (``T / 2`` steps of ``2M``) → ``Linear`` + ReLU → a stacked bidirectional
:mod:`rnnkit.nn` GRU or LSTM run with ``lengths`` → dropout → ``Linear`` to the characters and
the CTC blank. Training minimizes the CTC loss (``F.ctc_loss``, per target character); decoding
is CTC's greedy best path (the most probable symbol per step, repeats merged, blanks dropped), or
with ``--beam``/``--lm`` (:class:`DecodeConfig`) prefix beam search with a character n-gram LM
fused in (:mod:`rnnkit.tasks.ctc_decode`, :mod:`rnnkit.tasks.char_ngram`).
``--cell mlp`` replaces the recurrent layers by a frame-wise feed-forward network of the same
width over the stacked frames: the baseline that sees 20 ms of context at a time.

Input: a manifest table (TSV, CSV or JSON lines, :mod:`rnnkit.data.tabular`) with a ``path``
column (an audio file; relative paths are relative to the manifest's folder) and a
``transcript`` column. Every file is read and checked before training starts (one
:class:`~rnnkit.errors.DataError` naming the manifest line and the audio file); the character set
is the training transcripts' (lower-cased unless ``--no-lowercase``).

Shape legend: ``B`` batch, ``T`` feature frames, ``M`` mel bands, ``H`` hidden units per
direction, ``C`` characters (+1 for the blank, id 0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.audio import LogMel, read_audio
from rnnkit.data.batching import BucketedBatches, pad_batch
from rnnkit.data.tabular import read_table, read_text_file
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.io import atomic_write_json, atomic_write_text
from rnnkit.nn import GRU, LSTM
from rnnkit.tasks.char_ngram import CharNgramLM, check_text
from rnnkit.tasks.common import (
    HelpFormatter,
    check_fraction,
    check_positive,
    checked_sections,
    load_task_run,
    refuse_resume_changes,
    require,
    section_from_args,
)
from rnnkit.tasks.ctc_decode import LMFusion, beam_search, best_path
from rnnkit.train import (
    FitResult,
    StepOutput,
    TrainConfig,
    Trainer,
    add_train_args,
    append_report,
    config_from_args,
    load_weights_into,
    read_run_config,
    seed_everything,
)

CELLS = ("gru", "lstm", "mlp")
BLANK = 0
LM_WEIGHT, INSERTION_BONUS = 0.5, 0.0  # the fusion's weights when --lm is given without them


# ===================================================================== configuration
@dataclass
class DataConfig:
    """Where the utterances are and how audio becomes features."""

    train: str = ""  # manifest: path, transcript
    val: str | None = None
    path_column: str = "path"
    transcript_column: str = "transcript"
    lowercase: bool = True
    sample_rate: int = 8000  # every file must have it
    n_mels: int = 40

    def validate(self) -> None:
        if not self.train:
            raise ConfigError("train: expected a manifest of audio files and transcripts (--train FILE)")
        if self.sample_rate < 1000 or self.n_mels < 1:
            raise ConfigError(
                f"sample_rate, n_mels: expected >= 1000 Hz and >= 1, got {self.sample_rate!r}, {self.n_mels!r}"
            )
        features = self.features()
        empty = (features.filters().amax(1) == 0).nonzero()
        if len(empty):
            raise ConfigError(
                f"n_mels: {self.n_mels} bands leave band {int(empty[0])} without any of the {features.n_fft // 2 + 1} "
                f"FFT bins at {self.sample_rate} Hz; expected fewer bands"
            )

    def features(self) -> LogMel:
        return LogMel(sample_rate=self.sample_rate, n_mels=self.n_mels)


@dataclass
class ModelConfig:
    """The acoustic model's shape."""

    cell: str = "gru"  # gru | lstm | mlp (the frame-wise baseline)
    hidden_size: int = 128  # per direction
    num_layers: int = 2
    dropout: float = 0.2

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell: expected one of {list(CELLS)}, got {self.cell!r}")
        check_positive(self, "hidden_size", "num_layers")
        check_fraction(self, "dropout")


def default_train_config() -> TrainConfig:
    """The training options ``rnnkit speech train`` starts from."""
    return TrainConfig(steps=None, epochs=30, batch_size=32, lr=2e-3, clip_norm=5.0, eval_every=200)


@dataclass
class Config:
    """Everything a speech run needs; saved in the run folder's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=default_train_config)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.train.validate()


@dataclass
class DecodeConfig:
    """How ``eval`` and ``transcribe`` turn the model's outputs into text: CTC's greedy best path
    (``beam`` 1 and no ``lm``), or prefix beam search keeping ``beam`` prefixes, with the character
    n-gram LM of the file ``lm`` fused in: ``score = acoustic + lm_weight * log P_LM +
    insertion_bonus * characters``. The two weights apply to an LM only (None: 0.5 and 0.0)."""

    beam: int = 1
    lm: str | None = None  # a file of `rnnkit speech lm`
    lm_weight: float | None = None
    insertion_bonus: float | None = None

    def validate(self) -> None:
        if not isinstance(self.beam, int) or isinstance(self.beam, bool) or self.beam < 1:
            raise ConfigError(f"beam: expected an integer >= 1, got {self.beam!r}")
        for name in ("lm_weight", "insertion_bonus"):
            value = getattr(self, name)
            if value is not None and self.lm is None:
                raise ConfigError(f"{name}: applies to an LM only; expected --lm FILE with it")
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        if self.lm_weight is not None and self.lm_weight < 0:
            raise ConfigError(f"lm_weight: expected a number >= 0, got {self.lm_weight!r}")


# ===================================================================== utterances
@dataclass
class Utterances:
    """Feature frames of each utterance (``(T_i, M)``, not yet normalized), its transcript, its
    audio file and the manifest line that named it."""

    manifest: str
    features: list[Tensor]
    transcripts: list[str]
    lines: list[int]
    files: list[str]

    def __len__(self) -> int:
        return len(self.features)


def read_utterances(path: str | os.PathLike, config: DataConfig) -> Utterances:
    """Read a manifest and every audio file it names, into log-mel frames."""
    table = read_table(path, config.path_column, config.transcript_column)
    folder = Path(path).parent
    extract = config.features()
    features, transcripts, files = [], [], []
    for audio, transcript, line in zip(table.texts, table.labels, table.lines, strict=True):
        file = Path(audio) if Path(audio).is_absolute() else folder / audio
        try:
            wave, _ = read_audio(file, config.sample_rate)
        except DataError as e:
            raise DataError(f"{path}:{line}: {e}") from None
        features.append(extract(wave))
        transcripts.append(" ".join((transcript.lower() if config.lowercase else transcript).split()))
        files.append(str(file))
    return Utterances(str(path), features, transcripts, table.lines, files)


def ctc_steps(frames: int | Tensor) -> int | Tensor:
    """The steps the acoustic model makes of ``frames`` feature frames (an int or a tensor):
    two frames stacked per step, ``ceil(frames / 2)``."""
    return (frames + 1) // 2


def encode_transcripts(charset: CharSet, utterances: Utterances) -> list[list[int]]:
    """The character ids of each transcript; a :class:`DataError` naming the manifest line of one
    with a character the model cannot write, or one that its audio is too short for: CTC needs a
    step per character and a blank between two equal ones."""
    targets = []
    for frames, text, line, file in zip(
        utterances.features, utterances.transcripts, utterances.lines, utterances.files, strict=True
    ):
        where = f"{utterances.manifest}:{line}"
        ids = charset.encode(text, where)
        needed = len(ids) + sum(a == b for a, b in itertools.pairwise(ids))
        if ctc_steps(len(frames)) < needed:
            raise DataError(
                f"{where}: {file}: {len(frames)} feature frames give {ctc_steps(len(frames))} CTC steps; "
                f"its transcript {text!r} needs at least {needed} (one per character, a blank between repeats): "
                "expected longer audio or a shorter transcript"
            )
        targets.append(ids)
    return targets


class CharSet:
    """Characters ↔ ids; id 0 is the CTC blank."""

    def __init__(self, chars: Sequence[str]) -> None:
        self.chars = list(chars)
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, transcripts: Sequence[str]) -> CharSet:
        return cls(sorted({c for t in transcripts for c in t}))

    def __len__(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str, where: str) -> list[int]:
        unknown = sorted({c for c in text if c not in self.index})
        if unknown:
            raise DataError(f"{where}: characters {unknown} never appear in the training transcripts")
        return [self.index[c] for c in text]

    def decode_best_path(self, ids: Sequence[int]) -> str:
        """CTC's collapse of an alignment: repeats merged, then blanks dropped; then the text
        (:meth:`decode_labels`)."""
        out, previous = [], BLANK
        for i in ids:
            if i != previous and i != BLANK:
                out.append(i)
            previous = i
        return self.decode_labels(out)

    def decode_labels(self, labels: Sequence[int]) -> str:
        """The text of collapsed labels (no blanks; a repeat is two characters), its spaces
        normalized as the transcripts are (none at either end, one between words), since a
        space, a blank and a space again decode to two."""
        return " ".join("".join(self.chars[i - 1] for i in labels).split())


@dataclass
class Normalizer:
    """Per-feature mean and deviation of the training frames."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, features: Sequence[Tensor]) -> Normalizer:
        frames = torch.cat(list(features))  # (N, M)
        return cls(frames.mean(0).tolist(), frames.std(0, correction=0).clamp(min=1e-3).tolist())

    def __call__(self, x: Tensor) -> Tensor:
        return (x - torch.tensor(self.mean)) / torch.tensor(self.std)


@dataclass
class Batch:
    """``features: (B, T, M)`` padded, ``lengths: (B,)`` frames, ``targets`` the transcripts'
    ids concatenated, ``target_lengths: (B,)``."""

    features: Tensor
    lengths: Tensor
    targets: Tensor
    target_lengths: Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.features.to(device), self.lengths, self.targets.to(device), self.target_lengths)


def collate(features: Sequence[Tensor], targets: Sequence[list[int]], indices: Sequence[int]) -> Batch:
    padded, lengths = pad_batch([features[i] for i in indices])  # (B, T, M), (B,)
    ids = [targets[i] for i in indices]
    flat = torch.tensor([c for t in ids for c in t], dtype=torch.long)
    return Batch(padded, lengths, flat, torch.tensor([len(t) for t in ids]))


# ===================================================================== the model
class AcousticModel(nn.Module):
    """``forward(features: (B, T, M), lengths: (B,)) -> (log_probs: (B, T', C + 1), lengths': (B,))``
    with ``T' = ceil(T / 2)`` (two frames stacked per step)."""

    def __init__(self, n_mels: int, symbols: int, config: ModelConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.input = nn.Linear(2 * n_mels, 2 * H)
        if config.cell == "mlp":
            self.rnn = None
            self.frames = nn.Sequential(
                *[
                    m
                    for _ in range(config.num_layers)
                    for m in (nn.Linear(2 * H, 2 * H), nn.ReLU(), nn.Dropout(config.dropout))
                ]
            )
        else:
            layer = LSTM if config.cell == "lstm" else GRU
            between = config.dropout if config.num_layers > 1 else 0.0
            self.rnn = layer(2 * H, H, num_layers=config.num_layers, bidirectional=True, dropout=between)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * H, symbols)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        B, T, M = features.shape
        valid = torch.arange(T, device=features.device) < lengths.to(features.device)[:, None]  # (B, T)
        features = features * valid.unsqueeze(-1)  # a padded frame never reaches a real one's step
        x = F.pad(features, (0, 0, 0, T % 2)).reshape(B, (T + 1) // 2, 2 * M)  # (B, T', 2M)
        steps = ctc_steps(lengths)  # (B,)
        x = torch.relu(self.input(x))  # (B, T', 2H)
        x = self.frames(x) if self.rnn is None else self.rnn(x, lengths=steps)[0]  # (B, T', 2H)
        return F.log_softmax(self.out(self.drop(x)).float(), dim=-1), steps


def ctc_step(model: nn.Module, batch: Batch, state: Any = None) -> StepOutput:
    """CTC loss of one batch (the trainer's ``train_step``): each utterance's loss per target
    character, averaged over the batch's utterances (``F.ctc_loss``'s ``"mean"``). The validation
    figure (:func:`mean_ctc_loss`) is the corpus's: total loss over total characters."""
    log_probs, steps = model(batch.features, batch.lengths)  # (B, T', C)
    loss = F.ctc_loss(
        log_probs.transpose(0, 1), batch.targets, steps, batch.target_lengths, blank=BLANK, zero_infinity=True
    )
    return StepOutput(loss, items=len(batch.lengths))


class Decoder:
    """One utterance's ``log_probs: (T', C + 1)`` to its text, as a :class:`DecodeConfig` says
    (checked, and its LM read, when the decoder is made). A character of the model's that the LM
    never saw is scored as the LM's unknown symbol; an LM that knows none of them is refused."""

    def __init__(self, charset: CharSet, config: DecodeConfig | None = None) -> None:
        self.charset, self.config = charset, config if config is not None else DecodeConfig()
        self.config.validate()
        self.fusion = None
        if self.config.lm is not None:
            lm = CharNgramLM.load(self.config.lm)
            weight = self.config.lm_weight if self.config.lm_weight is not None else LM_WEIGHT
            bonus = self.config.insertion_bonus if self.config.insertion_bonus is not None else INSERTION_BONUS
            self.fusion = LMFusion(lm, [None, *charset.chars], weight, bonus)
            if len(self.fusion.unknown) == len(charset.chars):
                raise ConfigError(
                    f"lm: {self.config.lm} knows none of the model's characters {charset.chars}; expected an LM of "
                    "text written as the training transcripts are (lower-cased?)"
                )

    @property
    def greedy(self) -> bool:
        return self.config.beam == 1 and self.fusion is None

    def __call__(self, log_probs: Tensor) -> str:
        if self.greedy:
            return self.charset.decode_labels(best_path(log_probs, BLANK))
        return self.charset.decode_labels(beam_search(log_probs, BLANK, self.config.beam, self.fusion)[0].labels)

    def summary(self) -> dict[str, Any]:
        """What decoded: ``method``, ``beam``, and with an LM its file, order, weights and the
        model's characters it never saw."""
        out: dict[str, Any] = {"method": "greedy best path" if self.greedy else "prefix beam search"}
        out["beam"] = self.config.beam
        if self.fusion is not None:
            out |= {
                "lm": str(self.config.lm), "lm_order": self.fusion.lm.order, "lm_weight": self.fusion.weight,
                "insertion_bonus": self.fusion.bonus, "lm_unknown_characters": self.fusion.unknown,
            }  # fmt: skip
        return out


def decoding_text(summary: dict[str, Any]) -> str:
    """A :meth:`Decoder.summary` in words, one line."""
    if summary["method"] == "greedy best path":
        return summary["method"]
    text = f"{summary['method']}, beam {summary['beam']}"
    if "lm" in summary:
        text += (
            f", {summary['lm_order']}-gram character LM {summary['lm']} "
            f"(weight {summary['lm_weight']:g}, insertion bonus {summary['insertion_bonus']:g})"
        )
        if summary["lm_unknown_characters"]:
            text += f"; characters it never saw, scored as unknown: {summary['lm_unknown_characters']}"
    return text


@torch.no_grad()
def transcribe_features(
    model: AcousticModel,
    charset: CharSet,
    features: Sequence[Tensor],
    batch_size: int = 32,
    decoder: Decoder | None = None,
) -> list[str]:
    """Transcripts of normalized feature sequences, by ``decoder`` (default: greedy best path)."""
    decoder = decoder if decoder is not None else Decoder(charset)
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(features), batch_size):
        padded, lengths = pad_batch(list(features[start : start + batch_size]))
        log_probs, steps = model(padded.to(device), lengths)  # (B, T', C + 1)
        for row, n in zip(log_probs.cpu(), steps.tolist(), strict=True):
            out.append(decoder(row[:n]))
    return out


@torch.no_grad()
def mean_ctc_loss(model: AcousticModel, features: Sequence[Tensor], targets: Sequence[list[int]]) -> float:
    """CTC loss per target character over all ``features`` (each ``(T_i, M)``, normalized): the
    total over the utterances divided by their total characters."""
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(features), 32):
        batch = collate(features, targets, range(start, min(start + 32, len(features)))).to(device)
        log_probs, steps = model(batch.features, batch.lengths)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), batch.targets, steps, batch.target_lengths, blank=BLANK,
            zero_infinity=True, reduction="sum",
        )  # fmt: skip
        total += loss.item()
    return total / sum(len(t) for t in targets)


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Word and character error rates (jiwer), in percent."""
    import jiwer

    hyps = list(hypotheses)
    return {"wer": 100 * jiwer.wer(list(references), hyps), "cer": 100 * jiwer.cer(list(references), hyps)}


# ===================================================================== a trained run
def run_sections(saved: dict[str, Any], run: Path) -> tuple[DataConfig, ModelConfig, CharSet, Normalizer]:
    """The data and model sections, character set and normalizer of a speech run's ``config.json``
    (``saved``); a :class:`CheckpointError` if they are not a speech run's."""
    if saved.get("task") != "speech":
        raise CheckpointError(f"{run}: a {saved.get('task')!r} run, expected a 'speech' run")
    data, model_config = checked_sections(run, saved, {"data": DataConfig, "model": ModelConfig})
    try:
        charset = CharSet(saved["charset"])
        normalizer = Normalizer(**saved["normalizer"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{run / 'config.json'}: not a speech run's config ({e})") from None
    return data, model_config, charset, normalizer


class Recognizer:
    """A trained run: model, character set, feature normalizer. Load with :meth:`load`."""

    def __init__(self, model: AcousticModel, charset: CharSet, normalizer: Normalizer, data: DataConfig) -> None:
        self.model = model.eval()
        self.charset, self.normalizer, self.data = charset, normalizer, data

    @classmethod
    def load(cls, run_dir: str | os.PathLike, which: str = "best", device: str = "cpu") -> Recognizer:
        run, saved, state_dict = load_task_run(run_dir, "speech", which, device)
        data, model_config, charset, normalizer = run_sections(saved, run)
        model = AcousticModel(data.n_mels, len(charset), model_config)
        load_weights_into(model, state_dict, run)
        return cls(model.to(device), charset, normalizer, data)

    def transcribe(self, files: Sequence[str | os.PathLike], decode: DecodeConfig | None = None) -> list[str]:
        """The transcript of each audio file (at the run's sample rate), decoded as ``decode``
        says (default: greedy best path)."""
        decoder = Decoder(self.charset, decode)
        extract = self.data.features()
        features = [self.normalizer(extract(read_audio(f, self.data.sample_rate)[0])) for f in files]
        return transcribe_features(self.model, self.charset, features, decoder=decoder)

    def evaluate(self, utterances: Utterances, decode: DecodeConfig | Decoder | None = None) -> dict[str, Any]:
        """WER, CER and CTC loss on ``utterances``, ``decoding`` (:meth:`Decoder.summary`) and the
        ``hypotheses``."""
        decoder = decode if isinstance(decode, Decoder) else Decoder(self.charset, decode)
        features = [self.normalizer(f) for f in utterances.features]
        hypotheses = transcribe_features(self.model, self.charset, features, decoder=decoder)
        report = {**error_rates(utterances.transcripts, hypotheses), "decoding": decoder.summary()}
        try:
            report["ctc_loss"] = mean_ctc_loss(self.model, features, encode_transcripts(self.charset, utterances))
        except DataError:
            report["ctc_loss"] = None  # a transcript the model cannot write, or too long for its audio
        return {**report, "utterances": len(utterances), "hypotheses": hypotheses}


def evaluate_file(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    decode: DecodeConfig | None = None,
) -> dict[str, Any]:
    """WER, CER and CTC loss of a run on a manifest, decoded as ``decode`` says (default: greedy
    best path; checked, and its LM read, before the manifest); ``report.json`` and
    ``hypotheses.txt`` into ``out_dir`` (default ``<run>/eval/<manifest stem>/``), written after
    every file is read."""
    if decode is not None:
        decode.validate()
    recognizer = Recognizer.load(run_dir)
    decoder = Decoder(recognizer.charset, decode)
    report = {"data": str(data), **recognizer.evaluate(read_utterances(data, recognizer.data), decoder)}
    folder = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval" / Path(data).stem
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "hypotheses.txt", "\n".join(report.pop("hypotheses")) + "\n")
    atomic_write_json(folder / "report.json", report)
    report["out_dir"] = str(folder)
    return report


# ===================================================================== the character LM
def build_lm(
    text: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    *,
    order: int = 4,
    lowercase: bool = True,
    transcript_column: str = "transcript",
) -> CharNgramLM:
    """A character n-gram LM (:mod:`rnnkit.tasks.char_ngram`, interpolated Kneser-Ney) of the
    lines of ``text`` (UTF-8, one sentence a line, blank lines skipped) or the transcripts of
    ``manifest`` (its ``transcript_column``): exactly one of the two. Each sentence is lower-cased
    (unless not ``lowercase``) and its spaces normalized as training transcripts are."""
    if (text is None) == (manifest is None):
        raise ConfigError("text, manifest: expected exactly one (--text FILE or --manifest FILE)")
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ConfigError(f"order: expected an integer >= 1, got {order!r}")
    if text is not None:
        lines = read_text_file(text, expected="one sentence per line").splitlines()
        rows = [(line, i) for i, line in enumerate(lines, start=1) if line.strip()]
        source = str(text)
    else:
        table = read_table(manifest, transcript_column, None)
        rows, source = list(zip(table.texts, table.lines, strict=True)), str(manifest)
    sentences = []
    for sentence, line in rows:
        check_text(sentence, f"{source}:{line}")
        sentences.append(" ".join((sentence.lower() if lowercase else sentence).split()))
    return CharNgramLM.train(sentences, order)


# ===================================================================== training
def resumed_sections(config: Config) -> tuple[DataConfig, ModelConfig, CharSet, Normalizer]:
    """The sections a resumed run (``config.train.resume``) continues with: its own model, feature
    options, character set and normalizer (its weights were made with them), and the manifests and
    columns of ``config`` (the run's own manifests where ``config`` names none)."""
    run = Path(config.train.resume)
    data, model, charset, normalizer = run_sections(read_run_config(run), run)
    given = config.data
    data = replace(
        data, train=given.train or data.train, val=given.val or data.val,
        path_column=given.path_column, transcript_column=given.transcript_column,
    )  # fmt: skip
    return data, model, charset, normalizer


def train(config: Config, *, runs_root: str | os.PathLike = "runs") -> FitResult:
    """Train an acoustic model; returns the trainer's :class:`FitResult` (``run_dir``: the run folder).

    Every manifest line and audio file is read before the run folder is made. Evaluations report
    the validation CTC loss, WER and CER; ``report.md`` gets the best checkpoint's."""
    if config.train.resume:
        data, model_config, charset, normalizer = resumed_sections(config)
        config = Config(data, model_config, config.train)
    config.validate()
    train_set = read_utterances(config.data.train, config.data)
    val_set = read_utterances(config.data.val, config.data) if config.data.val else None
    if not config.train.resume:
        charset, normalizer = CharSet.build(train_set.transcripts), Normalizer.fit(train_set.features)
    train_targets = encode_transcripts(charset, train_set)
    train_features = [normalizer(f) for f in train_set.features]
    if val_set is not None:
        val_features = [normalizer(f) for f in val_set.features]
        val_targets = encode_transcripts(charset, val_set)
    seed_everything(config.train.seed)
    model = AcousticModel(config.data.n_mels, len(charset), config.model)
    batches = BucketedBatches(
        [len(f) for f in train_features], config.train.batch_size,
        lambda idx: collate(train_features, train_targets, idx), seed=config.train.seed,
    )  # fmt: skip

    def evaluate(trained: AcousticModel) -> dict[str, float]:
        hypotheses = transcribe_features(trained, charset, val_features)
        return {
            "loss": mean_ctc_loss(trained, val_features, val_targets),
            **error_rates(val_set.transcripts, hypotheses),
        }

    task_config = {
        "data": asdict(config.data), "model": asdict(config.model),
        "charset": charset.chars, "normalizer": asdict(normalizer),
    }  # fmt: skip
    trainer = Trainer(
        model, config.train, train_step=ctc_step, evaluate=evaluate if val_set is not None else None,
        task="speech", task_config=task_config, runs_root=runs_root,
    )  # fmt: skip
    if not config.train.quiet:
        seconds = sum(len(f) for f in train_features) * config.data.features().hop / config.data.sample_rate
        print(
            f"{len(train_set)} training utterances ({seconds / 60:.1f} minutes of audio), "
            f"{len(charset) - 1} characters, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters",
            file=sys.stderr,
        )
    result = trainer.fit(batches)
    if trainer.is_main and val_set is not None and result.run_dir is not None:
        report = evaluate_file(result.run_dir, config.data.val, result.run_dir / "eval" / Path(config.data.val).stem)
        hypotheses = (Path(report["out_dir"]) / "hypotheses.txt").read_text().splitlines()
        lines = [
            "## Speech recognition", "",
            f"Best checkpoint on `{config.data.val}` ({report['utterances']} utterances, greedy CTC decoding):", "",
            f"- WER {report['wer']:.2f}%, CER {report['cer']:.2f}%, CTC loss {report['ctc_loss']:.4f} per character",
            "", "First transcripts:", "",
        ]  # fmt: skip
        for ref, hyp in list(zip(val_set.transcripts, hypotheses, strict=True))[:5]:
            lines.append(f"- reference: {ref} | output: {hyp}")
        append_report(result.run_dir, "\n".join(lines))
    return result


# ===================================================================== command line
def add_parser(subparsers) -> None:
    """``rnnkit speech train|eval|transcribe``."""
    from rnnkit.cli import add_config_option

    verb = subparsers.add_parser("speech", help="speech to text (CTC): train, eval, transcribe")
    jobs = verb.add_subparsers(dest="job", metavar="JOB", required=True)
    fmt = HelpFormatter

    train_parser = jobs.add_parser(
        "train", help="train on a manifest of audio files and transcripts", formatter_class=fmt
    )
    d, m = DataConfig(), ModelConfig()
    g = train_parser.add_argument_group("data")
    g.add_argument("--train", default="", help="manifest (.tsv/.csv/.jsonl): audio path, transcript; required")
    g.add_argument("--val", default=None, help="validation manifest")
    g.add_argument("--path-column", default=d.path_column, help="column with the audio file's path")
    g.add_argument("--transcript-column", default=d.transcript_column, help="column with the transcript")
    g.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=d.lowercase, help="lower-case text")
    g.add_argument("--sample-rate", type=int, default=d.sample_rate, help="sample rate every file must have (Hz)")
    g.add_argument("--n-mels", type=int, default=d.n_mels, help="mel bands of the features")
    g = train_parser.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=m.cell, help="recurrent cell, or mlp (frame-wise baseline)")
    g.add_argument("--hidden-size", type=int, default=m.hidden_size, help="units per direction")
    g.add_argument("--num-layers", type=int, default=m.num_layers, help="stacked layers")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout between layers and before the output")
    add_train_args(train_parser, default_train_config())
    add_config_option(train_parser)
    train_parser.set_defaults(func=run_train)

    eval_parser = jobs.add_parser("eval", help="WER, CER and CTC loss on a manifest", formatter_class=fmt)
    eval_parser.add_argument("--run", default=None, help="run folder of `rnnkit speech train`; required")
    eval_parser.add_argument("--data", default=None, help="manifest to evaluate on; required")
    eval_parser.add_argument("--out-dir", default=None, help="where report.json and hypotheses.txt go")
    eval_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_decode_args(eval_parser)
    add_config_option(eval_parser)
    eval_parser.set_defaults(func=run_eval)

    tr = jobs.add_parser("transcribe", help="print the transcript of each audio file", formatter_class=fmt)
    tr.add_argument("--run", default=None, help="run folder of `rnnkit speech train`; required")
    tr.add_argument("files", nargs="*", help="audio files (WAV, FLAC, OGG)")
    add_decode_args(tr)
    add_config_option(tr)
    tr.set_defaults(func=run_transcribe)

    lm_parser = jobs.add_parser(
        "lm", help="build a character n-gram LM for --lm (from text or a manifest)", formatter_class=fmt
    )
    lm_parser.add_argument("--text", default=None, help="UTF-8 text, one sentence a line (this or --manifest)")
    lm_parser.add_argument("--manifest", default=None, help="a manifest whose transcripts to use (this or --text)")
    lm_parser.add_argument("--transcript-column", default=d.transcript_column, help="the manifest's transcripts")
    lm_parser.add_argument("--order", type=int, default=4, help="n: characters of context + 1")
    lm_parser.add_argument(
        "--lowercase", action=argparse.BooleanOptionalAction, default=d.lowercase, help="lower-case text"
    )
    lm_parser.add_argument("--out", default=None, help="the LM file (JSON) to write; required")
    add_config_option(lm_parser)
    lm_parser.set_defaults(func=run_lm)


def add_decode_args(parser: argparse.ArgumentParser) -> None:
    """The :class:`DecodeConfig` options of ``eval`` and ``transcribe``."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--beam", type=int, default=1, help="prefix beam search of this many prefixes (1, no --lm: greedy)")
    g.add_argument("--lm", default=None, help="a character LM file (`rnnkit speech lm`) to fuse in (default: none)")
    g.add_argument(
        "--lm-weight", type=float, default=None,
        help=f"weight of the LM's log-probability; only with --lm (default: {LM_WEIGHT})",
    )  # fmt: skip
    g.add_argument(
        "--insertion-bonus", type=float, default=None,
        help=f"added to the score per character; only with --lm (default: {INSERTION_BONUS})",
    )  # fmt: skip


def run_train(args: argparse.Namespace) -> int:
    data = section_from_args(DataConfig, args)
    model = section_from_args(ModelConfig, args)
    if args.resume:  # the run's own model and features (its weights were made with them); manifests may change
        saved_data, saved_model, _, _ = run_sections(read_run_config(args.resume), Path(args.resume))
        kept = replace(
            saved_data, train=data.train, val=data.val, path_column=data.path_column,
            transcript_column=data.transcript_column,
        )  # fmt: skip
        refuse_resume_changes("speech", args.resume, args, {"model": (saved_model, model), "data": (kept, data)})
    result = train(Config(data, model, config_from_args(args)))
    print(f"run folder: {result.run_dir} ({result.stop_reason} after {result.steps} steps)")
    if "wer" in result.last_eval:
        print(f"val WER {result.last_eval['wer']:.2f}%  CER {result.last_eval['cer']:.2f}%")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    require(args, "run", "data")
    report = evaluate_file(args.run, args.data, args.out_dir, section_from_args(DecodeConfig, args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"WER {report['wer']:.2f}%  CER {report['cer']:.2f}%  ({report['utterances']} utterances)")
        print(f"decoding: {decoding_text(report['decoding'])}")
        print(f"report.json and hypotheses.txt in {report['out_dir']}")
    return 0


def run_transcribe(args: argparse.Namespace) -> int:
    require(args, "run", "files")
    decode = section_from_args(DecodeConfig, args)
    decode.validate()
    recognizer = Recognizer.load(args.run)
    for file, text in zip(args.files, recognizer.transcribe(args.files, decode), strict=True):
        print(f"{file}\t{text}")
    return 0


def run_lm(args: argparse.Namespace) -> int:
    require(args, "out")
    lm = build_lm(
        args.text, args.manifest, order=args.order, lowercase=args.lowercase, transcript_column=args.transcript_column
    )
    lm.save(args.out)
    print(
        f"{args.out}: {lm.order}-gram character LM (interpolated Kneser-Ney) of {len(lm.characters)} characters, "
        f"{len(lm.ngrams)} distinct {lm.order}-grams"
    )
    return 0
