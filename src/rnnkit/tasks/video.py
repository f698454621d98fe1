"""`rnnkit video`: video classification: a frame encoder (a small CNN in plain torch) and a
recurrent network over the frames.

A clip in, its class out::

    rnnkit video train --train train.tsv --val val.tsv       # manifests: path (a .npy or video clip), label
    rnnkit video train --train train.tsv --frames 16 --size 112 112      # video files: 16 frames of 112x112
    rnnkit video eval --run runs/video/<id> --data test.tsv
    rnnkit video predict --run runs/video/<id> clip1.mp4 clip2.npy clips/     # a folder: its clip files

and the same from Python::

    from rnnkit.tasks import video
    data = video.DataConfig(train="train.tsv", val="val.tsv", frames=16, size=(112, 112))
    result = video.train(video.Config(data=data))
    video.Watcher.load(result.run_dir).predict(["clip.mp4"])        # [('left', {...})]

The model (the CNN + LSTM of Donahue et al. 2015, "long-term recurrent convolutional networks",
at toy scale): each frame ``(C, H, W)`` → three 3x3 convolutions with ReLU and 2x2 max pooling
(16, 32, 64 channels) → average pooling to a 4x4 map (where things are survives) → ``Linear`` to
``E`` → a :mod:`rnnkit.nn` GRU or LSTM over the frames, run with ``lengths`` (clips of any
length) → its final state → dropout → ``Linear`` to the classes. ``--temporal mean`` is the
baseline that averages the frame embeddings instead: the same encoder, blind to frame order.

Input: a manifest table (:mod:`rnnkit.data.tabular`) with a ``path`` column (a ``.npy`` clip or
a video file, :func:`rnnkit.data.video.read_clip`; relative to the manifest's folder) and a
``label`` column. The decoding options of :class:`DataConfig` (``frames``, ``size``, ``color``)
shape every clip; the run records them, and ``eval``/``predict`` read new clips with them (a
resumed run keeps them). Every clip is read and checked first; all must share the first clip's
channels, frame size and scaling (:class:`ClipFormat`), which the run records and
``eval``/``predict`` check.

Shape legend: ``B`` batch, ``T`` frames, ``C`` channels, ``H``/``W`` frame height/width, ``E``
frame embedding, ``K`` classes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import BucketedBatches, pad_batch
from rnnkit.data.tabular import read_table
from rnnkit.data.video import CLIP_SUFFIXES, Clip, clip_files, load_clip
from rnnkit.data.video_frames import COLORS, check_clip_options
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.io import atomic_write_json
from rnnkit.nn import GRU, LSTM
from rnnkit.tasks.common import (
    HelpFormatter,
    check_fraction,
    check_positive,
    checked_sections,
    class_ids,
    classification_scores,
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

TEMPORALS = ("gru", "lstm", "mean")


# ===================================================================== configuration
@dataclass
class DataConfig:
    """The manifests and how every clip is read (the decoding options, the same for ``.npy`` clips
    and video files; the run records them for ``eval`` and ``predict``)."""

    train: str = ""  # manifest: path, label
    val: str | None = None
    path_column: str = "path"
    label_column: str = "label"
    frames: int | None = None  # frames kept per clip, spread uniformly over it (fewer: repeated); None: all
    size: tuple[int, int] | None = None  # (height, width) every frame is resized to; None: as stored
    color: str = "auto"  # gray | rgb | auto (a .npy clip's own channels, RGB for a video file)

    def __post_init__(self) -> None:
        if isinstance(self.size, list):  # from JSON or the command line
            self.size = tuple(self.size)

    def validate(self) -> None:
        if not self.train:
            raise ConfigError("train: expected a manifest of clips (.npy or video files) and labels (--train FILE)")
        try:
            check_clip_options(self.frames, self.size, self.color)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def clip_options(self) -> dict[str, Any]:
        """The decoding options, as :func:`rnnkit.data.video.load_clip` takes them."""
        return {"frames": self.frames, "size": self.size, "color": self.color}


@dataclass
class ModelConfig:
    temporal: str = "gru"  # gru | lstm | mean (order-blind baseline)
    embed_dim: int = 128  # frame embedding
    hidden_size: int = 128
    dropout: float = 0.2

    def validate(self) -> None:
        if self.temporal not in TEMPORALS:
            raise ConfigError(f"temporal: expected one of {list(TEMPORALS)}, got {self.temporal!r}")
        check_positive(self, "embed_dim", "hidden_size")
        check_fraction(self, "dropout")


def default_train_config() -> TrainConfig:
    """The training options ``rnnkit video train`` starts from: keep the best val accuracy."""
    return TrainConfig(
        steps=None, epochs=10, batch_size=32, lr=2e-3, clip_norm=5.0, eval_every=100, monitor="accuracy", mode="max"
    )


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=default_train_config)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.train.validate()


# ===================================================================== clips
@dataclass
class ClipFormat:
    """What every clip of a run shares: its frames' ``(C, H, W)`` and whether it is stored as
    8-bit values (a ``uint8`` array or a video file: scaled from 0..255 to 0..1) or not (taken as
    it is)."""

    frame_shape: tuple[int, ...]
    uint8: bool | None  # None: not known (a run saved before this was recorded), not checked

    def check(self, clip: Clip, others: str) -> None:
        """A :class:`DataError` unless ``clip`` matches; ``others`` says which clips it is compared with."""
        shape = tuple(clip.frames.shape[1:])
        if shape != self.frame_shape:
            raise DataError(
                f"frames of shape (C, H, W) {shape}; expected {self.frame_shape} like {others} "
                "(--size H W and --color gray|rgb give every clip one shape)"
            )
        if self.uint8 is not None and clip.uint8 != self.uint8:
            raise DataError(
                f"{clip.stored}; expected {'uint8' if self.uint8 else 'a dtype other than uint8'} like "
                f"{others} (uint8 and video frames are scaled from 0..255 to 0..1, other dtypes are taken as they are)"
            )


@dataclass
class Clips:
    """``clips[i]: (T_i, C, H, W)`` and ``labels[i]``, from ``lines[i]`` of ``manifest``; all of
    ``clip_format``."""

    manifest: str
    clips: list[Tensor]
    labels: list[str]
    lines: list[int]
    clip_format: ClipFormat | None = None

    def __len__(self) -> int:
        return len(self.clips)


def read_clips(path: str | os.PathLike, config: DataConfig, clip_format: ClipFormat | None = None) -> Clips:
    """Read a manifest and every clip it names (relative to the manifest's folder unless
    absolute); each must match ``clip_format`` (default: the first clip's)."""
    table = read_table(path, config.path_column, config.label_column)
    folder = Path(path).parent
    out = Clips(str(path), [], list(table.labels), list(table.lines))
    for file, line in zip(table.texts, table.lines, strict=True):
        clip_path = Path(file) if Path(file).is_absolute() else folder / file
        try:
            clip = load_clip(clip_path, **config.clip_options())
        except DataError as e:
            hint = " (a clip's path is relative to the manifest's folder)" if not clip_path.exists() else ""
            raise DataError(f"{e}{hint}", path=str(path), line=line) from None
        clip_format = clip_format or ClipFormat(tuple(clip.frames.shape[1:]), clip.uint8)
        try:
            clip_format.check(clip, "the others")
        except DataError as e:
            raise DataError(f"{clip_path}: {e}", path=str(path), line=line) from None
        out.clips.append(clip.frames)
    out.clip_format = clip_format
    return out


@dataclass
class Batch:
    clips: Tensor  # (B, T, C, H, W), zero past each clip's end
    lengths: Tensor  # (B,)
    labels: Tensor  # (B,)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.clips.to(device), self.lengths, self.labels.to(device))


def collate(clips: Sequence[Tensor], labels: Sequence[int], indices: Sequence[int]) -> Batch:
    padded, lengths = pad_batch([clips[i] for i in indices])
    return Batch(padded, lengths, torch.tensor([labels[i] for i in indices]))


# ===================================================================== the model
class FrameEncoder(nn.Module):
    """``(N, C, H, W)`` frames -> ``(N, E)``: three conv-ReLU-maxpool blocks, a 4x4 average pool."""

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        blocks = []
        for c_in, c_out in ((channels, 16), (16, 32), (32, 64)):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        self.convs = nn.Sequential(*blocks)
        self.project = nn.Linear(64 * 16, embed_dim)

    def forward(self, frames: Tensor) -> Tensor:
        maps = F.adaptive_avg_pool2d(self.convs(frames), 4)  # (N, 64, 4, 4)
        return torch.relu(self.project(maps.flatten(1)))  # (N, E)


class VideoClassifier(nn.Module):
    """``forward(clips: (B, T, C, H, W), lengths: (B,)) -> logits: (B, K)``."""

    def __init__(self, channels: int, num_classes: int, config: ModelConfig) -> None:
        super().__init__()
        self.encoder = FrameEncoder(channels, config.embed_dim)
        self.temporal = config.temporal
        width = config.embed_dim
        if config.temporal != "mean":
            self.rnn = (LSTM if config.temporal == "lstm" else GRU)(config.embed_dim, config.hidden_size)
            width = config.hidden_size
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(width, num_classes)

    def forward(self, clips: Tensor, lengths: Tensor) -> Tensor:
        B, T = clips.shape[:2]
        frames = self.encoder(clips.flatten(0, 1)).view(B, T, -1)  # (B, T, E)
        if self.temporal == "mean":
            mask = valid_mask(lengths.to(frames.device), T).unsqueeze(-1)  # (B, T, 1)
            summary = (frames * mask).sum(1) / lengths.to(frames.device).unsqueeze(1)  # (B, E)
        else:
            _, state = self.rnn(frames, lengths=lengths)
            summary = (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H)
        return self.out(self.drop(summary))


def classification_step(model: nn.Module, batch: Batch, state: Any = None) -> StepOutput:
    logits = model(batch.clips, batch.lengths)
    accuracy = (logits.argmax(-1) == batch.labels).float().mean().item()
    return StepOutput(F.cross_entropy(logits, batch.labels), metrics={"accuracy": accuracy}, items=len(batch.labels))


@torch.no_grad()
def predict_proba(model: VideoClassifier, clips: Sequence[Tensor], batch_size: int = 32) -> Tensor:
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(clips), batch_size):
        batch = collate(clips, [0] * len(clips), range(start, min(start + batch_size, len(clips)))).to(device)
        out.append(torch.softmax(model(batch.clips, batch.lengths).float(), -1).cpu())
    return torch.cat(out)


def _class_ids(data: Clips, classes: Sequence[str]) -> list[int]:
    return class_ids(data.labels, data.lines, data.manifest, classes)


# ===================================================================== a trained run
class Watcher:
    """A trained run: the model, its classes, its clips' format and manifest columns. Load with
    :meth:`load`."""

    def __init__(
        self, model: VideoClassifier, classes: list[str], clip_format: ClipFormat, data: DataConfig | None = None
    ) -> None:
        self.model, self.classes, self.clip_format = model.eval(), classes, clip_format
        self.data = data or DataConfig()

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self.clip_format.frame_shape

    @classmethod
    def load(cls, run_dir: str | os.PathLike, which: str = "best", device: str = "cpu") -> Watcher:
        run, saved, state_dict = load_task_run(run_dir, "video", which, device)
        where = run / "config.json"
        model_config, data_config = checked_sections(run, saved, {"model": ModelConfig, "data": DataConfig})
        classes, shape, uint8 = saved.get("classes"), saved.get("frame_shape"), saved.get("clips_uint8")
        if not isinstance(classes, list) or not isinstance(shape, list) or len(shape) != 3:
            raise CheckpointError(f"{where}: fields 'classes', 'frame_shape': expected a list of names and (C, H, W)")
        model = VideoClassifier(shape[0], len(classes), model_config)
        load_weights_into(model, state_dict, run)
        return cls(model.to(device), classes, ClipFormat(tuple(shape), uint8), data_config)

    def read(self, files: Sequence[str | os.PathLike]) -> list[Tensor]:
        """The clips of ``files``, read with the run's decoding options and each checked against
        its clip format."""
        clips = []
        for f in files:
            clip = load_clip(f, **self.data.clip_options())
            try:
                self.clip_format.check(clip, "the training clips")
            except DataError as e:
                raise DataError(str(e), path=str(f)) from None
            clips.append(clip.frames)
        return clips

    def predict(self, files: Sequence[str | os.PathLike]) -> list[tuple[str, dict[str, float]]]:
        """``(class, {class: probability})`` of each clip file (``.npy`` or video)."""
        probs = predict_proba(self.model, self.read(files))
        return [(self.classes[int(p.argmax())], dict(zip(self.classes, p.tolist(), strict=True))) for p in probs]

    def evaluate(self, data: Clips) -> dict[str, Any]:
        return {
            **classification_scores(predict_proba(self.model, data.clips), _class_ids(data, self.classes)),
            "clips": len(data),
        }


def evaluate_file(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Accuracy and loss on a manifest (its columns: the run's unless given; its clips read with
    the run's decoding options); ``report.json`` into ``out_dir`` (default ``<run>/eval/<stem>/``)."""
    watcher = Watcher.load(run_dir)
    columns = replace(
        watcher.data,
        train=str(data),
        val=None,
        path_column=path_column or watcher.data.path_column,
        label_column=label_column or watcher.data.label_column,
    )
    report = {"data": str(data), **watcher.evaluate(read_clips(data, columns, watcher.clip_format))}
    folder = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval" / Path(data).stem
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "report.json", report)
    return {**report, "out_dir": str(folder)}


# ===================================================================== training
def train(config: Config, *, runs_root: str | os.PathLike = "runs") -> FitResult:
    """Train a video classifier; returns the trainer's :class:`FitResult`. A resumed run
    (``config.train.resume``) keeps its classes, clip format and decoding options (other ones
    are a :class:`ConfigError`)."""
    config.validate()
    saved = resumed_run(config, "video")
    clip_format = None
    if saved is not None:
        check_resumed_decoding(saved, config.data, config.train.resume)
        clip_format = ClipFormat(tuple(saved["frame_shape"]), saved.get("clips_uint8"))
    train_set = read_clips(config.data.train, config.data, clip_format)
    clip_format = train_set.clip_format
    val_set = read_clips(config.data.val, config.data, clip_format) if config.data.val else None
    classes = saved["classes"] if saved is not None else sorted(set(train_set.labels))
    if len(classes) < 2:
        raise DataError(f"found only the class {classes}; expected at least two", path=train_set.manifest)
    train_targets = _class_ids(train_set, classes)
    val_targets = _class_ids(val_set, classes) if val_set is not None else None
    seed_everything(config.train.seed)
    model = VideoClassifier(clip_format.frame_shape[0], len(classes), config.model)
    batches = BucketedBatches(
        [len(c) for c in train_set.clips],
        config.train.batch_size,
        lambda idx: collate(train_set.clips, train_targets, idx),
        seed=config.train.seed,
    )

    def evaluate(trained: VideoClassifier) -> dict[str, float]:
        return classification_scores(predict_proba(trained, val_set.clips), val_targets)

    task_config = {
        "data": asdict(config.data),
        "model": asdict(config.model),
        "classes": classes,
        "frame_shape": list(clip_format.frame_shape),
        "clips_uint8": clip_format.uint8,
    }
    trainer = Trainer(
        model,
        config.train,
        train_step=classification_step,
        evaluate=evaluate if val_set is not None else None,
        task="video",
        task_config=task_config,
        runs_root=runs_root,
    )
    if not config.train.quiet:
        print(
            f"{len(train_set)} training clips of frames {clip_format.frame_shape}, {len(classes)} classes",
            file=sys.stderr,
        )
    result = trainer.fit(batches)
    if trainer.is_main and val_set is not None and result.run_dir is not None:
        report = Watcher.load(result.run_dir).evaluate(val_set)
        atomic_write_json(result.run_dir / "eval_val.json", report)
        append_report(
            result.run_dir,
            f"## Video\n\nBest checkpoint on `{config.data.val}` ({len(val_set)} clips): "
            f"accuracy {report['accuracy']:.4f}, loss {report['loss']:.4f}",
        )
    return result


def check_resumed_decoding(saved: dict[str, Any], data: DataConfig, run: str | os.PathLike) -> None:
    """A :class:`ConfigError` unless ``data`` reads clips as the resumed run (``saved``: its
    ``config.json``) did: its clip format and weights were made with its decoding options."""
    kept = dataclass_from(DataConfig, saved.get("data"), f"{Path(run) / 'config.json'}: field 'data'").clip_options()
    for name, value in data.clip_options().items():
        if value != kept[name]:
            raise ConfigError(
                f"{name}: {run} was trained with {kept[name]!r}, not {value!r}; a resumed video run keeps its "
                f"decoding options (frames, size, color): leave --{name} out, or start a new run"
            )


# ===================================================================== command line
def add_parser(subparsers) -> None:
    """``rnnkit video train|eval|predict``."""
    from rnnkit.cli import add_config_option

    verb = subparsers.add_parser("video", help="video classification (CNN frames + RNN): train, eval, predict")
    jobs = verb.add_subparsers(dest="job", metavar="JOB", required=True)
    fmt = HelpFormatter
    d, m = DataConfig(), ModelConfig()

    tp = jobs.add_parser(
        "train", help="train on a manifest of clips (.npy or video files) and labels", formatter_class=fmt
    )
    g = tp.add_argument_group("data")
    g.add_argument(
        "--train", default="", help="manifest (.tsv/.csv/.jsonl): path of a clip (.npy, .mp4, ...), label; required"
    )
    g.add_argument("--val", default=None, help="validation manifest")
    g.add_argument("--path-column", default=d.path_column, help="column with the clip's path")
    g.add_argument("--label-column", default=d.label_column, help="column with the label")
    g = tp.add_argument_group("decoding (every clip, .npy or video; the run keeps them for eval and predict)")
    g.add_argument(
        "--frames",
        type=int,
        default=d.frames,
        metavar="N",
        help="frames kept per clip, spread uniformly over it (a shorter clip repeats its frames); None: every frame",
    )
    g.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=d.size,
        metavar=("H", "W"),
        help="resize every frame to H x W (bilinear, antialiased); None: as stored",
    )
    g.add_argument(
        "--color",
        choices=COLORS,
        default=d.color,
        help="gray or rgb; auto: a .npy clip's own channels, RGB for a video",
    )
    g = tp.add_argument_group("model")
    g.add_argument("--temporal", choices=TEMPORALS, default=m.temporal, help="RNN over frames, or mean (baseline)")
    g.add_argument("--embed-dim", type=int, default=m.embed_dim, help="frame embedding size")
    g.add_argument("--hidden-size", type=int, default=m.hidden_size, help="recurrent units")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout before the classifier")
    add_train_args(tp, default_train_config())
    add_config_option(tp)
    tp.set_defaults(func=run_train)

    ep = jobs.add_parser("eval", help="accuracy and loss on a manifest", formatter_class=fmt)
    ep.add_argument("--run", default=None, help="run folder of `rnnkit video train`; required")
    ep.add_argument("--data", default=None, help="manifest to evaluate on (read as the run read its clips); required")
    ep.add_argument("--out-dir", default=None, help="where report.json goes")
    ep.add_argument("--path-column", default=None, help="column with the clip's path (default: the run's)")
    ep.add_argument("--label-column", default=None, help="column with the label (default: the run's)")
    add_config_option(ep)
    ep.set_defaults(func=run_eval)

    pp = jobs.add_parser("predict", help="class of each clip (.npy or video file)", formatter_class=fmt)
    pp.add_argument("--run", default=None, help="run folder of `rnnkit video train`; required")
    pp.add_argument("files", nargs="*", help=f"clips ({', '.join(CLIP_SUFFIXES)}), or folders of them")
    add_config_option(pp)
    pp.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    train_config = config_from_args(args)
    data, model = sections_from_cli(args, "video", {"data": DataConfig, "model": ModelConfig})
    result = train(Config(data, model, train_config))
    print(f"run folder: {result.run_dir} ({result.stop_reason} after {result.steps} steps)")
    if result.best_metric is not None:
        print(f"best val accuracy: {result.best_metric:.4f} (step {result.best_step})")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    require(args, "run", "data")
    report = evaluate_file(
        args.run, args.data, args.out_dir, path_column=args.path_column, label_column=args.label_column
    )
    print(f"accuracy {report['accuracy']:.4f}  loss {report['loss']:.4f}  ({report['clips']} clips)")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    require(args, "run", "files", positional=("files",))
    watcher, files = Watcher.load(args.run), clip_files(args.files)
    for file, (label, probs) in zip(files, watcher.predict(files), strict=True):
        print(f"{file}\t{label}\t" + " ".join(f"{k}:{v:.4f}" for k, v in probs.items()))
    return 0
