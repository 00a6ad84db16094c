// CPU fp32 versions of the msca_math.h tile routines, written with explicit vectors:
// the three small products (project_add, expand_row over many rows, outer_accumulate)
// register-blocked so each loaded value feeds several FMAs, and the softmax steps with a
// vector exp. Same formulas as msca_math.h; the double path (and the CUDA kernels) keep
// the plain routines there, so the fp64 tests check the shared math and the fp32 tests
// check these.
//
// Written with GCC vector extensions: 8 floats per vector, which the AVX2 clone of the
// calling task maps to one ymm register and the baseline clone to two xmm registers.
#pragma once

#include <cstdint>
#include <cstring>

#include "msca_math.h"

namespace msca_fast {
namespace cpu {

typedef float f8 __attribute__((vector_size(32)));
typedef int i8 __attribute__((vector_size(32)));
constexpr int kLanes = 8;
constexpr int kPixelBlock = 2 * kLanes;  // pixels per register block

MSCA_HD f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

MSCA_HD void store8(float* p, f8 v) { std::memcpy(p, &v, sizeof(v)); }

// The hot loops multiply vectors by scalars directly (scalar * f8), which compiles to a
// broadcast from memory; building a vector from an initialiser list may not.
MSCA_HD f8 splat(float x) { return f8{} + x; }

MSCA_HD float hsum(f8 v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

MSCA_HD float hmax(f8 v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

MSCA_HD f8 vmax(f8 a, f8 b) { return a > b ? a : b; }

// math::exp_<float> on 8 lanes: the same range reduction and polynomial.
MSCA_HD f8 exp8(f8 x) {
  f8 clamped = x > splat(88.0f) ? splat(88.0f) : x;
  clamped = clamped < splat(-87.0f) ? splat(-87.0f) : clamped;
  const f8 n = math::exp_exponent(clamped);
  const i8 bits = (__builtin_convertvector(n, i8) + 127) << 23;
  const f8 scale = (f8)bits;  // a same-size vector cast reinterprets the bits
  return x < splat(-87.0f) ? splat(0.0f) : math::exp_mantissa(clamped, n) * scale;
}

// math::online_softmax_tile for float.
MSCA_HD void online_softmax_tile(float* __restrict__ y, int64_t ldy, int K, int L,
                                 float* __restrict__ m, float* __restrict__ s,
                                 float* __restrict__ scale) {
  const int L_blocked = L - L % kLanes;
  for (int k = 0; k < K; ++k) {
    float* yk = y + k * ldy;
    float tile_max = yk[0];
    if (L_blocked > 0) {
      f8 vm = load8(yk);
      for (int l = kLanes; l < L_blocked; l += kLanes) vm = vmax(vm, load8(yk + l));
      tile_max = hmax(vm);
    }
    for (int l = L_blocked; l < L; ++l) tile_max = yk[l] > tile_max ? yk[l] : tile_max;
    const float m_new = m[k] > tile_max ? m[k] : tile_max;
    scale[k] = math::exp_(m[k] - m_new);
    f8 vsum = splat(0.f);
    const f8 shift = splat(m_new);
    for (int l = 0; l < L_blocked; l += kLanes) {
      const f8 e = exp8(load8(yk + l) - shift);
      store8(yk + l, e);
      vsum += e;
    }
    float sum = hsum(vsum);
    for (int l = L_blocked; l < L; ++l) {
      yk[l] = math::exp_(yk[l] - m_new);
      sum += yk[l];
    }
    s[k] = s[k] * scale[k] + sum;
    m[k] = m_new;
  }
}

// math::exp_shift for float.
MSCA_HD void exp_shift(float* __restrict__ y, int64_t ldy, int K, int L, const float* __restrict__ lse) {
  const int L_blocked = L - L % kLanes;
  for (int k = 0; k < K; ++k) {
    float* yk = y + k * ldy;
    const f8 shift = splat(lse[k]);
    for (int l = 0; l < L_blocked; l += kLanes) store8(yk + l, exp8(load8(yk + l) - shift));
    for (int l = L_blocked; l < L; ++l) yk[l] = math::exp_(yk[l] - lse[k]);
  }
}

// math::softmax_columns for float: 8 columns at a time, the tail by the shared routine.
MSCA_HD void softmax_columns(float* __restrict__ y, int64_t ldy, int K, int L,
                             float* __restrict__ colmax, float* __restrict__ colsum) {
  const int L_blocked = L - L % kLanes;
  for (int l = 0; l < L_blocked; l += kLanes) {
    f8 mx = load8(y + l);
    for (int k = 1; k < K; ++k) mx = vmax(mx, load8(y + k * ldy + l));
    f8 sum = splat(0.f);
    for (int k = 0; k < K; ++k) {
      const f8 e = exp8(load8(y + k * ldy + l) - mx);
      store8(y + k * ldy + l, e);
      sum += e;
    }
    const f8 inv = splat(1.0f) / sum;
    for (int k = 0; k < K; ++k) store8(y + k * ldy + l, load8(y + k * ldy + l) * inv);
  }
  if (L_blocked < L) math::softmax_columns(y + L_blocked, ldy, K, L - L_blocked, colmax, colsum);
}

// One register block of gemm_rows: rows [r, r+RB) x pixels [l, l+16) of y, summed over j.
// Per j, 2 vector loads of x and RB broadcasts of a feed 2*RB FMAs.
template <int RB>
MSCA_HD void gemm_rows_block(const float* __restrict__ a, int64_t lda, int r, int J,
                             const float* __restrict__ x, int64_t ldx, float* __restrict__ y, int64_t ldy,
                             int l, bool accumulate) {
  f8 c[RB][2];
  for (int i = 0; i < RB; ++i) {
    c[i][0] = accumulate ? load8(y + (r + i) * ldy + l) : splat(0.f);
    c[i][1] = accumulate ? load8(y + (r + i) * ldy + l + kLanes) : splat(0.f);
  }
  for (int j = 0; j < J; ++j) {
    const f8 x0 = load8(x + j * ldx + l), x1 = load8(x + j * ldx + l + kLanes);
    for (int i = 0; i < RB; ++i) {
      const float w = a[(r + i) * lda + j];
      c[i][0] += w * x0;
      c[i][1] += w * x1;
    }
  }
  for (int i = 0; i < RB; ++i) {
    store8(y + (r + i) * ldy + l, c[i][0]);
    store8(y + (r + i) * ldy + l + kLanes, c[i][1]);
  }
}

// y[r][l] (+)= sum_j a[r][j] * x[j][l]  for r < R, j < J, l < L (accumulate: add to y),
// in register blocks of 4 rows x 16 pixels. x should be cache-resident (a packed tile).
// kRowsOuter: rows outer, pixels inner, so each output row is written front to back (for
// the expansions into image rows, where x is the small K x L attention tile). Otherwise
// pixels outer: the J x 16 column of x stays in L1 for all row blocks (for the
// projections, where x has hundreds of rows and y only K).
template <bool kRowsOuter>
MSCA_HD void gemm_rows(const float* __restrict__ a, int64_t lda, int R, int J,
                       const float* __restrict__ x, int64_t ldx, float* __restrict__ y, int64_t ldy,
                       int L, bool accumulate) {
  const int L_blocked = L - L % kPixelBlock;
  const int R_blocked = R - R % 4;
  if (kRowsOuter) {
    for (int r = 0; r < R_blocked; r += 4)
      for (int l = 0; l < L_blocked; l += kPixelBlock) gemm_rows_block<4>(a, lda, r, J, x, ldx, y, ldy, l, accumulate);
  } else {
    for (int l = 0; l < L_blocked; l += kPixelBlock)
      for (int r = 0; r < R_blocked; r += 4) gemm_rows_block<4>(a, lda, r, J, x, ldx, y, ldy, l, accumulate);
  }
  for (int r = R_blocked; r < R; ++r)
    for (int l = 0; l < L_blocked; l += kPixelBlock) gemm_rows_block<1>(a, lda, r, J, x, ldx, y, ldy, l, accumulate);
  for (int l = L_blocked; l < L; ++l) {
    for (int r = 0; r < R; ++r) {
      float s = accumulate ? y[r * ldy + l] : 0.f;
      for (int j = 0; j < J; ++j) s += a[r * lda + j] * x[j * ldx + l];
      y[r * ldy + l] = s;
    }
  }
}

// acc[r][k] += sum_l x[r][l] * y[k][l]  for r < R, k < K.
// Blocks of 2 rows x 4 k: per 8 pixels, 6 vector loads feed 8 FMAs.
MSCA_HD void gemm_dots(const float* __restrict__ x, int64_t ldx, int R, const float* __restrict__ y,
                       int64_t ldy, int K, float* __restrict__ acc, int L) {
  const int L_blocked = L - L % kLanes;
  int r = 0;
  for (; r + 2 <= R; r += 2) {
    const float* x0 = x + r * ldx;
    const float* x1 = x0 + ldx;
    int k = 0;
    for (; k + 4 <= K; k += 4) {
      f8 c0[4] = {splat(0.f), splat(0.f), splat(0.f), splat(0.f)};
      f8 c1[4] = {splat(0.f), splat(0.f), splat(0.f), splat(0.f)};
      for (int l = 0; l < L_blocked; l += kLanes) {
        const f8 a0 = load8(x0 + l), a1 = load8(x1 + l);
        for (int i = 0; i < 4; ++i) {
          const f8 b = load8(y + (k + i) * ldy + l);
          c0[i] += a0 * b;
          c1[i] += a1 * b;
        }
      }
      for (int i = 0; i < 4; ++i) {
        float s0 = hsum(c0[i]), s1 = hsum(c1[i]);
        for (int l = L_blocked; l < L; ++l) {
          s0 += x0[l] * y[(k + i) * ldy + l];
          s1 += x1[l] * y[(k + i) * ldy + l];
        }
        acc[r * K + k + i] += s0;
        acc[(r + 1) * K + k + i] += s1;
      }
    }
    for (; k < K; ++k) {
      f8 c0 = splat(0.f), c1 = splat(0.f);
      const float* yk = y + k * ldy;
      for (int l = 0; l < L_blocked; l += kLanes) {
        const f8 b = load8(yk + l);
        c0 += load8(x0 + l) * b;
        c1 += load8(x1 + l) * b;
      }
      float s0 = hsum(c0), s1 = hsum(c1);
      for (int l = L_blocked; l < L; ++l) {
        s0 += x0[l] * yk[l];
        s1 += x1[l] * yk[l];
      }
      acc[r * K + k] += s0;
      acc[(r + 1) * K + k] += s1;
    }
  }
  for (; r < R; ++r) math::outer_accumulate(x + r * ldx, ldx, 1, y, ldy, K, acc + r * K, L);
}

// acc[r][k] += sum_l x[r][l] * yt[l][k] with y given transposed and zero-padded to KV
// vectors per pixel (yt: L x 8*KV). Accumulating along k instead of l needs no horizontal
// sums: per pixel, RB broadcasts of x and KV loads of yt feed RB*KV FMAs.
template <int KV>
MSCA_HD void gemm_dots_transposed(const float* __restrict__ x, int64_t ldx, int R,
                                  const float* __restrict__ yt, int K, float* __restrict__ acc, int L) {
  constexpr int RB = KV >= 8 ? 1 : 8 / KV;  // rows per register block: RB*KV = 8 accumulators
  constexpr int KP = KV * kLanes;
  for (int r0 = 0; r0 < R; r0 += RB) {
    const int rows = R - r0 < RB ? R - r0 : RB;
    f8 c[RB][KV];
    for (int i = 0; i < RB; ++i)
      for (int v = 0; v < KV; ++v) c[i][v] = splat(0.f);
    if (rows == RB) {
      for (int l = 0; l < L; ++l) {
        f8 b[KV];
        for (int v = 0; v < KV; ++v) b[v] = load8(yt + l * KP + v * kLanes);
        for (int i = 0; i < RB; ++i) {
          const float a = x[(r0 + i) * ldx + l];
          for (int v = 0; v < KV; ++v) c[i][v] += a * b[v];
        }
      }
    } else {
      for (int l = 0; l < L; ++l)
        for (int i = 0; i < rows; ++i) {
          const float a = x[(r0 + i) * ldx + l];
          for (int v = 0; v < KV; ++v) c[i][v] += a * load8(yt + l * KP + v * kLanes);
        }
    }
    for (int i = 0; i < rows; ++i)
      for (int k = 0; k < K; ++k) acc[(r0 + i) * K + k] += c[i][k / kLanes][k % kLanes];
  }
}

constexpr int kMaxTransposedK = 32;

// acc[r][k] += sum_l x[r][l] * y[k][l] (y: K rows of stride ldy, L <= kMaxTile pixels).
template <int kMaxTile>
MSCA_HD void tile_dots_fp32(const float* __restrict__ x, int64_t ldx, int R, const float* __restrict__ y,
                            int64_t ldy, int K, float* __restrict__ acc, int L) {
  if (K > kMaxTransposedK) {
    gemm_dots(x, ldx, R, y, ldy, K, acc, L);
    return;
  }
  const int KV = (K + kLanes - 1) / kLanes;
  const int KP = KV * kLanes;
  alignas(32) float yt[kMaxTile * kMaxTransposedK];
  for (int l = 0; l < L; ++l) {
    for (int k = 0; k < K; ++k) yt[l * KP + k] = y[k * ldy + l];
    for (int k = K; k < KP; ++k) yt[l * KP + k] = 0.f;
  }
  switch (KV) {
    case 1: gemm_dots_transposed<1>(x, ldx, R, yt, K, acc, L); break;
    case 2: gemm_dots_transposed<2>(x, ldx, R, yt, K, acc, L); break;
    case 3: gemm_dots_transposed<3>(x, ldx, R, yt, K, acc, L); break;
    default: gemm_dots_transposed<4>(x, ldx, R, yt, K, acc, L); break;
  }
}

}  // namespace cpu
}  // namespace msca_fast
