"""`rnnkit music`: polyphonic music modeling and generation on piano rolls, MIDI out.

The piece so far in, the notes of the next time step out::

    rnnkit music train --data jsb_chorales.json --train-split train --val-split valid
    rnnkit music eval --run runs/music/<id> --data jsb_chorales.json --split valid   # NLL per time step
    rnnkit music generate --run runs/music/<id> --steps 64 --seed 1 --out piece.mid

and the same from Python::

    from rnnkit.tasks import music
    result = music.train(music.Config(data=music.DataConfig(data="jsb_chorales.json")))
    composer = music.Composer.load(result.run_dir)
    piece = composer.generate(steps=64, seed=1)              # [[60, 64, 67], [62, 65, 69], ...]

The model (the "RNN" of Boulanger-Lewandowski, Bengio & Vincent 2012): the piano roll
``x: (B, T, P)`` (1 where pitch ``low + p`` sounds at step ``t``) shifted one step (a silent step
first) → a stacked :mod:`rnnkit.nn` LSTM or GRU run with ``lengths`` → dropout →
``Linear(H, P)``: the logits of each pitch sounding at the next step, every pitch an independent
Bernoulli given the past. The loss and the reported figure are the negative log-likelihood per
time step, ``-sum_p log p(x_{t,p} | x_<t)`` averaged over the steps of all pieces (nats; the
figure the literature reports on these datasets). Generation samples step by step (``temperature``
divides the logits), optionally continuing the first steps of a given piece.

Every run also scores two baselines on the same split (``report.md``): ``marginal`` (each pitch
sounds with its training frequency, whatever came before) and ``per_pitch_markov`` (each pitch
sounds with a probability that depends only on whether it sounded at the previous step, fitted
on the training pieces; add-one smoothed): what a model must beat to have learned harmony or
voice leading beyond "notes are held".

Input: a JSON file of pieces (:mod:`rnnkit.data.pianoroll`: ``{"train": [...], "valid": [...]}``,
the JSB Chorales layout) or a folder of MIDI files (``.mid``/``.midi``, quantized to
``--steps-per-beat``; the whole folder is one split, ``--val-fraction`` of its files held out).

Shape legend: ``B`` batch, ``T`` time steps, ``P`` pitches of the model's range, ``H`` hidden size.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import BucketedBatches, pad_batch
from rnnkit.data.midi import read_midi, write_midi
from rnnkit.data.pianoroll import Piece, PitchRange, read_pieces
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.io import atomic_write_json, pyplot, save_figure
from rnnkit.nn import GRU, LSTM
from rnnkit.tasks.common import (
    HelpFormatter,
    check_fraction,
    check_positive,
    dataclass_from,
    load_task_run,
    require,
    resumed_run,
    sections_from_cli,
)
from rnnkit.tasks.pooling import valid_mask
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

CELLS = ("lstm", "gru")
MIDI_SUFFIXES = (".mid", ".midi")


# ===================================================================== configuration
@dataclass
class DataConfig:
    """Where the pieces are."""

    data: str = ""  # a JSON file of splits (or a list of pieces), or a folder of MIDI files
    train_split: str = "train"  # JSON: the training split's key
    val_split: str | None = "valid"  # JSON: the validation split's key (None: no validation)
    val_fraction: float = 0.1  # MIDI folder: the share of files (sorted by name, the last ones) held out
    steps_per_beat: int = 1  # MIDI: grid steps per quarter note (reading and writing)

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("data: expected a JSON file of pieces or a folder of MIDI files (--data PATH)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction: expected a number in [0, 1), got {self.val_fraction!r}")
        if self.steps_per_beat < 1:
            raise ConfigError(f"steps_per_beat: expected an integer >= 1, got {self.steps_per_beat!r}")


@dataclass
class ModelConfig:
    """The recurrent network's shape."""

    cell: str = "lstm"  # lstm | gru
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.3  # between layers and before the output layer

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell: expected one of {list(CELLS)}, got {self.cell!r}")
        check_positive(self, "hidden_size", "num_layers")
        check_fraction(self, "dropout")


def default_train_config() -> TrainConfig:
    """The training options ``rnnkit music train`` starts from: epochs, keep the best validation NLL."""
    return TrainConfig(steps=None, epochs=100, batch_size=16, lr=2e-3, clip_norm=1.0, eval_every=100)


@dataclass
class Config:
    """Everything a music run needs; saved in the run folder's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=default_train_config)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.train.validate()


# ===================================================================== pieces
def has_validation(config: DataConfig) -> bool:
    """Whether ``config`` has a validation split: a JSON split key, or for a MIDI folder a
    ``val_fraction`` above 0 (and a ``val_split`` name)."""
    return config.val_split is not None and (config.val_fraction > 0 or not Path(config.data).is_dir())


def load_split(config: DataConfig, split: str | None) -> list[Piece]:
    """The pieces of ``split`` of ``config.data``: a JSON split, or for a MIDI folder
    ``config.val_split`` (the held-out files) or any other name (the files before them; all of
    them when there is no validation split)."""
    path = Path(config.data)
    if not path.is_dir():
        return read_pieces(path, split)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise DataError(f"no MIDI files ({', '.join(MIDI_SUFFIXES)}) in this folder", path=str(path))
    held = math.ceil(len(files) * config.val_fraction) if has_validation(config) else 0
    if held >= len(files):
        raise DataError(f"{len(files)} MIDI files: too few to hold {held} out for validation", path=str(path))
    if split == config.val_split and held == 0:
        raise DataError("no files held out for validation (val_fraction 0 or no val_split)", path=str(path))
    chosen = files[len(files) - held :] if split == config.val_split else files[: len(files) - held]
    return [read_midi(f, config.steps_per_beat) for f in chosen]


@dataclass
class Batch:
    """``rolls: (B, T, P)`` 0/1 piano rolls, zero past each piece's end; ``lengths: (B,)``."""

    rolls: Tensor
    lengths: Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.rolls.to(device), self.lengths)


def collate(rolls: Sequence[Tensor], indices: Sequence[int]) -> Batch:
    padded, lengths = pad_batch([rolls[i] for i in indices])  # (B, T, P), (B,)
    return Batch(padded, lengths)


# ===================================================================== the model
class PianoRollRNN(nn.Module):
    """``forward(rolls: (B, T, P), lengths: (B,)) -> logits: (B, T, P)``: the logits of step
    ``t`` are the model's prediction of step ``t`` from the steps before it (a silent step first)."""

    def __init__(self, pitches: int, config: ModelConfig) -> None:
        super().__init__()
        layer = LSTM if config.cell == "lstm" else GRU
        between = config.dropout if config.num_layers > 1 else 0.0
        self.rnn = layer(pitches, config.hidden_size, num_layers=config.num_layers, dropout=between)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_size, pitches)

    def forward(self, rolls: Tensor, lengths: Tensor | None = None, state: Any = None) -> tuple[Tensor, Any]:
        inputs = F.pad(rolls, (0, 0, 1, -1))  # (B, T, P): step t reads step t - 1 (a silent step first)
        outputs, state = self.rnn(inputs, state, lengths=lengths)  # (B, T, H)
        return self.out(self.drop(outputs)), state

    def step(self, previous: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One step of generation: ``previous: (B, P)`` the last step's notes -> logits ``(B, P)``."""
        outputs, state = self.rnn(previous.unsqueeze(1), state)  # (B, 1, H)
        return self.out(self.drop(outputs)).squeeze(1), state


def step_nll(logits: Tensor, rolls: Tensor, lengths: Tensor) -> tuple[Tensor, int]:
    """Sum over the valid steps of ``-sum_p log p(x_tp)`` (``logits, rolls: (B, T, P)``), and the
    number of valid steps."""
    nll = F.binary_cross_entropy_with_logits(logits.float(), rolls, reduction="none").sum(-1)  # (B, T)
    mask = valid_mask(lengths.to(nll.device), nll.shape[1])  # (B, T)
    return (nll * mask).sum(), int(lengths.sum())


def music_step(model: nn.Module, batch: Batch, state: Any = None) -> StepOutput:
    """Negative log-likelihood per time step of one batch (the trainer's ``train_step``)."""
    logits, _ = model(batch.rolls, batch.lengths)
    total, steps = step_nll(logits, batch.rolls, batch.lengths)
    return StepOutput(total / steps, items=steps)


@torch.no_grad()
def mean_nll(model: PianoRollRNN, rolls: Sequence[Tensor], batch_size: int = 32) -> float:
    """Negative log-likelihood per time step (nats) over all steps of ``rolls``."""
    model.eval()
    device = next(model.parameters()).device
    total, steps = 0.0, 0
    for start in range(0, len(rolls), batch_size):
        batch = collate(rolls, range(start, min(start + batch_size, len(rolls)))).to(device)
        logits, _ = model(batch.rolls, batch.lengths)
        nll, n = step_nll(logits, batch.rolls, batch.lengths)
        total, steps = total + nll.item(), steps + n
    return total / steps


# ===================================================================== baselines
def marginal_nll(train: Sequence[Tensor], rolls: Sequence[Tensor]) -> float:
    """NLL per step when each pitch sounds with its training frequency (add-one smoothed)."""
    train_all = torch.cat(list(train))  # (N, P)
    p = (train_all.sum(0) + 1) / (train_all.shape[0] + 2)  # (P,)
    every = torch.cat(list(rolls))  # (M, P)
    return -(every * p.log() + (1 - every) * (1 - p).log()).sum().item() / every.shape[0]


def per_pitch_markov_nll(train: Sequence[Tensor], rolls: Sequence[Tensor]) -> float:
    """NLL per step when each pitch sounds with ``p(on | on before)`` or ``p(on | off before)``,
    fitted per pitch on the training pieces (add-one smoothed; a silent step before each piece)."""

    def previous(r: Tensor) -> Tensor:
        return F.pad(r, (0, 0, 1, -1))  # (T, P)

    before = torch.cat([previous(r) for r in train])  # (N, P)
    now = torch.cat(list(train))
    p_on = ((now * before).sum(0) + 1) / (before.sum(0) + 2)  # (P,) p(on | on before)
    p_off = ((now * (1 - before)).sum(0) + 1) / ((1 - before).sum(0) + 2)  # (P,) p(on | off before)
    before_x = torch.cat([previous(r) for r in rolls])
    x = torch.cat(list(rolls))
    p = before_x * p_on + (1 - before_x) * p_off  # (M, P)
    return -(x * p.log() + (1 - x) * (1 - p).log()).sum().item() / x.shape[0]


# ===================================================================== a trained run
class Composer:
    """A trained run: the model and its pitch range. Load with :meth:`load`."""

    def __init__(self, model: PianoRollRNN, pitch_range: PitchRange, data: DataConfig) -> None:
        self.model = model.eval()
        self.pitch_range = pitch_range
        self.data = data

    @classmethod
    def load(cls, run_dir: str | os.PathLike, which: str = "best", device: str = "cpu") -> Composer:
        run, saved, state_dict = load_task_run(run_dir, "music", which, device)
        where = run / "config.json"
        data = dataclass_from(DataConfig, saved.get("data"), f"{where}: field 'data'")
        model_config = dataclass_from(ModelConfig, saved.get("model"), f"{where}: field 'model'")
        pitches = saved.get("pitch_range")
        try:
            pitch_range = PitchRange(int(pitches["low"]), int(pitches["high"]))
            model_config.validate()
        except (TypeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{where}: fields 'pitch_range', 'model': {e}") from None
        model = PianoRollRNN(pitch_range.size, model_config)
        load_weights_into(model, state_dict, run)
        return cls(model.to(device), pitch_range, data)

    def nll(self, pieces: Sequence[Piece], where: str = "pieces") -> float:
        """Negative log-likelihood per time step (nats) of ``pieces`` (each pitch within range)."""
        self.pitch_range.check(pieces, where)
        return mean_nll(self.model, [self.pitch_range.roll(p) for p in pieces])

    @torch.no_grad()
    def generate(
        self, steps: int, *, seed: int | None = None, temperature: float = 1.0, prime: Piece | None = None
    ) -> Piece:
        """Sample ``steps`` time steps after ``prime`` (the given first steps, returned too; none:
        start from silence). ``temperature`` divides the logits (< 1: safer, > 1: wilder)."""
        if steps < 1 or not (math.isfinite(temperature) and temperature > 0.0):
            raise ValueError(f"steps, temperature: expected >= 1 and > 0, got {steps!r}, {temperature!r}")
        generator = torch.Generator().manual_seed(seed if seed is not None else random.randrange(2**63))
        device = next(self.model.parameters()).device
        previous, state = torch.zeros(1, self.pitch_range.size, device=device), None
        piece: Piece = []
        if prime:
            self.pitch_range.check([prime], "prime")
            rolled = self.pitch_range.roll(prime).to(device)  # (T0, P)
            _, state = self.model(rolled.unsqueeze(0))  # the state after reading the prime's steps
            previous, piece = rolled[-1:], [list(s) for s in prime]
        for _ in range(steps):
            logits, state = self.model.step(previous, state)  # (1, P)
            p = torch.sigmoid(logits.float().cpu() / temperature)
            previous = torch.bernoulli(p, generator=generator).to(device)  # (1, P)
            piece.append(self.pitch_range.piece(previous.cpu())[0])
        return piece


def plot_piano_roll(piece: Piece, path: Path, title: str) -> None:
    """Save a piece as a piano-roll PNG (time across, pitch up), atomically."""
    plt = pyplot()
    pitches = PitchRange.of([piece])
    roll = pitches.roll(piece)  # (T, P)
    fig, ax = plt.subplots(figsize=(2 + 0.08 * len(piece), 3))
    ax.imshow(roll.T.numpy(), origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, len(piece), pitches.low - 0.5, pitches.high + 0.5))  # fmt: skip
    ax.set(xlabel="time step", ylabel="MIDI pitch", title=title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


# ===================================================================== training
def train(config: Config, *, runs_root: str | os.PathLike = "runs") -> FitResult:
    """Train a piano-roll model; returns the trainer's :class:`FitResult` (``run_dir``: the run folder).

    The data is read and checked before the run folder is made; the pitch range is the training
    pieces'. ``report.md`` gets the best checkpoint's validation NLL beside both baselines', and
    a sample (``sample.mid``, ``plots/sample.png``)."""
    config.validate()
    train_pieces = load_split(config.data, config.data.train_split)
    val_pieces = load_split(config.data, config.data.val_split) if has_validation(config.data) else None
    pitch_range = resumed_pitch_range(config) if config.train.resume else PitchRange.of(train_pieces)
    pitch_range.check(train_pieces, f"{config.data.data}: split {config.data.train_split!r}")
    if val_pieces is not None:
        pitch_range.check(val_pieces, f"{config.data.data}: split {config.data.val_split!r}")
    train_rolls = [pitch_range.roll(p) for p in train_pieces]
    val_rolls = [pitch_range.roll(p) for p in val_pieces] if val_pieces is not None else None
    seed_everything(config.train.seed)
    model = PianoRollRNN(pitch_range.size, config.model)
    batches = BucketedBatches(
        [len(r) for r in train_rolls], config.train.batch_size, lambda idx: collate(train_rolls, idx),
        seed=config.train.seed, bucket_factor=8,
    )  # fmt: skip

    def evaluate(trained: PianoRollRNN) -> dict[str, float]:
        assert val_rolls is not None
        return {"loss": mean_nll(trained, val_rolls)}

    task_config = {"data": asdict(config.data), "model": asdict(config.model), "pitch_range": asdict(pitch_range)}
    trainer = Trainer(
        model, config.train, train_step=music_step, evaluate=evaluate if val_rolls is not None else None,
        task="music", task_config=task_config, runs_root=runs_root,
    )  # fmt: skip
    if not config.train.quiet:
        print(
            f"{len(train_pieces)} training pieces ({sum(len(r) for r in train_rolls)} steps), "
            f"pitches {pitch_range.low}..{pitch_range.high}, {sum(p.numel() for p in model.parameters()):,} parameters",
            file=sys.stderr,
        )
    result = trainer.fit(batches)
    if trainer.is_main and result.run_dir is not None:
        _report_run(result.run_dir, train_rolls, val_rolls, config)
    return result


def resumed_pitch_range(config: Config) -> PitchRange:
    """The pitch range of the run ``config.train.resume`` continues; a :class:`ConfigError` if
    it is another task's run or ``config.model`` differs from the model it trained."""
    run = Path(config.train.resume or "")
    saved = resumed_run(config, "music")
    pitches = saved.get("pitch_range")
    try:
        return PitchRange(int(pitches["low"]), int(pitches["high"]))
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{run / 'config.json'}: field 'pitch_range': {e}") from None


def _report_run(run_dir: Path, train_rolls: list[Tensor], val_rolls: list[Tensor] | None, config: Config) -> None:
    """Validation NLL of the best checkpoint and of the baselines, and a sample, in ``report.md``."""
    composer = Composer.load(run_dir)
    lines = ["## Music", ""]
    if val_rolls is not None:
        figures = {
            "model": mean_nll(composer.model, val_rolls),
            "per_pitch_markov": per_pitch_markov_nll(train_rolls, val_rolls),
            "marginal": marginal_nll(train_rolls, val_rolls),
        }
        atomic_write_json(run_dir / "eval_nll.json", {"split": config.data.val_split, **figures})
        lines += [
            f"Negative log-likelihood per time step on split `{config.data.val_split}` ({len(val_rolls)} pieces, "
            f"{sum(len(r) for r in val_rolls)} steps), nats, lower is better:",
            "",
            "| model | NLL per step |",
            "|---|---|",
            *[f"| {name} | {value:.3f} |" for name, value in figures.items()],
            "",
        ]
    sample = composer.generate(64, seed=config.train.seed)
    write_midi(sample, run_dir / "sample.mid", steps_per_beat=config.data.steps_per_beat)
    (run_dir / "plots").mkdir(exist_ok=True)
    plot_piano_roll(sample, run_dir / "plots" / "sample.png", "a sample (64 steps, temperature 1)")
    lines += ["A sample of 64 steps from silence (`sample.mid`):", "", "![sample](plots/sample.png)"]
    append_report(run_dir, "\n".join(lines))


# ===================================================================== command line
def add_parser(subparsers) -> None:
    """``rnnkit music train|eval|generate``."""
    from rnnkit.cli import add_config_option

    verb = subparsers.add_parser("music", help="polyphonic music modeling and generation (MIDI out)")
    jobs = verb.add_subparsers(dest="job", metavar="JOB", required=True)
    fmt = HelpFormatter

    train_parser = jobs.add_parser("train", help="train on piano-roll pieces (JSON) or MIDI files", formatter_class=fmt)
    d, m = DataConfig(), ModelConfig()
    g = train_parser.add_argument_group("data")
    g.add_argument("--data", default="", help="JSON file of pieces (split keys) or a folder of MIDI files; required")
    g.add_argument("--train-split", default=d.train_split, help="JSON: key of the training pieces")
    g.add_argument("--val-split", default=d.val_split, help="JSON: key of the validation pieces ('' for none)")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction, help="MIDI folder: share of files held out")
    g.add_argument("--steps-per-beat", type=int, default=d.steps_per_beat, help="MIDI: grid steps per quarter note")
    g = train_parser.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=m.cell, help="recurrent cell")
    g.add_argument("--hidden-size", type=int, default=m.hidden_size, help="hidden units per layer")
    g.add_argument("--num-layers", type=int, default=m.num_layers, help="stacked recurrent layers")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout between layers and before the output")
    add_train_args(train_parser, default_train_config())
    add_config_option(train_parser)
    train_parser.set_defaults(func=run_train)

    eval_parser = jobs.add_parser("eval", help="negative log-likelihood per time step", formatter_class=fmt)
    eval_parser.add_argument("--run", default=None, help="run folder of `rnnkit music train`; required")
    eval_parser.add_argument("--data", default=None, help="JSON file of pieces, or a MIDI file or folder; required")
    eval_parser.add_argument("--split", default=None, help="JSON: the split's key (none: the file is a list of pieces)")
    add_config_option(eval_parser)
    eval_parser.set_defaults(func=run_eval)

    gen = jobs.add_parser("generate", help="sample a piece and write it as MIDI", formatter_class=fmt)
    gen.add_argument("--run", default=None, help="run folder of `rnnkit music train`; required")
    gen.add_argument("--steps", type=int, default=64, help="time steps to sample")
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: a new piece each time)")
    gen.add_argument("--temperature", type=float, default=1.0, help="divide the logits by this")
    gen.add_argument(
        "--prime",
        default=None,
        help="continue this piece (MIDI, or JSON: a list of one piece) instead of silence",
    )
    gen.add_argument("--tempo", type=float, default=100.0, help="quarter notes per minute of the MIDI file")
    gen.add_argument("--no-merge", action="store_true", help="one note per step (else held notes are one note)")
    gen.add_argument("--out", default="sample.mid", help="MIDI file to write (atomically)")
    gen.add_argument("--json", default=None, help="also write the steps as a JSON list to this file")
    add_config_option(gen)
    gen.set_defaults(func=run_generate)


def config_from_cli(args: argparse.Namespace) -> Config:
    """The :class:`Config` of the command line; with ``--resume RUN_DIR`` the run's saved data
    and model sections, but for the options given (:func:`~rnnkit.tasks.common.sections_from_cli`)."""
    data, model = sections_from_cli(args, "music", {"data": DataConfig, "model": ModelConfig})
    data.val_split = data.val_split or None  # --val-split '': no validation split
    return Config(data, model, config_from_args(args))


def run_train(args: argparse.Namespace) -> int:
    result = train(config_from_cli(args))
    print(f"run folder: {result.run_dir} ({result.stop_reason} after {result.steps} steps)")
    if result.best_metric is not None:
        print(f"best val NLL per time step: {result.best_metric:.4f} nats (step {result.best_step})")
    return 0


def _read_any(path: str, split: str | None, steps_per_beat: int) -> list[Piece]:
    """Pieces from a JSON file (a split of it, or a bare list), a MIDI file, or a folder of them."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in MIDI_SUFFIXES)
        if not files:
            raise DataError(f"no MIDI files ({', '.join(MIDI_SUFFIXES)}) in this folder", path=path)
        return [read_midi(f, steps_per_beat) for f in files]
    if p.suffix.lower() in MIDI_SUFFIXES:
        return [read_midi(p, steps_per_beat)]
    return read_pieces(p, split)


def run_eval(args: argparse.Namespace) -> int:
    require(args, "run", "data")
    composer = Composer.load(args.run)
    pieces = _read_any(args.data, args.split, composer.data.steps_per_beat)
    nll = composer.nll(pieces, args.data if args.split is None else f"{args.data}: split {args.split!r}")
    steps = sum(len(p) for p in pieces)
    print(f"NLL per time step {nll:.4f} nats ({len(pieces)} pieces, {steps} steps)")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    require(args, "run")
    if args.steps < 1 or not (math.isfinite(args.temperature) and args.temperature > 0.0):
        raise ConfigError(f"--steps, --temperature: expected >= 1 and > 0, got {args.steps}, {args.temperature}")
    if not 0 < args.tempo <= 1000:
        raise ConfigError(f"--tempo: expected quarter notes per minute in (0, 1000], got {args.tempo}")
    for option, path in (("--out", args.out), ("--json", args.json)):
        if path and Path(path).is_dir():
            raise ConfigError(f"{option}: {path} is a folder; expected a file name to write")
    composer = Composer.load(args.run)
    prime = None
    if args.prime:
        pieces = _read_any(args.prime, None, composer.data.steps_per_beat)
        if len(pieces) != 1:
            raise DataError(f"found {len(pieces)} pieces; expected one to continue", path=args.prime)
        prime = pieces[0]
    piece = composer.generate(args.steps, seed=args.seed, temperature=args.temperature, prime=prime)
    write_midi(piece, args.out, steps_per_beat=composer.data.steps_per_beat, tempo_bpm=args.tempo,
               merge=not args.no_merge)  # fmt: skip
    if args.json:
        atomic_write_json(args.json, piece)
    print(f"{len(piece)} steps ({sum(len(s) for s in piece)} notes) written to {args.out}")
    return 0
