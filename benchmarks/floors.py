"""What this machine's hardware allows, measured now: the floors under bench_cells' speedups.

* :func:`gemm_rate`: flop/s of one big product (no recurrence: all steps' rows at once);
* :func:`step_product_rate`: flop/s of one step's recurrent product of a thread's batch rows with
  the weight packed once (MKL ``sgemm_pack`` / ``sgemm_compute``, exported by torch's own CPU
  library), or through OpenBLAS's plain ``sgemm_`` where the kernels call it (:mod:`rnnkit.nn.blas`),
  as the whole-sequence C kernels of :mod:`rnnkit.nn.native` run theirs — a recurrence
  cannot batch these across steps, so this is their rate in any implementation built on that BLAS;
* :func:`stream_rates`: bytes/s that one pass reading, and one pass writing, a buffer far larger
  than the caches moves at torch's thread count (DRAM bandwidth).

Each flop rate is the faster of torch's threads on one job and one thread per core on its own job
(``threads x`` the one-thread rate, how the C kernels share out batch rows).
"""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rnnkit.nn import native


def _median_seconds(job: Callable[[], object], repeats: int) -> float:
    job()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _best_rate(work: float, job: Callable[[], object], repeats: int) -> float:
    """``work`` per second of ``job`` at torch's threads, or ``threads x`` the one-thread rate if faster."""
    threads = torch.get_num_threads()
    shared = _median_seconds(job, repeats)
    torch.set_num_threads(1)
    try:
        alone = _median_seconds(job, repeats)
    finally:
        torch.set_num_threads(threads)
    return max(work / shared, threads * work / alone)


def gemm_rate(rows: int, k: int, n: int, repeats: int) -> float:
    """flop/s of a GEMM ``(rows, k) @ (k, n)`` into a preallocated output (median of ``repeats``):
    through torch's ``mm``, or the BLAS rnnkit's kernels call (``native.mm``: OpenBLAS on AMD CPUs)
    if that is faster."""
    a, b, out = torch.randn(rows, k), torch.randn(k, n), torch.empty(rows, n)
    rate = _best_rate(2 * rows * k * n, lambda: torch.mm(a, b, out=out), repeats)
    if native.uses_openblas():
        with torch.no_grad():
            rate = max(rate, _best_rate(2 * rows * k * n, lambda: native.mm(a, b, out=out), repeats))
    return rate


class _PackedProduct:
    """``c (rows, m) = b (rows, k) @ op(w)`` through MKL's packed GEMM, ``w`` packed once: the
    column-major call ``c^T (m, rows) = op(w^T) (m, k) @ b^T (k, rows)`` of ``weight_gemm_run``."""

    def __init__(self, rows: int, k: int, m: int, transposed: bool) -> None:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        self.compute = lib.sgemm_compute_
        lib.sgemm_pack_get_size_.restype = ctypes.c_size_t
        # transposed: w is (m, k) row-major (W_hh in a forward step); else (k, m) (W_hh backward)
        self.w = torch.randn(m, k) if transposed else torch.randn(k, m)
        self.b, self.c = torch.randn(rows, k), torch.empty(rows, m)
        self.m, self.rows, self.k = (ctypes.c_int(v) for v in (m, rows, k))
        self.lda = ctypes.c_int(k if transposed else m)
        shape = (ctypes.byref(self.m), ctypes.byref(self.rows), ctypes.byref(self.k))
        self.packed = torch.empty(lib.sgemm_pack_get_size_(b"A", *shape) // 4 + 1)
        trans, one = b"T" if transposed else b"N", ctypes.c_float(1.0)
        lib.sgemm_pack_(b"A", trans, *shape, ctypes.byref(one), _address(self.w), ctypes.byref(self.lda),
                        _address(self.packed))  # fmt: skip

    def __call__(self) -> None:
        zero = ctypes.c_float(0.0)
        shape = (ctypes.byref(self.m), ctypes.byref(self.rows), ctypes.byref(self.k))
        self.compute(b"P", b"N", *shape, _address(self.packed), ctypes.byref(self.lda), _address(self.b),
                     ctypes.byref(self.k), ctypes.byref(zero), _address(self.c), ctypes.byref(self.m))  # fmt: skip


def _address(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def step_product_rate(batch: int, k: int, m: int, transposed: bool, repeats: int, steps: int = 64) -> float:
    """flop/s of a recurrence's per-step products ``(rows, k) @ op(W) -> (rows, m)``: one thread's
    ``rows = batch / threads`` rows with ``W`` packed once, ``steps`` products per timing, times the
    thread count — or torch's ``mm`` on all ``batch`` rows, if faster. ``transposed``: ``W`` is
    ``(m, k)`` (a forward step's ``h W_hh^T``), else ``(k, m)`` (a backward step's ``dgates W_hh``)."""
    threads = torch.get_num_threads()
    rows = -(-batch // threads)
    per_step = 2 * rows * k * m
    try:
        product = _PackedProduct(rows, k, m, transposed)
    except (OSError, AttributeError):  # no MKL in torch's library: torch's own product only
        product = None
    w = torch.randn(m, k) if transposed else torch.randn(k, m)
    a, out = torch.randn(batch, k), torch.empty(batch, m)
    weight = w.t() if transposed else w
    rate = _best_rate(2 * batch * k * m * steps, lambda: [torch.mm(a, weight, out=out) for _ in range(steps)], repeats)
    jobs = [] if product is None else [lambda: [product() for _ in range(steps)]]
    if native.uses_openblas():  # the kernels' plain sgemm_ on a thread's rows
        a_rows, out_rows = a[:rows], out[:rows]
        jobs.append(lambda: [native.mm(a_rows, weight, out=out_rows) for _ in range(steps)])
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for job in jobs:
                rate = max(rate, threads * per_step * steps / _median_seconds(job, repeats))
    finally:
        torch.set_num_threads(threads)
    return rate


def stream_rates(nbytes: int, repeats: int) -> tuple[float, float]:
    """``(read, write)`` bytes/s of one pass over a float32 buffer of ``nbytes`` (a sum; a fill) at
    torch's threads: the cores share the memory bus, so no one-thread figure is scaled up here."""
    buffer = torch.ones(nbytes // 4)
    read = nbytes / _median_seconds(lambda: buffer.sum(), repeats)
    write = nbytes / _median_seconds(lambda: buffer.fill_(1.0), repeats)
    return read, write
