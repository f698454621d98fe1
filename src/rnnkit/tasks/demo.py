"""`rnnkit demo`: a character-level LSTM language model on English that ships with Python.

No data from the user and no network: the text is the help pages of ``pydoc_data.topics``
(about 465,000 characters of English prose and code), written once to ``runs/demo/pydoc_topics.txt``.
The demo is :func:`rnnkit.tasks.lm.train` with a small model and a time budget (``--minutes``,
3 by default), so it shows the whole pipeline: progress bar, run folder (``config.json``,
``metrics.jsonl``, checkpoints, ``plots/loss.png``, ``report.md``), then a generated sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.io import atomic_write_text
from rnnkit.tasks import lm
from rnnkit.tasks.common import HelpFormatter
from rnnkit.train import TrainConfig
from rnnkit.train.logging import read_metrics
from rnnkit.train.run import new_run_dir

DEMO_ROOT = Path("runs")
CORPUS = Path("demo") / "pydoc_topics.txt"  # under the root


def demo_text() -> str:
    """About 465,000 characters of English from Python's own documentation (``pydoc_data.topics``)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def demo_corpus(root: Path = DEMO_ROOT) -> Path:
    """``<root>/demo/pydoc_topics.txt``, written (atomically) the first time."""
    path = root / CORPUS
    if not path.is_file():
        atomic_write_text(path, demo_text())
    return path


def demo_config(minutes: float, hidden: int, layers: int, seed: int, quiet: bool, root: Path = DEMO_ROOT) -> lm.Config:
    """The demo's recipe: a char LSTM, B=32 streams of T=64, AdamW 3e-3 with cosine decay,
    four evaluations on the last 5% of the text, ``minutes`` of training. Checked first: on a bad
    option nothing is written; then the corpus (:func:`demo_corpus`) and the run folder are made."""
    config = lm.Config(
        data=lm.DataConfig(files=[str(root / CORPUS)], val_fraction=0.05, seq_len=64),
        model=lm.ModelConfig(cell="lstm", layers=layers, hidden=hidden, dropout=0.1),
        train=TrainConfig(
            steps=1,  # replaced by what fits in `minutes`
            batch_size=32,
            lr=3e-3,
            schedule="cosine",
            warmup=20,
            clip_norm=1.0,
            log_every=10,
            seed=seed,
            quiet=quiet,
        ),
        minutes=minutes,
    )
    config.validate()
    demo_corpus(root)
    config.train.run_dir = str(new_run_dir("demo", root))
    return config


def run(args: argparse.Namespace) -> int:
    lm.check_sampling(args.length, args.temperature, None, None)  # before minutes of training, not after
    config = demo_config(args.minutes, args.hidden, args.layers, args.seed, args.quiet)
    if not args.quiet:
        size = f"{args.layers}-layer, {args.hidden}-unit"
        print(f"training a {size} character LSTM on Python's docs for {args.minutes:g} minutes")
    run_dir = lm.train(config)
    rows = read_metrics(run_dir)
    train_losses = [r["loss"] for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    if train_losses and evals:
        last = evals[-1]
        print(
            f"training loss {train_losses[0]:.3f} -> {train_losses[-1]:.3f} nats/char; "
            f"validation {last['val_loss']:.3f} nats/char ({last['val_bpc']:.2f} bits/char)"
        )
    model, vocab = lm.load_model(run_dir)
    print(f"sample (temperature {args.temperature}):\n")
    prompt = "The "
    print(prompt, end="", flush=True)
    ids = lm.prompt_ids(vocab, prompt)
    for piece in lm.generate_text(model, vocab, ids, args.length, args.temperature, seed=args.seed):
        print(piece, end="", flush=True)
    print(f"\n\nrun folder: {run_dir} (report.md, plots/loss.png)")
    return 0


def add_parser(subparsers) -> None:
    from rnnkit.cli import add_config_option

    p = subparsers.add_parser(
        "demo",
        help="train a character LSTM on Python's own docs, then generate text",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    p.add_argument("--hidden", type=int, default=128, help="LSTM units per layer")
    p.add_argument("--layers", type=int, default=2, help="LSTM layers")
    p.add_argument("--length", type=int, default=400, help="characters to generate")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_option(p)
    p.set_defaults(func=run)
