"""Training speed and peak memory of rnnkit's cells beyond torch.nn (issue 8's figures).

All times are one training step (forward, ``out.sum()``, backward) on random tensors, the
models of one comparison interleaved round robin in one process so machine load hits all alike;
each figure is the median of ``--repeats``. Ratios use the process's CPU time by default
(``--clock cpu``: steadier than wall time when other jobs share the CPU; with ``--threads 1`` it
equals wall time on an idle machine); wall-clock medians are stored too. Ratios are what the issue
targets:

* ``layer_norm_lstm_vs_torch_lstm`` = LayerNormLSTM time / torch.nn.LSTM time (target <= 1.5);
* ``layer_norm_lstm_speedup_vs_recipe`` = recipe time / LayerNormLSTM time, the recipe being a
  Python loop of ``nn.Linear`` gates with ``nn.LayerNorm`` (target >= 2);
* ``loop_lstm_vs_torch_lstm`` = rnnkit ``LSTM(impl="loop")`` / torch.nn.LSTM (target <= 1.3);
* ``recurrent_dropout_lstm_vs_fused`` = ``LSTM(recurrent_dropout=0.25)`` / torch.nn.LSTM (target <= 1.5);
  ``zoneout_lstm_vs_torch_lstm`` = ``LSTM(zoneout=0.1)`` / torch.nn.LSTM (no target: reported);
* ``min_gru_parallel_speedup_T<T>`` = minGRU ``impl="loop"`` time / parallel-scan time (target >= 10),
  ``..._I8`` the same with 8 input features (the shared input projection nearly free, so the scan's
  own speedup), and ``min_gru_vs_torch_gru_T<T>`` = minGRU parallel / torch.nn.GRU at equal sizes;
  ``min_gru_parallel_speedup_bound_T<T>`` = loop time / the time the input projection's GEMMs
  (forward and weight gradient), which both modes do, take at the rate of a cache-sized GEMM
  (1024 rows) of that width measured in the same run (``benchmarks.floors.gemm_rate``: the faster of torch's
  threads on one product and one thread per core on its own): no parallel path can beat the loop
  by more; ``min_gru_parallel_speedup_traffic_bound_T<T>`` = loop time / (those GEMMs + the DRAM
  traffic the parallel step cannot avoid, :func:`min_gru_traffic_seconds`, at the read and write
  rates of ``benchmarks.floors.stream_rates`` measured in the same run): the bound for a step
  that does its GEMMs and its memory-bound passes one after the other (a core overlapping the two
  could in principle get between this and the GEMM-only bound);
  ``min_gru_parallel_profile_ms_T<T>_<part>``: where a parallel step's time goes (torch.profiler
  self times of the ``forward`` and ``backward`` C calls, GEMMs included, and ``other``);
* ``<size>_recipe_speedup_bound`` = recipe time / ``<size>_matmul_floor_seconds``, the time the
  step's matrix products take at the rate of one big GEMM measured in the same run (as
  ``gemm_rate`` measures it): no LSTM variant doing those products can beat the recipe by more;
  ``<size>_recipe_speedup_step_bound`` the same with the ``2T`` recurrent products priced at the
  rate of one step's product of ``B`` rows with ``W_hh`` packed once
  (``benchmarks.floors.step_product_rate``, ``<size>_step_product_<direction>_gflops_per_second``),
  which a recurrence cannot batch across steps: the tighter floor;
* ``<size>_loop_gru_vs_torch_gru``, ``<size>_layer_norm_gru_vs_torch_gru``,
  ``<size>_recurrent_dropout_gru_vs_torch_gru`` = rnnkit ``GRU(impl="loop")``, ``LayerNormGRU``,
  ``GRU(recurrent_dropout=0.25)`` / torch.nn.GRU at the LSTM sizes (no target: reported);
* ``peak_mb_T4096_<model>``: peak resident memory added by one training step at T = 4096,
  each model measured in a fresh subprocess (the process's peak, reset just before the step,
  minus what was resident when it began).

    python benchmarks/bench_cells.py                      # everything, writes benchmarks/results/cells.json
    python benchmarks/bench_cells.py --repeats 3 --skip-memory
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import rnnkit.nn as rnn
from benchmarks.floors import gemm_rate, step_product_rate, stream_rates
from benchmarks.results_io import result_name, write_result

SIZES = {"small": dict(B=32, T=100, I=128, H=256), "large": dict(B=64, T=256, I=256, H=512)}
MIN_GRU_SIZE = dict(B=16, I=128, H=256)
MIN_GRU_NARROW_INPUT = 8  # I for the recurrence-bound minGRU comparison (the projection GEMM nearly free)
MEMORY_SIZE = dict(B=32, T=4096, I=128, H=256)


class RecipeLayerNormLSTM(nn.Module):
    """The usual user recipe: a Python loop of ``nn.Linear`` gates with ``nn.LayerNorm``s."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, 4 * hidden_size)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size)
        self.ln_ih = nn.LayerNorm(4 * hidden_size)
        self.ln_hh = nn.LayerNorm(4 * hidden_size)
        self.ln_c = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor):
        B, T, _ = x.shape
        h = x.new_zeros(B, self.hidden_size)
        c = x.new_zeros(B, self.hidden_size)
        outputs = []
        for t in range(T):
            gates = self.ln_ih(self.ih(x[:, t])) + self.ln_hh(self.hh(h))  # (B, 4H)
            i, f, g, o = gates.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
            outputs.append(h)
        return torch.stack(outputs, 1), (h, c)


def lstm_models(I: int, H: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    reference = nn.LSTM(I, H, batch_first=True)
    loop = rnn.LSTM(I, H, impl="loop")
    loop.load_state_dict(reference.state_dict())
    return {
        "torch_lstm": reference,
        "loop_lstm": loop,
        "layer_norm_lstm": rnn.LayerNormLSTM(I, H),
        "recipe_layer_norm_lstm": RecipeLayerNormLSTM(I, H),
        "recurrent_dropout_lstm": rnn.LSTM(I, H, recurrent_dropout=0.25),
        "zoneout_lstm": rnn.LSTM(I, H, zoneout=0.1),
    }


def gru_family_models(I: int, H: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    reference = nn.GRU(I, H, batch_first=True)
    loop = rnn.GRU(I, H, impl="loop")
    loop.load_state_dict(reference.state_dict())
    return {
        "torch_gru": reference,
        "loop_gru": loop,
        "layer_norm_gru": rnn.LayerNormGRU(I, H),
        "recurrent_dropout_gru": rnn.GRU(I, H, recurrent_dropout=0.25),
    }


def min_gru_models(I: int, H: int, with_torch: bool = True) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    parallel = rnn.MinGRU(I, H)
    sequential = rnn.MinGRU(I, H, impl="loop")
    sequential.load_state_dict(parallel.state_dict())
    models = {"min_gru_parallel": parallel, "min_gru_loop": sequential}
    return {**models, "torch_gru": nn.GRU(I, H, batch_first=True)} if with_torch else models


def lstm_matmul_floor_seconds(B: int, T: int, I: int, H: int, repeats: int) -> tuple[float, float]:
    """``(seconds, GFLOP/s)``: the matrix products of one LSTM training step (``x`` without grad:
    input projection and its weight gradient, ``T`` recurrent products forward and backward and the
    recurrent weight gradient, ``2 B T 4H (2I + 3H)`` flops in all) at the rate of one big GEMM of
    the same size measured now — a floor under any LSTM variant's step, so ``recipe time / floor``
    bounds any variant's speedup over the recipe."""
    rate = gemm_rate(B * T, H, 4 * H, repeats)
    return 2 * B * T * 4 * H * (2 * I + 3 * H) / rate, rate / 1e9


def lstm_step_floor_seconds(B: int, T: int, I: int, H: int, big_rate: float, repeats: int) -> tuple[float, dict]:
    """The same products with the ``2T`` recurrent ones (``h W_hh^T`` forward, ``dgates W_hh``
    backward) priced at the rate of one step's product of ``B`` rows (:func:`step_product_rate`:
    the recurrence forbids batching them across steps), the rest (input projection, both weight
    gradients) at ``big_rate``: a tighter floor. Returns seconds and the two step rates (GFLOP/s)."""
    forward = step_product_rate(B, H, 4 * H, transposed=True, repeats=repeats)
    backward = step_product_rate(B, 4 * H, H, transposed=False, repeats=repeats)
    recurrent = 2 * B * T * H * 4 * H
    batched = 2 * B * T * 4 * H * (2 * I + H)
    seconds = recurrent / forward + recurrent / backward + batched / big_rate
    return seconds, {"forward": forward / 1e9, "backward": backward / 1e9}


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    out, _ = model(x)
    out.sum().backward()
    model.zero_grad(set_to_none=True)


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
WALL: dict[str, float] = {}  # wall-clock medians of the last comparisons, stored as context


def median_times(models: dict[str, nn.Module], x: torch.Tensor, repeats: int, clock: str) -> dict[str, float]:
    """Median seconds of one training step per model, interleaved round robin after a warm-up."""
    for model in models.values():
        train_step(model, x)
    times: dict[str, list[float]] = {name: [] for name in models}
    walls: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start, wall_start = CLOCKS[clock](), time.perf_counter()
            train_step(model, x)
            times[name].append(CLOCKS[clock]() - start)
            walls[name].append(time.perf_counter() - wall_start)
    WALL.update({name: statistics.median(ws) for name, ws in walls.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_lstms(size_name: str, repeats: int, clock: str) -> tuple[dict, dict]:
    s = SIZES[size_name]
    x = torch.randn(s["B"], s["T"], s["I"])
    t = median_times(lstm_models(s["I"], s["H"]), x, repeats, clock)
    ref = t["torch_lstm"]
    metrics = {
        f"{size_name}_layer_norm_lstm_vs_torch_lstm": t["layer_norm_lstm"] / ref,
        f"{size_name}_layer_norm_lstm_speedup_vs_recipe": t["recipe_layer_norm_lstm"] / t["layer_norm_lstm"],
        f"{size_name}_recipe_vs_torch_lstm": t["recipe_layer_norm_lstm"] / ref,
        f"{size_name}_loop_lstm_vs_torch_lstm": t["loop_lstm"] / ref,
        f"{size_name}_recurrent_dropout_lstm_vs_fused": t["recurrent_dropout_lstm"] / ref,
        f"{size_name}_zoneout_lstm_vs_torch_lstm": t["zoneout_lstm"] / ref,
    }
    floor, gflops = lstm_matmul_floor_seconds(s["B"], s["T"], s["I"], s["H"], repeats)
    metrics[f"{size_name}_matmul_floor_seconds"] = floor
    metrics[f"{size_name}_matmul_gflops_per_second"] = gflops
    metrics[f"{size_name}_recipe_speedup_bound"] = t["recipe_layer_norm_lstm"] / floor
    step_floor, step_rates = lstm_step_floor_seconds(s["B"], s["T"], s["I"], s["H"], gflops * 1e9, repeats)
    metrics[f"{size_name}_step_products_floor_seconds"] = step_floor
    for direction, rate in step_rates.items():
        metrics[f"{size_name}_step_product_{direction}_gflops_per_second"] = rate
    metrics[f"{size_name}_recipe_speedup_step_bound"] = t["recipe_layer_norm_lstm"] / step_floor
    metrics.update({f"{size_name}_{name}_train_{clock}_seconds": v for name, v in t.items() if name != "torch_lstm"})
    metrics.update({f"{size_name}_{name}_train_wall_seconds": WALL[name] for name in t if name != "torch_lstm"})
    reference = {f"{size_name}_torch_lstm_train_{clock}_seconds": ref}
    return metrics, {**reference, f"{size_name}_torch_lstm_train_wall_seconds": WALL["torch_lstm"]}


def bench_grus(size_name: str, repeats: int, clock: str) -> dict:
    s = SIZES[size_name]
    x = torch.randn(s["B"], s["T"], s["I"])
    t = median_times(gru_family_models(s["I"], s["H"]), x, repeats, clock)
    metrics = {f"{size_name}_{name}_vs_torch_gru": t[name] / t["torch_gru"] for name in t if name != "torch_gru"}
    metrics.update({f"{size_name}_{name}_train_{clock}_seconds": v for name, v in t.items()})
    return metrics


FLOOR_ROWS = 1024  # rows of the GEMM whose rate prices the minGRU projection: cache-sized, the fastest


def projection_floor_seconds(B: int, T: int, I: int, H: int, rate: float) -> float:
    """Seconds of a minGRU layer's input projection and its weight gradient (``x`` without grad:
    ``4 B T I 2H`` flops) at ``rate`` flop/s: work its parallel and loop modes share."""
    return 4 * B * T * I * 2 * H / rate


STREAM_BYTES = 256 << 20  # a buffer far larger than the caches, for the DRAM rates


def min_gru_traffic_seconds(B: int, T: int, I: int, H: int, rate: float, read: float, write: float) -> float:
    """Seconds of the DRAM traffic a minGRU parallel training step (``x`` without grad, loss
    ``out.sum()``) cannot avoid, at ``read`` / ``write`` bytes/s: ``x`` read twice (projection,
    weight gradient), the output ``h`` written once and read twice (the loss; ``h_{t-1}`` in the
    backward pass), and the ``2H`` per step the backward pass needs from the projections — kept
    (written, then read) or projected again, whichever is cheaper (that GEMM at ``rate``)."""
    floats = 4  # bytes
    reads = (2 * B * T * I + 2 * B * T * H) * floats / read
    writes = B * T * H * floats / write
    gates = min(B * T * 2 * H * floats * (1 / read + 1 / write), 2 * B * T * I * 2 * H / rate)
    return reads + writes + gates


PROFILED_OPS = {  # torch.profiler row -> what it is in a minGRU parallel training step
    "MinSequence": "forward",  # the forward C call: input projection (sgemm_), gates and recurrence
    "MinSequenceBackward": "backward",  # the backward C call: gates' grads, dW (sgemm_), db
}


def profile_min_gru(model: nn.Module, x: torch.Tensor, steps: int = 3) -> dict[str, float]:
    """Milliseconds per training step of the minGRU parallel path's parts (:data:`PROFILED_OPS`,
    self time under torch.profiler, which adds a little), and ``other``: the rest of the step."""
    from torch.profiler import profile

    train_step(model, x)
    with profile() as prof:
        for _ in range(steps):
            train_step(model, x)
    rows = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
    parts = {name: rows.get(op, 0.0) for op, name in PROFILED_OPS.items()}
    parts["other"] = sum(rows.values()) - sum(parts.values())
    return parts


def bench_min_gru(T: int, repeats: int, clock: str) -> tuple[dict, dict]:
    s = MIN_GRU_SIZE
    x = torch.randn(s["B"], T, s["I"])
    t = median_times(min_gru_models(s["I"], s["H"]), x, repeats, clock)
    rate = gemm_rate(FLOOR_ROWS, s["I"], 2 * s["H"], repeats)
    read, write = stream_rates(STREAM_BYTES, repeats)
    traffic_floor = projection_floor_seconds(T=T, rate=rate, **s) + min_gru_traffic_seconds(
        T=T, rate=rate, read=read, write=write, **s
    )
    metrics = {
        f"min_gru_parallel_speedup_T{T}": t["min_gru_loop"] / t["min_gru_parallel"],
        f"min_gru_parallel_speedup_bound_T{T}": t["min_gru_loop"] / projection_floor_seconds(T=T, rate=rate, **s),
        f"min_gru_projection_gflops_per_second_T{T}": rate / 1e9,
        f"min_gru_parallel_speedup_traffic_bound_T{T}": t["min_gru_loop"] / traffic_floor,
        f"min_gru_traffic_floor_ms_T{T}": 1e3 * traffic_floor,
        f"dram_read_gb_per_second_T{T}": read / 1e9,
        f"dram_write_gb_per_second_T{T}": write / 1e9,
        f"min_gru_vs_torch_gru_T{T}": t["min_gru_parallel"] / t["torch_gru"],
        f"min_gru_parallel_train_{clock}_seconds_T{T}": t["min_gru_parallel"],
        f"min_gru_loop_train_{clock}_seconds_T{T}": t["min_gru_loop"],
        f"min_gru_parallel_train_wall_seconds_T{T}": WALL["min_gru_parallel"],
    }
    parallel = min_gru_models(s["I"], s["H"], with_torch=False)["min_gru_parallel"]
    for part, ms in profile_min_gru(parallel, x).items():
        metrics[f"min_gru_parallel_profile_ms_T{T}_{part}"] = ms
    # The same with I = 8: the input projection (identical in both modes) costs almost nothing,
    # so this ratio is the parallel scan's own speedup over the step loop.
    x_narrow = torch.randn(s["B"], T, MIN_GRU_NARROW_INPUT)
    narrow = median_times(min_gru_models(MIN_GRU_NARROW_INPUT, s["H"], with_torch=False), x_narrow, repeats, clock)
    metrics[f"min_gru_parallel_speedup_T{T}_I{MIN_GRU_NARROW_INPUT}"] = (
        narrow["min_gru_loop"] / narrow["min_gru_parallel"]
    )
    narrow_rate = gemm_rate(FLOOR_ROWS, MIN_GRU_NARROW_INPUT, 2 * s["H"], repeats)
    narrow_floor = projection_floor_seconds(s["B"], T, MIN_GRU_NARROW_INPUT, s["H"], narrow_rate)
    metrics[f"min_gru_parallel_speedup_bound_T{T}_I{MIN_GRU_NARROW_INPUT}"] = narrow["min_gru_loop"] / narrow_floor
    return metrics, {f"torch_gru_train_{clock}_seconds_T{T}": t["torch_gru"]}


MEMORY_MODELS = (
    "torch_lstm", "loop_lstm", "layer_norm_lstm", "recipe_layer_norm_lstm", "recurrent_dropout_lstm",
    "min_gru_parallel", "min_gru_loop", "torch_gru", "loop_gru", "layer_norm_gru",
)  # fmt: skip


def _status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``: resident now, ``VmHWM``: its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_memory_child(name: str) -> None:
    """(In a subprocess.) Print the peak RSS, in MB, that one training step of ``name`` adds.

    On Linux the process's peak is reset just before the step (``/proc/self/clear_refs``), so the
    figure is the step's own peak over what was resident when it began; elsewhere it is the rise
    of ``ru_maxrss``, which misses a step that stays below an earlier peak."""
    s = MEMORY_SIZE
    models = {**lstm_models(s["I"], s["H"]), **min_gru_models(s["I"], s["H"]), **gru_family_models(s["I"], s["H"])}
    model = models[name]
    train_step(model, torch.randn(2, 8, s["I"]))  # load kernels and allocator pools on a tiny input
    x = torch.randn(s["B"], s["T"], s["I"])
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set size
        before, read_peak = _status_kb("VmRSS"), lambda: _status_kb("VmHWM")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        read_peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    start = time.perf_counter()
    train_step(model, x)
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_mb": (read_peak() - before) / 1024, "seconds": seconds}))


def bench_memory(threads: int) -> dict:
    root = Path(__file__).resolve().parents[1]
    metrics = {}
    for name in MEMORY_MODELS:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_cells", "--memory-child", name, "--threads", str(threads)],
            capture_output=True, text=True, check=True, cwd=root,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        metrics[f"peak_mb_T4096_{name}"] = result["peak_mb"]
        metrics[f"train_seconds_T4096_{name}"] = result["seconds"]
        print(name, result, flush=True)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--min-gru-T", nargs="+", type=int, default=[1024, 4096])
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="what the ratios are computed from")
    parser.add_argument("--skip-memory", action="store_true", help="skip the T=4096 peak-memory subprocesses")
    parser.add_argument("--notes", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument("--name", type=result_name, default="cells", help="file: benchmarks/results/<name>.json")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        peak_memory_child(args.memory_child)
        return
    start = time.perf_counter()
    metrics, reference = {}, {}
    for size_name in args.sizes:
        m, r = bench_lstms(size_name, args.repeats, args.clock)
        print(size_name, {k: round(v, 3) for k, v in m.items()}, flush=True)
        metrics.update(m)
        reference.update(r)
        m = bench_grus(size_name, args.repeats, args.clock)
        print(size_name, {k: round(v, 3) for k, v in m.items()}, flush=True)
        metrics.update(m)
    for T in args.min_gru_T:
        m, r = bench_min_gru(T, args.repeats, args.clock)
        print(f"minGRU T={T}", {k: round(v, 3) for k, v in m.items()}, flush=True)
        metrics.update(m)
        reference.update(r)
    if not args.skip_memory:
        metrics.update(bench_memory(torch.get_num_threads()))
    path = write_result(
        args.name,
        dataset="random normal tensors",
        split="n/a",
        metrics={k: round(v, 4) for k, v in metrics.items()},
        reference={k: round(v, 5) for k, v in reference.items()},
        wall_seconds=time.perf_counter() - start,
        notes=f"LSTM sizes {SIZES}; minGRU size {MIN_GRU_SIZE}; memory size {MEMORY_SIZE}; one training step = "
        f"forward + out.sum().backward(); medians of {args.repeats} interleaved runs; ratios from {args.clock} "
        f"time; torch threads {torch.get_num_threads()}. "
        f"{args.notes}".strip(),
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
