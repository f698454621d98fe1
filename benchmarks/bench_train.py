"""rnnkit.train's cost: the engine's overhead per step against a bare hand-written PyTorch loop
doing the same work, and the throughput of 2 processes (torchrun, gloo) against 1 on the CPU.

Both loops train the same character-level LSTM with truncated BPTT on the same chunks (AdamW,
global-norm clipping at 1.0, the carried state detached between chunks, ``loss.item()`` every
step). Each records the time at the start of every step; a step's time is the gap to the next
start (the first steps are warm-up and not counted). Rounds of the two loops alternate so that
load on the machine hits both alike. The engine's fixed costs per ``fit()`` (run folder,
config.json, final checkpoint) are reported apart. Target: the engine <= 3% slower per step.

The distributed figure runs the same training under ``torchrun --standalone --nproc-per-node N``
for N = 1 and 2 with the same global batch (one torch thread per process) and compares tokens/s.

    python -m benchmarks.bench_train                  # writes benchmarks/results/train.json
    python -m benchmarks.bench_train --rounds 3 --steps 40 --no-distributed
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.results_io import write_result
from rnnkit.data.batching import TBPTTStream
from rnnkit.nn import LSTM
from rnnkit.train import StepOutput, TrainConfig, Trainer, seed_everything

VOCAB, WARMUP_STEPS = 64, 3


@dataclass(frozen=True)
class Size:
    embed: int
    hidden: int
    batch: int
    bptt: int


MAIN = Size(embed=128, hidden=256, batch=32, bptt=64)  # the overhead that matters: a real step
TINY = Size(embed=8, hidden=8, batch=4, bptt=4)  # a step so small that the engine's own time shows


class CharLSTM(nn.Module):
    def __init__(self, size: Size) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, size.embed)
        self.rnn = LSTM(size.embed, size.hidden)
        self.head = nn.Linear(size.hidden, VOCAB)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.embed(tokens), state)  # (B, T, H)
        return self.head(out), state  # (B, T, V)


def token_stream(size: Size) -> TBPTTStream:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (size.batch * (size.bptt * 50 + 1),), generator=g)  # 50 chunks per stream
    return TBPTTStream(tokens, size.batch, size.bptt)


def now() -> tuple[float, float]:
    """(wall clock, this process's CPU time) in seconds."""
    return time.perf_counter(), time.process_time()


def step_times(starts: list[tuple[float, float]], clock: int) -> list[float]:
    """Seconds from each step's start to the next one's, after the warm-up steps.
    ``clock``: 0 wall time, 1 CPU time of this process (not inflated by waiting for a busy core)."""
    kept = [stamp[clock] for stamp in starts[WARMUP_STEPS:]]
    return [b - a for a, b in itertools.pairwise(kept)]


def bare_loop(size: Size, steps: int) -> list[tuple[float, float]]:
    """The hand-written loop: the same work the engine does, nothing else. Returns step starts."""
    seed_everything(0)
    model, batches = CharLSTM(size), token_stream(size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state, starts = None, []
    for k in range(steps):
        starts.append(now())
        chunk = batches(k)
        if chunk.reset:
            state = None
        logits, state = model(chunk.inputs, state)
        loss = F.cross_entropy(logits.flatten(0, 1), chunk.targets.flatten())
        loss.backward()
        state = tuple(s.detach() for s in state)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    return starts


def engine_loop(size: Size, steps: int, run_dir: Path) -> tuple[list[tuple[float, float]], float]:
    """The same training through ``Trainer.fit``; returns step starts and the fit() CPU time."""
    seed_everything(0)
    model, batches = CharLSTM(size), token_stream(size)
    starts: list[tuple[float, float]] = []

    def train_step(model, chunk, state):
        starts.append(now())
        logits, state = model(chunk.inputs, state)
        loss = F.cross_entropy(logits.flatten(0, 1), chunk.targets.flatten())
        return StepOutput(loss, state=state, items=chunk.targets.numel())

    config = TrainConfig(steps=steps, batch_size=size.batch, lr=1e-3, clip_norm=1.0, quiet=True, plots=False)
    trainer = Trainer(model, config, train_step=train_step, run_dir=run_dir)
    started = time.process_time()
    trainer.fit(batches)
    return starts, time.process_time() - started


def compare(size: Size, rounds: int, steps: int) -> dict[str, list[float]]:
    """Per round, the median step time (CPU and wall) of each loop, their order alternating between
    rounds, and the engine's fixed CPU time per fit() (setup and wrap-up)."""
    out: dict[str, list[float]] = {k: [] for k in ("bare", "engine", "bare_wall", "engine_wall", "ratio", "fixed")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for which in ("bare", "engine") if r % 2 == 0 else ("engine", "bare"):
                if which == "bare":
                    starts = bare_loop(size, steps)
                else:
                    starts, total = engine_loop(size, steps, Path(tmp) / f"run{r}")
                out[which].append(statistics.median(step_times(starts, 1)))
                out[f"{which}_wall"].append(statistics.median(step_times(starts, 0)))
                if which == "engine":  # the last step counts as a median one
                    out["fixed"].append(total - (starts[-1][1] - starts[0][1]) - out["engine"][-1])
            out["ratio"].append(out["engine"][-1] / out["bare"][-1])
            print(
                f"{size}: round {r + 1}/{rounds}: CPU per step: bare {out['bare'][-1] * 1e3:.3f} ms, "
                f"engine {out['engine'][-1] * 1e3:.3f} ms (wall {out['bare_wall'][-1] * 1e3:.3f} / "
                f"{out['engine_wall'][-1] * 1e3:.3f} ms)",
                flush=True,
            )
    return out


# ---------------------------------------------------------------- distributed throughput


def worker(steps: int, out: Path) -> None:
    """Run under torchrun: train ``steps`` steps with the global batch, rank 0 writes tokens/s."""
    torch.set_num_threads(1)
    seed_everything(0)
    model, starts = CharLSTM(MAIN), []

    def train_step(model, chunk, state):
        starts.append(now())
        logits, state = model(chunk.inputs, state)
        return StepOutput(F.cross_entropy(logits.flatten(0, 1), chunk.targets.flatten()), state=state)

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(steps=steps, batch_size=MAIN.batch, lr=1e-3, quiet=True, plots=False, device="cpu")
        trainer = Trainer(model, config, train_step=train_step, run_dir=Path(tmp) / "run")
        trainer.fit(token_stream(MAIN))
    if trainer.is_main:
        median = statistics.median(step_times(starts, 0))  # wall time: throughput
        tokens_per_second = MAIN.batch * MAIN.bptt / median
        out.write_text(json.dumps({"step_seconds_median": median, "tokens_per_second": tokens_per_second}))


def distributed(nproc: int, steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
        argv = [*launcher, "-m", "benchmarks.bench_train", "--worker", "--steps", str(steps), "--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(argv, check=True, env=env, cwd=Path(__file__).resolve().parents[1])
        return json.loads(out.read_text())


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of bare loop and engine")
    parser.add_argument("--steps", type=int, default=60, help="steps per round (and per distributed run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the overhead comparison")
    parser.add_argument("--tiny-steps", type=int, default=300, help="steps per round with the tiny model")
    parser.add_argument("--no-distributed", action="store_true", help="skip the 1 vs 2 process comparison")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.out)
        return
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    main_run = compare(MAIN, args.rounds, args.steps)
    tiny = compare(TINY, args.rounds, args.tiny_steps)
    metrics = {
        "engine_step_cpu_seconds_median": statistics.median(main_run["engine"]),
        "engine_overhead_ratio_median": statistics.median(main_run["ratio"]),  # 1.0 = as fast as the bare loop
        "engine_overhead_ratio_min": min(main_run["ratio"]),
        "engine_overhead_ratio_max": max(main_run["ratio"]),
        "engine_overhead_ratio_wall_median": statistics.median(
            [e / b for e, b in zip(main_run["engine_wall"], main_run["bare_wall"], strict=True)]
        ),
        "engine_fixed_cpu_seconds_per_fit_median": statistics.median(main_run["fixed"]),
        "tiny_model_engine_overhead_cpu_seconds_per_step": statistics.median(
            [e - b for e, b in zip(tiny["engine"], tiny["bare"], strict=True)]
        ),
        "tiny_model_engine_overhead_ratio_median": statistics.median(tiny["ratio"]),
    }
    reference = {
        "bare_loop_step_cpu_seconds_median": statistics.median(main_run["bare"]),
        "bare_loop_step_wall_seconds_median": statistics.median(main_run["bare_wall"]),
        "tiny_model_bare_loop_step_cpu_seconds_median": statistics.median(tiny["bare"]),
    }
    if not args.no_distributed:
        runs = {1: [], 2: []}
        for nproc in (1, 2, 2, 1):  # ABBA: a drift in load hits both alike
            runs[nproc].append(distributed(nproc, args.steps)["tokens_per_second"])
        one, two = statistics.fmean(runs[1]), statistics.fmean(runs[2])
        metrics["two_process_tokens_per_second"] = two
        metrics["two_vs_one_process_throughput_ratio"] = two / one
        reference["one_process_tokens_per_second"] = one
    load = os.getloadavg()
    notes = (
        f"Char LSTM (embed {MAIN.embed}, hidden {MAIN.hidden}, vocab {VOCAB}), batch {MAIN.batch}, TBPTT chunks "
        f"of {MAIN.bptt}, AdamW + clip 1.0, CPU, {args.threads} torch thread(s); medians of per-step times over "
        f"{args.rounds} rounds of {args.steps} steps, timed in CPU time of the process (ratio: median over rounds "
        "of engine/bare; the wall-time ratio is given too). "
        f"The tiny model ({TINY}) is there to expose the engine's own time per step (bookkeeping, logging "
        "every 10 steps with per-layer norms); on this shared machine, differences under ~0.1 ms per step are "
        "within the noise (a negative figure means: not measurable). "
        f"Load average at the end {load[0]:.1f} on {os.cpu_count()} cores: measured while other jobs shared "
        "the CPU, so absolute times are noisy; the ratios are the figures."
    )
    path = write_result(
        "train",
        dataset="synthetic random tokens (no data files)",
        split="train",
        metrics=metrics,
        reference=reference,
        wall_seconds=time.perf_counter() - started,
        notes=notes,
    )
    print(json.dumps(metrics, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
