"""Fused element-wise steps of the LSTM and the layer-norm LSTM, and the whole minGRU / minLSTM
recurrence, in C, with a pure-torch fallback.

The sequence Function in :mod:`rnnkit.nn.sequence` spends, per time step, several ATen
element-wise calls (a plain LSTM: about 7 in the forward pass and 10 in the backward pass; a
:class:`~rnnkit.nn.LayerNormLSTMCell`: about 10 and 15), each a full pass over ``(B, 4H)`` or
``(B, H)`` with its dispatch overhead. Here each step is one C loop per batch row: the gates, the
cell update and ``h`` (with, for the layer-norm cell, the layer norms of ``W_hh h`` and ``c``) in
one function; their gradients (and the layer-norm gains' gradients) in another. The matrix
products stay in torch (MKL). minGRU and minLSTM (:mod:`rnnkit.nn.minrnn`) run their gates and their
linear recurrence over the whole sequence in one call, each batch row in one pass over time, and its
backward in another: one read of the projected inputs and one write of ``h`` instead of the
parallel scan's many passes.

Batch rows are shared out to torch's intra-op threads with OpenMP (the build links libgomp,
which is the one torch has already loaded, so there is one thread pool; without OpenMP the same
kernels run single-threaded). The C source below is compiled on first use with the system C
compiler (``cc``, ``-O3 -march=native -ffast-math -fopenmp``: ``expf`` vectorized by glibc's
libmvec), in about a second, into
``$RNNKIT_CACHE`` (default ``~/.cache/rnnkit``), keyed by a hash of the source, and loaded with
``ctypes``. Without a compiler, or with ``RNNKIT_NATIVE=0``, :func:`library` returns ``None`` and
the sequence Function runs its torch code — the same numbers (tests pin both to each other).
Only float32 CPU tensors take this path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

SOURCE = r"""
#include <math.h>
#include <stddef.h>

/* Rows (batch entries) are independent: with OpenMP they are shared out to `threads` threads
   (torch's intra-op thread count; the pool is torch's own libgomp). Sums over rows come after, in
   a second loop shared out by column, so that no two threads add into the same number. */
#define GAIN_BLOCK 64 /* columns per block of the gains' gradient sums */
#define PARALLEL_FOR _Pragma("omp parallel for num_threads(threads) schedule(static) if (threads > 1)")

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float tanh_(float x) { return 1.0f - 2.0f / (1.0f + expf(2.0f * x)); }

/* One forward step of the plain LSTM for B rows. gates: gx + W_hh h (B, 4H), order i, f, g, o;
   c_prev (B, H). Writes acts = sigmoid(i, f, o), tanh(g) (B, 4H), c_new (B, H), tc = tanh(c_new)
   (B, H) and h = o * tc (B, H). */
void lstm_forward(int threads, int B, int H, const float *gates, const float *c_prev, float *acts, float *c_new,
                  float *tc, float *h) {
    int G = 4 * H;
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        const float *gb = gates + (size_t)b * G, *cp = c_prev + (size_t)b * H;
        float *a = acts + (size_t)b * G, *cn = c_new + (size_t)b * H, *t = tc + (size_t)b * H;
        float *hb = h + (size_t)b * H;
        for (int k = 0; k < 2 * H; k++) a[k] = sigm(gb[k]);
        for (int k = 2 * H; k < 3 * H; k++) a[k] = tanh_(gb[k]);
        for (int k = 3 * H; k < G; k++) a[k] = sigm(gb[k]);
        for (int j = 0; j < H; j++) {
            cn[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];
            t[j] = tanh_(cn[j]);
            hb[j] = a[3 * H + j] * t[j];
        }
    }
}

/* One backward step of the plain LSTM. d_out: grad of this step's output (B, H); dh_next: grad of
   h_t from later steps (B, H); dc: grad of c_t from later steps (B, H). Writes d_gates (B, 4H) and
   dc_prev = grad of c_{t-1} (B, H). */
void lstm_backward(int threads, int B, int H, const float *d_out, const float *dh_next, const float *dc,
                   const float *acts, const float *tc, const float *c_prev, float *d_gates,
                   float *dc_prev) {
    int G = 4 * H;
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        const float *dob = d_out + (size_t)b * H, *dhb = dh_next + (size_t)b * H;
        const float *dcb = dc + (size_t)b * H, *a = acts + (size_t)b * G, *t = tc + (size_t)b * H;
        const float *cp = c_prev + (size_t)b * H;
        float *dg = d_gates + (size_t)b * G, *dcp = dc_prev + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
            float dh = dob[j] + dhb[j];
            float dcj = dcb[j] + dh * o * (1.0f - t[j] * t[j]);
            dg[j] = dcj * g * i * (1.0f - i);
            dg[H + j] = dcj * cp[j] * f * (1.0f - f);
            dg[2 * H + j] = dcj * i * (1.0f - g * g);
            dg[3 * H + j] = dh * t[j] * o * (1.0f - o);
            dcp[j] = dcj * f;
        }
    }
}

/* minGRU over a whole sequence, one row per thread (rnnkit.nn.minrnn): g (B, T, 2H) holds the
   projected inputs [k | c]; h_t = sigmoid(-k) h_{t-1} + sigmoid(k) pos(c), pos(c) = c + 1/2 for
   c > 0, sigmoid(c) otherwise. h0 (B, H); writes h (B, T, H). */
static inline float pos_(float c) { return c > 0.0f ? c + 0.5f : sigm(c); }

void mingru_forward(int threads, int B, int T, int H, const float *restrict g, const float *restrict h0,
                    float *restrict h) {
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        const float *prev = h0 + (size_t)b * H;
        for (int t = 0; t < T; t++) {
            const float *gt = g + ((size_t)b * T + t) * 2 * H;
            float *ht = h + ((size_t)b * T + t) * H;
            for (int j = 0; j < H; j++) {
                float k = gt[j];
                ht[j] = sigm(-k) * prev[j] + sigm(k) * pos_(gt[H + j]);
            }
            prev = ht;
        }
    }
}

/* One step of its backward for one row: d = grad of h_t (from the output and later steps). */
static void mingru_backward_step(int H, const float *restrict gt, const float *restrict dht,
                                 const float *restrict prev, float *restrict dgt, float *restrict carry) {
    for (int j = 0; j < H; j++) {
        float k = gt[j], c = gt[H + j], d = dht[j] + carry[j];
        float z = sigm(k), a = sigm(-k), s = sigm(c);
        float p = c > 0.0f ? c + 0.5f : s, dp = c > 0.0f ? 1.0f : s * (1.0f - s);
        dgt[j] = d * z * a * (p - prev[j]);
        dgt[H + j] = d * z * dp;
        carry[j] = d * a;
    }
}

/* Its backward: dh (B, T, H) grads of the outputs; writes dg (B, T, 2H) and dh0 (B, H). */
void mingru_backward(int threads, int B, int T, int H, const float *restrict g, const float *restrict h0,
                     const float *restrict h, const float *restrict dh, float *restrict dg, float *restrict dh0) {
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        float *carry = dh0 + (size_t)b * H; /* grad of h_t from later steps, ends as grad of h0 */
        for (int j = 0; j < H; j++) carry[j] = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            size_t row = (size_t)b * T + t;
            const float *prev = t > 0 ? h + (row - 1) * H : h0 + (size_t)b * H;
            mingru_backward_step(H, g + row * 2 * H, dh + row * H, prev, dg + row * 2 * H, carry);
        }
    }
}

/* minLSTM, the same way: g (B, T, 3H) holds [kf | ki | c]; with r = softplus(-kf) - softplus(-ki)
   (= log(i / f)), h_t = sigmoid(-r) h_{t-1} + sigmoid(r) pos(c): the normalized gates f', i'. */
static inline float softplus_(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

void minlstm_forward(int threads, int B, int T, int H, const float *restrict g, const float *restrict h0,
                    float *restrict h) {
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        const float *prev = h0 + (size_t)b * H;
        for (int t = 0; t < T; t++) {
            const float *gt = g + ((size_t)b * T + t) * 3 * H;
            float *ht = h + ((size_t)b * T + t) * H;
            for (int j = 0; j < H; j++) {
                float r = softplus_(-gt[j]) - softplus_(-gt[H + j]);
                ht[j] = sigm(-r) * prev[j] + sigm(r) * pos_(gt[2 * H + j]);
            }
            prev = ht;
        }
    }
}

static void minlstm_backward_step(int H, const float *restrict gt, const float *restrict dht,
                                  const float *restrict prev, float *restrict dgt, float *restrict carry) {
    for (int j = 0; j < H; j++) {
        float kf = gt[j], ki = gt[H + j], c = gt[2 * H + j], d = dht[j] + carry[j];
        float r = softplus_(-kf) - softplus_(-ki);
        float a = sigm(-r), ia = sigm(r), s = sigm(c);
        float p = c > 0.0f ? c + 0.5f : s, dp = c > 0.0f ? 1.0f : s * (1.0f - s);
        float dr = d * a * ia * (p - prev[j]);
        dgt[j] = -dr * sigm(-kf);
        dgt[H + j] = dr * sigm(-ki);
        dgt[2 * H + j] = d * ia * dp;
        carry[j] = d * a;
    }
}

void minlstm_backward(int threads, int B, int T, int H, const float *restrict g, const float *restrict h0,
                      const float *restrict h, const float *restrict dh, float *restrict dg, float *restrict dh0) {
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        float *carry = dh0 + (size_t)b * H;
        for (int j = 0; j < H; j++) carry[j] = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            size_t row = (size_t)b * T + t;
            const float *prev = t > 0 ? h + (row - 1) * H : h0 + (size_t)b * H;
            minlstm_backward_step(H, g + row * 3 * H, dh + row * H, prev, dg + row * 3 * H, carry);
        }
    }
}

/* Normalize v (n floats) in place into out; returns rstd, writes mean. */
static float normalize(const float *restrict v, float *restrict out, int n, float eps, float *restrict mean_out) {
    float mean = 0.0f, var = 0.0f;
    for (int k = 0; k < n; k++) mean += v[k];
    mean /= n;
    for (int k = 0; k < n; k++) { float d = v[k] - mean; var += d * d; }
    float rstd = 1.0f / sqrtf(var / n + eps);
    for (int k = 0; k < n; k++) out[k] = (v[k] - mean) * rstd;
    if (mean_out) *mean_out = mean;
    return rstd;
}

/* One forward step of the layer-norm LSTM for B rows.
   r: W_hh h (B, 4H); gx: LN_ih(W_ih x) + b_ih + b_hh (B, 4H); c_prev (B, H).
   Writes r_hat (B, 4H), r_rstd (B), acts = sigmoid(i, f, o), tanh(g) (B, 4H), c_new (B, H),
   c_hat (B, H), c_rstd (B), tc = tanh(LN_c(c_new)) (B, H), h (B, H). */
void ln_lstm_forward(int threads, int B, int H, float eps, const float *restrict r, const float *restrict gx,
                     const float *restrict g_hh, const float *restrict g_c, const float *restrict b_c,
                     const float *restrict c_prev, float *restrict r_hat, float *restrict r_rstd,
                     float *restrict acts, float *restrict c_new, float *restrict c_hat, float *restrict c_rstd,
                     float *restrict tc, float *restrict h) {
    int G = 4 * H;
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        const float *rb = r + (size_t)b * G, *gxb = gx + (size_t)b * G, *cp = c_prev + (size_t)b * H;
        float *rh = r_hat + (size_t)b * G, *a = acts + (size_t)b * G;
        float *cn = c_new + (size_t)b * H, *ch = c_hat + (size_t)b * H, *t = tc + (size_t)b * H;
        float *hb = h + (size_t)b * H;
        r_rstd[b] = normalize(rb, rh, G, eps, NULL);
        for (int k = 0; k < G; k++) a[k] = gxb[k] + rh[k] * g_hh[k];
        for (int k = 0; k < 2 * H; k++) a[k] = sigm(a[k]);
        for (int k = 2 * H; k < 3 * H; k++) a[k] = tanh_(a[k]);
        for (int k = 3 * H; k < G; k++) a[k] = sigm(a[k]);
        for (int j = 0; j < H; j++) cn[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];
        c_rstd[b] = normalize(cn, ch, H, eps, NULL);
        for (int j = 0; j < H; j++) {
            t[j] = tanh_(ch[j] * g_c[j] + (b_c ? b_c[j] : 0.0f));
            hb[j] = a[3 * H + j] * t[j];
        }
    }
}

/* One backward step. dh: grad of h_new (B, H); dc: grad of c_t from later steps (B, H).
   Writes d_gates (B, 4H), d_rec = grad of W_hh h (B, 4H), dc_prev = grad of c_{t-1} through f (B, H);
   adds into d_g_hh (4H), d_g_c (H), d_b_c (H). scratch: (B, 2H) floats. */
void ln_lstm_backward(int threads, int B, int H, const float *restrict dh, const float *restrict dc,
                      const float *restrict acts, const float *restrict tc, const float *restrict c_prev,
                      const float *restrict c_hat, const float *restrict c_rstd, const float *restrict r_hat,
                      const float *restrict r_rstd, const float *restrict g_hh, const float *restrict g_c,
                      float *restrict d_gates, float *restrict d_rec, float *restrict dc_prev,
                      float *restrict d_g_hh, float *restrict d_g_c, float *restrict d_b_c,
                      float *restrict scratch) {
    int G = 4 * H;
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        const float *dhb = dh + (size_t)b * H, *dcb = dc + (size_t)b * H, *a = acts + (size_t)b * G;
        const float *t = tc + (size_t)b * H, *cp = c_prev + (size_t)b * H, *ch = c_hat + (size_t)b * H;
        const float *rh = r_hat + (size_t)b * G;
        float *dg = d_gates + (size_t)b * G, *dr = d_rec + (size_t)b * G, *dcp = dc_prev + (size_t)b * H;
        float *dcn = scratch + (size_t)b * 2 * H; /* H floats: grad of LN_c's output */
        float *dxc = dcn + H;                     /* H floats: grad of c_hat */
        float s1 = 0.0f, s2 = 0.0f;
        for (int j = 0; j < H; j++) {
            dcn[j] = dhb[j] * a[3 * H + j] * (1.0f - t[j] * t[j]);
            dxc[j] = dcn[j] * g_c[j];
            s1 += dxc[j];
            s2 += dxc[j] * ch[j];
        }
        s1 /= H; s2 /= H;
        for (int j = 0; j < H; j++) {
            float dcj = dcb[j] + c_rstd[b] * (dxc[j] - s1 - ch[j] * s2); /* grad of c_t */
            float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
            dg[j] = dcj * g * i * (1.0f - i);
            dg[H + j] = dcj * cp[j] * f * (1.0f - f);
            dg[2 * H + j] = dcj * i * (1.0f - g * g);
            dg[3 * H + j] = dhb[j] * t[j] * o * (1.0f - o);
            dcp[j] = dcj * f;
        }
        float q1 = 0.0f, q2 = 0.0f;
        for (int k = 0; k < G; k++) {
            float dx = dg[k] * g_hh[k];
            dr[k] = dx;
            q1 += dx;
            q2 += dx * rh[k];
        }
        q1 /= G; q2 /= G;
        for (int k = 0; k < G; k++) dr[k] = r_rstd[b] * (dr[k] - q1 - rh[k] * q2);
    }
    /* The gains' gradients: sums over rows. Each thread owns a block of columns and walks the rows
       in order, so the inner loop runs along memory (vectorized) and no two threads add into the
       same number. */
    PARALLEL_FOR
    for (int k0 = 0; k0 < G; k0 += GAIN_BLOCK) {
        int k1 = k0 + GAIN_BLOCK < G ? k0 + GAIN_BLOCK : G;
        for (int b = 0; b < B; b++) {
            const float *dgb = d_gates + (size_t)b * G, *rhb = r_hat + (size_t)b * G;
            for (int k = k0; k < k1; k++) d_g_hh[k] += dgb[k] * rhb[k];
            if (k0 < H) {
                int m1 = k1 < H ? k1 : H;
                const float *d = scratch + (size_t)b * 2 * H, *chb = c_hat + (size_t)b * H;
                for (int k = k0; k < m1; k++) {
                    d_g_c[k] += d[k] * chb[k];
                    d_b_c[k] += d[k];
                }
            }
        }
    }
}
"""

_FLAGS = ["-O3", "-march=native", "-ffast-math", "-shared", "-fPIC"]
_OPENMP = ["-fopenmp"]  # tried first; a compiler without OpenMP builds the same kernels single-threaded
_loaded: list = []  # [library or None] once tried


def _cache_dir() -> Path:
    return Path(os.environ.get("RNNKIT_CACHE", Path.home() / ".cache" / "rnnkit"))


def _cpu_flags() -> str:
    """The CPU's feature flags (``/proc/cpuinfo``), or ``""`` where that file does not exist."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return ""


def _build(path: Path) -> None:
    """Compile :data:`SOURCE` into ``path`` (atomically: temp file, then rename)."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler (cc or gcc) on PATH")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        source = Path(tmp) / "lstm_kernels.c"
        source.write_text(SOURCE)
        built = Path(tmp) / path.name
        command = [compiler, *_FLAGS, str(source), "-o", str(built), "-lm"]
        try:
            subprocess.run([*command, *_OPENMP], check=True, capture_output=True)
        except subprocess.CalledProcessError:  # no OpenMP here: the same kernels, one thread
            subprocess.run(command, check=True, capture_output=True)
        os.replace(built, path)


def library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first call), or ``None`` if unavailable or disabled."""
    if _loaded:
        return _loaded[0]
    lib = None
    if os.environ.get("RNNKIT_NATIVE", "1") != "0":
        key = SOURCE + " ".join(_FLAGS + _OPENMP) + _cpu_flags()  # -march=native: one build per kind of CPU
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        path = _cache_dir() / f"lstm_kernels_{digest}.so"
        try:
            if not path.exists():
                _build(path)
            lib = ctypes.CDLL(str(path))
            ints = [ctypes.c_int] * 3  # threads, B, H
            lib.ln_lstm_forward.argtypes = [*ints, ctypes.c_float] + [ctypes.c_void_p] * 14
            lib.ln_lstm_backward.argtypes = ints + [ctypes.c_void_p] * 18
            lib.lstm_forward.argtypes = ints + [ctypes.c_void_p] * 6
            lib.lstm_backward.argtypes = ints + [ctypes.c_void_p] * 8
            for cell in ("mingru", "minlstm"):
                # threads, B, T, H, then the tensors
                getattr(lib, f"{cell}_forward").argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 3
                getattr(lib, f"{cell}_backward").argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 6
            for kernel in ("ln_lstm", "lstm", "mingru", "minlstm"):
                getattr(lib, f"{kernel}_forward").restype = getattr(lib, f"{kernel}_backward").restype = None
        except (OSError, subprocess.CalledProcessError):
            lib = None  # no compiler or a failed build: the torch code runs instead
    _loaded.append(lib)
    return lib


def usable(*tensors: Tensor) -> bool:
    """Whether the C kernels apply: float32 CPU tensors, and a library that built."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) and library() is not None


def threads() -> int:
    """Threads for a kernel call: torch's intra-op thread count (``torch.set_num_threads``)."""
    return torch.get_num_threads()


def ptr(t: Tensor | None) -> int | None:
    """The address of a contiguous float32 tensor's data (``None`` for ``None``)."""
    if t is None:
        return None
    assert t.is_contiguous(), "C kernels need contiguous tensors"
    return t.data_ptr()
