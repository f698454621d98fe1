"""`rnnkit experiment rnn-vs-ann`: why a recurrent network for sequences, against a feed-forward one.

(a) Variable lengths. Counting (:func:`rnnkit.experiments.tasks.majority_batch`: more ones than
    zeros?) trained on lengths up to ``train_max_length`` and tested on longer ones. The MLP reads
    a fixed window of ``train_max_length`` steps: a longer sequence does not fit its input
    (calling it raises), so the best it can do is read the first window; the RNN reads any length.
    With ``../shared/data/pendigits`` present, the same on real pen trajectories: each digit's 8 pen
    positions resampled to 8–16 points for training and up to 64 for testing.
(b) Order. Does symbol A come before B (:func:`rnnkit.experiments.tasks.order_batch`)? Both answers
    hold the same bag of items, so an MLP on the bag (counts per symbol) stays at chance while the
    RNN reads the order.
(c) Shared weights. Parameters of the window MLP against the RNN as the sequence grows.

``run(RnnVsAnnConfig())`` writes the run folder; ``RnnVsAnnConfig.quick()`` runs in seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import ConfigError, DataError
from rnnkit.experiments import report
from rnnkit.experiments.common import BUILDERS, SequenceModel, check_seed, count_parameters, train_steps
from rnnkit.experiments.tasks import majority_batch, odd_lengths, order_batch
from rnnkit.io import pyplot


def default_pendigits_path() -> Path:
    """``$RNNKIT_DATA/pendigits/pendigits.tra``, else ``../shared/data`` beside the checkout."""
    root = os.environ.get("RNNKIT_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[3] / "../shared/data"
    return (base / "pendigits" / "pendigits.tra").resolve()


@dataclass
class RnnVsAnnConfig:
    """Settings of the RNN-vs-feed-forward experiment (defaults: ≤ 10 minutes on 2 CPU cores)."""

    rnn: str = "lstm"
    hidden_size: int = 32
    train_min_length: int = 5  # counting: odd lengths from here ...
    train_max_length: int = 21  # ... to here; also the MLP's window
    test_lengths: tuple[int, ...] = (21, 41, 81, 161, 321)
    order_length: int = 10
    steps: int = 1500  # per model and task
    batch_size: int = 64
    lr: float = 1e-2
    test_size: int = 1000
    param_lengths: tuple[int, ...] = (10, 100, 1000, 10000)
    pendigits: str = ""  # path of pendigits.tra; "" = ../shared/data (or $RNNKIT_DATA); "none" = skip
    pen_train_points: tuple[int, ...] = (8, 16)  # resampled points per digit in training: from, to
    pen_test_points: tuple[int, ...] = (8, 16, 32, 64)
    seed: int = 0
    out: str | None = None

    def __post_init__(self) -> None:
        if self.rnn not in BUILDERS:
            raise ConfigError(f"rnn: expected one of {sorted(BUILDERS)}, got {self.rnn!r}")
        if self.train_min_length % 2 == 0 or self.train_max_length % 2 == 0:
            raise ConfigError("train_min_length and train_max_length: expected odd numbers (a tie has no majority)")
        if any(n % 2 == 0 for n in self.test_lengths):
            raise ConfigError(f"test_lengths: expected odd numbers, got {list(self.test_lengths)}")
        if self.train_min_length > self.train_max_length:
            raise ConfigError("train_min_length must not exceed train_max_length")
        if len(self.pen_train_points) != 2 or self.pen_train_points[0] > self.pen_train_points[1]:
            raise ConfigError(f"pen_train_points: expected FROM TO, got {list(self.pen_train_points)}")
        check_seed(self.seed)
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Every size, length and count positive, ``order_length >= 2``, ``lr > 0``; a named pendigits file exists."""
        positive = ("hidden_size", "train_min_length", "steps", "batch_size", "test_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        for name in ("test_lengths", "param_lengths", "pen_train_points", "pen_test_points"):
            values = getattr(self, name)
            if not values or min(values) < 1:
                raise ConfigError(f"{name}: expected integers >= 1, got {list(values)}")
        if self.order_length < 2:
            raise ConfigError(f"order_length: expected an integer >= 2 (A and B), got {self.order_length}")
        if not self.lr > 0:
            raise ConfigError(f"lr: expected a number > 0, got {self.lr}")
        if self.pendigits not in ("", "none") and not Path(self.pendigits).is_file():
            raise ConfigError(f"pendigits: no file at {self.pendigits}; expected pendigits.tra, or none to skip")

    @classmethod
    def quick(cls, **overrides) -> RnnVsAnnConfig:
        """A preset that runs in seconds."""
        values = {"test_lengths": (21, 81), "steps": 150, "test_size": 300, "pen_test_points": (16, 32)}
        return cls(**(values | overrides))


class WindowMLP(nn.Module):
    """A feed-forward network on a fixed window: ``x: (B, W, F)`` flattened -> ``(B, O)``.

    ``W`` is fixed at construction; a sequence of another length does not fit its input layer.
    """

    def __init__(self, window: int, features: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.window = window
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(window * features, hidden_size), nn.ReLU(), nn.Linear(hidden_size, output_size)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, O)


class BagMLP(nn.Module):
    """A feed-forward network on the bag of inputs: ids ``(B, T)`` -> counts per symbol -> ``(B, O)``."""

    def __init__(self, num_symbols: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.num_symbols = num_symbols
        self.net = nn.Sequential(nn.Linear(num_symbols, hidden_size), nn.ReLU(), nn.Linear(hidden_size, output_size))

    def forward(self, ids: Tensor) -> Tensor:
        counts = F.one_hot(ids, self.num_symbols).float().sum(dim=1)  # (B, S)
        return self.net(counts)


def fit_window(x: Tensor, window: int) -> Tensor:
    """Pad ``x: (B, T, F)`` with zeros, or cut it, to exactly ``window`` steps: what the MLP can read."""
    if x.shape[1] >= window:
        return x[:, :window]
    return F.pad(x, (0, 0, 0, window - x.shape[1]))


def accuracy(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean())


def does_not_fit(model: WindowMLP, x: Tensor) -> str:
    """Call the MLP on a sequence of another length; the error it raises (``""`` if none)."""
    try:
        model(x)
    except RuntimeError as e:
        return str(e).splitlines()[0]
    return ""


# ----------------------------------------------------------------------------- (a) variable lengths
def counting_part(config: RnnVsAnnConfig) -> dict[str, object]:
    """Train the RNN and the window MLP on counting; accuracy at every test length."""
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    W = config.train_max_length
    rnn = SequenceModel(config.rnn, 1, config.hidden_size, 2)
    mlp = WindowMLP(W, 1, config.hidden_size, 2)

    def batch() -> tuple[Tensor, Tensor]:
        n = int(odd_lengths(1, config.train_min_length, W, gen))  # one length per batch: no padding needed
        return majority_batch(config.batch_size, torch.full((config.batch_size,), n), gen)

    def rnn_loss() -> Tensor:
        x, y = batch()
        return F.cross_entropy(rnn(x), y)

    def mlp_loss() -> Tensor:
        x, y = batch()
        return F.cross_entropy(mlp(fit_window(x, W)), y)

    rnn_losses, _ = train_steps(rnn, rnn_loss, config.steps, config.lr)
    mlp_losses, _ = train_steps(mlp, mlp_loss, config.steps, config.lr)
    rnn.eval()
    mlp.eval()
    by_length: dict[str, dict[str, object]] = {}
    test_gen = torch.Generator().manual_seed(config.seed + 10_000)
    with torch.no_grad():
        for n in config.test_lengths:
            x, y = majority_batch(config.test_size, torch.full((config.test_size,), n), test_gen)
            by_length[str(n)] = {
                "rnn": accuracy(rnn(x), y),
                "mlp": accuracy(mlp(fit_window(x, W)), y),
                "mlp_full_input_error": does_not_fit(mlp, x) if n != W else "",
            }
    return {"by_length": by_length, "rnn_losses": rnn_losses, "mlp_losses": mlp_losses}


# ----------------------------------------------------------------------------- (a) pendigits
def load_pendigits(path: Path) -> tuple[Tensor, Tensor]:
    """UCI pendigits: ``(N, 8, 2)`` pen positions scaled to [0, 1] and ``(N,)`` digit labels.

    Each line holds 16 integers 0..100 (x1, y1, …, x8, y8) and a 10-character one-hot class.
    Raises :class:`DataError` naming the line of anything else.
    """
    points, labels = [], []
    with open(path, encoding="ascii", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            fields = line.strip().split(",")
            if fields == [""]:
                continue
            if len(fields) != 17:
                raise DataError(f"expected 17 comma-separated fields, found {len(fields)}", path=path, line=number)
            try:
                values = [int(v) for v in fields[:16]]
            except ValueError:
                raise DataError(f"expected 16 integers, found {fields[:16]}", path=path, line=number) from None
            onehot = fields[16]
            if len(onehot) != 10 or set(onehot) - {"0", "1"} or onehot.count("1") != 1:
                raise DataError(f"expected a one-hot class of 10 digits, found {onehot!r}", path=path, line=number)
            points.append(values)
            labels.append(onehot.index("1"))
    if not points:
        raise DataError("expected at least one digit, found none", path=path)
    xy = torch.tensor(points, dtype=torch.float32).view(-1, 8, 2) / 100.0  # (N, 8, 2)
    return xy, torch.tensor(labels)


def resample(xy: Tensor, points: int) -> Tensor:
    """Resample trajectories ``(N, P, 2)`` to ``(N, points, 2)`` by linear interpolation along the pen path index."""
    P = xy.shape[1]
    position = torch.linspace(0, P - 1, points)  # (points,) fractional source indices
    left = position.floor().long().clamp(max=P - 2)  # (points,)
    frac = (position - left).view(1, -1, 1)  # (1, points, 1)
    return xy[:, left] * (1 - frac) + xy[:, left + 1] * frac  # (N, points, 2)


def pendigits_part(config: RnnVsAnnConfig, path: Path) -> dict[str, object]:
    """RNN vs window MLP on digits resampled to 8–16 points (training) and more (test)."""
    xy, labels = load_pendigits(path)
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(labels), generator=gen)
    cut = int(0.8 * len(labels))
    train_idx, test_idx = order[:cut], order[cut:]
    low, high = config.pen_train_points
    train_sets = {n: resample(xy[train_idx], n) for n in range(low, high + 1)}  # points -> (N, n, 2)
    torch.manual_seed(config.seed)
    rnn = SequenceModel(config.rnn, 2, 2 * config.hidden_size, 10)
    mlp = WindowMLP(high, 2, 2 * config.hidden_size, 10)

    def batch() -> tuple[Tensor, Tensor, Tensor]:
        n = int(torch.randint(low, high + 1, (1,), generator=gen))
        rows = torch.randint(0, cut, (config.batch_size,), generator=gen)
        return train_sets[n][rows], labels[train_idx][rows], torch.full((config.batch_size,), n)

    def rnn_loss() -> Tensor:
        x, y, _ = batch()
        return F.cross_entropy(rnn(x), y)

    def mlp_loss() -> Tensor:
        x, y, _ = batch()
        return F.cross_entropy(mlp(fit_window(x, high)), y)

    train_steps(rnn, rnn_loss, config.steps, config.lr)
    train_steps(mlp, mlp_loss, config.steps, config.lr)
    rnn.eval()
    mlp.eval()
    by_points: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for n in config.pen_test_points:
            x, y = resample(xy[test_idx], n), labels[test_idx]
            by_points[str(n)] = {"rnn": accuracy(rnn(x), y), "mlp": accuracy(mlp(fit_window(x, high)), y)}
    return {"path": str(path), "train_digits": cut, "test_digits": len(test_idx), "by_points": by_points}


def pendigits_or_skipped(config: RnnVsAnnConfig) -> dict[str, object]:
    """:func:`pendigits_part` on the configured file, or why it was skipped (``--pendigits none``, no file)."""
    if config.pendigits == "none":
        return {"skipped": "--pendigits none"}
    path = Path(config.pendigits or default_pendigits_path())
    if not path.is_file():
        return {"skipped": f"no pendigits file at {path}"}
    return pendigits_part(config, path)


# ----------------------------------------------------------------------------- (b) order
def order_part(config: RnnVsAnnConfig) -> dict[str, float]:
    """The RNN and the bag-of-inputs MLP on "does A come before B"; test accuracy of each."""
    gen = torch.Generator().manual_seed(config.seed + 1)
    torch.manual_seed(config.seed + 1)
    num_symbols = 6
    rnn = SequenceModel(config.rnn, num_symbols + 1, config.hidden_size, 2, vocab=True)
    bag = BagMLP(num_symbols + 1, config.hidden_size, 2)

    def loss_of(model: nn.Module):
        def batch_loss() -> Tensor:
            x, y = order_batch(config.batch_size, config.order_length, gen, num_symbols)
            return F.cross_entropy(model(x), y)

        return batch_loss

    train_steps(rnn, loss_of(rnn), config.steps, config.lr)
    train_steps(bag, loss_of(bag), config.steps, config.lr)
    rnn.eval()
    bag.eval()
    x, y = order_batch(config.test_size, config.order_length, torch.Generator().manual_seed(config.seed + 10_001))
    with torch.no_grad():
        return {"rnn": accuracy(rnn(x), y), "bag_mlp": accuracy(bag(x), y)}


# ----------------------------------------------------------------------------- (c) parameters
def parameter_part(config: RnnVsAnnConfig, features: int = 1) -> dict[str, dict[str, int]]:
    """Parameters of the window MLP (window = each length) and of the RNN, with the same hidden size."""
    rnn = count_parameters(SequenceModel(config.rnn, features, config.hidden_size, 2))
    return {
        str(n): {"mlp": count_parameters(WindowMLP(n, features, config.hidden_size, 2)), "rnn": rnn}
        for n in config.param_lengths
    }


# ----------------------------------------------------------------------------- the experiment
def run(config: RnnVsAnnConfig, command: str | None = None) -> dict[str, object]:
    """All three parts (and pendigits when its file is there); writes the run folder, returns the results."""
    out = report.run_dir(config.out, "rnn-vs-ann")  # a bad --out fails before any training
    start = time.monotonic()
    pendigits = pendigits_or_skipped(config)  # first: a malformed file fails before minutes of training
    results: dict[str, object] = {"counting": counting_part(config), "pendigits": pendigits}
    results["order"] = order_part(config)
    results["parameters"] = parameter_part(config)
    plot_lengths(results, config, out / "plots" / "length_generalization.png")
    plot_parameters(results["parameters"], out / "plots" / "parameters.png")
    seconds = time.monotonic() - start
    results["wall_seconds"] = seconds
    report.write_json(out / "config.json", report.config_dict(config))
    report.write_json(out / "results.json", results)
    command = command or report.command_line()
    report.write_text(out / "report.md", render_report(config, results, command, seconds))
    write_benchmark(out / "benchmark.json", results, config, command, seconds)
    results["run_dir"] = str(out)
    return results


def write_benchmark(path: Path, results: dict, config: RnnVsAnnConfig, command: str, seconds: float) -> None:
    """The figures in the ``benchmarks/results`` schema: the RNN's as metrics, the MLPs' as reference."""
    metrics: dict[str, float] = {"order_accuracy": results["order"]["rnn"]}
    reference: dict[str, float] = {"order_accuracy": results["order"]["bag_mlp"]}
    for n, r in results["counting"]["by_length"].items():
        metrics[f"counting_accuracy_length_{n}"] = r["rnn"]
        reference[f"counting_accuracy_length_{n}"] = r["mlp"]
    for n, r in results["pendigits"].get("by_points", {}).items():
        metrics[f"pendigits_accuracy_points_{n}"] = r["rnn"]
        reference[f"pendigits_accuracy_points_{n}"] = r["mlp"]
    pen = "pendigits.tra (UCI, training file, random 80/20 split)" if "by_points" in results["pendigits"] else ""
    report.write_benchmark(
        path,
        name=report.benchmark_name("rnn-vs-ann"),
        dataset="counting and order (synthetic)" + (f"; {pen}" if pen else ""),
        split=f"{config.test_size} fresh test sequences per length" + ("; 20% of pendigits.tra" if pen else ""),
        command=command,
        seconds=seconds,
        metrics=metrics,
        reference=reference,
        notes=f"metrics: RNN ({config.rnn}); reference: window MLP (counting, pendigits) and bag-of-inputs MLP (order)",
    )


def plot_lengths(results: dict, config: RnnVsAnnConfig, path: Path) -> None:
    """Test accuracy against the test length for the RNN and the MLP (counting, and pendigits if run)."""
    panels = [("counting", "by_length", "sequence length", config.train_max_length, 0.5)]
    if "by_points" in results["pendigits"]:
        panels.append(("pendigits", "by_points", "points per digit", config.pen_train_points[1], 0.1))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (part, key, xlabel, trained_up_to, chance) in zip(axes[0], panels, strict=True):
        table = results[part][key]
        xs = [int(n) for n in table]
        ax.plot(xs, [table[n]["rnn"] for n in table], marker="o", label=f"RNN ({config.rnn})")
        ax.plot(xs, [table[n]["mlp"] for n in table], marker="s", label="MLP on the first window")
        ax.axvline(trained_up_to, color="gray", ls=":", lw=1, label="longest in training")
        ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(xs, [str(n) for n in xs])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.set_title(part)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    report.save_figure(fig, path)


def plot_parameters(parameters: dict, path: Path) -> None:
    """Parameter count against the sequence length, log-log."""
    xs = [int(n) for n in parameters]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(xs, [parameters[n]["mlp"] for n in parameters], marker="s", label="MLP on the whole sequence")
    ax.loglog(xs, [parameters[n]["rnn"] for n in parameters], marker="o", label="RNN (weights shared over time)")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("parameters")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    report.save_figure(fig, path)


def render_report(config: RnnVsAnnConfig, results: dict, command: str, seconds: float) -> str:
    """``report.md``: a table per part, the plots, and the command."""
    W = config.train_max_length
    counting = results["counting"]["by_length"]
    rows = [
        [n, r["rnn"], r["mlp"], f"`{r['mlp_full_input_error']}`" if r["mlp_full_input_error"] else "fits"]
        for n, r in counting.items()
    ]
    text = report.report_header("RNN vs feed-forward network", command, seconds, config)
    text += (
        f"\n## (a) Variable lengths: counting\n\nMore ones than zeros? Trained on odd lengths "
        f"{config.train_min_length}–{W} ({config.steps} Adam steps of {config.batch_size}); tested on "
        f"{config.test_size} new sequences per length. The MLP reads a window of {W} steps; on a longer "
        "sequence it can only be given the first window (its input layer does not fit the whole: the last "
        "column shows the error calling it raises). Chance is 0.5.\n\n"
        + report.markdown_table(
            ["length", f"RNN ({config.rnn})", "MLP (first window)", "MLP on the whole sequence"], rows
        )
        + "\n"
    )
    pen = results["pendigits"]
    if "by_points" in pen:
        low, high = config.pen_train_points
        pen_rows = [[n, r["rnn"], r["mlp"]] for n, r in pen["by_points"].items()]
        text += (
            f"\n## (a) Variable lengths: pen digits\n\nUCI pendigits (`{pen['path']}`, the training file only, "
            f"split at random: {pen['train_digits']} digits to train, {pen['test_digits']} to test). Each digit's 8 "
            f"pen positions are resampled to {low}–{high} points for training and to each test size below; "
            f"the MLP reads {high} points (the first {high} of a longer trajectory). Chance is 0.1.\n\n"
            + report.markdown_table(["points", f"RNN ({config.rnn})", "MLP (first window)"], pen_rows)
            + "\n"
        )
    else:
        text += f"\n## (a) Variable lengths: pen digits\n\nNot run: {pen['skipped']}.\n"
    order = results["order"]
    text += (
        f"\n## (b) Order\n\nDoes A come before B, among {config.order_length - 2} distractors? Both answers "
        "hold the same items, so a network on the bag of inputs (counts per symbol) cannot beat chance (0.5).\n\n"
        + report.markdown_table(
            ["model", "test accuracy"],
            [[f"RNN ({config.rnn})", order["rnn"]], ["MLP on the bag of inputs", order["bag_mlp"]]],
        )
        + "\n"
    )
    params = results["parameters"]
    text += (
        f"\n## (c) Shared weights\n\nParameters with {config.hidden_size} hidden units and one input feature "
        "per step: the MLP needs a weight per input step, the RNN reuses its weights at every step.\n\n"
        + report.markdown_table(["sequence length", "MLP", "RNN"], [[n, r["mlp"], r["rnn"]] for n, r in params.items()])
        + "\n\n![accuracy by length](plots/length_generalization.png)\n\n![parameters](plots/parameters.png)\n"
    )
    return text
