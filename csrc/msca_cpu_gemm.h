// Register-blocked CPU versions, for float, of the three small products in msca_math.h
// (project_add, expand_row over many rows, outer_accumulate). Same sums, loops arranged
// so each loaded value feeds several FMAs: 8 accumulator vectors per block. The double
// path (and the CUDA kernels) keep the plain routines of msca_math.h, so the fp64 tests
// check the shared math and the fp32 tests check these.
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
constexpr int kLanes = 8;
constexpr int kPixelBlock = 2 * kLanes;  // pixels per register block
// The image rows are read as many short strided streams (one per channel), more than the
// hardware prefetchers follow, so the loops prefetch this many pixels ahead themselves.
constexpr int kPrefetchPixels = 128;

MSCA_HD void prefetch_read(const float* p) { __builtin_prefetch(p, 0, 3); }
MSCA_HD void prefetch_write(float* p) { __builtin_prefetch(p, 1, 3); }

MSCA_HD f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

MSCA_HD void store8(float* p, f8 v) { std::memcpy(p, &v, sizeof(v)); }

MSCA_HD f8 splat(float x) { return f8{x, x, x, x, x, x, x, x}; }

MSCA_HD float hsum(f8 v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// y[r][l] (+)= sum_j a[r][j] * x[j][l]  for r < R, j < J, l < L (accumulate: add to y).
// Blocks of 4 rows x 16 pixels: per j, 2 vector loads of x and 4 broadcasts feed 8 FMAs.
MSCA_HD void gemm_rows(const float* __restrict__ a, int64_t lda, int R, int J,
                       const float* __restrict__ x, int64_t ldx, float* __restrict__ y, int64_t ldy,
                       int L, bool accumulate) {
  const int L_blocked = L - L % kPixelBlock;
  for (int l = 0; l < L_blocked; l += kPixelBlock) {
    int r = 0;
    for (; r + 4 <= R; r += 4) {
      f8 c[4][2];
      for (int i = 0; i < 4; ++i) {
        prefetch_write(y + (r + i) * ldy + l + kPrefetchPixels);
        c[i][0] = accumulate ? load8(y + (r + i) * ldy + l) : splat(0.f);
        c[i][1] = accumulate ? load8(y + (r + i) * ldy + l + kLanes) : splat(0.f);
      }
      for (int j = 0; j < J; ++j) {
        if (r == 0) prefetch_read(x + j * ldx + l + kPrefetchPixels);
        const f8 x0 = load8(x + j * ldx + l), x1 = load8(x + j * ldx + l + kLanes);
        for (int i = 0; i < 4; ++i) {
          const f8 w = splat(a[(r + i) * lda + j]);
          c[i][0] += w * x0;
          c[i][1] += w * x1;
        }
      }
      for (int i = 0; i < 4; ++i) {
        store8(y + (r + i) * ldy + l, c[i][0]);
        store8(y + (r + i) * ldy + l + kLanes, c[i][1]);
      }
    }
    for (; r < R; ++r) {
      f8 c0 = accumulate ? load8(y + r * ldy + l) : splat(0.f);
      f8 c1 = accumulate ? load8(y + r * ldy + l + kLanes) : splat(0.f);
      for (int j = 0; j < J; ++j) {
        const f8 w = splat(a[r * lda + j]);
        c0 += w * load8(x + j * ldx + l);
        c1 += w * load8(x + j * ldx + l + kLanes);
      }
      store8(y + r * ldy + l, c0);
      store8(y + r * ldy + l + kLanes, c1);
    }
  }
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
        if (k == 0) {
          prefetch_read(x0 + l + kPrefetchPixels);
          prefetch_read(x1 + l + kPrefetchPixels);
        }
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

}  // namespace cpu
}  // namespace msca_fast
