"""A tiny training run driven from the command line, for the tests that need a separate process:
exact resume after SIGKILL, SIGTERM, and torchrun with several processes.

    python tests/train/toy_train.py --run-dir R --steps 24 [--kill-at-call N] [--resume R]
    torchrun --standalone --nproc-per-node 2 tests/train/toy_train.py --run-dir R --batch-size 8 ...
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rnnkit.train import TrainConfig, Trainer, add_train_args, config_from_args, distributed, seed_everything
from rnnkit.train.run import new_run_dir
from tests.train.toy import TinyLM, carried_step, stream


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    defaults = TrainConfig(steps=24, batch_size=8, lr=1e-2, optimizer="adam", log_every=2)
    defaults.dist_timeout, defaults.plots = 600.0, False
    add_train_args(parser, defaults)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--runs-root", default=None, help="make runs/<task>/<time> here before the Trainer")
    parser.add_argument("--kill-at-call", type=int, default=None, help="SIGKILL this process at train_step call N")
    parser.add_argument("--term-at-call", type=int, default=None, help="SIGTERM this process at train_step call N")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep in each train_step")
    parser.add_argument("--die-rank", type=int, default=None, help="this rank exits with status 7 ...")
    parser.add_argument("--die-at-call", type=int, default=3, help="... at train_step call N")
    return parser.parse_args()


def main() -> int:
    torch.set_num_threads(1)
    args = parse()
    config = config_from_args(args)
    seed_everything(config.seed)
    model = TinyLM(dropout=args.dropout)
    calls = {"n": 0}

    def train_step(model, batch, state):
        calls["n"] += 1
        if calls["n"] == args.kill_at_call:
            os.kill(os.getpid(), signal.SIGKILL)
        if calls["n"] == args.term_at_call:
            os.kill(os.getpid(), signal.SIGTERM)  # handled: this step completes, `last` is saved, exit 0
        dies_here = args.die_rank is not None and int(os.environ.get("RANK", 0)) == args.die_rank
        if dies_here and calls["n"] == args.die_at_call:
            os._exit(7)
        time.sleep(args.sleep)
        return carried_step(model, batch, state)

    def evaluate(model):
        chunk = stream(batch_size=8)(100)
        logits, _ = model(chunk.inputs)
        return {"loss": float(F.cross_entropy(logits.flatten(0, 1), chunk.targets.flatten()))}

    run_dir = None
    if args.runs_root:  # as a task that writes files before building its Trainer does
        distributed.setup(config)
        run_dir = new_run_dir("toy", args.runs_root)
    trainer = Trainer(model, config, train_step=train_step, evaluate=evaluate, task="toy", run_dir=run_dir)
    result = trainer.fit(stream(batch_size=config.batch_size))
    if trainer.is_main:
        print(f"done: steps={result.steps} stop={result.stop_reason} loss={result.train_loss!r}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
