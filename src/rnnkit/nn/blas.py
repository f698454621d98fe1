"""Which BLAS ``sgemm_`` rnnkit's C kernels call: torch's own (MKL on x86 builds) or OpenBLAS.

The whole-sequence kernels (:mod:`rnnkit.nn.native`) do their matrix products through a Fortran
``sgemm_`` they are handed as a function pointer, one call per thread on its own block. Official
x86 builds of torch link MKL and export its ``sgemm_``; on Intel CPUs it is the fastest there is
(and its ``sgemm_pack`` API packs ``W_hh`` once per sequence). On AMD CPUs MKL runs its AVX2
kernels even where the CPU has AVX-512 — on a 2-vCPU AMD EPYC (Zen 5) one thread's big product ran
at 86-94 GFLOP/s through MKL against 196 through OpenBLAS's AVX-512 (SkylakeX) kernels, and a step
product of 64 rows with ``W_hh`` (H = 512) at 89 against 155 — while torch's own fused LSTM there
runs on oneDNN's AVX-512 kernels. So on AMD CPUs the kernels call OpenBLAS, from the
``scipy-openblas32`` wheel (the build SciPy ships; a dependency on Linux x86-64), single-threaded
per call: the kernels share out the work to their own threads.

``RNNKIT_BLAS`` chooses: ``auto`` (the default: OpenBLAS on AMD CPUs where the wheel is installed,
torch's elsewhere), ``torch`` or ``openblas``; ``RNNKIT_OPENBLAS_CORETYPE`` OpenBLAS's kernel
family (:func:`openblas_core`); both read once, when the kernels first run.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
from pathlib import Path

import torch

from rnnkit.errors import ConfigError

CHOICES = ("auto", "torch", "openblas")
_AVX512 = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")  # what OpenBLAS's SkylakeX kernels use


def cpu_info() -> tuple[str, set[str]]:
    """``(vendor_id, flags)`` of the first CPU in ``/proc/cpuinfo``; ``("", set())`` where there
    is no such file (not Linux)."""
    vendor, flags = "", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "vendor_id" and not vendor:
                vendor = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    return vendor, flags


def choice() -> str:
    """``RNNKIT_BLAS`` (default ``auto``), checked: a :class:`ConfigError` names what it accepts."""
    value = os.environ.get("RNNKIT_BLAS", "auto").strip().lower()
    if value not in CHOICES:
        raise ConfigError(f"RNNKIT_BLAS={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def prefers_openblas(vendor: str) -> bool:
    """``auto``'s rule: OpenBLAS on AMD CPUs (where MKL keeps to its AVX2 kernels), torch's MKL
    elsewhere."""
    return vendor == "AuthenticAMD"


def openblas_sgemm() -> int | None:
    """The address of OpenBLAS's ``sgemm_`` (32-bit integers) from the ``scipy-openblas32`` wheel,
    loaded single-threaded, or ``None`` where the wheel is not installed.

    This copy of OpenBLAS is rnnkit's own (numpy and SciPy load theirs), and its kernel family is
    :func:`openblas_core`'s: OpenBLAS reads it from ``OPENBLAS_CORETYPE`` when it loads, so that
    variable is set to it for the load and restored after. Where the library is loaded already
    (``import scipy_openblas32`` loads it), it keeps the kernels it loaded with."""
    spec = importlib.util.find_spec("scipy_openblas32")  # not imported: its import loads the library
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "lib" / "libscipy_openblas.so"
    core, before = openblas_core(), os.environ.get("OPENBLAS_CORETYPE")
    try:
        if core:
            os.environ["OPENBLAS_CORETYPE"] = core
        lib = ctypes.CDLL(str(path))
        lib.scipy_openblas_set_num_threads(1)  # the kernels run one call per thread
        lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
        _core[:] = [lib.scipy_openblas_get_corename().decode()]
    except OSError:
        return None
    finally:
        if core and before is None:
            del os.environ["OPENBLAS_CORETYPE"]
        elif core:
            os.environ["OPENBLAS_CORETYPE"] = before
    return ctypes.cast(lib.scipy_sgemm_, ctypes.c_void_p).value


def openblas_core() -> str | None:
    """The kernel family rnnkit's OpenBLAS loads with: ``RNNKIT_OPENBLAS_CORETYPE`` where set, else
    ``SkylakeX`` where the CPU has the AVX-512 subsets those kernels use (OpenBLAS 0.3.34 takes a
    Zen 5 for a Haswell, and some machines set ``OPENBLAS_CORETYPE=Haswell`` for numpy's copy),
    else ``None``: OpenBLAS's own choice, which reads ``OPENBLAS_CORETYPE``."""
    if os.environ.get("RNNKIT_OPENBLAS_CORETYPE"):
        return os.environ["RNNKIT_OPENBLAS_CORETYPE"]
    return "SkylakeX" if all(flag in cpu_info()[1] for flag in _AVX512) else None


_core: list[str] = []  # [OpenBLAS's kernel family, e.g. "SkylakeX"] once loaded


def describe(name: str) -> str:
    """``name`` as :func:`find_sgemm` returned it, with OpenBLAS's kernel family where it loaded
    (``"openblas (SkylakeX)"``): what benchmarks store beside their figures."""
    return f"{name} ({_core[0]})" if name == "openblas" and _core else name


def torch_cpu() -> ctypes.CDLL | None:
    """torch's CPU library (``libtorch_cpu``), whose exports include MKL's BLAS on x86 builds."""
    try:
        return ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    except OSError:
        return None


def torch_sgemm(library: ctypes.CDLL | None) -> int | None:
    """The address of the ``sgemm_`` torch's library exports (MKL's on x86 builds), or ``None``."""
    try:
        return ctypes.cast(library.sgemm_, ctypes.c_void_p).value if library is not None else None
    except AttributeError:
        return None


def find_sgemm() -> tuple[str, int | None]:
    """``(name, address)`` of the ``sgemm_`` to use as :func:`choice` says: ``("openblas", …)`` or
    ``("torch", …)``; ``("torch", None)`` where neither is found. ``RNNKIT_BLAS=openblas`` without the
    wheel is a :class:`ConfigError`."""
    wanted = choice()
    if wanted == "openblas" or (wanted == "auto" and prefers_openblas(cpu_info()[0])):
        address = openblas_sgemm()
        if address is not None:
            return "openblas", address
        if wanted == "openblas":
            raise ConfigError(
                "RNNKIT_BLAS=openblas: the scipy-openblas32 wheel is not installed "
                "(pip install scipy-openblas32), or its library did not load"
            )
    return "torch", torch_sgemm(torch_cpu())
