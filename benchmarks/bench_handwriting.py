"""Pen-based handwritten digits (UCI pendigits) with `rnnkit handwriting`: accuracy of a
bidirectional GRU and LSTM over the pen trajectory against the feed-forward baseline.

Trains on ``pendigits/pendigits.tra`` (7,494 digits by 30 writers, each 8 (x, y) points) less a
seeded random 10% held out for validation and checkpoint selection, and reports accuracy on that
held-out 10%. The held-out digits come from the same 30 writers as the training ones (the UCI
test part, other writers, is held back and not in ``../shared``), so this is not a
writer-independent figure. Baseline: ``--cell mlp``, the same points (resampled evenly along the
path) flattened into a two-layer network.

    python -m benchmarks.bench_handwriting                 # writes benchmarks/results/handwriting_pendigits.json
    python -m benchmarks.bench_handwriting --epochs 3 --cells gru --name handwriting_quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.results_io import result_name, write_result
from benchmarks.shared_data import add_data_option, require
from rnnkit.tasks import handwriting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm", "mlp"], choices=handwriting.CELLS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", type=result_name, default="handwriting_pendigits")
    add_data_option(parser)
    args = parser.parse_args()
    pendigits = require(args.data, "pendigits/pendigits.tra", "UCI pen-based digits")
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    reference: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells:
            config = handwriting.Config(
                data=handwriting.DataConfig(str(pendigits), val_fraction=0.1),
                model=handwriting.ModelConfig(cell=cell, hidden_size=128 if cell == "mlp" else 64),
                train=replace(
                    handwriting.default_train_config(),
                    epochs=args.epochs,
                    quiet=True,
                    seed=args.seed,
                    run_dir=str(Path(tmp) / cell),
                ),
            )
            result = handwriting.train(config)
            report = json.loads((result.run_dir / "eval_val.json").read_text())
            into = reference if cell == "mlp" else metrics
            into[f"{cell}_val_accuracy"] = report["accuracy"]
            into[f"{cell}_val_loss"] = report["loss"]
            into[f"{cell}_parameters"] = sum(p.numel() for p in result_model_parameters(result.run_dir))
            into[f"{cell}_train_wall_seconds"] = result.wall_seconds
            print(cell, metrics, reference, flush=True)
    write_result(
        args.name,
        dataset="UCI pen-based handwritten digits (../shared/data/pendigits/pendigits.tra)",
        split="a seeded random 90% / 10% of the training part (same 30 writers in both)",
        metrics=metrics,
        reference=reference,
        wall_seconds=time.perf_counter() - start,
        notes=(
            f"bidirectional 1-layer GRU/LSTM of 64 units per direction over (x, y, dx, dy) per point; mlp: "
            f"2 hidden layers of 128 over 8 resampled points; dropout 0.2, {args.epochs} epochs of batch 64, "
            f"AdamW lr 3e-3, best checkpoint by val accuracy; torch threads {torch.get_num_threads()}"
        ),
    )


def result_model_parameters(run_dir: Path):
    return handwriting.Reader.load(run_dir).model.parameters()


if __name__ == "__main__":
    main()
