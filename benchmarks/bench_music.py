"""JSB Chorales with `rnnkit music`: negative log-likelihood per time step of LSTM and GRU piano-roll
models against two baselines fitted on the same training pieces.

Trains on the ``train`` split of ``jsb_chorales/jsb_chorales.json`` (229 chorales) with
``rnnkit.tasks.music.train`` for ``--epochs`` and reports the NLL per time step (nats, every
pitch an independent Bernoulli given the past: the figure the literature reports on this data,
Boulanger-Lewandowski et al. 2012) on the ``valid`` split (76 chorales; the test split is held
back) of the checkpoint with the lowest validation NLL, evaluated every ``--eval-every`` steps.
The checkpoint is picked on the split it is scored on, as nothing else is tuned on it.

Baselines on the same validation steps: ``marginal`` (each pitch with its training frequency) and
``per_pitch_markov`` (each pitch's probability given only whether it sounded the step before).

    python -m benchmarks.bench_music                      # writes benchmarks/results/music_jsb.json
    python -m benchmarks.bench_music --epochs 5 --cells lstm --name music_quick
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
from rnnkit.tasks import music


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=music.CELLS)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", type=result_name, default="music_jsb")
    add_data_option(parser)
    args = parser.parse_args()
    chorales = require(args.data, "jsb_chorales/jsb_chorales.json", "JSB Chorales")
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    reference: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells:
            config = music.Config(
                data=music.DataConfig(str(chorales)),
                model=music.ModelConfig(cell, args.hidden_size, args.num_layers, args.dropout),
                train=replace(
                    music.default_train_config(),
                    epochs=args.epochs,
                    eval_every=args.eval_every,
                    quiet=True,
                    seed=args.seed,
                    run_dir=str(Path(tmp) / cell),
                ),
            )
            result = music.train(config)
            figures = json.loads((result.run_dir / "eval_nll.json").read_text())
            metrics[f"{cell}_valid_nll_per_step_nats"] = figures["model"]
            metrics[f"{cell}_train_wall_seconds"] = result.wall_seconds
            metrics[f"{cell}_best_step"] = result.best_step
            metrics[f"{cell}_train_loss_last_interval_nats"] = result.train_loss
            reference = {
                "marginal_valid_nll_per_step_nats": figures["marginal"],
                "per_pitch_markov_valid_nll_per_step_nats": figures["per_pitch_markov"],
            }
            print(cell, metrics, reference, flush=True)
    write_result(
        args.name,
        dataset="JSB Chorales (../shared/data/jsb_chorales/jsb_chorales.json)",
        split="train (229 chorales) / valid (76 chorales)",
        metrics=metrics,
        reference=reference,
        wall_seconds=time.perf_counter() - start,
        notes=(
            f"{args.num_layers} layers x {args.hidden_size} units, dropout {args.dropout}, {args.epochs} epochs, "
            f"batch 16, AdamW lr 2e-3, best checkpoint by valid NLL every {args.eval_every} steps; "
            f"torch threads {torch.get_num_threads()}"
        ),
    )


if __name__ == "__main__":
    main()
