"""The LSTM family's and the min-cells' recurrences in C, with a pure-torch fallback.

* **Whole sequences** (``lstm_sequence_forward`` / ``_backward``, and the GRU's): per step the
  threads share out the recurrent product by columns where ``W_hh`` has at least
  :data:`COLUMN_SPLIT_MIN` floats, by batch rows below (each its columns of ``W_hh``, packed once,
  for all batch rows, through a BLAS ``sgemm_``: :func:`sgemm`, torch's own MKL, or OpenBLAS on
  AMD CPUs as :mod:`rnnkit.nn.blas` chooses), then each thread runs the gates, cell and ``h`` of its block
  of batch rows — for the layer-norm cell also the layer norms of ``W_ih x``, ``W_hh h`` and
  ``c`` — in one pass, with a barrier between the two (none when split by rows); the same
  backwards in time for the gradients. :mod:`rnnkit.nn.sequence` calls them (``LSTMSequence`` for
  the plain cell, ``LayerNormLSTMSequence``).
* **Per step** (``lstm_forward`` / ``ln_lstm_forward`` and their backward): the same row math for
  one step of all rows, the products left to torch, where no ``sgemm_`` is found; and
  ``layer_norm_rows_*`` for ``LN_ih`` over all steps there.
* **minGRU / minLSTM** (``mingru_sequence_*`` / ``minlstm_sequence_*``, :mod:`rnnkit.nn.minrnn`):
  each thread takes a block of batch rows and runs each row chunk by chunk of steps: the chunk's
  input projection through ``sgemm_``, then its gates and linear recurrence in one pass over the
  projections while they are in cache; backwards, the same per chunk, with the weight gradient.

Rows and columns are shared out to torch's intra-op threads with OpenMP (the build links libgomp,
which is the one torch has already loaded, so there is one thread pool; without OpenMP the same
kernels run single-threaded). The C source below is compiled on first use with the system C
compiler (``cc``, ``-O3 -march=native -ffast-math -fopenmp``, on x86 also ``-mno-recip
-mprefer-vector-width=512``: ``expf`` vectorized by glibc's libmvec, divisions exact, 512-bit
vectors where the CPU has them; linked without ``-ffast-math``, which would flush
denormals to zero in the whole process), in about a second, into ``$RNNKIT_CACHE`` (default
``~/.cache/rnnkit``), keyed by a hash of the source, and loaded with ``ctypes``. Without a
compiler, or with ``RNNKIT_NATIVE=0``, :func:`library` returns ``None`` and the sequence Functions
run their torch code — the same numbers (tests pin each path to the others). Only float32 CPU tensors take these paths.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.nn import blas, buffers

SOURCE = r"""
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

/* Rows (batch entries) are independent: with OpenMP they are shared out to `threads` threads
   (torch's intra-op thread count; the pool is torch's own libgomp). Sums over rows come after, in
   a second loop shared out by column, so that no two threads add into the same number. */
#define GAIN_BLOCK 64 /* columns per block of the gains' gradient sums */
#define PARALLEL_FOR _Pragma("omp parallel for num_threads(threads) schedule(static) if (threads > 1)")
#ifdef _OPENMP
#include <omp.h>
#define THREAD_ROWS(B, b0, b1) int nt_ = omp_get_num_threads(), id_ = omp_get_thread_num(); \
    int b0 = (B) * id_ / nt_, b1 = (B) * (id_ + 1) / nt_
#define THREAD_ID omp_get_thread_num()
#else
#define THREAD_ROWS(B, b0, b1) int nt_ = 1, b0 = 0, b1 = (B)
#define THREAD_ID 0
#endif
#define PARALLEL_REGION _Pragma("omp parallel num_threads(threads) if (threads > 1)")
#define BARRIER _Pragma("omp barrier")

/* The columns [*c0, *c1) of n that thread id of nt computes in a product split by columns: blocks
   of 16 (whole SIMD tiles), as even as that allows. */
static inline void thread_cols(int n, int nt, int id, int *c0, int *c1) {
    int blocks = (n + 15) / 16, a = 16 * (blocks * id / nt), b = 16 * (blocks * (id + 1) / nt);
    *c0 = a < n ? a : n;
    *c1 = b < n ? b : n;
}

/* Grads of outputs read where autograd left them (a transposed view, or expanded: no copy): entry
   (i, j) of the first two axes, H floats from d + i * ld0 + j * ld1, or (same) one float for all H,
   as out.sum() gives, spread into buf (H floats). layout (3 longs): ld0, ld1, same (grad_rows in
   Python). */
struct grad_rows {
    const float *d;
    long ld0, ld1;
    int same;
};
static inline struct grad_rows grad_rows_of(const float *d, const long *layout) {
    struct grad_rows g = {d, layout[0], layout[1], (int)layout[2]};
    return g;
}
static inline const float *grad_row(const struct grad_rows *g, size_t i, size_t j, int H, float *restrict buf) {
    const float *r = g->d + (long)i * g->ld0 + (long)j * g->ld1;
    if (!g->same) return r;
    for (int k = 0; k < H; k++) buf[k] = r[0];
    return buf;
}

/* W_hh's size (floats) from which a step's recurrent product is split by columns: below it the two
   barriers per step cost more than the split saves (measured on 2 threads: an LSTM at H = 64 trained
   15% slower split by columns, at H = 256 and more it ran faster). set_column_split_min() changes
   it (the tests run both ways). */
static long column_split_min = 131072;
void set_column_split_min(long floats) { column_split_min = floats; }

/* Thread id's share of a step's recurrent product with n output columns over B rows: columns
   [*c0, *c1) of all rows where the weight (weight_floats) is big enough and there are threads to
   share it (returns 1: barriers go around the product), else all columns of its own rows b0..b1
   (returns 0: no barriers). Rows [*r0, *r1). */
static inline int product_share(int n, long weight_floats, int nt, int id, int B, int b0, int b1, int *c0, int *c1,
                                int *r0, int *r1) {
    int split = nt > 1 && weight_floats >= column_split_min;
    if (split) {
        thread_cols(n, nt, id, c0, c1);
        *r0 = 0;
        *r1 = B;
    } else {
        *c0 = 0;
        *c1 = n;
        *r0 = b0;
        *r1 = b1;
    }
    return split;
}

/* sigmoid and tanh from exp(-|x|), which never overflows: -ffast-math assumes no inf, and
   1 / (1 + exp(-x)) at x < -88 (or 1 - 2 / (1 + exp(2x)) at x > 44) turned into NaN. */
static inline float sigm(float x) {
    float e = expf(-fabsf(x)), p = 1.0f / (1.0f + e); /* p = sigmoid(|x|) */
    return x >= 0.0f ? p : e * p;
}
static inline float tanh_(float x) {
    float e = expf(-2.0f * fabsf(x)); /* tanh(|x|) = 1 - 2e / (1 + e): exactly 1 once e is tiny */
    return copysignf(1.0f - 2.0f * e / (1.0f + e), x);
}

/* One row of the plain LSTM's forward step. gates: gx + W_hh h (4H), order i, f, g, o; c_prev (H).
   Writes acts = sigmoid(i, f, o), tanh(g) (4H), c_new (H), tc = tanh(c_new) (H) and h = o * tc (H). */
/* The cell and output of one row from its activations a (4H): c_new, tc = tanh(c_new), h. */
static inline void lstm_cell_row(int H, const float *restrict cp, const float *restrict a, float *restrict cn,
                                 float *restrict t, float *restrict hb) {
    for (int j = 0; j < H; j++) {
        cn[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];
        t[j] = tanh_(cn[j]);
        hb[j] = a[3 * H + j] * t[j];
    }
}

static inline void lstm_forward_row(int H, const float *restrict gb, const float *restrict cp, float *restrict a,
                                    float *restrict cn, float *restrict t, float *restrict hb) {
    int G = 4 * H;
    for (int k = 0; k < 2 * H; k++) a[k] = sigm(gb[k]);
    for (int k = 2 * H; k < 3 * H; k++) a[k] = tanh_(gb[k]);
    for (int k = 3 * H; k < G; k++) a[k] = sigm(gb[k]);
    lstm_cell_row(H, cp, a, cn, t, hb);
}

/* The same with the gates given as two parts, gx + r (W_hh h), added here. */
static inline void lstm_forward_row2(int H, const float *restrict gx, const float *restrict r,
                                     const float *restrict cp, float *restrict a, float *restrict cn,
                                     float *restrict t, float *restrict hb) {
    int G = 4 * H;
    for (int k = 0; k < 2 * H; k++) a[k] = sigm(gx[k] + r[k]);
    for (int k = 2 * H; k < 3 * H; k++) a[k] = tanh_(gx[k] + r[k]);
    for (int k = 3 * H; k < G; k++) a[k] = sigm(gx[k] + r[k]);
    lstm_cell_row(H, cp, a, cn, t, hb);
}

/* One forward step of the plain LSTM for B rows (each as lstm_forward_row; all (B, .)). */
void lstm_forward(int threads, int B, int H, const float *gates, const float *c_prev, float *acts, float *c_new,
                  float *tc, float *h) {
    int G = 4 * H;
    PARALLEL_FOR
    for (int b = 0; b < B; b++)
        lstm_forward_row(H, gates + (size_t)b * G, c_prev + (size_t)b * H, acts + (size_t)b * G,
                         c_new + (size_t)b * H, tc + (size_t)b * H, h + (size_t)b * H);
}

/* One row of the plain LSTM's backward step. d_out: grad of this step's output (H); dh_next: grad
   of h_t from later steps (H); dc: grad of c_t from later steps (H). Writes d_gates (4H) and
   dc_prev = grad of c_{t-1} (H), which may be dc itself (each element is read before it is written). */
static inline void lstm_backward_row(int H, const float *restrict dob, const float *restrict dhb, const float *dcb,
                                     const float *restrict a, const float *restrict t, const float *restrict cp,
                                     float *restrict dg, float *dcp) {
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

/* One backward step of the plain LSTM for B rows (each as lstm_backward_row; all (B, .)). */
void lstm_backward(int threads, int B, int H, const float *d_out, const float *dh_next, const float *dc,
                   const float *acts, const float *tc, const float *c_prev, float *d_gates,
                   float *dc_prev) {
    int G = 4 * H;
    PARALLEL_FOR
    for (int b = 0; b < B; b++)
        lstm_backward_row(H, d_out + (size_t)b * H, dh_next + (size_t)b * H, dc + (size_t)b * H,
                          acts + (size_t)b * G, tc + (size_t)b * H, c_prev + (size_t)b * H, d_gates + (size_t)b * G,
                          dc_prev + (size_t)b * H);
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

/* One row of the layer-norm LSTM's forward step.
   r: W_hh h (4H); gx: LN_ih(W_ih x) + b_ih + b_hh (4H); c_prev (H).
   Writes r_hat (4H), *r_rstd, acts = sigmoid(i, f, o), tanh(g) (4H), c_new (H), c_hat (H), *c_rstd,
   tc = tanh(LN_c(c_new)) (H), h (H). */
static inline void ln_lstm_forward_row(int H, float eps, const float *restrict rb, const float *restrict gxb,
                                       const float *restrict g_hh, const float *restrict g_c,
                                       const float *restrict b_c, const float *restrict cp, float *restrict rh,
                                       float *restrict r_rstd, float *restrict a, float *restrict cn,
                                       float *restrict ch, float *restrict c_rstd, float *restrict t,
                                       float *restrict hb) {
    int G = 4 * H;
    *r_rstd = normalize(rb, rh, G, eps, NULL);
    for (int k = 0; k < G; k++) a[k] = gxb[k] + rh[k] * g_hh[k];
    for (int k = 0; k < 2 * H; k++) a[k] = sigm(a[k]);
    for (int k = 2 * H; k < 3 * H; k++) a[k] = tanh_(a[k]);
    for (int k = 3 * H; k < G; k++) a[k] = sigm(a[k]);
    for (int j = 0; j < H; j++) cn[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];
    *c_rstd = normalize(cn, ch, H, eps, NULL);
    for (int j = 0; j < H; j++) {
        t[j] = tanh_(ch[j] * g_c[j] + (b_c ? b_c[j] : 0.0f));
        hb[j] = a[3 * H + j] * t[j];
    }
}

/* One forward step of the layer-norm LSTM for B rows (each as ln_lstm_forward_row; r_rstd and
   c_rstd (B), the rest (B, .)). */
void ln_lstm_forward(int threads, int B, int H, float eps, const float *restrict r, const float *restrict gx,
                     const float *restrict g_hh, const float *restrict g_c, const float *restrict b_c,
                     const float *restrict c_prev, float *restrict r_hat, float *restrict r_rstd,
                     float *restrict acts, float *restrict c_new, float *restrict c_hat, float *restrict c_rstd,
                     float *restrict tc, float *restrict h) {
    int G = 4 * H;
    PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        size_t g = (size_t)b * G, n = (size_t)b * H;
        ln_lstm_forward_row(H, eps, r + g, gx + g, g_hh, g_c, b_c, c_prev + n, r_hat + g, r_rstd + b, acts + g,
                            c_new + n, c_hat + n, c_rstd + b, tc + n, h + n);
    }
}

/* LN_ih's part of a row's backward step (the whole-sequence kernel; NULL ih in the per-step one):
   the raw W_ih x row, its mean and rstd, the gain; adds into the gain's and shift's partial sums
   pg_ih, pb_ih and the W_hh gain's pg_hh; writes d_raw (4H). x_hat (4H floats): the normalized row. */
struct ih_backward {
    const float *raw, *g_ih;
    float mean, rstd;
    float *x_hat, *pg_hh, *pg_ih, *pb_ih, *d_raw;
};

/* A row's activations (4H) as ln_lstm_forward_row computed them, from what the whole-sequence
   backward pass keeps: the raw W_ih x row and its LN_ih statistics (ih), the shift b_ih (4H, or
   NULL) and r_hat = LN(W_hh h) (4H); writes ih->x_hat (LN_ih's normalized row, which
   ln_lstm_backward_row reads). The same operations in the same order, so the same values to
   float32 rounding (-ffast-math may fuse them differently here: gradients agree to ~1e-6). */
static inline void ln_lstm_acts(int H, const struct ih_backward *ih, const float *restrict b_ih,
                                const float *restrict rh, const float *restrict g_hh, float *restrict a) {
    int G = 4 * H;
    const float *restrict raw = ih->raw, *restrict g_ih = ih->g_ih;
    float *restrict xh = ih->x_hat;
    for (int k = 0; k < G; k++) {
        float x = (raw[k] - ih->mean) * ih->rstd;
        xh[k] = x;
        a[k] = (x * g_ih[k] + (b_ih ? b_ih[k] : 0.0f)) + rh[k] * g_hh[k];
    }
    for (int k = 0; k < 2 * H; k++) a[k] = sigm(a[k]);
    for (int k = 2 * H; k < 3 * H; k++) a[k] = tanh_(a[k]);
    for (int k = 3 * H; k < G; k++) a[k] = sigm(a[k]);
}

/* One row of the layer-norm LSTM's backward step. dh: grad of h_new (H); dc: grad of c_t from later
   steps (H). Writes d_gates (4H), d_rec = grad of W_hh h (4H), dc_prev = grad of c_{t-1} through f
   (H; may be dc itself: each element is read before it is written), and dcn = grad of LN_c's output
   (H, for the gains' gradients). scratch: H floats. With ih, also LN_ih's backward, in the same
   passes over the 4H gates, from ih->x_hat as ln_lstm_acts left it. */
static inline void ln_lstm_backward_row(int H, const float *restrict dhb, const float *dcb,
                                        const float *restrict a, const float *restrict t,
                                        const float *restrict cp, const float *restrict ch, float c_rstd,
                                        const float *restrict rh, float r_rstd, const float *restrict g_hh,
                                        const float *restrict g_c, float *restrict dg, float *restrict dr,
                                        float *dcp, float *restrict dcn, float *restrict dxc,
                                        const struct ih_backward *ih) {
    int G = 4 * H;
    float s1 = 0.0f, s2 = 0.0f;
    for (int j = 0; j < H; j++) {
        dcn[j] = dhb[j] * a[3 * H + j] * (1.0f - t[j] * t[j]);
        dxc[j] = dcn[j] * g_c[j];
        s1 += dxc[j];
        s2 += dxc[j] * ch[j];
    }
    s1 /= H; s2 /= H;
    for (int j = 0; j < H; j++) {
        float dcj = dcb[j] + c_rstd * (dxc[j] - s1 - ch[j] * s2); /* grad of c_t */
        float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        dg[j] = dcj * g * i * (1.0f - i);
        dg[H + j] = dcj * cp[j] * f * (1.0f - f);
        dg[2 * H + j] = dcj * i * (1.0f - g * g);
        dg[3 * H + j] = dhb[j] * t[j] * o * (1.0f - o);
        dcp[j] = dcj * f;
    }
    float q1 = 0.0f, q2 = 0.0f;
    if (!ih) {
        for (int k = 0; k < G; k++) {
            float dx = dg[k] * g_hh[k];
            dr[k] = dx;
            q1 += dx;
            q2 += dx * rh[k];
        }
        q1 /= G; q2 /= G;
        for (int k = 0; k < G; k++) dr[k] = r_rstd * (dr[k] - q1 - rh[k] * q2);
        return;
    }
    const float *restrict g_ih = ih->g_ih, *restrict xh = ih->x_hat; /* x_hat: from ln_lstm_acts */
    float *restrict pg = ih->pg_hh, *restrict pgi = ih->pg_ih, *restrict pbi = ih->pb_ih;
    float *restrict d_raw = ih->d_raw;
    float rstd = ih->rstd, u1 = 0.0f, u2 = 0.0f;
    for (int k = 0; k < G; k++) {
        float dx = dg[k] * g_hh[k];
        dr[k] = dx;
        q1 += dx;
        q2 += dx * rh[k];
        pg[k] += dg[k] * rh[k];
    }
    for (int k = 0; k < G; k++) {
        float x = xh[k], v = dg[k] * g_ih[k];
        u1 += v;
        u2 += v * x;
        pgi[k] += dg[k] * x;
        pbi[k] += dg[k];
    }
    q1 /= G; q2 /= G; u1 /= G; u2 /= G;
    for (int k = 0; k < G; k++) {
        dr[k] = r_rstd * (dr[k] - q1 - rh[k] * q2);
        d_raw[k] = rstd * (dg[k] * g_ih[k] - u1 - xh[k] * u2);
    }
}

/* One backward step for B rows (each as ln_lstm_backward_row; c_rstd and r_rstd (B), the rest
   (B, .)); adds into d_g_hh (4H), d_g_c (H), d_b_c (H). scratch: (B, 2H) floats. */
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
        size_t g = (size_t)b * G, n = (size_t)b * H;
        float *dcn = scratch + (size_t)b * 2 * H;
        ln_lstm_backward_row(H, dh + n, dc + n, acts + g, tc + n, c_prev + n, c_hat + n, c_rstd[b], r_hat + g,
                             r_rstd[b], g_hh, g_c, d_gates + g, d_rec + g, dc_prev + n, dcn, dcn + H, NULL);
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

/* ---- Whole sequences in one call ------------------------------------------------------------
   Per step, the threads first compute W_hh h_{t-1} for all B rows, each its own columns through the
   BLAS sgemm_ (the one torch carries; single-threaded inside this parallel region), then, after a
   barrier, each its own block of rows' element-wise step (the rows are independent: row b's h_t
   needs only row b's h_{t-1} and its W_hh h_{t-1}), and a barrier again. Buffers are time-major
   (T, B, .); hs, cs are (T + 1, B, H) with [0] the initial state; valid (T, B) is 1.0 inside a
   sequence and 0.0 past its end (NULL: no lengths), where the state is frozen and the output
   zero. The layer-norm pointers are NULL for the plain LSTM. */

typedef void (*sgemm_t)(const char *, const char *, const int *, const int *, const int *, const float *,
                        const float *, const int *, const float *, const int *, const float *, float *, const int *);

/* One big product through sgemm_, its n columns (column-major: the rows of a row-major output)
   shared out to the threads in blocks, each block one single-threaded call: C (m, n) = op(A) op(B)
   + beta C, ta / tb: whether A / B are transposed. For a BLAS that runs one thread per call
   (rnnkit's OpenBLAS); torch's MKL threads its own calls. */
void parallel_sgemm(int threads, sgemm_t sgemm, int ta, int tb, int m, int n, int k, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc) {
    const float one = 1.0f;
    const char *op_a = ta ? "T" : "N", *op_b = tb ? "T" : "N";
    PARALLEL_REGION
    {
        THREAD_ROWS(n, j0, j1);
        int cols = j1 - j0;
        if (cols > 0)
            sgemm(op_a, op_b, &m, &cols, &k, &one, a, &lda, b + (tb ? (size_t)j0 : (size_t)j0 * ldb), &ldb, &beta,
                  c + (size_t)j0 * ldc, &ldc);
    }
}

/* MKL's packed GEMM (sgemm_pack / sgemm_compute), where the BLAS has it: a weight matrix used by
   every step is packed once per call and thread instead of at every product. set_packed_gemm()
   gives the functions (NULL: plain sgemm_ only). */
typedef size_t (*pack_size_t)(const char *, const int *, const int *, const int *);
typedef void (*pack_t)(const char *, const char *, const int *, const int *, const int *, const float *,
                       const float *, const int *, float *);
typedef void (*compute_t)(const char *, const char *, const int *, const int *, const int *, const float *,
                          const int *, const float *, const int *, const float *, float *, const int *);
static pack_size_t pack_size_fn;
static pack_t pack_fn;
static compute_t compute_fn;

void set_packed_gemm(pack_size_t size, pack_t pack, compute_t compute) {
    pack_size_fn = size;
    pack_fn = pack;
    compute_fn = compute;
}

/* A product with a fixed weight: column-major c (m, rows) = op(w) (m, k) @ b (k, rows). */
struct weight_gemm {
    sgemm_t sgemm;
    const float *w;
    float *packed; /* NULL: not packed */
    int m, k, lda, rows; /* rows: the product's column count the packing was made for */
    char trans[2];
};

/* Packing costs about as much as a dozen products (and a fresh buffer): only worth it for calls
   of at least this many steps; a generation step (T = 1) uses plain sgemm_. */
#define PACK_MIN_STEPS 32

static void weight_gemm_init(struct weight_gemm *g, sgemm_t sgemm, char trans, int m, int rows, int k,
                             const float *w, int lda, int steps) {
    g->sgemm = sgemm; g->w = w; g->packed = NULL; g->m = m; g->k = k; g->lda = lda; g->rows = rows;
    g->trans[0] = trans; g->trans[1] = 0;
    if (pack_fn && m > 0 && rows > 0 && steps >= PACK_MIN_STEPS) /* m = 0: a thread with no columns */ {
        g->packed = malloc(pack_size_fn("A", &m, &rows, &k));
        if (g->packed) {
            const float one = 1.0f;
            pack_fn("A", g->trans, &m, &rows, &k, &one, w, &lda, g->packed);
        }
    }
}

static void weight_gemm_run(const struct weight_gemm *g, int rows, const float *b, int ldb, float *c, int ldc) {
    const float one = 1.0f, zero = 0.0f;
    if (g->packed && rows == g->rows)
        compute_fn("P", "N", &g->m, &rows, &g->k, g->packed, &g->lda, b, &ldb, &zero, c, &ldc);
    else
        g->sgemm(g->trans, "N", &g->m, &rows, &g->k, &one, g->w, &g->lda, b, &ldb, &zero, c, &ldc);
}

static void weight_gemm_free(struct weight_gemm *g) { free(g->packed); }

/* ---- minGRU and minLSTM (rnnkit.nn.minrnn) over whole sequences ------------------------------
   Their gates read only x_t, so a row's h_t = a_t h_{t-1} + b_t needs nothing from other rows and
   no recurrent product: each thread takes a block of batch rows and, chunk of S steps by chunk of
   S steps, projects the row's inputs with one sgemm_ (g = x W^T, S x G, into a buffer that stays in
   the core's cache) and runs the chunk's gates and recurrence over it in one pass.
   minGRU: g = [k | c] (G = 2H), h_t = sigmoid(-k) h_{t-1} + sigmoid(k) pos(c + b_c);
   minLSTM: g = [kf | ki | c] (G = 3H), r = softplus(-kf) - softplus(-ki) (= log(i / f)),
   h_t = sigmoid(-r) h_{t-1} + sigmoid(r) pos(c): the normalized gates f', i'. pos(c) = c + 1/2 for
   c > 0, sigmoid(c) otherwise. The bias (G; zeros for a cell without one) is added as g is read.
   The forward pass overwrites what it has read of g with what the backward pass needs, which then
   computes no exp for minGRU (see gates_saved, pos_saved); minLSTM's kf, ki stay as they were. All
   tensors are batch-major: x (B, T, I), h (B, T, H), g (B, T, G). */

/* sigmoid(k) and sigmoid(-k) = 1 - sigmoid(k) from one exp, each accurate where it is small. */
static inline void sigm_pair(float k, float *restrict z, float *restrict a) {
    float e = expf(-fabsf(k)), p = 1.0f / (1.0f + e), q = e * p; /* p = sigmoid(|k|), q = sigmoid(-|k|) */
    *z = k >= 0.0f ? p : q;
    *a = k >= 0.0f ? q : p;
}
static inline float softplus_(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

/* What the forward pass leaves in g for the backward pass, in place of the projections it has read.
   pos(c) in c's slot: q = -(c + 1/2) for c > 0, sigmoid(c) otherwise, so that pos(c) = |q| and
   pos'(c) = 1 for q < 0, q (1 - q) otherwise. A gate pair z = sigmoid(k), a = sigmoid(-k) = 1 - z in
   k's slot as the smaller of the two, each to float32's precision: s = z where z <= a, else
   s = -a (at least FLT_MIN, so that its sign always tells), and then the other is 1 - |s|. */
static inline float pos_saved(float c) { return c > 0.0f ? -(c + 0.5f) : sigm(c); }
static inline float pos_slope(float q) { return q < 0.0f ? 1.0f : q * (1.0f - q); }
static inline float gates_saved(float z, float a) { return z <= a ? z : -fmaxf(a, FLT_MIN); }
static inline void gates_read(float s, float *restrict z, float *restrict a) {
    *z = s < 0.0f ? 1.0f + s : s;
    *a = s < 0.0f ? -s : 1.0f - s;
}

/* One step of a row's forward pass: g_t (G) the step's projections, prev = h_{t-1} (H) -> h_t (H).
   Overwrites g_t with what mingru_backward_step reads (gates_saved, pos_saved). */
static inline void mingru_forward_step(int H, float *restrict gt, const float *restrict bias,
                                       const float *restrict prev, float *restrict ht) {
    for (int j = 0; j < H; j++) {
        float z, a, q = pos_saved(gt[H + j] + bias[H + j]);
        sigm_pair(gt[j] + bias[j], &z, &a);
        ht[j] = a * prev[j] + z * fabsf(q);
        gt[j] = gates_saved(z, a);
        gt[H + j] = q;
    }
}

static inline void minlstm_forward_step(int H, float *restrict gt, const float *restrict bias,
                                        const float *restrict prev, float *restrict ht) {
    for (int j = 0; j < H; j++) {
        float r = softplus_(-(gt[j] + bias[j])) - softplus_(-(gt[H + j] + bias[H + j])), ia, a;
        float q = pos_saved(gt[2 * H + j] + bias[2 * H + j]);
        sigm_pair(r, &ia, &a);
        ht[j] = a * prev[j] + ia * fabsf(q);
        gt[2 * H + j] = q;
    }
}

/* One step of a row's backward pass, g_t as the forward pass left it: d = grad of h_t from the
   output (dht) plus carry (the grad from later steps, which becomes the grad of h_{t-1}). Writes
   dgt (G), adds it into db (G). minGRU does not read bias (what it reads of g_t includes it);
   minLSTM adds it to kf, ki, which the forward pass left as they were. */
static inline void mingru_backward_step(int H, const float *restrict gt, const float *restrict bias,
                                        const float *restrict dht, const float *restrict prev,
                                        float *restrict dgt, float *restrict carry, float *restrict db) {
    for (int j = 0; j < H; j++) {
        float q = gt[H + j], p = fabsf(q), dp = pos_slope(q), d = dht[j] + carry[j], z, a;
        gates_read(gt[j], &z, &a);
        float dk = d * z * a * (p - prev[j]), dc = d * z * dp;
        dgt[j] = dk;
        dgt[H + j] = dc;
        db[j] += dk;
        db[H + j] += dc;
        carry[j] = d * a;
    }
}

static inline void minlstm_backward_step(int H, const float *restrict gt, const float *restrict bias,
                                         const float *restrict dht, const float *restrict prev,
                                         float *restrict dgt, float *restrict carry, float *restrict db) {
    for (int j = 0; j < H; j++) {
        float kf = gt[j] + bias[j], ki = gt[H + j] + bias[H + j], q = gt[2 * H + j], p = fabsf(q);
        float d = dht[j] + carry[j], r = softplus_(-kf) - softplus_(-ki), a, ia, dp = pos_slope(q);
        sigm_pair(r, &ia, &a);
        float dr = d * a * ia * (p - prev[j]), dkf = -dr * sigm(-kf), dki = dr * sigm(-ki), dc = d * ia * dp;
        dgt[j] = dkf;
        dgt[H + j] = dki;
        dgt[2 * H + j] = dc;
        db[j] += dkf;
        db[H + j] += dki;
        db[2 * H + j] += dc;
        carry[j] = d * a;
    }
}

/* The forward pass: w (G, I) = W_ih, bias (G), h0 (B, H); writes h (B, T, H). g_all (B, T, G):
   where the projections x W^T go, overwritten step by step with what the backward pass reads
   (kept for it); NULL (no backward pass will come): into work, min(S, T) * G floats per thread. */
#define MIN_SEQUENCE_FORWARD(name, G_OF_H)                                                              \
    void name##_sequence_forward(int threads, sgemm_t sgemm, int B, int T, int I, int H, int S,        \
                                 const float *x, const float *w, const float *restrict bias,          \
                                 const float *h0, float *h, float *g_all, float *work) {              \
        int G = G_OF_H;                                                                                 \
        PARALLEL_REGION                                                                                 \
        {                                                                                               \
            THREAD_ROWS(B, b0, b1);                                                                     \
            int S0 = T < S ? T : S, products = (b1 - b0) * ((T + S - 1) / S);                           \
            float *scratch = work ? work + (size_t)THREAD_ID * S0 * G : NULL;                           \
            struct weight_gemm proj; /* (n, G) = x (n, I) @ W_ih^T */                                   \
            weight_gemm_init(&proj, sgemm, 'T', G, S0, I, w, I, products);                              \
            for (int b = b0; b < b1; b++) {                                                             \
                const float *prev = h0 + (size_t)b * H;                                                 \
                for (int t0 = 0; t0 < T; t0 += S) {                                                     \
                    int n = T - t0 < S ? T - t0 : S;                                                    \
                    size_t row = (size_t)b * T + t0;                                                    \
                    float *g = g_all ? g_all + row * G : scratch;                                       \
                    weight_gemm_run(&proj, n, x + row * I, I, g, G);                                    \
                    for (int t = 0; t < n; t++) {                                                       \
                        float *ht = h + (row + t) * H;                                                  \
                        name##_forward_step(H, g + (size_t)t * G, bias, prev, ht);                      \
                        prev = ht;                                                                      \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
            weight_gemm_free(&proj);                                                                    \
        }                                                                                               \
    }

/* The backward pass, each row's chunks from the last: g_all, h as the forward pass left them, dh
   the grads of the outputs (B, T, H), laid out as dh_layout says (grad_rows); carry (B, H) zeros on
   entry, the grads of h0 on return. Each thread adds its rows' dW (G, I) into d_w_parts + id * G * I
   and db into d_b_parts + id * G (threads x each, zeros on entry; the caller sums them), and,
   unless dx is NULL, writes dx (B, T, I). work: min(S, T) * G + H floats per thread (a chunk's
   grads of g, a row of dh). */
#define MIN_SEQUENCE_BACKWARD(name, G_OF_H)                                                             \
    void name##_sequence_backward(int threads, sgemm_t sgemm, int B, int T, int I, int H, int S,       \
                                  const float *x, const float *w, const float *restrict bias,         \
                                  const float *h0, const float *h, const float *g_all, const float *dh, \
                                  const long *dh_layout, float *carry, float *d_w_parts,              \
                                  float *d_b_parts, float *dx, float *work) {                          \
        int G = G_OF_H;                                                                                 \
        struct grad_rows d_rows = grad_rows_of(dh, dh_layout);                                          \
        const float one = 1.0f, zero = 0.0f;                                                            \
        PARALLEL_REGION                                                                                 \
        {                                                                                               \
            THREAD_ROWS(B, b0, b1);                                                                     \
            int id = THREAD_ID, S0 = T < S ? T : S;                                                     \
            float *dg = work + (size_t)id * ((size_t)S0 * G + H), *dh_row = dg + (size_t)S0 * G;         \
            float *dw = d_w_parts + (size_t)id * G * I;                                                 \
            float *db = d_b_parts + (size_t)id * G;                                                     \
            for (int b = b0; b < b1; b++) {                                                             \
                float *cr = carry + (size_t)b * H;                                                      \
                for (int t0 = (T - 1) / S * S; t0 >= 0; t0 -= S) {                                      \
                    int n = T - t0 < S ? T - t0 : S;                                                    \
                    size_t row = (size_t)b * T + t0;                                                    \
                    for (int t = n - 1; t >= 0; t--) {                                                  \
                        const float *prev = t0 + t > 0 ? h + (row + t - 1) * H : h0 + (size_t)b * H;    \
                        const float *dht = grad_row(&d_rows, b, t0 + t, H, dh_row);                      \
                        name##_backward_step(H, g_all + (row + t) * G, bias, dht, prev, dg + (size_t)t * G, \
                                             cr, db);                                                   \
                    }                                                                                   \
                    /* dW^T (I, G) += x_chunk^T (I, n) dg (n, G), column-major */                       \
                    sgemm("N", "T", &I, &G, &n, &one, x + row * I, &I, dg, &G, &one, dw, &I);           \
                    if (dx) /* dx_chunk^T (I, n) = W^T (I, G) dg^T (G, n) */                           \
                        sgemm("N", "N", &I, &n, &G, &one, w, &I, dg, &G, &zero, dx + row * I, &I);      \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }

MIN_SEQUENCE_FORWARD(mingru, 2 * H)
MIN_SEQUENCE_BACKWARD(mingru, 2 * H)
MIN_SEQUENCE_FORWARD(minlstm, 3 * H)
MIN_SEQUENCE_BACKWARD(minlstm, 3 * H)


/* Where W_hh is big enough (column_split_min), the recurrent products are split by columns, not
   rows: at every step each thread computes its columns (thread_cols) of W_hh h_{t-1} for all B
   rows, between two barriers, then the row math of its own rows as before. Each thread so packs
   and reads only its share of W_hh, with all B rows per read (a row split reads all of W_hh per
   thread, for B / threads rows: measured here at B = 64, H = 512 on 2 threads, 256 forward
   products took 0.34 s split by columns, 0.44-0.60 s by rows). */

/* One step's recurrent product, this thread's share of it (product_share: rows r0..r1, g's
   columns c0..c1): c (ldc) = b (ldb) @ op(W), between barriers where split by columns. Every thread
   of the region calls it at every step (a barrier waits for all). */
static inline void shared_product(const struct weight_gemm *g, int split, int c0, int c1, int r0, int r1,
                                  const float *b, int ldb, float *c, int ldc) {
    if (split) { BARRIER } /* the rows of b written by every thread */
    if (c1 > c0 && r1 > r0) weight_gemm_run(g, r1 - r0, b + (size_t)r0 * ldb, ldb, c + (size_t)r0 * ldc + c0, ldc);
    if (split) { BARRIER } /* the columns of c written by every thread */
}

/* h_rec (rows, H) = h (rows, H) * mask (rows, H): a thread's rows of what multiplies W_hh. */
static inline void mask_rows(int rows, int H, const float *restrict h, const float *restrict mask,
                             float *restrict hrec) {
    for (size_t k = 0; k < (size_t)rows * H; k++) hrec[k] = h[k] * mask[k];
}

/* Zoneout (Krueger et al. 2016) on one row of a state, in place: new = z old + (1 - z) new, z the
   row's zoneout weights (1: keep the old unit, 0: take the new one; the rate itself in eval). */
static inline void zone_row(int H, const float *restrict z, const float *restrict old, float *restrict new_) {
    for (int j = 0; j < H; j++) new_[j] = z[j] * old[j] + (1.0f - z[j]) * new_[j];
}

/* Zoneout's share of one row's backward step, before the cell's own: d = dob + dh, the grad of the
   zoned h_t, splits into keep_h = zh d (straight to h_{t-1}) and dh = (1 - zh) d (to the cell's new
   h); with zc (and dc), dc into keep_c = zc dc and dc = (1 - zc) dc. zh, zc may be NULL (rate 0). */
static inline void zone_backward_row(int H, const float *restrict dob, const float *restrict zh,
                                     const float *restrict zc, float *restrict dh, float *restrict dc,
                                     float *restrict keep_h, float *restrict keep_c) {
    for (int j = 0; j < H; j++) {
        float d = dob[j] + dh[j], z = zh ? zh[j] : 0.0f;
        keep_h[j] = z * d;
        dh[j] = (1.0f - z) * d;
    }
    if (dc)
        for (int j = 0; j < H; j++) {
            float z = zc ? zc[j] : 0.0f;
            keep_c[j] = z * dc[j];
            dc[j] = (1.0f - z) * dc[j];
        }
}

/* The forward pass. Plain LSTM: gx (T, B, G) = W_ih x, b_ih = b_ih + b_hh (G) or NULL, added
   to each row here (the caller's gx stays as it was given). Layer-norm LSTM: gx is the
   raw W_ih x, normalized here row by row (LN_ih, gain g_ih, shift b_ih = b_ih + b_hh or NULL; its
   mean and rstd written to ih_mean, ih_rstd (T, B)), and W_hh h, c normalized as in
   ln_lstm_forward_row; its acts hold one step (B rows, rewritten at every step): the backward pass
   computes them again from what it keeps. zh, zc (T, B, H) or NULL: zoneout weights of h and c
   (zone_row), applied to each step's new state before it is carried (c_news then holds the zoned
   c). keep = 0 (no backward pass will come): acts, tcs, r_hats, r_rstd, c_hats, c_rstd, ih_mean,
   ih_rstd hold one step (B rows), rewritten at every step. work: B * (G + H) + threads * G floats. */
void lstm_sequence_forward(int threads, sgemm_t sgemm, int T, int B, int H, float eps, const float *gx,
                           const float *w, const float *mask, const float *valid, const float *g_hh,
                           const float *g_c, const float *b_c, float *hs, float *cs, float *acts, float *tcs,
                           float *outs, float *c_news, float *r_hats, float *r_rstd, float *c_hats, float *c_rstd,
                           const float *g_ih, const float *b_ih, float *ih_mean, float *ih_rstd, const float *zh,
                           const float *zc, int keep, float *work) {
    int G = 4 * H, ln = g_hh != NULL;
    float *pre_all = work, *hrec_all = work + (size_t)B * G; /* B x G: W_hh h_{t-1}; B x H: h_{t-1} * mask */
    PARALLEL_REGION
    {
        THREAD_ROWS(B, b0, b1);
        int rows = b1 - b0, c0, c1, r0, r1;
        int split = product_share(G, (long)G * H, nt_, THREAD_ID, B, b0, b1, &c0, &c1, &r0, &r1);
        float *pre = pre_all + (size_t)b0 * G, *hrec = hrec_all + (size_t)b0 * H; /* this thread's rows */
        const float *mask_b = mask ? mask + (size_t)b0 * H : NULL;
        float *gx_row = work + (size_t)B * (G + H) + (size_t)THREAD_ID * G; /* G: LN_ih(W_ih x) + b */
        struct weight_gemm product; /* columns c0..c1, rows r0..r1 of (B, G) = h_rec (B, H) @ W_hh^T */
        weight_gemm_init(&product, sgemm, 'T', c1 - c0, r1 - r0, H, w + (size_t)c0 * H, H, T);
        if (mask) mask_rows(rows, H, hs + (size_t)b0 * H, mask_b, hrec);
        for (int t = 0; t < T; t++) {
            size_t base = (size_t)t * B + b0;
            const float *hp = hs + base * H;
            shared_product(&product, split, c0, c1, r0, r1, mask ? hrec_all : hs + (size_t)t * B * H, H, pre_all, G);
            for (int r = 0; r < rows; r++) {
                size_t row = base + r, s = keep ? row : (size_t)b0 + r; /* s: where the step's saved values go */
                if (ln) {
                    ih_rstd[s] = normalize(gx + row * G, gx_row, G, eps, ih_mean + s);
                    for (int k = 0; k < G; k++) gx_row[k] = gx_row[k] * g_ih[k] + (b_ih ? b_ih[k] : 0.0f);
                    ln_lstm_forward_row(H, eps, pre + (size_t)r * G, gx_row, g_hh, g_c, b_c, cs + row * H,
                                        r_hats + s * G, r_rstd + s, acts + (b0 + r) * G, c_news + row * H,
                                        c_hats + s * H, c_rstd + s, tcs + s * H, outs + row * H);
                } else {
                    float *pr = pre + (size_t)r * G;
                    if (b_ih) for (int k = 0; k < G; k++) pr[k] += b_ih[k]; /* the plain cell's b_ih + b_hh */
                    lstm_forward_row2(H, gx + row * G, pr, cs + row * H, acts + s * G, c_news + row * H,
                                      tcs + s * H, outs + row * H);
                }
                float *hn = hs + (row + B) * H, *cn = cs + (row + B) * H;
                float *o = outs + row * H, *c = c_news + row * H;
                if (zh) zone_row(H, zh + row * H, hp + (size_t)r * H, o);
                if (zc) zone_row(H, zc + row * H, cs + row * H, c);
                if (valid && valid[row] == 0.0f) { /* past this sequence's end: frozen state, zero output */
                    for (int j = 0; j < H; j++) { hn[j] = hp[(size_t)r * H + j]; cn[j] = cs[row * H + j]; o[j] = 0.0f; }
                } else {
                    if (hn != o) for (int j = 0; j < H; j++) hn[j] = o[j];
                    if (cn != c) for (int j = 0; j < H; j++) cn[j] = c[j];
                }
            }
            if (mask) mask_rows(rows, H, hs + (base + B) * H, mask_b, hrec);
        }
        weight_gemm_free(&product);
    }
}

/* Steps t1 - 1 down to t0 of the backward pass. dh, dc (B, H): grads of h_{t1}, c_{t1} on entry
   (from later steps), of h_{t0}, c_{t0} on return. Writes d_gates (T, B, G) rows of those steps:
   the grads of gx (plain LSTM), or of the raw W_ih x through LN_ih (layer-norm LSTM, whose gx is
   raw as in the forward pass); for the layer-norm cell also d_rec (t1 - t0, B, G): grads of
   W_hh h_{t-1} (the plain cell's are d_gates), and adds the gains' and LN_ih shift's gradients into
   d_g_hh (G), d_g_c (H), d_b_c (H), d_g_ih (G), d_b_ih (G). The layer-norm cell's acts are not
   kept: each row's are computed again from gx, its LN_ih statistics, b_ih (G or NULL, as in the
   forward pass) and r_hats (ln_lstm_acts), acts NULL. zh, zc: the forward pass's zoneout weights
   or NULL. d_out (T, B, H): grads of the outputs, laid out as d_layout says (grad_rows). work:
   B * 4H + threads * (6G + 5H) floats. */
void lstm_sequence_backward(int threads, sgemm_t sgemm, int t0, int t1, int B, int H, const float *w,
                            const float *mask, const float *valid, const float *d_out, const long *d_layout,
                            float *dh, float *dc,
                            const float *acts, const float *tcs, const float *cs, const float *c_hats,
                            const float *c_rstd, const float *r_hats, const float *r_rstd, const float *g_hh,
                            const float *g_c, float *d_gates, float *d_rec, float *d_g_hh, float *d_g_c,
                            float *d_b_c, const float *gx, const float *ih_mean, const float *ih_rstd,
                            const float *g_ih, const float *b_ih, float *d_g_ih, float *d_b_ih, const float *zh,
                            const float *zc, float *work) {
    int G = 4 * H, ln = g_hh != NULL, P = 3 * G + 2 * H, zoned = zh || zc; /* P: per-thread partial sums */
    float *partials = work + (size_t)B * 3 * H, *zone_work = partials + (size_t)threads * (P + 3 * G);
    int used = 1;
    struct grad_rows d_rows = grad_rows_of(d_out, d_layout);
    PARALLEL_REGION
    {
        THREAD_ROWS(B, b0, b1);
        int rows = b1 - b0, id = THREAD_ID;
        float *tmp = work + (size_t)b0 * H;                         /* rows x H: d_rec @ W_hh */
        float *scratch = work + (size_t)B * H + (size_t)b0 * 2 * H; /* rows x 2H: LN scratch */
        float *pg = partials + (size_t)id * P, *pc = pg + G, *pb = pc + H, *pgi = pb + H, *pbi = pgi + G;
        float *dg_row = partials + (size_t)threads * P + (size_t)id * 3 * G, *xh = dg_row + G; /* G each */
        float *a_row = xh + G; /* G: the layer-norm cell's activations of a row, computed again */
        float *keep_h = zone_work + (size_t)b0 * H; /* rows x H: zoneout's grads straight to h_{t-1} */
        float *keep_c = zone_work + (size_t)B * H + (size_t)id * 3 * H, *no_grad = keep_c + H; /* H each */
        float *d_row = no_grad + H; /* H: an expanded row of d_out */
        for (int j = 0; j < H && zoned; j++) no_grad[j] = 0.0f;
        int c0, c1, r0, r1, split = product_share(H, (long)G * H, nt_, id, B, b0, b1, &c0, &c1, &r0, &r1);
        struct weight_gemm product; /* columns c0..c1, rows r0..r1 of (B, H) = d_rec (B, G) @ W_hh */
        weight_gemm_init(&product, sgemm, 'N', c1 - c0, r1 - r0, G, w + c0, H, t1 - t0);
        #pragma omp single
        used = nt_;
        for (int k = 0; k < P; k++) pg[k] = 0.0f;
        for (int t = t1 - 1; t >= t0; t--) {
            size_t base = (size_t)t * B + b0;
            float *drec = ln ? d_rec + ((size_t)(t - t0) * B + b0) * G : d_gates + base * G;
            for (int r = 0; r < rows; r++) {
                size_t row = base + r, b = (size_t)b0 + r;
                float *dg = d_gates + row * G, *dr = drec + (size_t)r * G;
                if (valid && valid[row] == 0.0f) { /* past the end: the grads pass to the frozen state */
                    for (int k = 0; k < G; k++) dg[k] = 0.0f;
                    if (ln) for (int k = 0; k < G; k++) dr[k] = 0.0f;
                    continue;
                }
                float *dhb = dh + b * H, *dcb = dc + b * H;
                const float *dob = grad_row(&d_rows, t, b, H, d_row);
                if (zoned) { /* dhb, dcb become the grads of the cell's own new h, c; dob is folded in */
                    zone_backward_row(H, dob, zh ? zh + row * H : NULL, zc ? zc + row * H : NULL, dhb, dcb,
                                      keep_h + (size_t)r * H, keep_c);
                    dob = no_grad;
                }
                if (!ln) {
                    lstm_backward_row(H, dob, dhb, dcb, acts + row * G, tcs + row * H, cs + row * H, dg, dcb);
                    if (zoned) for (int j = 0; j < H; j++) dcb[j] += keep_c[j];
                    continue;
                }
                const float *chr = c_hats + row * H, *rhr = r_hats + row * G;
                for (int j = 0; j < H; j++) dhb[j] += dob[j]; /* grad of h_new */
                float *dcn = scratch + (size_t)r * 2 * H;
                /* dg_row: the grads of the gates, turned into those of the raw W_ih x (dg) on the spot */
                struct ih_backward ih = {gx + row * G, g_ih, ih_mean[row], ih_rstd[row], xh, pg, pgi, pbi, dg};
                ln_lstm_acts(H, &ih, b_ih, rhr, g_hh, a_row);
                ln_lstm_backward_row(H, dhb, dcb, a_row, tcs + row * H, cs + row * H, chr, c_rstd[row],
                                     rhr, r_rstd[row], g_hh, g_c, dg_row, dr, dcb, dcn, dcn + H, &ih);
                for (int j = 0; j < H; j++) { pc[j] += dcn[j] * chr[j]; pb[j] += dcn[j]; }
                if (zoned) for (int j = 0; j < H; j++) dcb[j] += keep_c[j];
            }
            shared_product(&product, split, c0, c1, r0, r1, drec - (size_t)b0 * G, G, work, H); /* step t's d_rec */
            for (int r = 0; r < rows; r++) {
                size_t row = base + r, b = (size_t)b0 + r;
                if (valid && valid[row] == 0.0f) continue;
                float *dhb = dh + b * H;
                const float *m = mask ? mask + b * H : NULL, *tr = tmp + (size_t)r * H;
                for (int j = 0; j < H; j++) dhb[j] = m ? tr[j] * m[j] : tr[j];
                if (zoned) for (int j = 0; j < H; j++) dhb[j] += keep_h[(size_t)r * H + j];
            }
        }
        weight_gemm_free(&product);
    }
    if (ln)
        for (int id = 0; id < used; id++) {
            const float *pg = partials + (size_t)id * P, *pc = pg + G, *pb = pc + H, *pgi = pb + H, *pbi = pgi + G;
            for (int k = 0; k < G; k++) { d_g_hh[k] += pg[k]; d_g_ih[k] += pgi[k]; }
            if (d_b_ih) for (int k = 0; k < G; k++) d_b_ih[k] += pbi[k];
            for (int j = 0; j < H; j++) { d_g_c[j] += pc[j]; if (d_b_c) d_b_c[j] += pb[j]; }
        }
}

/* One row of torch.nn's GRU step: x = W_ih x_t (3H), b_ih (3H), p = W_hh h_{t-1} + b_hh (3H),
   h = h_{t-1} (H) -> a = r, z, n, W_hn h + b_hn (4H) and o = h_t (H). */
static inline void gru_forward_row(int H, const float *restrict x, const float *restrict b_ih,
                                   const float *restrict p, const float *restrict h, float *restrict a,
                                   float *restrict o) {
    for (int k = 0; k < 2 * H; k++) a[k] = sigm(x[k] + b_ih[k] + p[k]); /* r, z */
    for (int j = 0; j < H; j++) {
        float n = tanh_(x[2 * H + j] + b_ih[2 * H + j] + a[j] * p[2 * H + j]);
        a[2 * H + j] = n;
        a[3 * H + j] = p[2 * H + j];
        o[j] = n + a[H + j] * (h[j] - n); /* (1 - z) n + z h, as torch.lerp(n, h, z) */
    }
}

/* torch.nn's GRU over a whole sequence, rows shared out as in lstm_sequence_forward. gx (T, B, G)
   = W_ih x (G = 3H, gates r, z, n); w (G, H) = W_hh; b_ih, b_hh (G; zeros for a cell without
   biases); mask (B, H) or NULL multiplies h_{t-1} in the recurrent product only; valid (T, B) or
   NULL (0: past the sequence's end, state frozen, output zero). hs (T + 1, B, H), hs[0] = h0 on
   entry; outs (T, B, H), which may be hs + B * H; acts (T, B, 4H): r, z, n and W_hn h + b_hn,
   what the backward pass needs. Layer-norm GRU: g_hh (G) not NULL, W_hh h is normalized
   (LN_hh, gain g_hh, shift b_hh), its normalized value and rstd written to r_hats (T, B, G),
   r_rstd (T, B); gx is then LN_ih(W_ih x) + b_ih and b_ih zeros. zh (T, B, H) or NULL: zoneout
   weights of h (zone_row). keep = 0 (no backward pass will come): acts, r_hats, r_rstd hold one
   step (B rows), rewritten at every step. work: B * (G + H) floats. */
void gru_sequence_forward(int threads, sgemm_t sgemm, int T, int B, int H, float eps, const float *gx,
                          const float *w, const float *b_ih, const float *b_hh, const float *mask,
                          const float *valid, const float *g_hh, float *hs, float *outs, float *acts,
                          float *r_hats, float *r_rstd, const float *zh, int keep, float *work) {
    int G = 3 * H;
    float *pre_all = work, *hrec_all = work + (size_t)B * G; /* B x G: W_hh h_{t-1}; B x H: h_{t-1} * mask */
    PARALLEL_REGION
    {
        THREAD_ROWS(B, b0, b1);
        int rows = b1 - b0, c0, c1, r0, r1;
        int split = product_share(G, (long)G * H, nt_, THREAD_ID, B, b0, b1, &c0, &c1, &r0, &r1);
        float *pre = pre_all + (size_t)b0 * G, *hrec = hrec_all + (size_t)b0 * H; /* this thread's rows */
        const float *mask_b = mask ? mask + (size_t)b0 * H : NULL;
        struct weight_gemm product; /* columns c0..c1, rows r0..r1 of (B, G) = h_rec (B, H) @ W_hh^T */
        weight_gemm_init(&product, sgemm, 'T', c1 - c0, r1 - r0, H, w + (size_t)c0 * H, H, T);
        if (mask) mask_rows(rows, H, hs + (size_t)b0 * H, mask_b, hrec);
        for (int t = 0; t < T; t++) {
            size_t base = (size_t)t * B + b0;
            const float *hp = hs + base * H;
            shared_product(&product, split, c0, c1, r0, r1, mask ? hrec_all : hs + (size_t)t * B * H, H, pre_all, G);
            for (int r = 0; r < rows; r++) {
                size_t row = base + r, s = keep ? row : (size_t)b0 + r; /* s: where the step's saved values go */
                const float *h = hp + (size_t)r * H;
                float *p = pre + (size_t)r * G, *o = outs + row * H, *hn = hs + (row + B) * H;
                if (g_hh) {
                    float *rh = r_hats + s * G;
                    r_rstd[s] = normalize(p, rh, G, eps, NULL);
                    for (int k = 0; k < G; k++) p[k] = rh[k] * g_hh[k] + b_hh[k];
                } else
                    for (int k = 0; k < G; k++) p[k] += b_hh[k];
                gru_forward_row(H, gx + row * G, b_ih, p, h, acts + s * 4 * H, o);
                if (zh) zone_row(H, zh + row * H, h, o);
                if (valid && valid[row] == 0.0f) /* past this sequence's end: frozen state, zero output */
                    for (int j = 0; j < H; j++) { hn[j] = h[j]; o[j] = 0.0f; }
                else if (hn != o)
                    for (int j = 0; j < H; j++) hn[j] = o[j];
            }
            if (mask) mask_rows(rows, H, hs + (base + B) * H, mask_b, hrec);
        }
        weight_gemm_free(&product);
    }
}

/* Layer norm's backward for one row of n, in place: dy (n), the grad of y = x_hat * gain + shift,
   becomes the grad of x; adds dy * x_hat into d_gain and dy into d_shift (n each). */
static inline void ln_backward_row(int n, const float *restrict x_hat, float rstd, const float *restrict gain,
                                   float *restrict dy, float *restrict d_gain, float *restrict d_shift) {
    float mean_g = 0.0f, mean_gx = 0.0f;
    for (int k = 0; k < n; k++) {
        float g = dy[k] * gain[k];
        d_gain[k] += dy[k] * x_hat[k];
        d_shift[k] += dy[k];
        mean_g += g;
        mean_gx += g * x_hat[k];
    }
    mean_g /= n;
    mean_gx /= n;
    for (int k = 0; k < n; k++) dy[k] = rstd * (dy[k] * gain[k] - mean_g - x_hat[k] * mean_gx);
}

/* One row of its backward step: a as the forward row wrote it, h = h_{t-1}, d = grad of h_t
   (H) -> dx, drc (3H): grads of W_ih x_t + b_ih and of W_hh h_rec + b_hh; dh_prev (H): grad of
   h_{t-1} through the interpolation (the recurrent product's share is added by the caller). */
static inline void gru_backward_row(int H, const float *restrict a, const float *restrict h,
                                    const float *restrict dob, const float *restrict dhb, float *restrict dx,
                                    float *restrict drc, float *restrict dh_prev) {
    for (int j = 0; j < H; j++) {
        float r = a[j], z = a[H + j], n = a[2 * H + j], d = dob[j] + dhb[j];
        float dn = d * (1.0f - z) * (1.0f - n * n), dz = d * (h[j] - n) * z * (1.0f - z);
        float dr = dn * a[3 * H + j] * r * (1.0f - r);
        dx[j] = drc[j] = dr;
        dx[H + j] = drc[H + j] = dz;
        dx[2 * H + j] = dn;
        drc[2 * H + j] = dn * r;
        dh_prev[j] = d * z;
    }
}

/* Its backward pass, steps T - 1 down to 0. dh (B, H): grad of h_T on entry, of h_0 on return;
   d_out (T, B, H): grads of the outputs, laid out as d_layout says (grad_rows); hs, acts as the
   forward pass wrote them. Writes d_gx (T, B, G), the grads of W_ih x + b_ih, and d_rec
   (T, B, G), those of W_hh h_rec + b_hh (they differ in the n gate: r multiplies W_hn h + b_hn).
   Layer-norm GRU (g_hh, r_hats, r_rstd as the forward pass wrote them): d_rec are the grads of
   the raw W_hh h_rec, and each thread adds the grads of g_hh and b_hh of its rows into
   partials + id * 2G (g_hh's G, then b_hh's G; zeros on entry). zh: the forward pass's zoneout
   weights or NULL. work: B * 2H + threads * 2H floats. */
void gru_sequence_backward(int threads, sgemm_t sgemm, int T, int B, int H, const float *w, const float *mask,
                           const float *valid, const float *d_out, const long *d_layout, float *dh,
                           const float *hs, const float *acts, const float *g_hh, const float *r_hats,
                           const float *r_rstd, float *d_gx, float *d_rec, float *partials, const float *zh,
                           float *work) {
    int G = 3 * H;
    struct grad_rows d_rows = grad_rows_of(d_out, d_layout);
    PARALLEL_REGION
    {
        THREAD_ROWS(B, b0, b1);
        int rows = b1 - b0;
        float *keep_h = work + (size_t)B * H + (size_t)b0 * H; /* rows x H: zoneout's grads straight to h_{t-1} */
        float *no_grad = work + (size_t)B * 2 * H + (size_t)THREAD_ID * 2 * H, *d_row = no_grad + H;
        for (int j = 0; j < H && zh; j++) no_grad[j] = 0.0f;
        float *pg = g_hh ? partials + (size_t)THREAD_ID * 2 * G : NULL, *pb = pg ? pg + G : NULL;
        float *tmp = work + (size_t)b0 * H; /* rows x H: d_rec @ W_hh, of this thread's rows */
        int c0, c1, r0, r1;
        int split = product_share(H, (long)G * H, nt_, THREAD_ID, B, b0, b1, &c0, &c1, &r0, &r1);
        struct weight_gemm product; /* columns c0..c1, rows r0..r1 of (B, H) = d_rec (B, G) @ W_hh */
        weight_gemm_init(&product, sgemm, 'N', c1 - c0, r1 - r0, G, w + c0, H, T);
        for (int t = T - 1; t >= 0; t--) {
            size_t base = (size_t)t * B + b0;
            for (int r = 0; r < rows; r++) {
                size_t row = base + r, b = (size_t)b0 + r;
                float *dx = d_gx + row * G, *drc = d_rec + row * G, *dhb = dh + b * H, *dhp = tmp + (size_t)r * H;
                if (valid && valid[row] == 0.0f) { /* past the end: the grad passes to the frozen state */
                    for (int k = 0; k < G; k++) dx[k] = drc[k] = 0.0f;
                    continue;
                }
                const float *dob = grad_row(&d_rows, t, b, H, d_row);
                if (zh) { /* dhb becomes the grad of the cell's own new h; dob is folded in */
                    zone_backward_row(H, dob, zh + row * H, NULL, dhb, NULL, keep_h + (size_t)r * H, NULL);
                    dob = no_grad;
                }
                gru_backward_row(H, acts + row * 4 * H, hs + row * H, dob, dhb, dx, drc, dhp);
                for (int j = 0; j < H; j++) dhb[j] = dhp[j];
                if (g_hh) ln_backward_row(G, r_hats + row * G, r_rstd[row], g_hh, drc, pg, pb);
            }
            shared_product(&product, split, c0, c1, r0, r1, d_rec + (size_t)t * B * G, G, work, H);
            for (int r = 0; r < rows; r++) {
                size_t row = base + r, b = (size_t)b0 + r;
                if (valid && valid[row] == 0.0f) continue;
                float *dhb = dh + b * H;
                const float *m = mask ? mask + b * H : NULL, *tr = tmp + (size_t)r * H;
                for (int j = 0; j < H; j++) dhb[j] += m ? tr[j] * m[j] : tr[j];
                if (zh) for (int j = 0; j < H; j++) dhb[j] += keep_h[(size_t)r * H + j];
            }
        }
        weight_gemm_free(&product);
    }
}

/* Layer norm over the last axis of N rows of n: y = x_hat * gain + bias (bias may be NULL);
   writes x_hat (N, n), rstd (N), y (N, n). */
void layer_norm_rows_forward(int threads, int N, int n, float eps, const float *restrict x,
                             const float *restrict gain, const float *restrict bias, float *restrict x_hat,
                             float *restrict rstd, float *restrict y) {
    PARALLEL_FOR
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * n;
        float *xh = x_hat + (size_t)i * n, *yi = y + (size_t)i * n;
        rstd[i] = normalize(xi, xh, n, eps, NULL);
        for (int k = 0; k < n; k++) yi[k] = xh[k] * gain[k] + (bias ? bias[k] : 0.0f);
    }
}

/* Its backward: dy (N, n) -> dx (N, n); adds sum(dy * x_hat) into d_gain and sum(dy) into d_bias
   (d_bias may be NULL). partials: threads * 2n floats. */
void layer_norm_rows_backward(int threads, int N, int n, const float *restrict dy, const float *restrict x_hat,
                              const float *restrict rstd, const float *restrict gain, float *restrict dx,
                              float *restrict d_gain, float *restrict d_bias, float *restrict partials) {
    int used = 1;
    PARALLEL_REGION
    {
        THREAD_ROWS(N, i0, i1);
        float *pg = partials + (size_t)THREAD_ID * 2 * n, *pb = pg + n;
        #pragma omp single
        used = nt_;
        for (int k = 0; k < 2 * n; k++) pg[k] = 0.0f;
        for (int i = i0; i < i1; i++) {
            const float *d = dy + (size_t)i * n, *xh = x_hat + (size_t)i * n;
            float *o = dx + (size_t)i * n, s1 = 0.0f, s2 = 0.0f;
            for (int k = 0; k < n; k++) {
                float v = d[k] * gain[k];
                s1 += v;
                s2 += v * xh[k];
                pg[k] += d[k] * xh[k];
                pb[k] += d[k];
            }
            s1 /= n; s2 /= n;
            for (int k = 0; k < n; k++) o[k] = rstd[i] * (d[k] * gain[k] - s1 - xh[k] * s2);
        }
    }
    for (int id = 0; id < used; id++) {
        const float *pg = partials + (size_t)id * 2 * n, *pb = pg + n;
        for (int k = 0; k < n; k++) {
            d_gain[k] += pg[k];
            if (d_bias) d_bias[k] += pb[k];
        }
    }
}
"""

_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC"]  # compiling; linking takes -shared without
# -ffast-math: GCC links crtfastmath.o into a -ffast-math link, whose constructor turns on flush-to-zero
# and denormals-are-zero for the whole process once the library loads, changing torch's own numbers
_X86 = ["-mno-recip", "-mprefer-vector-width=512"] if platform.machine().lower() in ("x86_64", "amd64") else []
# x86: -ffast-math lets GCC divide vectors by a reciprocal estimate (rcpps and one Newton step), whose
# 1 / (1 + e) can miss 1 by an ulp where sigmoid saturates: on an AVX2 CPU, sigmoid(30) gave 1 - 6e-8
# and its slope 6e-8 instead of torch's 0 (AVX-512's estimate is exact there). And on a CPU with
# AVX-512, GCC's -march=native still vectorizes with 256-bit registers unless told to use 512: the
# minGRU training step at B=16, T=1024, H=256 went 24.5 -> 20.6 ms on a 2-vCPU Xeon (its exps and
# divisions twice as wide; libmvec has 16-wide expf); an AVX2 CPU ignores it. Dropped where the
# compiler refuses them.
_LINK = ["-shared", "-fPIC"]
_OPENMP = ["-fopenmp"]  # tried first; a compiler without OpenMP builds the same kernels single-threaded
_loaded: list = []  # [library or None] once tried


def _cache_dir() -> Path:
    return Path(os.environ.get("RNNKIT_CACHE", Path.home() / ".cache" / "rnnkit"))


def _build(path: Path) -> None:
    """Compile :data:`SOURCE` into ``path`` (atomically: temp file, then rename)."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler (cc or gcc) on PATH")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        source = Path(tmp) / "lstm_kernels.c"
        source.write_text(SOURCE)
        built, objects = Path(tmp) / path.name, Path(tmp) / "lstm_kernels.o"
        compile_ = [compiler, *_FLAGS, "-c", str(source), "-o", str(objects)]
        link = [compiler, *_LINK, str(objects), "-o", str(built), "-lm"]
        # Most capable first: exact division and OpenMP; without OpenMP the same kernels, one thread
        for extra, openmp in ((_X86, _OPENMP), ([], _OPENMP), (_X86, []), ([], [])):
            try:
                subprocess.run([*compile_, *extra, *openmp], check=True, capture_output=True)
                subprocess.run([*link, *openmp], check=True, capture_output=True)
                break
            except subprocess.CalledProcessError:
                if not (extra or openmp):
                    raise
        os.replace(built, path)


def library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first call), or ``None`` if unavailable or disabled."""
    if _loaded:
        return _loaded[0]
    lib = None
    if os.environ.get("RNNKIT_NATIVE", "1") != "0":
        flags = _FLAGS + _X86 + _LINK + _OPENMP
        cpu_flags = " ".join(sorted(blas.cpu_info()[1]))
        key = SOURCE + " ".join(flags) + cpu_flags  # -march=native: one build per kind of CPU
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
            pointer = ctypes.c_void_p
            for cell in ("mingru", "minlstm"):  # threads, sgemm, B, T, I, H, S, then the tensors
                sizes = [ctypes.c_int, pointer] + [ctypes.c_int] * 5
                getattr(lib, f"{cell}_sequence_forward").argtypes = sizes + [pointer] * 7
                getattr(lib, f"{cell}_sequence_backward").argtypes = sizes + [pointer] * 13
            lib.lstm_sequence_forward.argtypes = [ctypes.c_int, ctypes.c_void_p, *ints, ctypes.c_float]
            lib.lstm_sequence_forward.argtypes += [ctypes.c_void_p] * 23 + [ctypes.c_int, ctypes.c_void_p]
            lib.lstm_sequence_backward.argtypes = [ctypes.c_int, ctypes.c_void_p] + [ctypes.c_int] * 4
            lib.lstm_sequence_backward.argtypes += [ctypes.c_void_p] * 31
            lib.gru_sequence_forward.argtypes = [ctypes.c_int, ctypes.c_void_p, *ints, ctypes.c_float]
            lib.gru_sequence_forward.argtypes += [ctypes.c_void_p] * 13 + [ctypes.c_int, ctypes.c_void_p]
            lib.gru_sequence_backward.argtypes = [ctypes.c_int, ctypes.c_void_p, *ints] + [ctypes.c_void_p] * 16
            lib.set_packed_gemm.argtypes, lib.set_packed_gemm.restype = [ctypes.c_void_p] * 3, None
            lib.parallel_sgemm.argtypes = [ctypes.c_int, pointer] + [ctypes.c_int] * 5 + [pointer, ctypes.c_int] * 2
            lib.parallel_sgemm.argtypes += [ctypes.c_float, pointer, ctypes.c_int]
            lib.parallel_sgemm.restype = None
            lib.set_column_split_min.argtypes, lib.set_column_split_min.restype = [ctypes.c_long], None
            lib.layer_norm_rows_forward.argtypes = [*ints, ctypes.c_float] + [ctypes.c_void_p] * 6
            lib.layer_norm_rows_backward.argtypes = ints + [ctypes.c_void_p] * 8
            kernels = ("ln_lstm", "lstm", "mingru_sequence", "minlstm_sequence", "lstm_sequence", "gru_sequence",
                       "layer_norm_rows")  # fmt: skip
            for kernel in kernels:
                getattr(lib, f"{kernel}_forward").restype = getattr(lib, f"{kernel}_backward").restype = None
        except (OSError, subprocess.CalledProcessError):
            lib = None  # no compiler or a failed build: the torch code runs instead
        if lib is not None and os.environ.get("RNNKIT_COLUMN_SPLIT_MIN"):  # e.g. 0: every product by columns
            lib.set_column_split_min(int(os.environ["RNNKIT_COLUMN_SPLIT_MIN"]))
    _loaded.append(lib)
    return lib


def sgemm() -> int | None:
    """The address of the BLAS ``sgemm_`` (Fortran interface, 32-bit integers) the whole-sequence
    kernels call, or ``None``: torch's own (official x86 builds of torch link MKL into
    ``libtorch_cpu`` and export it) or OpenBLAS's, as :mod:`rnnkit.nn.blas` chooses (OpenBLAS on AMD
    CPUs; ``RNNKIT_BLAS``). ``RNNKIT_SGEMM=0`` turns it off (the per-step kernels run instead)."""
    if _sgemm:
        return _sgemm[0]
    name, address = "none", None
    if os.environ.get("RNNKIT_SGEMM", "1") != "0" and library() is not None:
        name, address = blas.find_sgemm()
        if address is not None:  # MKL's packing API, only with MKL's sgemm_
            use_packed_gemm(name == "torch" and os.environ.get("RNNKIT_SGEMM_PACK", "1") != "0")
    _sgemm[:] = [address, blas.describe(name) if address is not None else "none"]
    return address


def sgemm_name() -> str:
    """Which ``sgemm_`` :func:`sgemm` found: ``"torch"`` (MKL on x86), ``"openblas (<kernels>)"``
    or ``"none"``."""
    sgemm()
    return _sgemm[1] if len(_sgemm) > 1 else "none"


def uses_openblas() -> bool:
    """Whether the kernels call OpenBLAS's ``sgemm_`` (:mod:`rnnkit.nn.blas`), so that :func:`mm`
    goes through it too."""
    return sgemm() is not None and sgemm_name().startswith("openblas")


def mm(a: Tensor, b: Tensor, out: Tensor | None = None, accumulate: bool = False) -> Tensor:
    """``a @ b``, ``(m, k) @ (k, n) -> (m, n)``, into ``out`` if given (contiguous), added to it with
    ``accumulate``: the big products of the sequence Functions (input projections, weight
    gradients). Where the kernels call OpenBLAS (:mod:`rnnkit.nn.blas`: AMD CPUs, on which torch's
    MKL runs at half the speed), through it, the rows of the output shared out to torch's threads
    (``parallel_sgemm``); elsewhere, or while autograd records (a backward pass with
    ``create_graph=True``), with ``torch.mm``."""
    if not _openblas_products(a, b, out):
        if out is None:
            return a @ b
        return out.addmm_(a, b) if accumulate else torch.mm(a, b, out=out)
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = buffers.empty(a, m, n)
    a, trans_a, ld_a = _column_major(a)
    b, trans_b, ld_b = _column_major(b)
    # Column-major, out^T (n, m) = b^T (n, k) a^T (k, m): b is the BLAS's A, a its B
    library().parallel_sgemm(threads(), sgemm(), trans_b, trans_a, n, m, k, b.data_ptr(), ld_b, a.data_ptr(),
                             ld_a, 1.0 if accumulate else 0.0, out.data_ptr(), max(1, n))  # fmt: skip
    return out


def _openblas_products(a: Tensor, b: Tensor, out: Tensor | None) -> bool:
    """Whether :func:`mm` takes ``parallel_sgemm``: OpenBLAS's sgemm_, float32 CPU matrices of
    matching sizes, a contiguous ``out`` and autograd not recording."""
    if torch.is_grad_enabled() or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        return False
    if not usable(a, b) or not uses_openblas() or 0 in (*a.shape, b.shape[1]):
        return False
    return out is None or (out.is_contiguous() and out.shape == (a.shape[0], b.shape[1]) and usable(out))


def _column_major(t: Tensor) -> tuple[Tensor, int, int]:
    """``(t', transposed, ld)``: ``t (rows, cols)`` as the BLAS reads a matrix. A row-major ``t`` is
    its transpose in column-major order, ``ld`` its row stride (``transposed`` 0: the product
    above wants the transposes); a transposed view (column-major) is read as it is (1). Any other
    layout is copied row-major first."""
    rows, cols = t.shape
    if t.stride(1) == 1 and t.stride(0) >= max(1, cols):
        return t, 0, t.stride(0)
    if t.stride(0) == 1 and t.stride(1) >= max(1, rows):
        return t, 1, t.stride(1)
    t = t.contiguous()
    return t, 0, max(1, cols)


COLUMN_SPLIT_MIN = 131072  # the C kernels' default (column_split_min): W_hh floats, G x H


def set_column_split_min(floats: int) -> None:
    """Split each step's recurrent product of the whole-sequence LSTM/GRU kernels by columns across
    threads (two barriers per step) where ``W_hh`` has at least ``floats`` floats (``G x H``), by
    batch rows (no barriers) below: :data:`COLUMN_SPLIT_MIN` by default; 0 or a huge value runs
    one mode everywhere (the tests do; so does ``RNNKIT_COLUMN_SPLIT_MIN`` when the library loads)."""
    lib = library()
    if lib is not None:
        lib.set_column_split_min(ctypes.c_long(floats))


def use_packed_gemm(on: bool) -> bool:
    """Let the whole-sequence kernels pack ``W_hh`` once per call with MKL's ``sgemm_pack`` /
    ``sgemm_compute`` (about 1.6x faster per-step products at B=32, H=512 on a Xeon than plain
    ``sgemm_``, which packs at every call), where torch's library exports them; ``on=False`` (or
    ``RNNKIT_SGEMM_PACK=0``) goes back to plain ``sgemm_``. :func:`sgemm` turns it on with MKL's
    ``sgemm_`` only. Returns whether packing is on."""
    lib = library()
    if lib is None:
        return False
    functions = (None, None, None)
    if on:
        try:
            torch_cpu = blas.torch_cpu()
            names = ("sgemm_pack_get_size_", "sgemm_pack_", "sgemm_compute_")
            functions = tuple(ctypes.cast(getattr(torch_cpu, name), ctypes.c_void_p).value for name in names)
        except AttributeError:
            functions = (None, None, None)
    lib.set_packed_gemm(*functions)
    _packed[:] = [functions[0] is not None]
    return _packed[0]


def packed_gemm() -> bool:
    """Whether the kernels pack ``W_hh`` with MKL's API now (:func:`use_packed_gemm`)."""
    return bool(_packed and _packed[0])


_packed: list = []  # [whether MKL's packing is on] once set
_sgemm: list = []  # [address or None, sgemm_name] once looked up


def usable(*tensors: Tensor) -> bool:
    """Whether the C kernels apply: float32 CPU tensors, and a library that built."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) and library() is not None


def whole_sequence(*tensors: Tensor) -> bool:
    """Whether the whole-sequence C calls run on these tensors: the C kernels apply
    (:func:`usable`) and torch's ``sgemm_`` was found."""
    return usable(*tensors) and sgemm() is not None


def threads() -> int:
    """Threads for a kernel call: torch's intra-op thread count (``torch.set_num_threads``)."""
    return torch.get_num_threads()


def ptr(t: Tensor | int | None) -> int | None:
    """The address of a contiguous float32 tensor's data (``None`` for ``None``; an ``int`` is an
    address already: a tensor the kernel reads with its own strides, as :func:`grad_rows` lays out)."""
    if t is None or isinstance(t, int):
        return t
    assert t.is_contiguous(), "C kernels need contiguous tensors"
    return t.data_ptr()


def grad_rows(d: Tensor) -> tuple[Tensor, Tensor]:
    """A grad of outputs ``(N0, N1, H)`` as the C kernels read it in place (``struct grad_rows``):
    the tensor, copied only where its last axis is neither contiguous nor expanded, and its layout
    ``(3,)`` int64: the strides of the first two axes, and 1 where the last axis has stride 0 (one
    float for all ``H``, as ``out.sum()`` gives). Autograd hands the sequence Functions the grad of
    their ``(T, B, H)`` output as a transposed view of the ``(B, T, H)`` grad, or expanded: read in
    place, neither costs the copy ``contiguous()`` would make (a layer-norm LSTM at B=64, T=256,
    H=512 on a 2-vCPU Xeon: 11-22 ms of a 0.52-0.54 s training step, A/B in one process)."""
    if d.shape[-1] > 1 and d.stride(-1) not in (0, 1):
        d = buffers.empty(d, *d.shape).copy_(d)
    same = int(d.shape[-1] > 1 and d.stride(-1) == 0)
    return d, torch.tensor([d.stride(0), d.stride(1), same], dtype=torch.int64)
