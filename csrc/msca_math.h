// The MSCA math for the CPU driver, and the pieces the CUDA kernels share with it.
//
// Every routine works on a group of L pixels ("lanes") stored with a row stride, so the
// CPU driver calls them on tiles of many pixels (the inner lane loops vectorise). Who uses
// what:
//   - the CPU driver in float64 (and float16/bfloat16 inputs, computed in float) calls
//     every routine here as written;
//   - the CPU driver's float32 path replaces online_softmax_tile, exp_shift,
//     softmax_columns and the three products (project_add, expand_row, outer_accumulate)
//     with the explicit-vector versions of msca_cpu_fp32.h: same formulas, register-blocked
//     so that each load feeds several FMAs and with a vector exp, because the compiler's
//     auto-vectorisation of these loops left the FMA units idle half the time;
//   - the CUDA kernels (msca_cuda_kernels.cuh) hold KP per-thread values in registers and
//     need loops over compile-time KP, so they keep their own one-pixel versions of the
//     products and softmaxes and share load, exp_, max_ and combine_partials.
// Notation as in DESIGN.md section 3:
//   Z = [Fx2; Fc2] (C2 x P2), S = phi Z (K x P2), P = exp(S - lse) (spatial softmax),
//   T = psi Fc1 + b (K x P1), beta = softmax over K of T, out = Vt beta.
// acc_t is float for float/half/bfloat16 inputs and double for double inputs.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define MSCA_HD __host__ __device__ __forceinline__
#define MSCA_SIMD
#define MSCA_SIMD_SUM(var)
#else
// always_inline: the CPU driver inlines these into functions compiled once per
// instruction set (target_clones), so each copy gets that instruction set's loops.
#define MSCA_HD inline __attribute__((always_inline))
#define MSCA_PRAGMA(x) _Pragma(#x)
#define MSCA_SIMD MSCA_PRAGMA(omp simd)
#define MSCA_SIMD_SUM(var) MSCA_PRAGMA(omp simd reduction(+ : var))
#endif

namespace msca_fast {
namespace math {

template <typename acc_t, typename in_t>
MSCA_HD acc_t load(const in_t* p) {
  return static_cast<acc_t>(*p);
}

template <typename acc_t>
MSCA_HD acc_t exp_(acc_t x) {
  return std::exp(x);
}

// exp by range reduction, shared by the scalar and the vector (msca_cpu_fp32.h) CPU code:
// exp(x) = 2^n * e^r with n = round(x / ln 2), |r| <= ln(2)/2, e^r by a degree-6 Taylor
// polynomial (relative error ~2e-7, about 2 ulp). V is float or a vector of floats.
// Rounds to nearest by adding and subtracting 1.5 * 2^23: plain arithmetic vectorises.
template <typename V>
MSCA_HD V exp_exponent(V clamped) {
  return (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
}

template <typename V>
MSCA_HD V exp_mantissa(V clamped, V n) {
  const V r = clamped - n * 0.693145751953125f - n * 1.428606765330187e-06f;
  V p = r * (1.0f / 720.0f) + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  return p * r + 1.0f;
}

#ifndef __CUDACC__
// exp for float on the CPU without a library call, so that loops over pixels vectorise.
// exp(-inf) and anything below the float range give exactly 0; the inputs here are
// logits minus a max (<= 0).
template <>
MSCA_HD float exp_<float>(float x) {
  float clamped = x > 88.0f ? 88.0f : x;
  clamped = clamped < -87.0f ? -87.0f : clamped;
  const float n = exp_exponent(clamped);
  const float scale = __builtin_bit_cast(float, (static_cast<int>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : exp_mantissa(clamped, n) * scale;
}
#endif

// max and min that return NaN when either operand is NaN (a != a only for NaN), so that
// poison read by a racing thread survives a reduction; for numbers they are a > b ? a : b
// and a < b ? a : b as before, bit for bit.
template <typename acc_t>
MSCA_HD acc_t max_(acc_t a, acc_t b) {
  return (a > b || a != a) ? a : b;
}

template <typename acc_t>
MSCA_HD acc_t min_(acc_t a, acc_t b) {
  return (a < b || a != a) ? a : b;
}

// y[k][l] += sum_c w[k][c] * x[c][l]      (k < K, c < C, l < L)
// w: K rows of stride ldw; x: C rows of stride ldx; y: K rows of stride ldy.
// Logits S = phi Z and T = psi Fc1, and the backward's dP = dV^T Fx2, dbeta = Vt^T dOut.
template <typename in_t, typename acc_t>
MSCA_HD void project_add(const acc_t* __restrict__ w, int64_t ldw, int K, int C,
                         const in_t* __restrict__ x, int64_t ldx,
                         acc_t* __restrict__ y, int64_t ldy, int L) {
  int c = 0;
  // Four input rows per sweep: four FMAs per load/store of y.
  for (; c + 4 <= C; c += 4) {
    const in_t* x0 = x + (c + 0) * ldx;
    const in_t* x1 = x + (c + 1) * ldx;
    const in_t* x2 = x + (c + 2) * ldx;
    const in_t* x3 = x + (c + 3) * ldx;
    for (int k = 0; k < K; ++k) {
      const acc_t w0 = w[k * ldw + c], w1 = w[k * ldw + c + 1];
      const acc_t w2 = w[k * ldw + c + 2], w3 = w[k * ldw + c + 3];
      acc_t* yk = y + k * ldy;
      MSCA_SIMD
      for (int l = 0; l < L; ++l) {
        yk[l] += w0 * load<acc_t>(x0 + l) + w1 * load<acc_t>(x1 + l) +
                 w2 * load<acc_t>(x2 + l) + w3 * load<acc_t>(x3 + l);
      }
    }
  }
  for (; c < C; ++c) {
    const in_t* xc = x + c * ldx;
    for (int k = 0; k < K; ++k) {
      const acc_t wk = w[k * ldw + c];
      acc_t* yk = y + k * ldy;
      MSCA_SIMD
      for (int l = 0; l < L; ++l) yk[l] += wk * load<acc_t>(xc + l);
    }
  }
}

// row[l] = sum_k a[k] * y[k][l] for one output row r (a = that row's K coefficients).
// Outputs out = Vt beta, dFc1 = psi^T dT, dZ = phi^T dS and dFx2 = [dV, phi_x^T] [P; dS].
template <typename acc_t>
MSCA_HD void expand_row(const acc_t* __restrict__ a, int K, const acc_t* __restrict__ y,
                        int64_t ldy, acc_t* __restrict__ row, int L) {
  MSCA_SIMD
  for (int l = 0; l < L; ++l) row[l] = acc_t(0);
  int k = 0;
  for (; k + 4 <= K; k += 4) {
    const acc_t a0 = a[k], a1 = a[k + 1], a2 = a[k + 2], a3 = a[k + 3];
    const acc_t* y0 = y + (k + 0) * ldy;
    const acc_t* y1 = y + (k + 1) * ldy;
    const acc_t* y2 = y + (k + 2) * ldy;
    const acc_t* y3 = y + (k + 3) * ldy;
    MSCA_SIMD
    for (int l = 0; l < L; ++l) row[l] += a0 * y0[l] + a1 * y1[l] + a2 * y2[l] + a3 * y3[l];
  }
  for (; k < K; ++k) {
    const acc_t ak = a[k];
    const acc_t* yk = y + k * ldy;
    MSCA_SIMD
    for (int l = 0; l < L; ++l) row[l] += ak * yk[l];
  }
}

// acc[r][k] += sum_l x[r][l] * y[k][l]     (r < R, k < K): reductions over pixels.
// V += Fx2 P^T, dVt += dOut beta^T, dpsi^T += Fc1 dT^T, dphi^T += Z dS^T.
template <typename in_t, typename acc_t>
MSCA_HD void outer_accumulate(const in_t* __restrict__ x, int64_t ldx, int R,
                              const acc_t* __restrict__ y, int64_t ldy, int K,
                              acc_t* __restrict__ acc, int L) {
  for (int r = 0; r < R; ++r) {
    const in_t* xr = x + r * ldx;
    for (int k = 0; k < K; ++k) {
      const acc_t* yk = y + k * ldy;
      acc_t s = acc_t(0);
      MSCA_SIMD_SUM(s)
      for (int l = 0; l < L; ++l) s += load<acc_t>(xr + l) * yk[l];
      acc[r * K + k] += s;
    }
  }
}

// Spatial softmax, online over pixel tiles (flash-decoding style), for K rows of L logits.
// On entry y holds the tile's logits; on exit y = exp(y - m_new). Running max m and sum s
// are updated; scale[k] = exp(m_old - m_new) is what earlier accumulations must be scaled by.
template <typename acc_t>
MSCA_HD void online_softmax_tile(acc_t* __restrict__ y, int64_t ldy, int K, int L,
                                 acc_t* __restrict__ m, acc_t* __restrict__ s,
                                 acc_t* __restrict__ scale) {
  for (int k = 0; k < K; ++k) {
    acc_t* yk = y + k * ldy;
    acc_t tile_max = yk[0];
    for (int l = 1; l < L; ++l) tile_max = max_(tile_max, yk[l]);
    const acc_t m_new = max_(m[k], tile_max);
    scale[k] = exp_(m[k] - m_new);  // m[k] = -inf on the first tile: scale 0
    acc_t sum = acc_t(0);
    MSCA_SIMD_SUM(sum)
    for (int l = 0; l < L; ++l) {
      yk[l] = exp_(yk[l] - m_new);
      sum += yk[l];
    }
    s[k] = s[k] * scale[k] + sum;
    m[k] = m_new;
  }
}

// P = exp(S - lse) for K rows of L logits, in place (the backward's recomputed attention).
template <typename acc_t>
MSCA_HD void exp_shift(acc_t* __restrict__ y, int64_t ldy, int K, int L,
                       const acc_t* __restrict__ lse) {
  for (int k = 0; k < K; ++k) {
    acc_t* yk = y + k * ldy;
    const acc_t shift = lse[k];
    MSCA_SIMD
    for (int l = 0; l < L; ++l) yk[l] = exp_(yk[l] - shift);
  }
}

// Channel softmax: each of the L columns of y (K x L) becomes softmax over its K entries.
// colmax and colsum are L-long scratch.
template <typename acc_t>
MSCA_HD void softmax_columns(acc_t* __restrict__ y, int64_t ldy, int K, int L,
                             acc_t* __restrict__ colmax, acc_t* __restrict__ colsum) {
  MSCA_SIMD
  for (int l = 0; l < L; ++l) {
    colmax[l] = y[l];
    colsum[l] = acc_t(0);
  }
  for (int k = 1; k < K; ++k) {
    MSCA_SIMD
    for (int l = 0; l < L; ++l) colmax[l] = max_(colmax[l], y[k * ldy + l]);
  }
  for (int k = 0; k < K; ++k) {
    MSCA_SIMD
    for (int l = 0; l < L; ++l) {
      y[k * ldy + l] = exp_(y[k * ldy + l] - colmax[l]);
      colsum[l] += y[k * ldy + l];
    }
  }
  MSCA_SIMD
  for (int l = 0; l < L; ++l) colsum[l] = acc_t(1) / colsum[l];
  for (int k = 0; k < K; ++k) {
    MSCA_SIMD
    for (int l = 0; l < L; ++l) y[k * ldy + l] *= colsum[l];
  }
}

// Backward of the channel softmax, in place: g (K x L) holds dbeta on entry and
// dT = beta * (dbeta - sum_k beta dbeta) on exit. dot is L-long scratch.
template <typename acc_t>
MSCA_HD void softmax_columns_backward(const acc_t* __restrict__ beta, acc_t* __restrict__ g,
                                      int64_t ld, int K, int L, acc_t* __restrict__ dot) {
  MSCA_SIMD
  for (int l = 0; l < L; ++l) dot[l] = acc_t(0);
  for (int k = 0; k < K; ++k) {
    MSCA_SIMD
    for (int l = 0; l < L; ++l) dot[l] += beta[k * ld + l] * g[k * ld + l];
  }
  for (int k = 0; k < K; ++k) {
    MSCA_SIMD
    for (int l = 0; l < L; ++l) g[k * ld + l] = beta[k * ld + l] * (g[k * ld + l] - dot[l]);
  }
}

// Backward of the spatial softmax, in place: g (K x L) holds dP on entry and
// dS = P * (dP - delta) on exit, delta[k] = sum_n dV[n][k] V[n][k].
template <typename acc_t>
MSCA_HD void softmax_rows_backward(const acc_t* __restrict__ p, acc_t* __restrict__ g, int64_t ld,
                                   int K, int L, const acc_t* __restrict__ delta) {
  for (int k = 0; k < K; ++k) {
    const acc_t dk = delta[k];
    MSCA_SIMD
    for (int l = 0; l < L; ++l) g[k * ld + l] = p[k * ld + l] * (g[k * ld + l] - dk);
  }
}

// Merges the partial spatial softmax states of `chunks` pixel ranges for one row k:
// m[j * m_stride], s[j * s_stride] are chunk j's running max and sum. Returns
// lse = M + log(L_total) and writes weight[j] = exp(m[j] - lse) = exp(m[j] - M) / L_total,
// what chunk j's accumulator is multiplied by (no division: on a GPU a float64 division
// calls a subroutine that needs a stack frame).
template <typename acc_t>
MSCA_HD acc_t combine_partials(const acc_t* m, const acc_t* s, int64_t m_stride, int64_t s_stride, int chunks,
                               acc_t* weight) {
  acc_t big = m[0];
  for (int j = 1; j < chunks; ++j) big = max_(big, m[j * m_stride]);
  acc_t total = acc_t(0);
  for (int j = 0; j < chunks; ++j) total += s[j * s_stride] * exp_(m[j * m_stride] - big);
  const acc_t lse = big + std::log(total);
  for (int j = 0; j < chunks; ++j) weight[j] = exp_(m[j * m_stride] - lse);
  return lse;
}

}  // namespace math
}  // namespace msca_fast
