"""Which sgemm_ the C kernels call (rnnkit.nn.blas), and that each one gives the torch code's numbers."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rnnkit.errors import ConfigError
from rnnkit.nn import blas, native

HAS_OPENBLAS = blas.openblas_sgemm() is not None


def test_choice_is_checked(monkeypatch):
    for value in ("auto", "torch", "openblas", " OpenBLAS "):
        monkeypatch.setenv("RNNKIT_BLAS", value)
        assert blas.choice() == value.strip().lower()
    monkeypatch.setenv("RNNKIT_BLAS", "mkl")
    with pytest.raises(ConfigError, match=r"RNNKIT_BLAS='mkl': expected one of auto, torch, openblas"):
        blas.choice()
    monkeypatch.delenv("RNNKIT_BLAS")
    assert blas.choice() == "auto"


def test_auto_takes_openblas_on_amd_only():
    assert blas.prefers_openblas("AuthenticAMD")
    assert not blas.prefers_openblas("GenuineIntel")
    assert not blas.prefers_openblas("")


def test_openblas_kernels_follow_the_cpu_unless_told(monkeypatch):
    monkeypatch.delenv("RNNKIT_OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(blas, "cpu_info", lambda: ("AuthenticAMD", {"avx2", "fma"}))
    assert blas.openblas_core() is None  # OpenBLAS's own detection
    avx512 = {"avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
    monkeypatch.setattr(blas, "cpu_info", lambda: ("AuthenticAMD", avx512))
    assert blas.openblas_core() == "SkylakeX"
    monkeypatch.setenv("RNNKIT_OPENBLAS_CORETYPE", "Zen")
    assert blas.openblas_core() == "Zen"


def test_openblas_asked_for_but_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RNNKIT_BLAS", "openblas")
    monkeypatch.setattr(blas.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="RNNKIT_BLAS=openblas: the scipy-openblas32 wheel is not installed"):
        blas.find_sgemm()
    monkeypatch.setenv("RNNKIT_BLAS", "auto")
    monkeypatch.setattr(blas, "cpu_info", lambda: ("AuthenticAMD", set()))
    assert blas.find_sgemm()[0] == "torch"  # auto falls back to torch's sgemm_


def test_cpu_info_reads_this_machine():
    vendor, flags = blas.cpu_info()
    if not os.path.exists("/proc/cpuinfo"):
        assert (vendor, flags) == ("", set())
    else:
        assert isinstance(vendor, str) and isinstance(flags, set)


# Run in a fresh process, because the choice is made once per process: a training step of each
# whole-sequence kernel through the chosen sgemm_, against the torch code (no C library) of the
# same process. Prints the largest error relative to each tensor's scale and what was loaded.
CHILD = textwrap.dedent(
    """
    import json, os, torch
    import rnnkit.nn as rnn
    from rnnkit.nn import native
    torch.manual_seed(0)
    torch.set_num_threads(2)
    models = {
        "lstm": rnn.LSTM(5, 40, impl="loop"),
        "layer_norm_lstm": rnn.LayerNormLSTM(5, 40),
        "gru": rnn.GRU(5, 40, impl="loop"),
        "min_gru": rnn.MinGRU(5, 40),
    }
    x = torch.randn(3, 37, 5)
    lengths = torch.tensor([37, 20, 9])
    errors = {}
    for name, model in models.items():
        results = []
        for lib in ([native.library()], [None]):
            saved = native._loaded[:]
            native._loaded[:] = lib
            try:
                xg = x.clone().requires_grad_(True)
                out, _ = model(xg, lengths=lengths)
                grads = torch.autograd.grad(out.square().sum(), [xg, *model.parameters()])
            finally:
                native._loaded[:] = saved
            results.append([out.detach(), *grads])
        errors[name] = max(
            float((a - b).abs().max()) / max(1.0, float(b.abs().max())) for a, b in zip(*results)
        )
    print(json.dumps({"sgemm": native.sgemm_name(), "packed": native.packed_gemm(), "errors": errors,
                      "coretype": os.environ.get("OPENBLAS_CORETYPE")}))
    """
)


@pytest.mark.parametrize("which", ["torch", "openblas"])
def test_each_blas_gives_the_torch_codes_numbers(which):
    """LSTM, layer-norm LSTM, GRU and minGRU training steps (lengths given, 2 threads) through MKL's
    and OpenBLAS's sgemm_ each match the torch code to float32 rounding; OpenBLAS runs without
    MKL's packing, and OPENBLAS_CORETYPE is as it was once rnnkit's OpenBLAS has loaded."""
    if native.library() is None or native.sgemm() is None:
        pytest.skip("no C kernels or sgemm_ here")
    if which == "openblas" and not HAS_OPENBLAS:
        pytest.skip("scipy-openblas32 is not installed (a dependency on Linux x86-64 only)")
    env = {**os.environ, "RNNKIT_BLAS": which, "OPENBLAS_CORETYPE": "Haswell"}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["sgemm"].split()[0] == which
    assert report["coretype"] == "Haswell"
    if which == "openblas":
        assert not report["packed"]
    for name, error in report["errors"].items():
        assert error < 2e-5, (name, error)


@pytest.fixture
def openblas_products(monkeypatch):
    """native.mm through OpenBLAS's parallel_sgemm, whatever this machine's CPU."""
    if native.library() is None or not HAS_OPENBLAS:
        pytest.skip("no C kernels, or scipy-openblas32 is not installed")
    monkeypatch.setattr(native, "_sgemm", [blas.openblas_sgemm(), "openblas (test)"])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_mm_through_openblas_takes_every_layout(openblas_products, threads, monkeypatch):
    """Row-major, transposed and strided operands, vectors, into a given output, added to it: the
    products torch.mm gives, the rows of the output shared out to 1-3 threads."""
    import torch

    monkeypatch.setattr(native, "threads", lambda: threads)
    torch.manual_seed(0)
    m, k, n = 37, 19, 23
    a_layouts = [torch.randn(m, k), torch.randn(k, m).t(), torch.randn(m, 2 * k)[:, ::2]]
    b_layouts = [torch.randn(k, n), torch.randn(n, k).t()]
    with torch.no_grad():
        for a in a_layouts:
            for b in b_layouts:
                torch.testing.assert_close(native.mm(a, b), a @ b, atol=1e-5, rtol=1e-5)
                out = torch.randn(m, n)
                expected = out + a @ b
                assert native.mm(a, b, out=out, accumulate=True) is out
                torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
                native.mm(a, b, out=out)
                torch.testing.assert_close(out, a @ b, atol=1e-5, rtol=1e-5)
        for a, b in (
            (torch.randn(1, k), b_layouts[0]),
            (a_layouts[0], torch.randn(k, 1)),
            (torch.randn(m, 1), torch.randn(1, n)),
        ):
            torch.testing.assert_close(native.mm(a, b), a @ b, atol=1e-5, rtol=1e-5)


def test_mm_leaves_recorded_products_and_other_dtypes_to_torch(openblas_products):
    """While autograd records (create_graph=True) the product is torch's, with its grad_fn; float64
    and empty products too."""
    import torch

    a, b = torch.randn(5, 3, requires_grad=True), torch.randn(3, 4)
    product = native.mm(a, b)
    assert product.grad_fn is not None
    (g,) = torch.autograd.grad(product.sum(), a)
    torch.testing.assert_close(g, torch.ones(5, 4) @ b.t())
    with torch.no_grad():
        a64, b64 = torch.randn(5, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
        assert native.mm(a64, b64).dtype == torch.float64
        torch.testing.assert_close(native.mm(a64, b64), a64 @ b64)
        assert native.mm(torch.randn(5, 0), torch.randn(0, 4)).abs().sum() == 0
