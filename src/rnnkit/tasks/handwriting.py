"""`rnnkit handwriting`: online handwriting recognition from pen trajectories.

A pen trajectory in (a sequence of ``(x, y)`` points as the pen moved), its class out::

    rnnkit handwriting train --train pendigits.tra --val-fraction 0.1     # or .jsonl strokes
    rnnkit handwriting eval --run runs/handwriting/<id> --data test.jsonl
    rnnkit handwriting predict --run runs/handwriting/<id> --input strokes.jsonl

and the same from Python::

    from rnnkit.tasks import handwriting
    result = handwriting.train(handwriting.Config(data=handwriting.DataConfig(train="pendigits.tra")))
    handwriting.Reader.load(result.run_dir).predict([torch.tensor([[0., 0.], [1., 2.], [2., 0.]])])

The model: each point's features (:func:`rnnkit.data.pen.point_features`: position in the unit
box and the step from the previous point) ``(B, N, 4)`` → a bidirectional :mod:`rnnkit.nn` GRU or
LSTM run with ``lengths`` (any number of points) → the final states of both directions → dropout
→ ``Linear`` to the classes. ``--cell mlp`` is the feed-forward baseline: the trajectory
resampled to ``--mlp-points`` points evenly spaced along the path (:func:`~rnnkit.data.pen.resample`),
their features flattened, two hidden layers.

Input (:mod:`rnnkit.data.pen`): the UCI pendigits file (8 points per digit) or JSON lines of
``{"points": [[x, y], ...], "label": ...}`` of any length. Without ``--val``, ``--val-fraction`` of
the training file (a seeded random choice) is held out for validation.

Shape legend: ``B`` batch, ``N`` points, ``H`` hidden units per direction, ``C`` classes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import ShuffledBatches, pad_batch
from rnnkit.data.pen import Trajectories, point_features, read_trajectories, resample
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.io import atomic_write_json, atomic_write_text
from rnnkit.nn import GRU, LSTM
from rnnkit.tasks.common import (
    HelpFormatter,
    check_fraction,
    check_positive,
    class_ids,
    classification_scores,
    dataclass_from,
    load_task_run,
    require,
    resumed_run,
    sections_from_cli,
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

CELLS = ("gru", "lstm", "mlp")


# ===================================================================== configuration
@dataclass
class DataConfig:
    """Where the trajectories are."""

    train: str = ""  # pendigits file or .jsonl strokes
    val: str | None = None  # a file of its own; else val_fraction of train
    val_fraction: float = 0.1

    def validate(self) -> None:
        if not self.train:
            raise ConfigError("train: expected a file of pen trajectories (--train FILE)")
        if self.val is None:
            check_fraction(self, "val_fraction")


@dataclass
class ModelConfig:
    """The classifier's shape."""

    cell: str = "gru"  # gru | lstm | mlp (feed-forward baseline over resampled points)
    hidden_size: int = 64  # per direction (mlp: units per hidden layer)
    num_layers: int = 1
    dropout: float = 0.2
    mlp_points: int = 8  # mlp: points the trajectory is resampled to

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell: expected one of {list(CELLS)}, got {self.cell!r}")
        check_positive(self, "hidden_size", "num_layers", "mlp_points")
        check_fraction(self, "dropout")


def default_train_config() -> TrainConfig:
    """The training options ``rnnkit handwriting train`` starts from: keep the best val accuracy."""
    return TrainConfig(
        steps=None, epochs=30, batch_size=64, lr=3e-3, clip_norm=5.0, eval_every=200, monitor="accuracy", mode="max"
    )


@dataclass
class Config:
    """Everything a handwriting run needs; saved in the run folder's ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=default_train_config)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.train.validate()


# ===================================================================== the model
class PenClassifier(nn.Module):
    """``forward(features: (B, N, 4), lengths: (B,)) -> logits: (B, C)`` (for ``mlp``:
    ``features: (B, mlp_points * 4)``)."""

    def __init__(self, num_classes: int, config: ModelConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.cell = config.cell
        if config.cell == "mlp":
            self.net = nn.Sequential(
                nn.Linear(4 * config.mlp_points, H),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(H, H),
                nn.ReLU(),
            )
            width = H
        else:
            layer = LSTM if config.cell == "lstm" else GRU
            between = config.dropout if config.num_layers > 1 else 0.0
            self.rnn = layer(4, H, num_layers=config.num_layers, bidirectional=True, dropout=between)
            width = 2 * H
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(width, num_classes)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.cell == "mlp":
            return self.out(self.drop(self.net(features)))
        _, state = self.rnn(features, lengths=lengths)
        h = state[0] if isinstance(state, tuple) else state  # (L * 2, B, H)
        return self.out(self.drop(torch.cat([h[-2], h[-1]], dim=-1)))  # (B, C): last layer, both directions


@dataclass
class Batch:
    features: Tensor  # (B, N, 4), or (B, mlp_points * 4)
    lengths: Tensor  # (B,)
    labels: Tensor  # (B,)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.features.to(device), self.lengths, self.labels.to(device))


def featurize(points: Sequence[Tensor], config: ModelConfig) -> list[Tensor]:
    """What the model reads of each trajectory (see :class:`PenClassifier`)."""
    if config.cell == "mlp":
        return [point_features(resample(p, config.mlp_points)).flatten() for p in points]
    return [point_features(p) for p in points]


def collate(features: Sequence[Tensor], labels: Sequence[int], indices: Sequence[int]) -> Batch:
    chosen = [features[i] for i in indices]
    if chosen[0].dim() == 1:  # mlp: fixed size
        return Batch(
            torch.stack(chosen), torch.ones(len(chosen), dtype=torch.long), torch.tensor([labels[i] for i in indices])
        )
    padded, lengths = pad_batch(chosen)
    return Batch(padded, lengths, torch.tensor([labels[i] for i in indices]))


def classification_step(model: nn.Module, batch: Batch, state: Any = None) -> StepOutput:
    logits = model(batch.features, batch.lengths)
    loss = F.cross_entropy(logits, batch.labels)
    return StepOutput(
        loss, metrics={"accuracy": (logits.argmax(-1) == batch.labels).float().mean().item()}, items=len(batch.labels)
    )


@torch.no_grad()
def predict_proba(model: PenClassifier, features: Sequence[Tensor], batch_size: int = 256) -> Tensor:
    """``(N, C)`` class probabilities."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(features), batch_size):
        batch = collate(features, [0] * len(features), range(start, min(start + batch_size, len(features))))
        out.append(torch.softmax(model(batch.features.to(device), batch.lengths).float(), -1).cpu())
    return torch.cat(out)


def _class_ids(data: Trajectories, classes: Sequence[str]) -> list[int]:
    return class_ids(data.labels, data.lines, data.path, classes)


# ===================================================================== a trained run
class Reader:
    """A trained run: the model and its classes. Load with :meth:`load`."""

    def __init__(self, model: PenClassifier, classes: list[str], config: ModelConfig) -> None:
        self.model, self.classes, self.config = model.eval(), classes, config

    @classmethod
    def load(cls, run_dir: str | os.PathLike, which: str = "best", device: str = "cpu") -> Reader:
        run, saved, state_dict = load_task_run(run_dir, "handwriting", which, device)
        model_config = dataclass_from(ModelConfig, saved.get("model"), f"{run / 'config.json'}: field 'model'")
        classes = saved.get("classes")
        if not isinstance(classes, list) or not classes:
            raise CheckpointError(f"{run / 'config.json'}: field 'classes': expected a list of class names")
        model = PenClassifier(len(classes), model_config)
        load_weights_into(model, state_dict, run)
        return cls(model.to(device), classes, model_config)

    def predict(self, trajectories: Sequence[Tensor]) -> list[tuple[str, dict[str, float]]]:
        """``(class, {class: probability})`` for each ``(N, 2)`` trajectory."""
        probs = predict_proba(self.model, featurize(trajectories, self.config))
        return [(self.classes[int(p.argmax())], dict(zip(self.classes, p.tolist(), strict=True))) for p in probs]

    def evaluate(self, data: Trajectories) -> dict[str, Any]:
        targets = _class_ids(data, self.classes)
        probs = predict_proba(self.model, featurize(data.points, self.config))
        predicted = probs.argmax(-1).tolist()
        per_class = {
            c: sum(p == t == i for p, t in zip(predicted, targets, strict=True)) / max(1, targets.count(i))
            for i, c in enumerate(self.classes)
        }
        return {**classification_scores(probs, targets), "examples": len(data), "recall_per_class": per_class}


def evaluate_file(
    run_dir: str | os.PathLike, data: str | os.PathLike, out_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Accuracy and loss of a run on a labelled file; ``report.json`` into ``out_dir`` (default
    ``<run>/eval/<data stem>/``), written after the whole file is read."""
    reader = Reader.load(run_dir)
    report = {"data": str(data), **reader.evaluate(read_trajectories(data))}
    folder = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval" / Path(data).stem
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "report.json", report)
    return {**report, "out_dir": str(folder)}


# ===================================================================== training
def split_data(config: DataConfig, seed: int) -> tuple[Trajectories, Trajectories | None]:
    """The training and validation trajectories: ``val`` if given, else a seeded random
    ``val_fraction`` of ``train`` (none if 0)."""
    train_data = read_trajectories(config.train)
    if config.val:
        return train_data, read_trajectories(config.val)
    held = round(len(train_data) * config.val_fraction)
    if held == 0:
        return train_data, None
    if held >= len(train_data):
        raise DataError(f"{len(train_data)} trajectories: too few to hold {held} out", path=train_data.path)
    order = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(seed)).tolist()
    return train_data.subset(sorted(order[held:])), train_data.subset(sorted(order[:held]))


def train(config: Config, *, runs_root: str | os.PathLike = "runs") -> FitResult:
    """Train a trajectory classifier; returns the trainer's :class:`FitResult`. A resumed run
    (``config.train.resume``) keeps its classes."""
    config.validate()
    saved = resumed_run(config, "handwriting")
    train_data, val_data = split_data(config.data, config.train.seed)
    classes = sorted(set(train_data.labels), key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
    if saved is not None:
        classes = saved["classes"]
    if len(classes) < 2:
        raise DataError(f"found only the class {classes}; expected at least two", path=train_data.path)
    if config.train.batch_size > len(train_data):
        raise ConfigError(
            f"batch_size: {config.train.batch_size} is more than the {len(train_data)} training trajectories; "
            f"expected at most {len(train_data)}"
        )
    train_features, train_targets = featurize(train_data.points, config.model), _class_ids(train_data, classes)
    if val_data is not None:
        val_features, val_targets = featurize(val_data.points, config.model), _class_ids(val_data, classes)
    seed_everything(config.train.seed)
    model = PenClassifier(len(classes), config.model)
    batches = ShuffledBatches(
        len(train_features),
        config.train.batch_size,
        lambda idx: collate(train_features, train_targets, idx),
        seed=config.train.seed,
    )

    def evaluate(trained: PenClassifier) -> dict[str, float]:
        return classification_scores(predict_proba(trained, val_features), val_targets)

    trainer = Trainer(
        model,
        config.train,
        train_step=classification_step,
        evaluate=evaluate if val_data is not None else None,
        task="handwriting",
        task_config={"data": asdict(config.data), "model": asdict(config.model), "classes": classes},
        runs_root=runs_root,
    )
    if not config.train.quiet:
        print(
            f"{len(train_data)} training trajectories, {len(classes)} classes, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters",
            file=sys.stderr,
        )
    result = trainer.fit(batches)
    if trainer.is_main and val_data is not None and result.run_dir is not None:
        report = Reader.load(result.run_dir).evaluate(val_data)
        atomic_write_json(result.run_dir / "eval_val.json", report)
        lines = [
            "## Handwriting",
            "",
            f"Best checkpoint on the validation trajectories ({len(val_data)}):",
            "",
            f"- accuracy {report['accuracy']:.4f}, loss {report['loss']:.4f}",
            "",
            "| class | recall |",
            "|---|---|",
            *[f"| {c} | {r:.4f} |" for c, r in report["recall_per_class"].items()],
        ]
        append_report(result.run_dir, "\n".join(lines))
    return result


# ===================================================================== command line
def add_parser(subparsers) -> None:
    """``rnnkit handwriting train|eval|predict``."""
    from rnnkit.cli import add_config_option

    verb = subparsers.add_parser("handwriting", help="online handwriting recognition from pen trajectories")
    jobs = verb.add_subparsers(dest="job", metavar="JOB", required=True)
    fmt = HelpFormatter
    d, m = DataConfig(), ModelConfig()

    tp = jobs.add_parser("train", help="train on labelled trajectories", formatter_class=fmt)
    g = tp.add_argument_group("data")
    g.add_argument("--train", default="", help="pendigits file or .jsonl of {points, label}; required")
    g.add_argument("--val", default=None, help="validation file (default: --val-fraction of --train)")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction, help="share of --train held out")
    g = tp.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=m.cell, help="recurrent cell, or mlp (feed-forward baseline)")
    g.add_argument("--hidden-size", type=int, default=m.hidden_size, help="units per direction (mlp: per layer)")
    g.add_argument("--num-layers", type=int, default=m.num_layers, help="stacked recurrent layers")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout before the classifier")
    g.add_argument("--mlp-points", type=int, default=m.mlp_points, help="mlp: points to resample each trajectory to")
    add_train_args(tp, default_train_config())
    add_config_option(tp)
    tp.set_defaults(func=run_train)

    ep = jobs.add_parser("eval", help="accuracy and per-class recall on a labelled file", formatter_class=fmt)
    ep.add_argument("--run", default=None, help="run folder of `rnnkit handwriting train`; required")
    ep.add_argument("--data", default=None, help="labelled trajectories; required")
    ep.add_argument("--out-dir", default=None, help="where report.json goes")
    add_config_option(ep)
    ep.set_defaults(func=run_eval)

    pp = jobs.add_parser("predict", help="class and probabilities of each trajectory", formatter_class=fmt)
    pp.add_argument("--run", default=None, help="run folder of `rnnkit handwriting train`; required")
    pp.add_argument("--input", default=None, help="trajectories (labels not needed); required")
    pp.add_argument("--output", default="-", help="JSON lines file to write (atomically), or - for stdout")
    add_config_option(pp)
    pp.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    train_config = config_from_args(args)
    data, model = sections_from_cli(args, "handwriting", {"data": DataConfig, "model": ModelConfig})
    result = train(Config(data, model, train_config))
    print(f"run folder: {result.run_dir} ({result.stop_reason} after {result.steps} steps)")
    if result.best_metric is not None:
        print(f"best val accuracy: {result.best_metric:.4f} (step {result.best_step})")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    require(args, "run", "data")
    report = evaluate_file(args.run, args.data, args.out_dir)
    print(f"accuracy {report['accuracy']:.4f}  loss {report['loss']:.4f}  ({report['examples']} trajectories)")
    print(f"report.json in {report['out_dir']}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    require(args, "run", "input")
    reader = Reader.load(args.run)
    data = read_trajectories(args.input, with_labels=False)
    lines = [
        json.dumps({"line": n, "label": label, "probabilities": probs})
        for n, (label, probs) in zip(data.lines, reader.predict(data.points), strict=True)
    ]
    text = "\n".join(lines) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(args.output), text)
    return 0
