"""`rnnkit experiment vanishing`: how the gradient flows back through time, and why clipping.

Part 1 measures, for a tanh RNN whose recurrent matrix has spectral radius 0.5, 1.0 and 1.5, an
LSTM and a GRU, the norm of ``∂loss/∂h_t`` (loss at the last step ``T``) for every earlier step
``t``, against the lag ``T - t``: at initialization and after training on the adding problem.
The report gives each model's decay rate: the factor by which the norm shrinks per step of lag
(a least-squares line through ``log ‖∂L/∂h_t‖``).

Part 2 trains a tanh RNN whose recurrent weights start large on a long-lag adding problem with
plain SGD, with and without clipping the gradient norm: without, the loss spikes when the
gradient explodes; with, it trains.

``run(VanishingConfig())`` does both and writes the run folder; ``VanishingConfig.quick()`` is a
seconds-long preset.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import ConfigError
from rnnkit.experiments import report
from rnnkit.experiments.common import SequenceModel, check_seed, train_steps
from rnnkit.experiments.tasks import ADDING_BASELINE_MSE, adding_batch
from rnnkit.io import pyplot
from rnnkit.nn import GRUCell, LSTMCell, RNNCell


@dataclass
class VanishingConfig:
    """Settings of the vanishing/exploding-gradient experiment (defaults: ≤ 10 minutes on 2 CPU cores)."""

    length: int = 100  # T of the measured sequences: lags 0..T-1
    hidden_size: int = 32
    radii: tuple[float, ...] = (0.5, 1.0, 1.5)  # spectral radii of the tanh RNNs' recurrent matrix
    batch_size: int = 64
    train_steps: int = 1500  # Adam steps on the adding problem (length T) before the second measurement
    lr: float = 5e-3
    clip_length: int = 100  # part 2: the adding problem's length
    clip_radius: float = 1.5  # part 2: spectral radius of the RNN's initial recurrent matrix
    clip_steps: int = 400
    clip_lr: float = 0.05  # plain SGD
    clip_max_norm: float = 1.0
    seed: int = 0
    out: str | None = None

    def __post_init__(self) -> None:
        if self.length < 2 or self.clip_length < 2:
            raise ConfigError(f"length and clip_length: expected >= 2, got {self.length} and {self.clip_length}")
        if not self.radii or min(self.radii) <= 0:
            raise ConfigError(f"radii: expected positive spectral radii, got {list(self.radii)}")
        if min(self.hidden_size, self.batch_size, self.clip_steps) < 1 or self.train_steps < 0:
            raise ConfigError("hidden_size, batch_size and clip_steps must be positive, train_steps >= 0")
        check_seed(self.seed)
        for name in ("clip_max_norm", "clip_radius", "lr", "clip_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: expected a number > 0, got {getattr(self, name)}")

    @classmethod
    def quick(cls, **overrides) -> VanishingConfig:
        """A preset that runs in seconds (for tests and a first look)."""
        values = {"length": 30, "hidden_size": 16, "batch_size": 32, "train_steps": 20}
        values |= {"clip_length": 30, "clip_steps": 60, "clip_radius": 2.0, "clip_lr": 0.2}
        return cls(**(values | overrides))


@dataclass
class ModelProfile:
    """One model's gradient norms by lag (index = lag) before and after training."""

    name: str
    init: list[float]
    trained: list[float]
    train_losses: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------- models
def make_model(name: str, config: VanishingConfig) -> SequenceModel:
    """``"rnn(ρ=r)"``, ``"lstm"`` or ``"gru"`` with a linear head, for the adding problem (2 inputs)."""
    if name.startswith("rnn"):
        model = SequenceModel("rnn", 2, config.hidden_size, 1)
        set_spectral_radius(model.rnn.weight_hh_l0, float(name.split("=")[1].rstrip(")")))
        return model
    return SequenceModel(name, 2, config.hidden_size, 1)


def set_spectral_radius(weight: Tensor, radius: float) -> None:
    """Make ``weight: (H, H)`` a random orthogonal matrix times ``radius``: every eigenvalue has modulus ``radius``."""
    with torch.no_grad():
        nn.init.orthogonal_(weight)
        weight.mul_(radius)


def cell_of(layer: nn.Module) -> nn.Module:
    """The step-by-step cell holding the weights of a one-layer ``rnnkit.nn`` RNN/LSTM/GRU."""
    kinds = {"RNN_TANH": RNNCell, "LSTM": LSTMCell, "GRU": GRUCell}
    cell = kinds[layer.mode](layer.input_size, layer.hidden_size)
    cell.load_state_dict({name.removesuffix("_l0"): p for name, p in layer.state_dict().items()})
    return cell


# ----------------------------------------------------------------------------- measuring
def gradient_by_lag(model: SequenceModel, x: Tensor, y: Tensor) -> list[float]:
    """Mean over the batch of ``‖∂L/∂h_t‖`` for each lag ``T - t`` (index 0 = the last step).

    The loss ``L`` is the squared error of the head's prediction at the last step. The recurrence
    is stepped by hand in float64 (so that tiny norms do not underflow), keeping every ``h_t``.

    Args:
        x: ``(B, T, 2)``; y: ``(B,)``.
    """
    cell = cell_of(model.rnn).double()
    head = nn.Linear(model.head.in_features, 1).double()
    head.load_state_dict(model.head.state_dict())
    x = x.double()
    g = cell.project(x)  # (B, T, G)
    state = cell.initial_state(x.shape[0], dtype=torch.float64)
    hs: list[Tensor] = []
    for t in range(x.shape[1]):
        h, state = cell.step(g[:, t], state)  # h: (B, H)
        h.retain_grad()
        hs.append(h)
    loss = F.mse_loss(head(hs[-1]).squeeze(-1), y.double())
    loss.backward()
    norms = [float(h.grad.norm(dim=1).mean()) for h in hs]  # index t
    return norms[::-1]  # index T - 1 - t = lag


def decay_per_step(norms: list[float]) -> float:
    """The factor by which the norm changes per step of lag: ``exp`` of the slope of ``log(norm)`` vs lag.

    Fitted by least squares over every lag with a positive norm. Below 1: the gradient vanishes
    with lag; above 1: it explodes.
    """
    points = [(lag, math.log(n)) for lag, n in enumerate(norms) if n > 0 and math.isfinite(n)]
    if len(points) < 2:
        return float("nan")
    mean_lag = sum(p[0] for p in points) / len(points)
    mean_log = sum(p[1] for p in points) / len(points)
    cov = sum((lag - mean_lag) * (v - mean_log) for lag, v in points)
    var = sum((lag - mean_lag) ** 2 for lag, _ in points)
    return math.exp(cov / var)


def profile(name: str, config: VanishingConfig, gen: torch.Generator) -> ModelProfile:
    """Measure a model's gradient by lag, train it on the adding problem, measure again."""
    model = make_model(name, config)
    probe_x, probe_y = adding_batch(config.batch_size, config.length, gen)
    init = gradient_by_lag(model, probe_x, probe_y)

    def batch_loss() -> Tensor:
        x, y = adding_batch(config.batch_size, config.length, gen)
        return F.mse_loss(model(x).squeeze(-1), y)

    losses, _ = train_steps(model, batch_loss, config.train_steps, config.lr, clip=1.0)
    trained = gradient_by_lag(model, probe_x, probe_y)
    return ModelProfile(name, init, trained, losses)


# ----------------------------------------------------------------------------- clipping
def clipping_run(config: VanishingConfig, max_norm: float | None) -> tuple[list[float], list[float]]:
    """Train a large-radius tanh RNN on the adding problem with SGD; returns (losses, gradient norms)."""
    torch.manual_seed(config.seed + 1)
    model = SequenceModel("rnn", 2, config.hidden_size, 1)
    set_spectral_radius(model.rnn.weight_hh_l0, config.clip_radius)
    gen = torch.Generator().manual_seed(config.seed + 1)  # the same batches with and without clipping

    def batch_loss() -> Tensor:
        x, y = adding_batch(config.batch_size, config.clip_length, gen)
        return F.mse_loss(model(x).squeeze(-1), y)

    return train_steps(model, batch_loss, config.clip_steps, config.clip_lr, clip=max_norm, optimizer="sgd")


def spikes(losses: list[float], window: int = 20, factor: float = 5.0) -> int:
    """Steps whose loss is non-finite or over ``factor`` × the median of the previous ``window`` steps."""
    count = 0
    for i, loss in enumerate(losses):
        before = sorted(v for v in losses[max(0, i - window) : i] if math.isfinite(v))
        if not math.isfinite(loss) or (len(before) >= 5 and loss > factor * before[len(before) // 2]):
            count += 1
    return count


def clipping_summary(losses: list[float], norms: list[float]) -> dict[str, float]:
    """Final loss (mean of the last 10% of steps), worst loss, spikes, non-finite steps, largest gradient norm."""
    tail = losses[-max(1, len(losses) // 10) :]
    finite = [v for v in losses if math.isfinite(v)]
    finite_norms = [v for v in norms if math.isfinite(v)]
    return {
        "final_loss": sum(tail) / len(tail),
        "max_loss": max(finite) if finite else float("nan"),
        "spikes": spikes(losses),
        "nonfinite_steps": sum(
            1 for v, n in zip(losses, norms, strict=True) if not (math.isfinite(v) and math.isfinite(n))
        ),
        "max_grad_norm": max(finite_norms) if finite_norms else float("nan"),
    }


# ----------------------------------------------------------------------------- the experiment
def run(config: VanishingConfig, command: str | None = None) -> dict[str, object]:
    """Run both parts and write the run folder. Returns the results (also in ``results.json``)."""
    out = report.run_dir(config.out, "vanishing")  # a bad --out fails before any training
    start = time.monotonic()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    names = [f"rnn(ρ={r:g})" for r in config.radii] + ["lstm", "gru"]
    profiles = [profile(name, config, gen) for name in names]
    unclipped = clipping_run(config, None)
    clipped = clipping_run(config, config.clip_max_norm)
    results: dict[str, object] = {
        "decay_per_step_init": {p.name: decay_per_step(p.init) for p in profiles},
        "decay_per_step_trained": {p.name: decay_per_step(p.trained) for p in profiles},
        "grad_norm_by_lag_init": {p.name: p.init for p in profiles},
        "grad_norm_by_lag_trained": {p.name: p.trained for p in profiles},
        "adding_final_loss": {p.name: _tail_mean(p.train_losses) for p in profiles},
        "clipping": {"without": clipping_summary(*unclipped), "with": clipping_summary(*clipped)},
    }
    plot_gradients(profiles, out / "plots" / "gradient_by_lag.png")
    plot_clipping(unclipped, clipped, config, out / "plots" / "clipping.png")
    seconds = time.monotonic() - start
    results["wall_seconds"] = seconds
    report.write_json(out / "config.json", report.config_dict(config))
    report.write_json(out / "results.json", results)
    command = command or report.command_line()
    report.write_text(out / "report.md", render_report(config, results, command, seconds))
    write_benchmark(out / "benchmark.json", results, command, seconds)
    results["run_dir"] = str(out)
    return results


def write_benchmark(path: Path, results: dict, command: str, seconds: float) -> None:
    """The figures in the ``benchmarks/results`` schema: decay rates per model, clipping summaries."""
    metrics: dict[str, float] = {}
    for when in ("init", "trained"):
        for name, rate in results[f"decay_per_step_{when}"].items():
            metrics[report.metric_name("decay_per_step", when, name)] = rate
    for key, label in (("with", "clipped"), ("without", "unclipped")):
        for stat, value in results["clipping"][key].items():
            metrics[report.metric_name(label, stat)] = value
    report.write_benchmark(
        path,
        name=report.benchmark_name("vanishing"),
        dataset="adding problem (synthetic, generated from the seed)",
        split="fresh batches; gradients measured on one held batch",
        command=command,
        seconds=seconds,
        metrics=metrics,
        reference={"adding_answer_one_mse": ADDING_BASELINE_MSE},
        notes="decay_per_step: factor by which ||dL/dh_t|| changes per step of lag (below 1: vanishing)",
    )


def _tail_mean(values: list[float]) -> float:
    tail = values[-max(1, len(values) // 10) :]
    return sum(tail) / len(tail) if tail else float("nan")


# ----------------------------------------------------------------------------- plots and report
def plot_gradients(profiles: list[ModelProfile], path: Path) -> None:
    """Two panels (at initialization, after training): ``‖∂L/∂h_t‖ / ‖∂L/∂h_T‖`` against the lag, log scale."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, when in zip(axes, ("init", "trained"), strict=True):
        for p in profiles:
            norms = getattr(p, when)
            ax.semilogy(range(len(norms)), [n / norms[0] if norms[0] > 0 else n for n in norms], label=p.name)
        ax.set_title("at initialization" if when == "init" else "after training on the adding problem")
        ax.set_xlabel("lag T − t (steps)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("‖∂L/∂h_t‖ relative to lag 0")
    axes[1].legend()
    report.save_figure(fig, path)


def plot_clipping(unclipped, clipped, config: VanishingConfig, path: Path) -> None:
    """Loss and gradient norm per step of the large-radius RNN, with and without clipping."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for (losses, norms), label in ((unclipped, "no clipping"), (clipped, f"clip at {config.clip_max_norm:g}")):
        top.semilogy([v if math.isfinite(v) else float("nan") for v in losses], label=label, lw=1)
        bottom.semilogy([v if math.isfinite(v) else float("nan") for v in norms], label=label, lw=1)
    top.axhline(1 / 6, color="gray", ls="--", lw=1, label="answer 1 always (MSE 0.167)")
    top.set_ylabel("training MSE")
    top.legend()
    bottom.set_ylabel("gradient norm (before clipping)")
    bottom.set_xlabel("SGD step")
    for ax in (top, bottom):
        ax.grid(True, which="both", alpha=0.3)
    top.set_title(f"tanh RNN, initial spectral radius {config.clip_radius:g}, adding problem T={config.clip_length}")
    report.save_figure(fig, path)


def render_report(config: VanishingConfig, results: dict, command: str, seconds: float) -> str:
    """``report.md``: the two tables and the plots, with the command that produced them."""
    init, trained = results["decay_per_step_init"], results["decay_per_step_trained"]
    norms_init, norms_trained = results["grad_norm_by_lag_init"], results["grad_norm_by_lag_trained"]
    rows = [
        [
            name,
            init[name],
            _ratio(norms_init[name]),
            trained[name],
            _ratio(norms_trained[name]),
            results["adding_final_loss"][name],
        ]
        for name in init
    ]
    T = config.length
    table = report.markdown_table(
        [
            "model",
            "decay/step, init",
            f"‖g_lag{T - 1}‖/‖g_0‖, init",
            "decay/step, trained",
            f"‖g_lag{T - 1}‖/‖g_0‖, trained",
            "adding training MSE, last 10% of steps",
        ],
        rows,
    )
    clip = results["clipping"]
    clip_rows = [[label, *clip[key].values()] for key, label in (("without", "no clipping"), ("with", "clipped"))]
    clip_table = report.markdown_table(
        ["run", "final MSE (last 10% of steps)", "worst MSE", "spikes", "non-finite steps", "largest gradient norm"],
        clip_rows,
    )
    return (
        report.report_header("Vanishing and exploding gradients", command, seconds, config)
        + f"\n## Gradient norm by lag\n\nThe loss is the squared error at step T={T} of the adding problem; "
        "`decay/step` is the factor by which ‖∂L/∂h_t‖ changes per step of lag (exp of the slope of a "
        "least-squares line through its logarithm; below 1 it vanishes, above 1 it explodes). Tanh RNNs "
        "start from a random orthogonal recurrent matrix scaled to the spectral radius ρ; the LSTM's "
        "forget-gate bias starts at 1. Training: "
        f"{config.train_steps} Adam steps (lr {config.lr:g}, batch {config.batch_size}, clip 1) on the "
        f"adding problem of length {T} (answering 1 always scores MSE 0.167).\n\n"
        f"{table}\n\n![gradient norm by lag](plots/gradient_by_lag.png)\n\n"
        f"## Clipping\n\nA tanh RNN with initial spectral radius {config.clip_radius:g} trained with plain SGD "
        f"(lr {config.clip_lr:g}, {config.clip_steps} steps) on the adding problem of length {config.clip_length}, "
        f"on the same batches, without and with clipping the gradient norm to {config.clip_max_norm:g}. "
        "A spike is a step whose loss is non-finite or over 5× the median of the 20 steps before it.\n\n"
        f"{clip_table}\n\n![clipping](plots/clipping.png)\n"
    )


def _ratio(norms: list[float]) -> float:
    return norms[-1] / norms[0] if norms[0] > 0 else float("nan")
