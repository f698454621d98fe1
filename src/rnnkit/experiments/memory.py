"""`rnnkit experiment memory`: long-term dependencies — which cells remember, and for how long.

Two tasks at growing sequence lengths, each model trained with the same fixed budget (at most
``steps`` steps of ``batch_size`` fresh sequences) per run; a run stops early once it meets the
success criterion on a validation set checked every ``check_every`` steps, and the steps it took
are reported beside its test figure:

* the adding problem (:func:`rnnkit.experiments.tasks.adding_batch`): solved when the test MSE is
  under 0.01; answering 1 always scores 0.167;
* copy memory (:func:`rnnkit.experiments.tasks.copy_batch`): accuracy on the recalled symbols;
  a model without memory scores ``1 / num_symbols``.

Models: every recurrent layer of :mod:`rnnkit.nn` (tanh RNN, LSTM, GRU, and the cells beyond
torch's where they exist: layer-norm LSTM, IndRNN, minGRU, …), one layer of ``hidden_size`` units
each. The runs are independent: ``workers`` processes (one torch thread each) share them out.
``run(MemoryConfig())`` writes the run folder; ``MemoryConfig.quick()`` runs in seconds.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import ConfigError
from rnnkit.experiments import report
from rnnkit.experiments.common import BUILDERS, SequenceModel, check_seed, count_parameters, train_steps
from rnnkit.experiments.tasks import ADDING_BASELINE_MSE, adding_batch, copy_batch
from rnnkit.io import pyplot

ADDING_SOLVED_MSE = 0.01
TASKS = ("adding", "copy")
_PREFERRED = ("rnn", "lstm", "gru", "layernorm_lstm", "indrnn", "mingru")


def default_models() -> tuple[str, ...]:
    """tanh RNN, LSTM, GRU, and the layer-norm LSTM, IndRNN and minGRU where ``rnnkit.nn`` has them."""
    return tuple(kind for kind in _PREFERRED if kind in BUILDERS)


@dataclass
class MemoryConfig:
    """Settings of the long-term-dependency experiment (defaults: ≤ 10 minutes on 2 CPU cores)."""

    lengths: tuple[int, ...] = (50, 100, 200)  # adding: T; copy: the delay between reading and recall
    models: tuple[str, ...] = default_models()
    tasks: tuple[str, ...] = TASKS
    hidden_size: int = 64
    batch_size: int = 64
    steps: int = 1500  # training budget per (task, model, length): at most this many Adam steps
    check_every: int = 100  # stop a run once solved on the validation set, checked this often (0: never)
    lr: float = 1e-2
    clip: float = 1.0
    num_symbols: int = 8  # copy: symbols to remember
    num_recall: int = 5  # copy: how many of them
    test_size: int = 500
    seed: int = 0
    workers: int = min(2, os.cpu_count() or 1)  # processes running the (task, model, length) runs
    out: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(BUILDERS))
        if unknown:
            raise ConfigError(f"models: unknown {unknown}; expected some of {sorted(BUILDERS)}")
        if set(self.tasks) - set(TASKS) or not self.tasks:
            raise ConfigError(f"tasks: expected some of {list(TASKS)}, got {list(self.tasks)}")
        if not self.lengths or min(self.lengths) < 2:
            raise ConfigError(f"lengths: expected lengths >= 2, got {list(self.lengths)}")
        if min(self.steps, self.hidden_size, self.batch_size, self.test_size, self.workers) < 1:
            raise ConfigError("steps, hidden_size, batch_size, test_size and workers must be positive")
        check_seed(self.seed)
        if self.check_every < 0:
            raise ConfigError(f"check_every: expected an integer >= 0, got {self.check_every}")
        if min(self.num_symbols, self.num_recall) < 1:
            raise ConfigError(
                f"num_symbols and num_recall: expected integers >= 1, got {self.num_symbols} and {self.num_recall}"
            )
        if not (self.lr > 0 and self.clip > 0):
            raise ConfigError(f"lr and clip: expected numbers > 0, got {self.lr} and {self.clip}")

    @classmethod
    def quick(cls, **overrides) -> MemoryConfig:
        """A preset that runs in seconds: short lengths, RNN and LSTM, a few dozen steps."""
        values = {
            "lengths": (10, 20),
            "models": ("rnn", "lstm"),
            "hidden_size": 16,
            "steps": 30,
            "check_every": 10,
            "test_size": 200,
            "workers": 1,
        }
        return cls(**(values | overrides))


# ----------------------------------------------------------------------------- one run
def make_model(task: str, kind: str, config: MemoryConfig) -> SequenceModel:
    """The model for ``task``: 2 real inputs -> 1 output (adding), or symbol ids -> symbol logits (copy)."""
    if task == "adding":
        return SequenceModel(kind, 2, config.hidden_size, 1)
    return SequenceModel(kind, config.num_symbols + 2, config.hidden_size, config.num_symbols + 1, vocab=True)


def adding_loss(model: SequenceModel, x: Tensor, y: Tensor) -> Tensor:
    """MSE of the prediction at the last step. ``x: (B, T, 2)``, ``y: (B,)``."""
    return F.mse_loss(model(x).squeeze(-1), y)


def copy_loss(model: SequenceModel, x: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy at every step (blanks included, as Arjovsky et al.). ``x, y: (B, T)``."""
    logits = model(x, every_step=True)  # (B, T, S + 1)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


@torch.no_grad()
def evaluate(task: str, model: SequenceModel, length: int, config: MemoryConfig, gen: torch.Generator) -> float:
    """Adding: test MSE. Copy: accuracy on the ``num_recall`` recalled symbols."""
    model.eval()
    if task == "adding":
        x, y = adding_batch(config.test_size, length, gen)
        return float(adding_loss(model, x, y))
    x, y = copy_batch(config.test_size, length, gen, config.num_symbols, config.num_recall)
    recalled = model(x, every_step=True)[:, -config.num_recall :].argmax(-1)  # (B, K)
    return float((recalled == y[:, -config.num_recall :]).float().mean())


def train_and_test(task: str, kind: str, length: int, config: MemoryConfig) -> dict[str, float]:
    """Train one model on one task at one length with the fixed budget; its test figure and timing."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = make_model(task, kind, config)

    def batch_loss() -> Tensor:
        if task == "adding":
            x, y = adding_batch(config.batch_size, length, gen)
            return adding_loss(model, x, y)
        x, y = copy_batch(config.batch_size, length, gen, config.num_symbols, config.num_recall)
        return copy_loss(model, x, y)

    def solved_on_validation(step: int) -> bool:  # the same validation sequences at every check
        if not config.check_every or step % config.check_every:
            return False
        val_gen = torch.Generator().manual_seed(config.seed + 20_000)
        return solved(task, evaluate(task, model, length, config, val_gen), config)

    start = time.monotonic()
    losses, _ = train_steps(model, batch_loss, config.steps, config.lr, config.clip, stop=solved_on_validation)
    seconds = time.monotonic() - start
    test_gen = torch.Generator().manual_seed(config.seed + 10_000)
    score = evaluate(task, model, length, config, test_gen)
    return {
        "test": score,
        "steps": len(losses),
        "train_seconds": seconds,
        "parameters": count_parameters(model),
        "losses": losses,
    }


def _run_one(job: tuple[str, str, int, MemoryConfig]) -> dict[str, float]:
    """One run in a worker process: one torch thread, so that the workers share the cores."""
    torch.set_num_threads(1)
    return train_and_test(*job)


# ----------------------------------------------------------------------------- the experiment
def solved(task: str, score: float, config: MemoryConfig) -> bool:
    """Adding: test MSE < 0.01. Copy: at least 99% of the recalled symbols right."""
    return score < ADDING_SOLVED_MSE if task == "adding" else score >= 0.99


def run(config: MemoryConfig, command: str | None = None) -> dict[str, object]:
    """Every (task, model, length); writes the run folder and returns the results (also ``results.json``)."""
    out = report.run_dir(config.out, "memory")  # a bad --out fails before any training
    start = time.monotonic()
    jobs = [(task, kind, n, config) for task in config.tasks for kind in config.models for n in config.lengths]
    if config.workers == 1:
        done = [train_and_test(*job) for job in jobs]
    else:  # longest sequences first, so that no worker is left with a long run at the end
        order = sorted(range(len(jobs)), key=lambda k: -jobs[k][2])
        with ProcessPoolExecutor(config.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            by_job = dict(zip(order, pool.map(_run_one, [jobs[k] for k in order]), strict=True))
        done = [by_job[k] for k in range(len(jobs))]
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for (task, kind, n, _), result in zip(jobs, done, strict=True):
        results.setdefault(task, {}).setdefault(kind, {})[str(n)] = result
    plot_results(results, config, out / "plots" / "memory_by_length.png")
    plot_training(results, config, out / "plots" / "training_loss.png")
    seconds = time.monotonic() - start
    summary = {
        task: {kind: {n: r["test"] for n, r in by_length.items()} for kind, by_length in by_kind.items()}
        for task, by_kind in results.items()
    }
    saved = {"test": summary, "wall_seconds": seconds, "runs": results}
    report.write_json(out / "config.json", report.config_dict(config))
    report.write_json(out / "results.json", saved)
    command = command or report.command_line()
    report.write_text(out / "report.md", render_report(config, results, command, seconds))
    report.write_benchmark(
        out / "benchmark.json",
        name=report.benchmark_name("memory"),
        dataset="adding problem and copy memory (synthetic, generated from the seed)",
        split=f"{config.test_size} fresh test sequences per run",
        command=command,
        seconds=seconds,
        metrics={
            report.metric_name(task, "mse" if task == "adding" else "accuracy", kind, n): score
            for task, by_kind in summary.items()
            for kind, by_length in by_kind.items()
            for n, score in by_length.items()
        },
        reference={"adding_mse_answer_one": ADDING_BASELINE_MSE, "copy_accuracy_no_memory": 1 / config.num_symbols},
        notes=(
            f"budget per run: at most {config.steps} steps of {config.batch_size} sequences, stopped early once "
            f"solved on a validation set (checked every {config.check_every} steps); {config.workers} worker "
            "process(es), one torch thread each"
        ),
    )
    return {"test": summary, "wall_seconds": seconds, "run_dir": str(out)}


# ----------------------------------------------------------------------------- plots and report
def plot_results(results: dict, config: MemoryConfig, path: Path) -> None:
    """One panel per task: the test figure against the length, one line per model, with the baselines."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (task, by_kind) in zip(axes[0], results.items(), strict=True):
        for kind, by_length in by_kind.items():
            ax.plot(config.lengths, [by_length[str(n)]["test"] for n in config.lengths], marker="o", label=kind)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(config.lengths, [str(n) for n in config.lengths])
        ax.grid(True, which="both", alpha=0.3)
        if task == "adding":
            ax.set_yscale("log")
            ax.axhline(ADDING_BASELINE_MSE, color="gray", ls="--", lw=1, label="answer 1 (0.167)")
            ax.axhline(ADDING_SOLVED_MSE, color="green", ls=":", lw=1, label="solved (0.01)")
            ax.set_title("adding problem")
            ax.set_ylabel("test MSE")
            ax.set_xlabel("sequence length T")
        else:
            ax.axhline(1 / config.num_symbols, color="gray", ls="--", lw=1, label="no memory")
            ax.set_ylim(0, 1.02)
            ax.set_title(f"copy memory ({config.num_recall} of {config.num_symbols} symbols)")
            ax.set_ylabel("accuracy on recalled symbols")
            ax.set_xlabel("delay")
        ax.legend(fontsize=8)
    report.save_figure(fig, path)


def plot_training(results: dict, config: MemoryConfig, path: Path) -> None:
    """Training loss per step at the longest length, one panel per task."""
    longest = str(max(config.lengths))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.5), squeeze=False)
    for ax, (task, by_kind) in zip(axes[0], results.items(), strict=True):
        for kind, by_length in by_kind.items():
            ax.plot(by_length[longest]["losses"], lw=1, label=kind)
        ax.set_yscale("log")
        ax.set_title(f"{task}, length {longest}: training loss")
        ax.set_xlabel("step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    report.save_figure(fig, path)


def render_report(config: MemoryConfig, results: dict, command: str, seconds: float) -> str:
    """``report.md``: one table per task (models × lengths), the budget, the plots."""
    sections = []
    for task, by_kind in results.items():
        rows = []
        for kind, by_length in by_kind.items():
            cells = [
                f"{r['test']:.3g}"
                + (" ✓" if solved(task, r["test"], config) else "")
                + (f" ({r['steps']} steps)" if r["steps"] < config.steps else "")
                for r in (by_length[str(n)] for n in config.lengths)
            ]
            params = next(iter(by_length.values()))["parameters"]
            rows.append([kind, params, *cells])
        lengths = [f"{'T' if task == 'adding' else 'delay'}={n}" for n in config.lengths]
        table = report.markdown_table(["model", "parameters", *lengths], rows)
        if task == "adding":
            what = "Test MSE (✓: under 0.01, solved; answering 1 always scores 0.167)."
        else:
            what = (
                f"Accuracy on the {config.num_recall} recalled symbols (✓: at least 0.99; without memory "
                f"{1 / config.num_symbols:.3g}). Sequence length = delay + {2 * config.num_recall}."
            )
        sections.append(f"## {'Adding problem' if task == 'adding' else 'Copy memory'}\n\n{what}\n\n{table}\n")
    budget = (
        f"Budget per run: at most {config.steps} Adam steps (lr {config.lr:g}, gradient norm clipped at "
        f"{config.clip:g}) of {config.batch_size} fresh sequences, i.e. {config.steps * config.batch_size} "
        f"training sequences; one layer of {config.hidden_size} units; tested on {config.test_size} new "
        "sequences. "
        + (
            f"Every {config.check_every} steps the run is checked on {config.test_size} validation sequences "
            'and stops once it meets the criterion there; "(N steps)" marks a run that stopped early. '
            if config.check_every
            else ""
        )
        + "The LSTM's forget-gate bias starts at 1."
    )
    threads = f"{config.workers} worker processes of 1 torch thread each" if config.workers > 1 else None
    title = "Long-term dependencies: adding problem and copy memory"
    return (
        report.report_header(title, command, seconds, config, threads=threads)
        + f"\n{budget}\n\n"
        + "\n".join(sections)
        + "\n![test figure by length](plots/memory_by_length.png)\n\n![training loss](plots/training_loss.png)\n"
    )
