"""rnnkit.nn vs torch.nn: forward and forward+backward time of RNN, LSTM and GRU.

For each kind and size, times ``torch.nn`` and rnnkit with ``impl="fused"``, ``impl="loop"`` and
``impl="auto"`` on the same random input, interleaving them (round robin) so that load on the
machine hits all alike, and reports the median time and the speed ratio ``t_torch / t_rnnkit``
(1.0 = as fast as torch.nn; the target for ``fused`` is >= 0.95). Four modes: ``forward`` (no
autograd), ``train`` (forward + backward of ``out.sum()``), and both again with ``lengths``
(``forward_lengths``, ``train_lengths``: lengths drawn uniformly from ``T/4..T``, seeded; torch.nn
gets the same batch through ``pack_padded_sequence`` / ``pad_packed_sequence``, which is what
rnnkit's fused path runs too). ``auto`` is what a user gets by default: which path it takes is
:meth:`rnnkit.nn.layers.RecurrentLayer.written_here_faster`.

    python -m benchmarks.bench_nn                   # both sizes, writes benchmarks/results/nn.json
    python -m benchmarks.bench_nn --sizes small --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit.nn as rnn
from benchmarks.results_io import result_name, write_result

SIZES = {"small": dict(B=32, T=100, I=128, H=256), "large": dict(B=64, T=256, I=256, H=512)}
KINDS = {"rnn": (rnn.RNN, torch.nn.RNN), "lstm": (rnn.LSTM, torch.nn.LSTM), "gru": (rnn.GRU, torch.nn.GRU)}
IMPLS = ("fused", "loop", "auto")
MODES = {  # name -> (backward, with lengths)
    "forward": (False, False),
    "train": (True, False),
    "forward_lengths": (False, True),
    "train_lengths": (True, True),
}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def torch_run(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """torch.nn's output ``(B, T, H)`` for batch-first ``x``, packed when ``lengths`` is given."""
    if lengths is None:
        return layer(x)[0]
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(layer(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def make_runner(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None, backward: bool):
    def forward() -> torch.Tensor:
        if isinstance(layer, rnn.RecurrentLayer):
            return layer(x, lengths=lengths)[0]
        return torch_run(layer, x, lengths)

    def run():
        if backward:
            forward().sum().backward()
        else:
            with torch.no_grad():
                forward()

    return run


def bench_one(kind: str, size: dict, repeats: int, modes: list[str]) -> dict[str, float]:
    ours_cls, torch_cls = KINDS[kind]
    torch.manual_seed(0)
    reference = torch_cls(size["I"], size["H"], batch_first=True)
    layers = {"torch": reference}
    for impl in IMPLS:
        layers[impl] = ours_cls(size["I"], size["H"], impl=impl)
        layers[impl].load_state_dict(reference.state_dict())
    x = torch.randn(size["B"], size["T"], size["I"])
    lengths = torch.randint(size["T"] // 4, size["T"] + 1, (size["B"],), generator=torch.Generator().manual_seed(0))
    result = {}
    for mode in modes:
        backward, with_lengths = MODES[mode]
        runners = {
            name: make_runner(layer, x.requires_grad_(backward), lengths if with_lengths else None, backward)
            for name, layer in layers.items()
        }
        for run in runners.values():  # warm-up
            run()
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(repeats):
            for name, run in runners.items():
                times[name].append(timed(run))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        for impl in IMPLS:
            result[f"{mode}_speed_ratio_{impl}"] = round(med["torch"] / med[impl], 3)
            result[f"{mode}_seconds_{impl}"] = round(med[impl], 5)
        result[f"{mode}_seconds_torch"] = round(med["torch"], 5)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement (median)")
    parser.add_argument("--notes", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument("--name", type=result_name, default="nn", help="file: benchmarks/results/<name>.json")
    args = parser.parse_args()
    start = time.perf_counter()
    metrics, reference = {}, {}
    for size_name in args.sizes:
        size = SIZES[size_name]
        for kind in args.kinds:
            r = bench_one(kind, size, args.repeats, args.modes)
            label = f"{kind}_{size_name}"
            print(label, r, flush=True)
            for key, value in r.items():
                (reference if key.endswith("_torch") else metrics)[f"{label}_{key}"] = value
    sizes = {k: SIZES[k] for k in args.sizes}
    path = write_result(
        args.name,
        dataset="random normal tensors",
        split="n/a",
        metrics=metrics,
        reference=reference,
        wall_seconds=time.perf_counter() - start,
        notes=f"sizes {sizes}; speed ratio = torch.nn time / rnnkit time (median of {args.repeats}, "
        f"interleaved); 'train' = forward + backward of out.sum(); '_lengths': lengths uniform in T/4..T, torch.nn "
        f"packed. {args.notes}".strip(),
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
