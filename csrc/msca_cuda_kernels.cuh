// The CUDA kernels of the fused MSCA op. The GPU build (msca_cuda_*.cu) and the CPU emulation
// of the CUDA execution model (emulation/msca_cuda_emulated.cpp) compile this very file.
//
// Pixel kernels (aggregate, distribute, sweep_a, sweep_b) take a tile of pixels a step. The
// number of regions K is padded to a template parameter KP (8, 16 or 32), so every
// per-thread array has a compile-time size and lives in registers. Each block first stages
// its weights in shared memory, transposed to (channels, KP) and zero-padded, where a
// 16-byte read that every lane of a warp shares serves four FMAs. A pixel's channel sums
// are split over `lanes` threads (1 for large images; up to 64 for small ones, so that even
// a 16x16 image gives every SM a block) and added up in shared memory (reduce_columns).
// Sums over a tile's pixels (V, dVt, dpsi, dphi) are small products of the tile's input rows
// with a KP-row tile of probabilities or gradients in shared memory (accumulate_rows),
// register-blocked, their partial sums kept in the block's slice of a global buffer. The
// small kernels (combine, between_sweeps, phi_gradient) add those partials over the chunks
// in a fixed order: results do not depend on scheduling (no atomics). Accumulation is in
// acc_t (float, or double for double inputs).
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "msca_common.h"
#include "msca_cuda_limits.h"
#include "msca_math.h"

#ifdef __CUDACC__
#define MSCA_UNROLL _Pragma("unroll")
// Loops over channels or pixels whose body already has KP or more independent FMAs: unrolled,
// the loads of several iterations would be hoisted beside the accumulators and spill.
#define MSCA_ROLLED _Pragma("unroll 1")
#else
#define MSCA_UNROLL _Pragma("GCC unroll 32")
#define MSCA_ROLLED
#endif

// Every barrier is numbered, ids unique in this file, so that a test-only build of the
// emulation can remove any one of them (the mutant sweep of tests/backends/test_cuda_emulation_bites.py).
#ifndef MSCA_BARRIER
#define MSCA_BARRIER(id) __syncthreads()
#endif

namespace msca_fast {
namespace cuda_kernels {

using math::exp_;
using math::load;
using math::max_;

using namespace cuda_limits;

constexpr unsigned kFullMask = 0xffffffffu;
// Two resident blocks of kThreads a SM (25% occupancy) at least: caps registers at 128. The
// float64 kernels (validation, not tuned) hold twice the registers per value and get one.
template <typename acc_t>
constexpr int min_blocks_per_sm() {
  return sizeof(acc_t) == 8 ? 1 : 2;
}
// Lanes that split one row block's sum over a tile's pixels in accumulate_rows, at most.
constexpr int kMaxRowSplit = 16;

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int min32(int a, int b) { return a < b ? a : b; }

template <typename acc_t>
__device__ __forceinline__ acc_t minus_infinity() {
  return -std::numeric_limits<acc_t>::infinity();
}

// Four consecutive values read as one access: 16 bytes of float, 8 of half, two 16-byte
// reads of double.
template <typename T>
struct alignas(4 * sizeof(T) > 16 ? 16 : 4 * sizeof(T)) Quad {
  T v[4];
};

template <typename T>
__device__ __forceinline__ Quad<T> load_quad(const T* p) {
  return *reinterpret_cast<const Quad<T>*>(p);
}

template <typename T>
__device__ __forceinline__ bool quad_aligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % alignof(Quad<T>) == 0;
}

// The lanes a pixel is split over in a kernel whose threads hold ROWS partial sums of PPT
// pixels: as launched, or 1 at compile time where the plan never splits (max_lanes_per_pixel),
// which makes the kernel's pixel indexing constant.
template <int ROWS, int PPT, typename acc_t>
__device__ __forceinline__ int lanes_in_use(int lanes) {
  return max_lanes_per_pixel(int64_t(ROWS) * PPT * sizeof(acc_t) / 4) > 1 ? lanes : 1;
}

// y[OFFSET + k] += w[k] x for k < KP; w: KP values in shared memory, 16-byte aligned.
template <int OFFSET, int KP, int ROWS, typename acc_t>
__device__ __forceinline__ void fma_row(acc_t (&y)[ROWS], const acc_t* w, acc_t x) {
  MSCA_UNROLL
  for (int k = 0; k < KP; k += 4) {
    const Quad<acc_t> q = load_quad(w + k);
    MSCA_UNROLL
    for (int j = 0; j < 4; ++j) y[OFFSET + k + j] += q.v[j] * x;
  }
}

// y[OFFSET + k] += sum_c w[c * KP + k] x[c * ld] over channels c = first, first + step, ... < C:
// a pixel's channel sum (x points at its channel 0; w: C x KP in shared memory).
template <int OFFSET, int KP, int ROWS, typename in_t, typename acc_t>
__device__ __forceinline__ void project(acc_t (&y)[ROWS], const acc_t* w, const in_t* x, int64_t ld, int first,
                                        int C, int step) {
  const in_t* xc = x + first * ld;
  const acc_t* wc = w + first * KP;
  MSCA_ROLLED
  for (int c = first; c < C; c += step, xc += step * ld, wc += step * KP) fma_row<OFFSET, KP>(y, wc, load<acc_t>(xc));
}

// sum_{k < KP} w[k] y[OFFSET + k]; w as for fma_row.
template <int OFFSET, int KP, int ROWS, typename acc_t>
__device__ __forceinline__ acc_t dot_row(const acc_t* w, const acc_t (&y)[ROWS]) {
  acc_t sum[4] = {acc_t(0), acc_t(0), acc_t(0), acc_t(0)};  // four chains: no serial dependence
  MSCA_UNROLL
  for (int k = 0; k < KP; k += 4) {
    const Quad<acc_t> q = load_quad(w + k);
    MSCA_UNROLL
    for (int j = 0; j < 4; ++j) sum[j] += q.v[j] * y[OFFSET + k + j];
  }
  return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

// dst[c * KP + k] = src[k * k_stride + c] for k < K (0 for K <= k < KP), c < C; by the whole block.
template <int KP, typename T, typename acc_t>
__device__ __forceinline__ void stage_transposed(acc_t* dst, const T* src, int64_t k_stride, int K, int C) {
  for (int e = threadIdx.x; e < C * KP; e += kThreads) {
    const int c = e / KP, k = e % KP;
    dst[e] = k < K ? load<acc_t>(src + k * k_stride + c) : acc_t(0);
  }
}

// dst[n * KP + k] = v[n * K + k] gate[k] for k < K (gate == nullptr: 1), 0 for K <= k < KP.
template <int KP, typename in_t, typename acc_t>
__device__ __forceinline__ void stage_gated(acc_t* dst, const acc_t* v, const in_t* gate, int K, int N) {
  for (int e = threadIdx.x; e < N * KP; e += kThreads) {
    const int n = e / KP, k = e % KP;
    dst[e] = k < K ? v[n * K + k] * (gate == nullptr ? acc_t(1) : load<acc_t>(gate + k)) : acc_t(0);
  }
}

// dst[k] = bias[k] for k < K (0 without a bias), -inf for the padded regions (beta 0).
template <int KP, typename in_t, typename acc_t>
__device__ __forceinline__ void stage_bias(acc_t* dst, const in_t* bias, int K) {
  for (int k = threadIdx.x; k < KP; k += kThreads) {
    dst[k] = k >= K ? minus_infinity<acc_t>() : bias == nullptr ? acc_t(0) : load<acc_t>(bias + k);
  }
}

template <typename acc_t>
__device__ __forceinline__ acc_t warp_max(acc_t value) {
  MSCA_UNROLL
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value = max_(value, __shfl_xor_sync(kFullMask, value, offset));
  return value;
}

// The same sum, bit for bit, on every lane (each pair of lanes adds the same two values).
template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t value) {
  MSCA_UNROLL
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// softmax over v[OFFSET..OFFSET + KP) in place (entries at -inf get 0).
template <int OFFSET, int KP, int ROWS, typename acc_t>
__device__ __forceinline__ void softmax(acc_t (&v)[ROWS]) {
  acc_t top = v[OFFSET];
  MSCA_UNROLL
  for (int k = 1; k < KP; ++k) top = max_(top, v[OFFSET + k]);
  acc_t sum = acc_t(0);
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) {
    v[OFFSET + k] = exp_(v[OFFSET + k] - top);
    sum += v[OFFSET + k];
  }
  const acc_t inverse = acc_t(1) / sum;
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) v[OFFSET + k] *= inverse;
}

// The block's sum of one value per thread, in a fixed order, valid in the first warp
// (thread t < 32 gets the sum over warps of lane t's values). scratch: kThreads values.
template <typename acc_t>
__device__ __forceinline__ acc_t sum_over_warps(acc_t value, acc_t* scratch) {
  scratch[threadIdx.x] = value;
  MSCA_BARRIER(1);
  acc_t total = acc_t(0);
  if (threadIdx.x < kWarpSize) {
    for (int w = 0; w < kWarps; ++w) total += scratch[w * kWarpSize + threadIdx.x];
  }
  return total;
}

// Sums v over the 2^steps lanes of a warp that differ in lane bits offset, 2 offset, ...,
// 2^(steps-1) offset, in a fixed tree: at each step a lane sends half of its values to its
// partner and adds the other half's (the upper half where its lane has the step's bit).
// Returns `base`: v[i] for i < N >> steps now holds the total of entry base + i. Every lane
// of the warp must take part.
template <int N, typename acc_t>
__device__ __forceinline__ int reduce_scatter(acc_t (&v)[N], int offset, int steps) {
  const int lane = threadIdx.x % kWarpSize;
  int base = 0;
  constexpr int kMaxSteps = N >= 32 ? 5 : N >= 16 ? 4 : N >= 8 ? 3 : N >= 4 ? 2 : 1;  // log2(N), a warp at most
  MSCA_UNROLL
  for (int s = 0; s < kMaxSteps; ++s) {
    if (s >= steps) break;
    const int bit = offset << s;
    const bool upper = (lane & bit) != 0;
    constexpr int kPairs = N / 2;
    MSCA_UNROLL
    for (int i = 0; i < kPairs; ++i) {
      const int half = N >> (s + 1);
      if (i < half) {
        const acc_t send = upper ? v[i] : v[i + half];
        const acc_t keep = upper ? v[i + half] : v[i];
        v[i] = keep + __shfl_xor_sync(kFullMask, send, bit);
      }
    }
    if (upper) base += N >> (s + 1);
  }
  return base;
}

// Adds up the channel sums of a tile's columns over the lanes that share them. Thread
// (sub, px) = (tid / slice, tid % slice), slice = kThreads / lanes, holds in y[i] partial
// sums (ROWS values) of column px + i * slice. On return y[i] holds the column's totals put
// through finish(col, values) (in place; every lane of a pixel finishes its column itself,
// with the same bits). With more than one lane a pixel the partials go through `partial`
// (partial_groups(lanes) x ROWS rows of tile_stride(lanes, PPT)), after a warp-shuffle sum
// where a warp holds several lanes of a pixel, and the groups are added in a fixed order.
template <int ROWS, int PPT, typename acc_t, typename Finish>
__device__ __forceinline__ void reduce_columns(acc_t (&y)[PPT][ROWS], acc_t* partial, int lanes, const Finish& finish) {
  lanes = lanes_in_use<ROWS, PPT, acc_t>(lanes);
  const int tid = threadIdx.x, slice = kThreads / lanes, px = tid % slice;
  if (lanes > 1) {
    const int width = PPT * slice, stride = width + 4;
    if (slice >= kWarpSize) {
      acc_t* column = partial + tid / slice * ROWS * stride + px;
      MSCA_UNROLL
      for (int r = 0; r < ROWS; ++r, column += stride) {
        MSCA_UNROLL
        for (int i = 0; i < PPT; ++i) column[i * slice] = y[i][r];
      }
    } else {
      // A warp holds 32 / slice lanes of each of its pixels: each keeps a share of the rows.
      int steps = 0;
      while ((slice << steps) < kWarpSize) ++steps;
      int base = 0;
      MSCA_UNROLL
      for (int i = 0; i < PPT; ++i) base = reduce_scatter(y[i], slice, steps);
      acc_t* column = partial + (tid / kWarpSize * ROWS + base) * stride + px;
      MSCA_UNROLL
      for (int r = 0; r < ROWS; ++r, column += stride) {
        if (r < ROWS >> steps) {
          MSCA_UNROLL
          for (int i = 0; i < PPT; ++i) column[i * slice] = y[i][r];
        }
      }
    }
    MSCA_BARRIER(2);
    const int groups = partial_groups(lanes);
    // width divides kThreads: each thread adds up one column's rows r, r + kThreads / width, ...
    for (int r = tid / width; r < ROWS; r += kThreads / width) {
      acc_t* total = partial + r * stride + tid % width;
      for (int g = 1; g < groups; ++g) *total += total[g * ROWS * stride];
    }
    MSCA_BARRIER(3);
    const acc_t* column = partial + px;
    MSCA_UNROLL
    for (int r = 0; r < ROWS; ++r, column += stride) {
      MSCA_UNROLL
      for (int i = 0; i < PPT; ++i) y[i][r] = column[i * slice];
    }
  }
  MSCA_UNROLL
  for (int i = 0; i < PPT; ++i) finish(px + i * slice, y[i]);
}

// tile[k * stride + col] = v[OFFSET + k] for the thread's column; by the first lane of each pixel.
template <int OFFSET, int KP, int ROWS, typename acc_t>
__device__ __forceinline__ void write_tile(acc_t* tile, int64_t stride, int lanes, const acc_t (&v)[ROWS]) {
  const int slice = kThreads / lanes;
  if (threadIdx.x / slice != 0) return;
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) tile[k * stride + threadIdx.x] = v[OFFSET + k];
}

// Four inputs x[l..l+3] of a row (nullptr: a row of ones), 0 past L.
template <typename in_t, typename acc_t>
__device__ __forceinline__ void load_four(const in_t* x, int l, int L, acc_t (&v)[4]) {
  if (x == nullptr) {
    MSCA_UNROLL
    for (int i = 0; i < 4; ++i) v[i] = acc_t(1);
  } else if (l + 4 <= L && quad_aligned(x + l)) {
    const Quad<in_t> q = load_quad(x + l);
    MSCA_UNROLL
    for (int i = 0; i < 4; ++i) v[i] = load<acc_t>(&q.v[i]);
  } else {
    MSCA_UNROLL
    for (int i = 0; i < 4; ++i) v[i] = l + i < L ? load<acc_t>(x + l + i) : acc_t(0);
  }
}

// out[r * KP + k] = (first ? 0 : out[r * KP + k] * scale[k]) + sum_{l < L} x_r[l] tile[k * stride + l]
// for r < R, k < KP, where x_r = row(r) points at row r's L inputs (nullptr: a row of ones);
// scale == nullptr means 1. out is the block's own slice of a global buffer: every entry is
// read and written by one fixed thread, whatever the tile.
// Register blocking: a task is RB rows x KB regions (16 accumulators: 2 rows x 8 regions, one
// row x 16, or half a row of 32), so that each 16-byte read of the tile serves RB x 4 FMAs and
// each of the input rows 4 x KB. With few tasks, Q lanes (a power of two <= 16) share one,
// splitting the pixels (16-byte pieces, Q of them contiguous), and add up their sums with
// shuffles in a fixed tree (reduce_scatter), each lane ending with 16 / Q of them.
template <int KP, typename acc_t, typename Rows>
__device__ __forceinline__ void accumulate_rows(int R, const Rows& row, const acc_t* tile, int64_t stride, int L,
                                                const std::type_identity_t<acc_t>* scale, bool first, acc_t* out) {
  constexpr int kBlock = 16, KB = KP < kBlock ? KP : kBlock, RB = kBlock / KB, kHalves = KP / KB;
  static_assert(RB * KB == kBlock && KB * kHalves == KP, "KP and the register block divide each other");
  const int tid = threadIdx.x, tasks = (R + RB - 1) / RB * kHalves;
  int Q = kMaxRowSplit;
  while (Q > 1 && tasks * Q > kThreads) Q /= 2;
  const int q = tid % Q, per_round = kThreads / Q;
  for (int first_task = 0; first_task < tasks; first_task += per_round) {
    if (first_task + (tid / kWarpSize) * (kWarpSize / Q) >= tasks) continue;  // the whole warp is idle
    const int task = first_task + tid / Q, rb = task / kHalves, k0 = task % kHalves * KB;
    acc_t sum[kBlock];
    MSCA_UNROLL
    for (int i = 0; i < kBlock; ++i) sum[i] = acc_t(0);
    if (task < tasks) {
      decltype(row(0)) x[RB];
      MSCA_UNROLL
      for (int j = 0; j < RB; ++j) x[j] = row(min32(rb * RB + j, R - 1));  // rows past R are summed, not written
      const acc_t* t_at = tile + k0 * stride;
      MSCA_ROLLED
      for (int l = 4 * q; l < L; l += 4 * Q) {
        acc_t xs[RB][4];
        MSCA_UNROLL
        for (int j = 0; j < RB; ++j) load_four(x[j], l, L, xs[j]);
        MSCA_UNROLL
        for (int k = 0; k < KB; ++k) {
          const Quad<acc_t> t = load_quad(t_at + k * stride + l);
          MSCA_UNROLL
          for (int j = 0; j < RB; ++j) {
            MSCA_UNROLL
            for (int i = 0; i < 4; ++i) sum[j * KB + k] += xs[j][i] * t.v[i];
          }
        }
      }
    }
    int steps = 0;
    while ((1 << steps) < Q) ++steps;
    const int base = reduce_scatter(sum, 1, steps);
    // The lane's totals are entries base, base + 1, ... of its task: contiguous in out (a task
    // is whole rows, or one row's part).
    const int entry = rb * RB * KP + k0 + base, count = min32(kBlock / Q, R * KP - entry);
    acc_t* o = out + entry;
    MSCA_UNROLL
    for (int i = 0; i < kBlock; ++i) {
      if (i < count) o[i] = first ? sum[i] : (scale == nullptr ? o[i] : o[i] * scale[(k0 + base + i) % KP]) + sum[i];
    }
  }
}

// The pixels of one block's tile loop: tiles of `width` pixels from `start` to `end`. Pixel
// indices within one image plane are 32-bit (the driver checks H x W < 2^31): fewer registers
// held across the loop.
struct TileLoop {
  int start, end, width;
};

__device__ __forceinline__ TileLoop block_tiles(int64_t pixels, int64_t chunk, int lanes, int pixels_per_thread) {
  const int start = static_cast<int>(blockIdx.x * chunk);
  return {start, static_cast<int>(min64(pixels, start + chunk)), pixels_per_thread * kThreads / lanes};
}

// Pass 1: block (j, b) reduces exemplar pixels [j * chunk, (j + 1) * chunk) of batch element
// b to a partial softmax state: running max m, sum s = sum_p exp(S[k][p] - m[k]) and
// acc[n][k] = sum_p Fx2[n][p] exp(S[k][p] - m[k]). phi: K x C2.
// part_ms: (B, chunks, 2, KP) holding m and s; part_acc: (B, chunks, N, KP).
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, min_blocks_per_sm<acc_t>())
    aggregate_kernel(Dims d, int64_t chunk, int lanes, const in_t* fx2, const in_t* fc2, const in_t* phi,
                     acc_t* part_ms, acc_t* part_acc) {
  MSCA_DYNAMIC_SHARED(smem);
  lanes = lanes_in_use<KP, 1, acc_t>(lanes);
  const int K = static_cast<int>(d.K), N = static_cast<int>(d.N), M2 = static_cast<int>(d.M2), C2 = N + M2;
  const TileLayout layout = aggregate_layout(KP, N, M2, lanes);
  acc_t* w = reinterpret_cast<acc_t*>(smem);  // C2 x KP: phi^T
  acc_t* m = w + C2 * KP;                     // KP running max
  acc_t* s = m + KP;                          // KP running sum
  acc_t* rescale = s + KP;                    // KP: exp(m_old - m_new)
  acc_t* tile = w + layout.tile;              // KP x stride: logits, then probabilities
  acc_t* partial = w + layout.partial;
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int slice = kThreads / lanes, sub = tid / slice, px = tid % slice;
  const int64_t b = blockIdx.y, P2 = d.P2, task = b * gridDim.x + blockIdx.x;
  const in_t* x = fx2 + b * N * P2;
  const in_t* c = fc2 + b * M2 * P2;
  acc_t* acc = part_acc + task * N * KP;
  stage_transposed<KP>(w, phi, C2, K, C2);
  if (tid < KP) {
    m[tid] = minus_infinity<acc_t>();
    s[tid] = acc_t(0);
  }
  MSCA_BARRIER(4);
  const TileLoop tiles = block_tiles(P2, chunk, lanes, 1);
  const int64_t stride = tiles.width + 4;
  for (int t0 = tiles.start; t0 < tiles.end; t0 += tiles.width) {
    const int L = min32(tiles.width, tiles.end - t0);
    const int p = t0 + min32(px, L - 1);  // columns past L compute a valid pixel and are dropped
    acc_t y[1][KP];
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) y[0][k] = acc_t(0);
    project<0, KP>(y[0], w, x + p, P2, sub, N, lanes);
    project<0, KP>(y[0], w + N * KP, c + p, P2, sub, M2, lanes);
    reduce_columns<KP, 1>(y, partial, lanes, [&](int col, acc_t(&v)[KP]) {
      if (col >= L) {
        MSCA_UNROLL
        for (int k = 0; k < KP; ++k) v[k] = minus_infinity<acc_t>();
      }
    });
    write_tile<0, KP>(tile, stride, lanes, y[0]);
    MSCA_BARRIER(5);
    // Each row's tile max (the new running max), probabilities and sum, by one warp a row.
    for (int k = warp; k < KP; k += kWarps) {
      acc_t top = minus_infinity<acc_t>();
      for (int l = lane; l < tiles.width; l += kWarpSize) top = max_(top, tile[k * stride + l]);
      const acc_t m_new = max_(m[k], warp_max(top));
      // Written back after the warp's last shuffle, so that other warps' reads of them depend
      // on the barrier below alone (shuffles between would hide its absence in the emulation).
      acc_t e[kThreads / kWarpSize], sum = acc_t(0);
      MSCA_UNROLL
      for (int i = 0; i < kThreads / kWarpSize; ++i) {
        const int l = lane + i * kWarpSize;
        e[i] = l < tiles.width ? exp_(tile[k * stride + l] - m_new) : acc_t(0);
        sum += e[i];
      }
      sum = warp_sum(sum);
      MSCA_UNROLL
      for (int i = 0; i < kThreads / kWarpSize; ++i) {
        if (lane + i * kWarpSize < tiles.width) tile[k * stride + lane + i * kWarpSize] = e[i];
      }
      if (lane == 0) {
        const acc_t scale = exp_(m[k] - m_new);  // 0 on the first tile (m = -inf)
        s[k] = s[k] * scale + sum;
        m[k] = m_new;
        rescale[k] = scale;
      }
    }
    MSCA_BARRIER(6);
    accumulate_rows<KP>(N, [&](int r) { return x + r * P2 + t0; }, tile, stride, L, rescale, t0 == tiles.start, acc);
    MSCA_BARRIER(7);  // the tile and the rescale factors are rewritten by the next tile
  }
  if (tid < KP) {
    part_ms[task * 2 * KP + tid] = m[tid];
    part_ms[task * 2 * KP + KP + tid] = s[tid];
  }
}

// Merges the chunks of batch element b: lse (B, K) and V (B, N, K). Block (x, b) computes
// the weights exp(m_j - lse) of every chunk j and region (one warp a region), then the 32
// entries x * 32 ... of V (N x KP) over the chunks, split over the warps and added in order.
template <typename acc_t>
__global__ void __launch_bounds__(kThreads) combine_kernel(Dims d, int KP, int chunks, const acc_t* part_ms,
                                                           const acc_t* part_acc, acc_t* v, acc_t* lse) {
  MSCA_DYNAMIC_SHARED(smem);
  acc_t* weight = reinterpret_cast<acc_t*>(smem);  // chunks x KP
  acc_t* scratch = weight + chunks * KP;            // kThreads
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int K = static_cast<int>(d.K), N = static_cast<int>(d.N);
  const int64_t b = blockIdx.y;
  const acc_t* ms = part_ms + b * chunks * 2 * KP;
  for (int k = warp; k < KP; k += kWarps) {
    acc_t top = minus_infinity<acc_t>();
    for (int j = lane; j < chunks; j += kWarpSize) top = max_(top, ms[j * 2 * KP + k]);
    top = warp_max(top);
    acc_t total = acc_t(0);
    for (int j = lane; j < chunks; j += kWarpSize) total += ms[j * 2 * KP + KP + k] * exp_(ms[j * 2 * KP + k] - top);
    const acc_t log_sum = top + std::log(warp_sum(total));
    for (int j = lane; j < chunks; j += kWarpSize) weight[j * KP + k] = exp_(ms[j * 2 * KP + k] - log_sum);
    if (blockIdx.x == 0 && lane == 0 && k < K) lse[b * K + k] = log_sum;
  }
  MSCA_BARRIER(8);
  const int e = blockIdx.x * kWarpSize + lane, n = e / KP, k = e % KP;
  acc_t sum = acc_t(0);
  if (n < N) {
    for (int j = warp; j < chunks; j += kWarps) sum += part_acc[((b * chunks + j) * N + n) * KP + k] * weight[j * KP + k];
  }
  const acc_t total = sum_over_warps(sum, scratch);
  if (warp == 0 && n < N && k < K) v[(b * N + n) * K + k] = total;
}

// Pass 2: out[n][p] = sum_k V[n][k] gate[k] beta[k][p], PPT pixels a thread.
// psi: K x M1; bias: K or nullptr; v: (B, N, K); gate: (B, K) or nullptr.
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, min_blocks_per_sm<acc_t>())
    distribute_kernel(Dims d, int lanes, const in_t* fc1, const in_t* psi, const in_t* bias, const acc_t* v,
                      const in_t* gate, in_t* out) {
  constexpr int PPT = distribute_pixels_per_thread(KP, sizeof(acc_t));
  MSCA_DYNAMIC_SHARED(smem);
  lanes = lanes_in_use<KP, PPT, acc_t>(lanes);
  const int K = static_cast<int>(d.K), N = static_cast<int>(d.N), M1 = static_cast<int>(d.M1);
  acc_t* w = reinterpret_cast<acc_t*>(smem);  // M1 x KP: psi^T
  acc_t* vt = w + M1 * KP;                    // N x KP: V o gate
  acc_t* b_psi = vt + N * KP;                 // KP
  acc_t* partial = w + distribute_layout(KP, N, M1, lanes, PPT).partial;
  const int tid = threadIdx.x, slice = kThreads / lanes, sub = tid / slice, px = tid % slice;
  const int64_t b = blockIdx.y, P1 = d.P1;
  stage_transposed<KP>(w, psi, M1, K, M1);
  stage_gated<KP>(vt, v + b * N * K, gate == nullptr ? nullptr : gate + b * K, K, N);
  stage_bias<KP>(b_psi, bias, K);
  MSCA_BARRIER(9);
  const TileLoop tiles = block_tiles(P1, int64_t(PPT) * kThreads / lanes, lanes, PPT);
  const int t0 = tiles.start, L = tiles.end - t0;
  // Each weight load serves the thread's PPT pixels: columns px + i * slice (clamped to L).
  int at[PPT];
  acc_t y[PPT][KP];
  MSCA_UNROLL
  for (int i = 0; i < PPT; ++i) {
    at[i] = min32(px + i * slice, L - 1);
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) y[i][k] = acc_t(0);
  }
  const in_t* fc = fc1 + (b * M1 + sub) * P1 + t0;
  MSCA_ROLLED
  for (int cc = sub; cc < M1; cc += lanes, fc += lanes * P1) {
    acc_t xs[PPT];
    MSCA_UNROLL
    for (int i = 0; i < PPT; ++i) xs[i] = load<acc_t>(fc + at[i]);
    MSCA_UNROLL
    for (int k = 0; k < KP; k += 4) {
      const Quad<acc_t> q = load_quad(w + cc * KP + k);
      MSCA_UNROLL
      for (int i = 0; i < PPT; ++i) {
        MSCA_UNROLL
        for (int j = 0; j < 4; ++j) y[i][k + j] += q.v[j] * xs[i];
      }
    }
  }
  reduce_columns<KP, PPT>(y, partial, lanes, [&](int, acc_t(&t)[KP]) {
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) t[k] += b_psi[k];
    softmax<0, KP>(t);
  });
  in_t* o = out + (b * N + sub) * P1 + t0 + px;
  MSCA_ROLLED
  for (int n = sub; n < N; n += lanes, o += lanes * P1) {
    acc_t sum[PPT][2] = {};  // two chains a pixel
    MSCA_UNROLL
    for (int k = 0; k < KP; k += 4) {
      const Quad<acc_t> q = load_quad(vt + n * KP + k);
      MSCA_UNROLL
      for (int i = 0; i < PPT; ++i) {
        MSCA_UNROLL
        for (int j = 0; j < 4; ++j) sum[i][j % 2] += q.v[j] * y[i][k + j];
      }
    }
    MSCA_UNROLL
    for (int i = 0; i < PPT; ++i) {
      if (px + i * slice < L) o[i * slice] = static_cast<in_t>(sum[i][0] + sum[i][1]);
    }
  }
}

// Sweep A over target pixels: thread (sub, px) writes dFc1[c][p] for c = sub, sub + lanes, ...;
// block (j, b) sums over its pixels [j * chunk, ...) the rows [dVt (N x KP); dpsi^T (M1 x KP);
// dbias (1 x KP)] into part: (B, chunks, N + M1 + 1, KP), where Vt = V o gate. v: (B, N, K).
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, min_blocks_per_sm<acc_t>())
    sweep_a_kernel(Dims d, int64_t chunk, int lanes, const in_t* dout, const in_t* fc1, const in_t* psi,
                   const in_t* bias, const acc_t* v, const in_t* gate, in_t* dfc1, acc_t* part) {
  MSCA_DYNAMIC_SHARED(smem);
  lanes = lanes_in_use<2 * KP, 1, acc_t>(lanes);
  const int K = static_cast<int>(d.K), N = static_cast<int>(d.N), M1 = static_cast<int>(d.M1);
  const TileLayout layout = sweep_a_layout(KP, N, M1, lanes);
  acc_t* w = reinterpret_cast<acc_t*>(smem);  // M1 x KP: psi^T
  acc_t* vt = w + M1 * KP;                    // N x KP: V o gate
  acc_t* b_psi = vt + N * KP;                 // KP
  acc_t* tile = w + layout.tile;              // 2 KP x stride: beta, dT
  acc_t* partial = w + layout.partial;
  const int tid = threadIdx.x, slice = kThreads / lanes, sub = tid / slice, px = tid % slice;
  const int64_t b = blockIdx.y, P1 = d.P1, task = b * gridDim.x + blockIdx.x;
  const in_t* go = dout + b * N * P1;
  const in_t* c1 = fc1 + b * M1 * P1;
  acc_t* acc = part + task * (N + M1 + 1) * KP;
  stage_transposed<KP>(w, psi, M1, K, M1);
  stage_gated<KP>(vt, v + b * N * K, gate == nullptr ? nullptr : gate + b * K, K, N);
  stage_bias<KP>(b_psi, bias, K);
  MSCA_BARRIER(10);
  const TileLoop tiles = block_tiles(P1, chunk, lanes, 1);
  const int64_t stride = tiles.width + 4;
  for (int t0 = tiles.start; t0 < tiles.end; t0 += tiles.width) {
    const int L = min32(tiles.width, tiles.end - t0);
    const int p = t0 + min32(px, L - 1);
    // Rows [0, KP): channel logits T; rows [KP, 2 KP): dbeta = Vt^T dOut.
    acc_t y[1][2 * KP];
    MSCA_UNROLL
    for (int k = 0; k < 2 * KP; ++k) y[0][k] = acc_t(0);
    project<0, KP>(y[0], w, c1 + p, P1, sub, M1, lanes);
    project<KP, KP>(y[0], vt, go + p, P1, sub, N, lanes);
    // -> rows [0, KP): beta; rows [KP, 2 KP): dT = beta o (dbeta - sum_k beta dbeta); 0 past L.
    reduce_columns<2 * KP, 1>(y, partial, lanes, [&](int col, acc_t(&g)[2 * KP]) {
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) g[k] += b_psi[k];
      softmax<0, KP>(g);
      acc_t dot = acc_t(0);
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) dot += g[k] * g[KP + k];
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) {
        g[KP + k] = col < L ? g[k] * (g[KP + k] - dot) : acc_t(0);
        g[k] = col < L ? g[k] : acc_t(0);
      }
    });
    if (px < L) {
      in_t* dc = dfc1 + (b * M1 + sub) * P1 + t0 + px;
      MSCA_ROLLED
      for (int cc = sub; cc < M1; cc += lanes, dc += lanes * P1) {
        *dc = static_cast<in_t>(dot_row<KP, KP>(w + cc * KP, y[0]));
      }
    }
    const bool first = t0 == tiles.start;
    write_tile<0, 2 * KP>(tile, stride, lanes, y[0]);
    MSCA_BARRIER(11);
    accumulate_rows<KP>(N, [&](int r) { return go + r * P1 + t0; }, tile, stride, L, nullptr, first, acc);
    accumulate_rows<KP>(
        M1 + 1, [&](int r) { return r < M1 ? c1 + r * P1 + t0 : nullptr; }, tile + KP * stride, stride, L, nullptr,
        first, acc + N * KP);
    MSCA_BARRIER(12);  // the tile and the partial sums are rewritten by the next tile
  }
}

// Sweep B over exemplar pixels: thread (sub, px) writes dFx2[n][p] and dFc2[m][p] for n, m =
// sub, sub + lanes, ...; block (j, b) sums dphi^T (C2 x KP) over its pixels into part: (B,
// chunks, C2, KP); blocks j = 0 write dgate = sum_n dVt o V (B, K) when there is a gate.
// dvt: (B, N, KP) as between_sweeps_kernel writes it; v: (B, N, K); lse: (B, K).
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, min_blocks_per_sm<acc_t>())
    sweep_b_kernel(Dims d, int64_t chunk, int lanes, const in_t* fx2, const in_t* fc2, const in_t* phi,
                   const acc_t* lse, const acc_t* dvt, const acc_t* v, const in_t* gate, in_t* dfx2, in_t* dfc2,
                   in_t* dgate, acc_t* part) {
  MSCA_DYNAMIC_SHARED(smem);
  lanes = lanes_in_use<2 * KP, 1, acc_t>(lanes);
  const int K = static_cast<int>(d.K), N = static_cast<int>(d.N), M2 = static_cast<int>(d.M2), C2 = N + M2;
  const TileLayout layout = sweep_b_layout(KP, N, M2, lanes);
  acc_t* w = reinterpret_cast<acc_t*>(smem);  // C2 x KP: phi^T
  acc_t* dv = w + C2 * KP;                    // N x KP: dV = dVt o gate
  acc_t* lse_b = dv + N * KP;                 // KP
  acc_t* delta = lse_b + KP;                  // KP: sum_n dV o V
  acc_t* tile = w + layout.tile;              // KP x stride: dS
  acc_t* partial = w + layout.partial;
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int slice = kThreads / lanes, sub = tid / slice, px = tid % slice;
  const int64_t b = blockIdx.y, P2 = d.P2, task = b * gridDim.x + blockIdx.x;
  const in_t* x = fx2 + b * N * P2;
  const in_t* c = fc2 + b * M2 * P2;
  const acc_t* dvt_b = dvt + b * N * KP;
  const acc_t* v_b = v + b * N * K;
  const in_t* gate_b = gate == nullptr ? nullptr : gate + b * K;
  stage_transposed<KP>(w, phi, C2, K, C2);
  for (int e = tid; e < N * KP; e += kThreads) {
    const int k = e % KP;
    dv[e] = k < K && gate_b != nullptr ? dvt_b[e] * load<acc_t>(gate_b + k) : dvt_b[e];
  }
  for (int k = tid; k < KP; k += kThreads) lse_b[k] = k < K ? lse[b * K + k] : acc_t(0);
  // delta = gate o dgate with dgate = sum_n dVt o V, one warp a region.
  for (int k = warp; k < KP; k += kWarps) {
    acc_t sum = acc_t(0);
    if (k < K) {
      for (int n = lane; n < N; n += kWarpSize) sum += dvt_b[n * KP + k] * v_b[n * K + k];
    }
    sum = warp_sum(sum);
    if (lane == 0) delta[k] = gate_b != nullptr && k < K ? sum * load<acc_t>(gate_b + k) : sum;
    if (lane == 0 && k < K && dgate != nullptr && blockIdx.x == 0) dgate[b * K + k] = static_cast<in_t>(sum);
  }
  MSCA_BARRIER(13);
  const TileLoop tiles = block_tiles(P2, chunk, lanes, 1);
  const int64_t stride = tiles.width + 4;
  for (int t0 = tiles.start; t0 < tiles.end; t0 += tiles.width) {
    const int L = min32(tiles.width, tiles.end - t0);
    const int p = t0 + min32(px, L - 1);
    // Rows [0, KP): logits S = phi Z; rows [KP, 2 KP): dP = dV^T Fx2 (one load of Fx2 for both).
    acc_t y[1][2 * KP];
    MSCA_UNROLL
    for (int k = 0; k < 2 * KP; ++k) y[0][k] = acc_t(0);
    const in_t* xn_at = x + sub * P2 + p;
    MSCA_ROLLED
    for (int n = sub; n < N; n += lanes, xn_at += lanes * P2) {
      const acc_t xn = load<acc_t>(xn_at);
      fma_row<0, KP>(y[0], w + n * KP, xn);
      fma_row<KP, KP>(y[0], dv + n * KP, xn);
    }
    project<0, KP>(y[0], w + N * KP, c + p, P2, sub, M2, lanes);
    // -> rows [0, KP): P = exp(S - lse); rows [KP, 2 KP): dS = P o (dP - delta); 0 past L and K.
    reduce_columns<2 * KP, 1>(y, partial, lanes, [&](int col, acc_t(&g)[2 * KP]) {
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) {
        const acc_t prob = col < L && k < K ? exp_(g[k] - lse_b[k]) : acc_t(0);
        g[k] = prob;
        g[KP + k] = prob * (g[KP + k] - delta[k]);
      }
    });
    if (px < L) {
      in_t* dx = dfx2 + (b * N + sub) * P2 + t0 + px;
      MSCA_ROLLED
      for (int n = sub; n < N; n += lanes, dx += lanes * P2) {
        *dx = static_cast<in_t>(dot_row<0, KP>(dv + n * KP, y[0]) + dot_row<KP, KP>(w + n * KP, y[0]));
      }
      in_t* dc = dfc2 + (b * M2 + sub) * P2 + t0 + px;
      MSCA_ROLLED
      for (int cc = sub; cc < M2; cc += lanes, dc += lanes * P2) {
        *dc = static_cast<in_t>(dot_row<KP, KP>(w + (N + cc) * KP, y[0]));
      }
    }
    write_tile<KP, KP>(tile, stride, lanes, y[0]);
    MSCA_BARRIER(14);
    accumulate_rows<KP>(
        C2, [&](int r) { return r < N ? x + r * P2 + t0 : c + (r - N) * P2 + t0; }, tile, stride, L, nullptr,
        t0 == tiles.start, part + task * C2 * KP);
    MSCA_BARRIER(15);  // the tile and the partial sums are rewritten by the next tile
  }
}

// Between the sweeps: sums of sweep A's partials (B, chunks, N + M1 + 1, KP) over the chunks.
// The first blocks write dVt (B, N, KP) per batch element; the rest sum over batch and chunks
// the rows of dpsi^T and dbias and write dpsi (K, M1) and dbias (K) in the input dtype. Each
// block takes 32 entries, its warps a share of the chunks each, added in order.
template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) between_sweeps_kernel(Dims d, int KP, int chunks, const acc_t* part,
                                                                  acc_t* dvt, in_t* dpsi, in_t* dbias) {
  MSCA_DYNAMIC_SHARED(smem);
  acc_t* scratch = reinterpret_cast<acc_t*>(smem);
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int K = static_cast<int>(d.K), N = static_cast<int>(d.N), M1 = static_cast<int>(d.M1);
  const int64_t row_entries = int64_t(N + M1 + 1) * KP, v_entries = d.B * N * KP;
  const int64_t v_blocks = (v_entries + kWarpSize - 1) / kWarpSize;
  const bool is_v = blockIdx.x < v_blocks;
  const int64_t e = (is_v ? blockIdx.x : blockIdx.x - v_blocks) * kWarpSize + lane;
  const bool live = is_v ? e < v_entries : e < (M1 + 1) * KP;
  // dVt: chunks of one batch element; dpsi, dbias: all B x chunks slices, which are contiguous.
  const int64_t slices = is_v ? chunks : d.B * chunks;
  const acc_t* first = is_v ? part + e / (N * KP) * chunks * row_entries + e % (N * KP) : part + N * KP + e;
  acc_t sum = acc_t(0);
  if (live) {
    for (int64_t j = warp; j < slices; j += kWarps) sum += first[j * row_entries];
  }
  const acc_t total = sum_over_warps(sum, scratch);
  if (warp != 0 || !live) return;
  if (is_v) {
    dvt[e] = total;
    return;
  }
  const int r = static_cast<int>(e / KP), k = static_cast<int>(e % KP);
  if (k >= K) return;
  if (r < M1) {
    dpsi[k * M1 + r] = static_cast<in_t>(total);
  } else if (dbias != nullptr) {
    dbias[k] = static_cast<in_t>(total);
  }
}

// After the sweeps: dphi (K, C2) in the input dtype, the sum of sweep B's partials
// (B, chunks, C2, KP) over batch and chunks; blocks of 32 entries as between_sweeps_kernel.
template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) phi_gradient_kernel(Dims d, int KP, int chunks, const acc_t* part,
                                                                in_t* dphi) {
  MSCA_DYNAMIC_SHARED(smem);
  acc_t* scratch = reinterpret_cast<acc_t*>(smem);
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int K = static_cast<int>(d.K), C2 = static_cast<int>(d.N + d.M2);
  const int64_t entries = int64_t(C2) * KP, slices = d.B * chunks;
  const int64_t e = blockIdx.x * int64_t(kWarpSize) + lane;
  acc_t sum = acc_t(0);
  if (e < entries) {
    for (int64_t j = warp; j < slices; j += kWarps) sum += part[j * entries + e];
  }
  const acc_t total = sum_over_warps(sum, scratch);
  const int cc = static_cast<int>(e / KP), k = static_cast<int>(e % KP);
  if (warp == 0 && e < entries && k < K) dphi[k * C2 + cc] = static_cast<in_t>(total);
}

}  // namespace cuda_kernels
}  // namespace msca_fast
