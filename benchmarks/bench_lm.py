"""Character-level language model on tiny Shakespeare: rnnkit's `lm` pipeline vs a bare PyTorch loop.

Data: ``../shared/data/tinyshakespeare/input.txt`` (or ``$RNNKIT_DATA/tinyshakespeare/input.txt``)
with nanoGPT's ``shakespeare_char`` split: the first 90% of the characters train, the last 10%
validate. Validation loss is in nats per character over the whole validation text, state carried.

What it measures, in one process, one after the other under the same conditions:

1. **Throughput** (``--throughput-steps`` pairs): the rnnkit pipeline (the engine's
   ``Trainer.fit`` with ``lm.train_step`` on memory-mapped ``lm.train_batches``, the same model as
   the reference: 2 x 512 LSTM, B=64, T=128, dropout 0.2, AdamW 3e-3) and a bare loop with
   ``torch.nn.LSTM``, alternating step by step; characters per second and the median ratio.
2. **Reference**: the bare loop trained for ``--reference-minutes`` (cosine decay over that time),
   then its validation loss.
3. **rnnkit**: ``lm.train`` with the recipe below (``--cell``, ``--batch-size``, ``--dropout``, ...)
   for each budget of ``--minutes`` (default 15 and 30): the best validation loss of each run.

Budgets are turned into step counts right after 1., while the machine is as quiet as during the
throughput measurement: the reference gets ``minutes x`` its measured steps per second, the rnnkit
recipe ``minutes x`` the steps per second of a timed probe of its own network and batch size. A run
then trains exactly that many steps, so a busier machine later makes it take longer but does not
change its result.
4. **Generation**: characters per second at batch 1 (one recurrent step per character).
5. **Memory**: peak resident memory of tokenizing and training a few steps on the corpus
   repeated 1x and ``--memory-repeat`` x (flat: the corpus is memory-mapped, never loaded).

The recipe's defaults are the one that met the 1.40 target (64-wide embedding, B=16, lr 2e-3,
dropout 0.3, input dropout 0.1, weight decay 0.1); ``lm_tinyshakespeare.json``'s command line
names the recipe it ran. Full run (about 65 minutes on 2 cores)::

    python -m benchmarks.bench_lm --minutes 15 30 --reference-minutes 15

Another recipe at the same budgets: time its step on the quiet machine, then train it for the
step counts that time gives (e.g. the 64-wide embedding, B=16 recipe)::

    python -m benchmarks.bench_lm --probe --embed 64 --batch-size 16 --lr 2e-3
    python -m benchmarks.bench_lm --recipe-only 0.289 --minutes 30 --embed 64 --batch-size 16 --lr 2e-3 \
        --name lm_tinyshakespeare_embed64_b16

A short run (numbers not comparable to the targets; throughput ratio still meaningful)::

    python -m benchmarks.bench_lm --minutes 3 --reference-minutes 3 --throughput-steps 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.results_io import result_name, write_result
from rnnkit.tasks import lm
from rnnkit.train import Trainer, seed_everything
from rnnkit.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
B, T, HIDDEN, LAYERS, DROPOUT, LR = 64, 128, 512, 2, 0.2, 3e-3


def prepare_split(data: Path, work: Path) -> lm.Corpus:
    """Tokenize ``data`` into ``work/data`` with the benchmark's split (last 10% validates)."""
    return lm.prepare_corpus(lm.DataConfig(files=[str(data)], val_fraction=0.1, seq_len=T), work / "data", B)


def data_path() -> Path:
    root = Path(os.environ.get("RNNKIT_DATA", REPO / "../shared/data"))
    path = (root / "tinyshakespeare" / "input.txt").resolve()
    if not path.is_file():
        sys.exit(f"bench_lm: {path} not found (set RNNKIT_DATA to the shared data folder)")
    return path


# ---------------------------------------------------------------- the bare PyTorch reference


class BareLSTM(nn.Module):
    """Embedding -> torch.nn.LSTM -> dropout -> linear: the same model as lm.LanguageModel."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, HIDDEN)
        self.rnn = nn.LSTM(HIDDEN, HIDDEN, num_layers=LAYERS, dropout=DROPOUT, batch_first=True)
        self.drop = nn.Dropout(DROPOUT)
        self.head = nn.Linear(HIDDEN, vocab_size)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.embed(tokens), state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)


class BareLoop:
    """The reference loop: TBPTT over B contiguous streams, state carried, AdamW, clip 1.0."""

    def __init__(self, train_ids: np.ndarray, vocab_size: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = BareLSTM(vocab_size)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR)
        n = (len(train_ids) - 1) // B
        ids = torch.from_numpy(np.asarray(train_ids[: n * B + 1]).astype(np.int64))
        self.x, self.y = ids[:-1].view(B, n), ids[1:].view(B, n)  # (B, n) each
        self.chunks, self.k, self.state, self.steps = n // T, 0, None, 0

    def step(self, lr_factor: float = 1.0) -> float:
        i = self.k % self.chunks
        if i == 0:
            self.state = None
        x, y = self.x[:, i * T : (i + 1) * T], self.y[:, i * T : (i + 1) * T]  # (B, T)
        for group in self.opt.param_groups:
            group["lr"] = LR * lr_factor
        self.model.train()
        logits, state = self.model(x, self.state)
        self.state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.k += 1
        self.steps += 1
        return float(loss.detach())

    def train_steps(self, steps: int) -> dict[str, float]:
        """Train ``steps`` steps with cosine decay over them; returns steps and wall time."""
        start = time.perf_counter()
        for k in range(steps):
            self.step(0.5 * (1 + math.cos(math.pi * k / steps)))
        return {"steps": self.steps, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------- the rnnkit pipeline


def pipeline_config(data: Path, work: Path, steps: int, model: lm.ModelConfig, train: dict) -> lm.Config:
    """`rnnkit lm train --data input.txt --val-fraction 0.1 --seq-len 128 --batch-size 64 ...`
    (``train`` overrides any of these, e.g. ``batch_size`` and ``lr`` of the rnnkit recipe)."""
    options = dict(steps=steps, batch_size=B, lr=LR, schedule="cosine", clip_norm=1.0, log_every=5, quiet=True)
    return lm.Config(
        data=lm.DataConfig(files=[str(data)], val_fraction=0.1, seq_len=T),
        model=model,
        train=TrainConfig(**{**options, **train, "run_dir": str(work / f"run-{time.monotonic_ns()}")}),
    )


def baseline_model_config() -> lm.ModelConfig:
    """The reference model in rnnkit: 2 x 512 LSTM, dropout 0.2 (fused kernel path)."""
    return lm.ModelConfig(cell="lstm", layers=LAYERS, hidden=HIDDEN, dropout=DROPOUT)


# ---------------------------------------------------------------- 1. throughput, interleaved step by step


class InterleavedBareSteps:
    """The pipeline's batch source, running one timed step of the bare loop before it hands out
    each batch: the two loops alternate step by step, under the same load on the machine."""

    def __init__(self, batches, bare: BareLoop) -> None:
        self.batches, self.bare, self.seconds = batches, bare, []

    def __len__(self) -> int:
        return len(self.batches)

    def __call__(self, k: int):
        start = time.perf_counter()
        self.bare.step()
        self.seconds.append(time.perf_counter() - start)
        return self.batches(k)


def measure_throughput(data: Path, work: Path, steps: int) -> dict[str, float]:
    """``steps`` pairs of (bare step, pipeline step), the first pair dropped as warm-up.

    The pipeline is what :func:`rnnkit.tasks.lm.train` runs: the engine's ``Trainer.fit`` with
    ``lm.train_step`` on ``lm.train_batches`` (memory-mapped tokens) and ``lm.LanguageModel``.
    It logs every step; a pipeline step's time is its logged interval minus the bare step run
    inside it. Returns medians of characters per second and of the per-pair speed ratio.
    """
    config = pipeline_config(data, work, steps, baseline_model_config(), {"eval_every": 0, "log_every": 1})
    corpus = lm.prepare_corpus(config.data, work / "throughput-data", B)
    seed_everything(0)
    model = lm.LanguageModel(len(corpus.vocab), config.model)
    trainer = Trainer(model, config.train, train_step=lm.train_step, task="lm", run_dir=config.train.run_dir)
    source = InterleavedBareSteps(lm.train_batches(corpus, config), BareLoop(corpus.train, len(corpus.vocab)))
    trainer.fit(source)
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    intervals = [B * T / r["items_per_second"] for r in rows if r.get("kind") == "train"]
    pipeline = [interval - bare for interval, bare in zip(intervals, source.seconds, strict=True)][1:]
    bare = source.seconds[1:]
    return {
        "bare_chars_per_second": B * T / statistics.median(bare),
        "pipeline_chars_per_second": B * T / statistics.median(pipeline),
        "ratio": statistics.median(b / p for b, p in zip(bare, pipeline, strict=True)),
        "bare_seconds": bare,
        "pipeline_seconds": pipeline,
    }


# ---------------------------------------------------------------- 4. generation, 5. memory


def generation_speed(model: nn.Module, vocab, chars: int = 2000) -> float:
    """Characters per second generating at batch 1 (prompt of one character, temperature 0.8)."""
    generator = torch.Generator().manual_seed(0)
    ids = lm.prompt_ids(vocab, "\n")
    start = time.perf_counter()
    n = sum(1 for _ in lm.generate_ids(model, ids, chars, temperature=0.8, generator=generator))
    return n / (time.perf_counter() - start)


MEMORY_CHILD = """
import sys, json
from pathlib import Path
from rnnkit.tasks import lm
from rnnkit.train import TrainConfig
import torch
corpus, work = Path(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]))
config = lm.Config(
    data=lm.DataConfig(files=[str(corpus)], val_fraction=0.001, seq_len=128),
    model=lm.ModelConfig(hidden=128, layers=1, dropout=0.0),
    train=TrainConfig(steps=20, batch_size=64, quiet=True, eval_every=0, run_dir=str(work / "run")),
)
lm.train(config)
# VmHWM, not getrusage: ru_maxrss keeps the high-water mark of the forked parent across exec.
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mib": peak_kib / 1024}))
"""


def peak_memory(data: Path, repeat: int, work: Path) -> float:
    """Peak resident memory (MiB) of tokenizing ``repeat`` copies of the corpus and 20 steps of a
    small model on it, in a fresh process."""
    folder = work / f"memory-x{repeat}"
    folder.mkdir()
    corpus = folder / "corpus.txt"
    text = data.read_text(encoding="utf-8")
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(repeat):
            f.write(text)
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(corpus), str(folder), str(torch.get_num_threads())],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]


# ---------------------------------------------------------------- main


def rnnkit_model_config(args: argparse.Namespace) -> lm.ModelConfig:
    return lm.ModelConfig(
        cell=args.cell,
        layers=args.layers,
        hidden=args.hidden,
        embed=args.embed,
        dropout=args.dropout,
        input_dropout=args.input_dropout,
        locked=args.locked,
        weight_drop=args.weight_drop,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[15.0, 30.0], help="rnnkit run budgets")
    parser.add_argument("--reference-minutes", type=float, default=15.0, help="bare-loop reference budget")
    parser.add_argument("--throughput-steps", type=int, default=40, help="interleaved (bare, pipeline) step pairs")
    parser.add_argument("--memory-repeat", type=int, default=8, help="corpus copies for the memory check")
    parser.add_argument("--data", type=Path, default=None, help="another text file (dry runs)")
    g = parser.add_argument_group("the rnnkit recipe for the val-loss target")
    g.add_argument("--cell", default="lstm", choices=lm.CELLS)
    g.add_argument("--batch-size", type=int, default=16, help="streams per step (the reference uses 64)")
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--hidden", type=int, default=512)
    g.add_argument("--embed", type=int, default=64, help="embedding size (0: same as --hidden)")
    g.add_argument("--dropout", type=float, default=0.3)
    g.add_argument("--input-dropout", type=float, default=0.1)
    g.add_argument("--locked", action="store_true")
    g.add_argument("--weight-drop", type=float, default=0.0)
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--warmup", type=int, default=100, help="warmup steps (at most a tenth of the run)")
    g.add_argument("--evals", type=int, default=6, help="evaluations per rnnkit run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--notes", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument(
        "--recipe-only",
        type=float,
        default=None,
        metavar="SECONDS_PER_STEP",
        help="only train the rnnkit recipe, with step counts from this many seconds per step (as measured "
        "by a full run of this benchmark, or by --probe), into benchmarks/results/<--name>.json: another recipe, "
        "same budget",
    )
    parser.add_argument(
        "--probe", action="store_true", help="only print the rnnkit recipe's seconds per step (a timed probe)"
    )
    parser.add_argument("--name", type=result_name, default="lm_tinyshakespeare_recipe", help="--recipe-only's file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = args.data or data_path()
    torch.manual_seed(0)
    if args.probe:
        with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
            work = Path(tmp)
            prepare_split(data, work)
            print(f"{recipe_step_seconds(data, work, args):.3f} s per step ({recipe_of(args)})")
        return
    if args.recipe_only is not None:
        recipe_only(args, data, started)
        return
    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        work = Path(tmp)
        corpus = prepare_split(data, work)
        vocab_size = len(corpus.vocab)
        print(f"tiny shakespeare: {len(corpus.train)} train / {len(corpus.val)} val chars, vocab {vocab_size}")

        speed = measure_throughput(data, work, args.throughput_steps)
        bare_cps, pipe_cps = speed["bare_chars_per_second"], speed["pipeline_chars_per_second"]
        print(
            f"throughput: bare {bare_cps:.0f}, pipeline {pipe_cps:.0f} chars/s, ratio {speed['ratio']:.3f}", flush=True
        )

        ref_steps = max(1, int(args.reference_minutes * 60 * bare_cps / (B * T)))
        step_seconds = recipe_step_seconds(data, work, args)
        run_steps = {minutes: max(1, int(minutes * 60 / step_seconds)) for minutes in args.minutes}
        print(f"steps: reference {ref_steps}, rnnkit {run_steps} ({step_seconds:.3f} s per step)", flush=True)

        bare = BareLoop(corpus.train, vocab_size, seed=0)
        ref = bare.train_steps(ref_steps)
        ref_val = lm.evaluate_tokens(bare.model, corpus.val, corpus.val_chars, lm.EVAL_STREAMS, 2 * T)["loss"]
        print(f"reference: {ref['steps']} steps in {ref['seconds']:.0f} s, val loss {ref_val:.4f}", flush=True)

        runs = {minutes: rnnkit_run(data, work, args, minutes, steps) for minutes, steps in run_steps.items()}

        last = runs[max(runs)]
        gen_cps = generation_speed(last["model"], last["vocab"])
        sample = "".join(
            lm.generate_text(
                last["model"], last["vocab"], lm.prompt_ids(last["vocab"], "ROMEO:"), 300, temperature=0.8, seed=1
            )
        )
        memory = {repeat: peak_memory(data, repeat, work) for repeat in (1, args.memory_repeat)}
        print(f"generation {gen_cps:.0f} chars/s; peak memory {memory}", flush=True)

    metrics = {
        "train_throughput_ratio_vs_bare_loop": round(speed["ratio"], 4),
        "train_chars_per_second": round(pipe_cps),
        "generation_chars_per_second_batch1": round(gen_cps),
        "peak_rss_mib_corpus_x1": round(memory[1], 1),
        f"peak_rss_mib_corpus_x{args.memory_repeat}": round(memory[args.memory_repeat], 1),
    }
    for minutes, r in runs.items():
        metrics[f"val_loss_nats_{minutes:g}min"] = round(r["val_loss_best"], 4)
        metrics[f"val_loss_nats_{minutes:g}min_final"] = round(r["val_loss_final"], 4)
        metrics[f"train_steps_{minutes:g}min"] = r["steps"]
        metrics[f"wall_seconds_{minutes:g}min"] = round(r["wall_seconds"], 1)
    reference = {
        f"val_loss_nats_{args.reference_minutes:g}min": round(ref_val, 4),
        "train_chars_per_second": round(bare_cps),
        f"train_steps_{args.reference_minutes:g}min": ref["steps"],
        f"wall_seconds_{args.reference_minutes:g}min": round(ref["seconds"], 1),
        "train_step_seconds_interleaved": [round(x, 3) for x in speed["bare_seconds"]],
        "pipeline_step_seconds_interleaved": [round(x, 3) for x in speed["pipeline_seconds"]],
    }
    recipe = recipe_of(args)
    path = write_result(
        "lm_tinyshakespeare",
        dataset="tiny shakespeare (karpathy/char-rnn input.txt, 1,115,394 characters)",
        split="nanoGPT shakespeare_char: first 90% of characters train, last 10% validation (whole text scored)",
        metrics=metrics,
        reference=reference,
        wall_seconds=time.perf_counter() - started,
        notes=(
            f"Reference: bare PyTorch loop, torch.nn.LSTM {LAYERS}x{HIDDEN}, B={B}, T={T}, dropout {DROPOUT}, "
            f"AdamW {LR} with cosine decay over its time budget, TBPTT with carried state. Throughput: "
            f"{args.throughput_steps} pairs of steps alternating bare loop / rnnkit pipeline (Trainer.fit with "
            f"lm.train_step on memory-mapped lm.train_batches, same model, fused LSTM path; the bare step runs "
            f"inside the pipeline's batch source, and is subtracted from the pipeline's logged step interval), "
            f"first pair dropped, median of per-pair ratios. rnnkit recipe: {recipe}. Step counts: budget x "
            f"steps per second measured at the start (reference: the throughput pairs; rnnkit: a timed probe "
            f"of its network), cosine decay over them; wall_seconds are what the runs then took. Val loss = "
            f"nats per character over the whole validation text, {lm.EVAL_STREAMS} streams with carried state. "
            f"Memory: peak RSS of a fresh process "
            f"tokenizing the corpus repeated 1x / {args.memory_repeat}x and training 20 steps (hidden 128). "
            f"Sample ({max(runs):g}-min run, ROMEO:, T=0.8): {sample!r}. {args.notes}"
        ).strip(),
    )
    print(f"wrote {path}")


def recipe_only(args: argparse.Namespace, data: Path, started: float) -> None:
    """Train the rnnkit recipe alone for each budget, steps = budget / ``args.recipe_only``."""
    run_steps = {minutes: max(1, int(minutes * 60 / args.recipe_only)) for minutes in args.minutes}
    print(f"steps: {run_steps} ({args.recipe_only:.3f} s per step, given)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        work = Path(tmp)
        prepare_split(data, work)
        runs = {minutes: rnnkit_run(data, work, args, minutes, steps) for minutes, steps in run_steps.items()}
    metrics = {}
    for minutes, r in runs.items():
        metrics[f"val_loss_nats_{minutes:g}min"] = round(r["val_loss_best"], 4)
        metrics[f"val_loss_nats_{minutes:g}min_final"] = round(r["val_loss_final"], 4)
        metrics[f"train_steps_{minutes:g}min"] = r["steps"]
        metrics[f"wall_seconds_{minutes:g}min"] = round(r["wall_seconds"], 1)
    path = write_result(
        args.name,
        dataset="tiny shakespeare (karpathy/char-rnn input.txt, 1,115,394 characters)",
        split="nanoGPT shakespeare_char: first 90% of characters train, last 10% validation (whole text scored)",
        metrics=metrics,
        reference={},
        wall_seconds=time.perf_counter() - started,
        notes=(
            f"Another rnnkit recipe under the budgets of lm_tinyshakespeare.json: recipe {recipe_of(args)}; "
            f"steps = budget / {args.recipe_only} s per step (given: a quiet measurement of this network and "
            f"batch size), cosine decay over them. {args.notes}"
        ).strip(),
    )
    print(f"wrote {path}")


def recipe_of(args: argparse.Namespace) -> dict:
    """The recipe's settings, as stored with the results."""
    names = ("cell", "batch_size", "lr", "layers", "hidden", "embed", "dropout", "input_dropout", "locked")
    return {k: getattr(args, k) for k in (*names, "weight_drop", "weight_decay", "warmup")}


def recipe_step_seconds(data: Path, work: Path, args: argparse.Namespace) -> float:
    """Seconds per optimizer step of the rnnkit recipe's network and batch size (a timed probe)."""
    probe = pipeline_config(data, work, 1, rnnkit_model_config(args), {"batch_size": args.batch_size})
    probe.minutes = 100.0  # many steps, so that rounding to whole steps costs nothing
    corpus = lm.load_corpus(work / "data")
    model = lm.LanguageModel(len(corpus.vocab), rnnkit_model_config(args))
    return probe.minutes * 60 / lm.steps_for_minutes(model, corpus, probe)


def rnnkit_run(data: Path, work: Path, args: argparse.Namespace, minutes: float, steps: int) -> dict:
    """Train the rnnkit recipe for ``steps`` optimizer steps (its budget of ``minutes``)."""
    model_config = rnnkit_model_config(args)
    warmup = min(args.warmup, steps // 10)  # a short run must still reach its peak learning rate
    train = {
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "warmup": warmup,
        "eval_every": max(1, steps // args.evals),
    }
    start = time.perf_counter()
    run_dir = lm.train(pipeline_config(data, work, steps, model_config, train))
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    model, vocab = lm.load_model(run_dir, "best")
    best = min(r["val_loss"] for r in evals)
    print(f"rnnkit {minutes:g} min: {steps} steps in {wall:.0f} s, best val loss {best:.4f}", flush=True)
    return {
        "steps": steps,
        "wall_seconds": wall,
        "val_loss_final": evals[-1]["val_loss"],
        "val_loss_best": best,
        "model": model,
        "vocab": vocab,
    }


if __name__ == "__main__":
    main()
