// The CUDA kernels of the fused MSCA op. The GPU build (msca_cuda.cu) and the CPU emulation
// of the CUDA execution model (emulation/msca_cuda_emulated.cpp) compile this very file.
//
// One thread per pixel. The number of regions K is padded to a template parameter KP (8, 16
// or 32), so every per-thread array has a compile-time size and every loop over it unrolls:
// the arrays live in registers. The kernels read the op's unpadded tensors (weights in the
// input dtype, V and lse K wide) and predicate the regions k >= K away: a padded spatial
// logit is 0 and unused, a padded channel logit is -inf (beta 0); no host-side padding.
// Sums over a block's pixels go through a KP x 256 shared tile (rows padded to stride 260:
// 16-byte aligned and conflict-free, see msca_cuda_limits.h): the tile max of the spatial
// softmax by warp shuffles, one warp a row; products with the input rows (and the tile sum,
// a row of ones) by every thread, in 16-byte vectors, accumulated in shared memory across
// all the tiles a block owns and written once. The driver sizes grids from the SM count.
// Accumulation is in acc_t (float, or double for double inputs).
#pragma once

#include <cstdint>
#include <limits>

#include "msca_common.h"
#include "msca_cuda_limits.h"
#include "msca_math.h"

#ifdef __CUDACC__
#define MSCA_UNROLL _Pragma("unroll")
#else
#define MSCA_UNROLL _Pragma("GCC unroll 32")
#endif

// Every barrier is numbered, ids unique in this file, so that a test-only build of the
// emulation can remove any one of them (the mutant sweep of tests/test_cuda_emulation_bites.py).
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
// Two resident blocks of kThreads a SM (25% occupancy) at least: caps registers at 128.
constexpr int kMinBlocksPerSM = 2;

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

template <typename acc_t>
__device__ __forceinline__ acc_t minus_infinity() {
  return -std::numeric_limits<acc_t>::infinity();
}

// y[k] += sum_{c < C} w(k, c) x[c] for k < K, w(k, c) = w[k * wk + c * wc] (the same for
// every thread of a warp: broadcast loads); y[k] for k >= K is left as it is.
template <int KP, typename W, typename in_t, typename acc_t>
__device__ __forceinline__ void project_add(const W* w, int64_t wk, int64_t wc, int K, int C, const in_t* x,
                                            int64_t ldx, acc_t (&y)[KP]) {
  for (int c = 0; c < C; ++c) {
    const acc_t xc = load<acc_t>(x + c * ldx);
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) {
      if (k < K) y[k] += load<acc_t>(w + k * wk + c * wc) * xc;
    }
  }
}

// sum_{k < K} a[k * stride] y[k].
template <int KP, typename W, typename acc_t>
__device__ __forceinline__ acc_t dot_regions(const W* a, int64_t stride, int K, const acc_t (&y)[KP]) {
  acc_t sum = acc_t(0);
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) {
    if (k < K) sum += load<acc_t>(a + k * stride) * y[k];
  }
  return sum;
}

// gate[k] for k < K (1 when there is no gate), 0 for padded regions.
template <typename acc_t, typename in_t>
__device__ __forceinline__ acc_t gate_of(const in_t* gate, int K, int k) {
  return k >= K ? acc_t(0) : gate == nullptr ? acc_t(1) : load<acc_t>(gate + k);
}

// beta = softmax over the K channels of psi Fc1 + bias (psi: K x M1, bias: K or nullptr);
// beta[k] = 0 for k >= K.
template <int KP, typename in_t, typename acc_t>
__device__ __forceinline__ void channel_attention(const in_t* psi, const in_t* bias, int K, int M1, const in_t* fc1,
                                                  int64_t P1, acc_t (&beta)[KP]) {
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) {
    beta[k] = k >= K ? minus_infinity<acc_t>() : bias == nullptr ? acc_t(0) : load<acc_t>(bias + k);
  }
  project_add<KP>(psi, M1, 1, K, M1, fc1, P1, beta);
  acc_t top = beta[0];
  MSCA_UNROLL
  for (int k = 1; k < KP; ++k) top = max_(top, beta[k]);
  acc_t sum = acc_t(0);
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) {
    beta[k] = exp_(beta[k] - top);
    sum += beta[k];
  }
  const acc_t inverse = acc_t(1) / sum;
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) beta[k] *= inverse;
}

// kWidth consecutive values loaded as one 16-byte access (4 floats, 8 halves, 2 doubles).
template <typename T>
struct alignas(16) Pack {
  static constexpr int kWidth = 16 / sizeof(T);
  T v[kWidth];
};

template <typename T>
__device__ __forceinline__ bool aligned16(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// sum_{l < L} x[l] t[l] (x == nullptr: sum_l t[l]) for a row x of inputs and a tile row t.
// A full tile with x 16-byte aligned reads both in 16-byte vectors: one shared and at most
// one global load a 4 FMAs, where elementwise loads would hold the loop to the load units'
// rate. Tile rows start 16-byte aligned (kTileStride is a multiple of 4).
template <typename in_t, typename acc_t>
__device__ __forceinline__ acc_t row_dot(const in_t* x, const acc_t* t, int L) {
  constexpr int kT = Pack<acc_t>::kWidth, kX = Pack<in_t>::kWidth;
  static_assert(kX % kT == 0, "a 16-byte pack of inputs spans whole packs of the tile");
  acc_t sum = acc_t(0);
  if (L == kThreads && x == nullptr) {
    for (int l = 0; l < kThreads; l += kT) {
      const Pack<acc_t> ts = *reinterpret_cast<const Pack<acc_t>*>(t + l);
      MSCA_UNROLL
      for (int j = 0; j < kT; ++j) sum += ts.v[j];
    }
  } else if (L == kThreads && aligned16(x)) {
    for (int l = 0; l < kThreads; l += kX) {
      const Pack<in_t> xs = *reinterpret_cast<const Pack<in_t>*>(x + l);
      MSCA_UNROLL
      for (int i = 0; i < kX; i += kT) {
        const Pack<acc_t> ts = *reinterpret_cast<const Pack<acc_t>*>(t + l + i);
        MSCA_UNROLL
        for (int j = 0; j < kT; ++j) sum += load<acc_t>(&xs.v[i + j]) * ts.v[j];
      }
    }
  } else if (x == nullptr) {
    for (int l = 0; l < L; ++l) sum += t[l];
  } else {
    for (int l = 0; l < L; ++l) sum += load<acc_t>(x + l) * t[l];
  }
  return sum;
}

// acc[r][k] += sum_{l < L} row(r)[l] tile[k][l] for r < R, split over the block's threads
// (thread e takes entries e, e + kThreads, ...; KP is a power of two, so / and % shift).
// row(r) returns a pointer to the L inputs of row r, or nullptr for a row of ones.
template <int KP, typename acc_t, typename Rows>
__device__ __forceinline__ void accumulate_rows(int R, const Rows& row, const acc_t* tile, int L, acc_t* acc) {
  for (int e = threadIdx.x; e < R * KP; e += kThreads) {
    const int r = e / KP, k = e % KP;
    acc[e] += row_dot(row(r), tile + k * kTileStride, L);
  }
}

// Pass 1: block (j, b) reduces exemplar pixels [j * chunk, (j + 1) * chunk) of batch element
// b to a partial: running max m, sum s = sum_p exp(S[k][p] - m[k]) and accumulator
// acc = sum_p Fx2[n][p] exp(S[k][p] - m[k]). phi: K x C2.
// part_m: (B, chunks, KP); part_acc: (B, chunks, N + 1, KP), row N holding s.
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    aggregate_kernel(Dims d, int64_t chunk, const in_t* fx2, const in_t* fc2, const in_t* phi, acc_t* part_m,
                     acc_t* part_acc) {
  MSCA_DYNAMIC_SHARED(smem);
  acc_t* tile = reinterpret_cast<acc_t*>(smem);  // KP x kTileStride: logits, then probabilities
  acc_t* m = tile + KP * kTileStride;            // KP running max
  acc_t* rescale = m + KP;                       // KP: exp(m_old - m_new)
  acc_t* acc = rescale + KP;                     // (N + 1) x KP
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int K = static_cast<int>(d.K), N = static_cast<int>(d.N), M2 = static_cast<int>(d.M2), C2 = N + M2;
  const int64_t b = blockIdx.y, j = blockIdx.x, P2 = d.P2;
  const in_t* x = fx2 + b * N * P2;
  const in_t* c = fc2 + b * M2 * P2;
  for (int e = tid; e < (N + 1) * KP; e += kThreads) acc[e] = acc_t(0);
  if (tid < KP) m[tid] = minus_infinity<acc_t>();
  const int64_t start = j * chunk, end = min64(P2, start + chunk);
  for (int64_t t0 = start; t0 < end; t0 += kThreads) {
    const int L = static_cast<int>(min64(kThreads, end - t0));
    const int64_t p = t0 + tid;
    {
      acc_t y[KP];
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) y[k] = tid < L ? acc_t(0) : minus_infinity<acc_t>();
      if (tid < L) {
        project_add<KP>(phi, C2, 1, K, N, x + p, P2, y);
        project_add<KP>(phi + N, C2, 1, K, M2, c + p, P2, y);
      }
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) tile[k * kTileStride + tid] = y[k];
    }
    MSCA_BARRIER(1);
    // Tile max of each row by one warp each (warp shuffles): the new running max.
    for (int k = warp; k < KP; k += kWarps) {
      acc_t top = tile[k * kTileStride + lane];
      for (int l = lane + kWarpSize; l < kThreads; l += kWarpSize) top = max_(top, tile[k * kTileStride + l]);
      MSCA_UNROLL
      for (int offset = kWarpSize / 2; offset > 0; offset /= 2) top = max_(top, __shfl_xor_sync(kFullMask, top, offset));
      if (lane == 0) {
        const acc_t m_new = max_(m[k], top);
        rescale[k] = exp_(m[k] - m_new);  // 0 on the first tile (m = -inf)
        m[k] = m_new;
      }
    }
    MSCA_BARRIER(2);
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) tile[k * kTileStride + tid] = exp_(tile[k * kTileStride + tid] - m[k]);
    for (int e = tid; e < (N + 1) * KP; e += kThreads) acc[e] *= rescale[e % KP];
    MSCA_BARRIER(3);
    accumulate_rows<KP>(N + 1, [&](int r) { return r < N ? x + r * P2 + t0 : nullptr; }, tile, L, acc);
    MSCA_BARRIER(4);  // the tile is rewritten by the next tile
  }
  const int64_t task = b * gridDim.x + j;
  if (tid < KP) part_m[task * KP + tid] = m[tid];
  for (int e = tid; e < (N + 1) * KP; e += kThreads) part_acc[task * (N + 1) * KP + e] = acc[e];
}

// Merges the chunks of batch element b (one block each): lse (B, K) and V (B, N, K).
// weights: (B, K, chunks) scratch; part_m, part_acc as aggregate_kernel writes them.
template <typename acc_t>
__global__ void __launch_bounds__(kThreads) combine_kernel(Dims d, int KP, int chunks, const acc_t* part_m,
                                                           const acc_t* part_acc, acc_t* weights, acc_t* v,
                                                           acc_t* lse) {
  const int tid = threadIdx.x, K = static_cast<int>(d.K), N = static_cast<int>(d.N);
  const int64_t b = blockIdx.x, rows = (N + 1) * int64_t(KP);
  acc_t* w = weights + b * K * chunks;
  for (int k = tid; k < K; k += kThreads) {
    const acc_t* sums = part_acc + b * chunks * rows + N * KP + k;
    lse[b * K + k] = math::combine_partials(part_m + b * chunks * KP + k, sums, KP, rows, chunks, w + k * chunks);
  }
  MSCA_BARRIER(5);
  for (int e = tid; e < N * K; e += kThreads) {
    const int n = e / K, k = e % K;
    acc_t sum = acc_t(0);
    for (int jj = 0; jj < chunks; ++jj) sum += part_acc[(b * chunks + jj) * rows + n * KP + k] * w[k * chunks + jj];
    v[b * N * K + e] = sum;
  }
}

// Pass 2: one thread per target pixel, out[n] = sum_k V[n][k] gate[k] beta[k].
// psi: K x M1; bias: K or nullptr; v: (B, N, K); gate: (B, K) or nullptr.
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    distribute_kernel(Dims d, const in_t* fc1, const in_t* psi, const in_t* bias, const acc_t* v, const in_t* gate,
                      in_t* out) {
  const int64_t b = blockIdx.y, p = blockIdx.x * int64_t(kThreads) + threadIdx.x;
  if (p >= d.P1) return;
  const int K = static_cast<int>(d.K);
  const in_t* gate_b = gate == nullptr ? nullptr : gate + b * K;
  acc_t beta[KP];
  channel_attention<KP>(psi, bias, K, static_cast<int>(d.M1), fc1 + b * d.M1 * d.P1 + p, d.P1, beta);
  MSCA_UNROLL
  for (int k = 0; k < KP; ++k) beta[k] *= gate_of<acc_t>(gate_b, K, k);
  for (int n = 0; n < d.N; ++n) {
    out[(b * d.N + n) * d.P1 + p] = static_cast<in_t>(dot_regions(v + (b * d.N + n) * K, 1, K, beta));
  }
}

// Sweep A over target pixels: thread p writes dFc1[:, p]; block (j, b) sums over its pixels
// [j * chunk, ...) the rows [dVt (N x KP); dpsi^T (M1 x KP); dbias (1 x KP)] into
// part: (B, chunks, N + M1 + 1, KP), where Vt = V o gate. v: (B, N, K).
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    sweep_a_kernel(Dims d, int64_t chunk, const in_t* dout, const in_t* fc1, const in_t* psi, const in_t* bias,
                   const acc_t* v, const in_t* gate, in_t* dfc1, acc_t* part) {
  MSCA_DYNAMIC_SHARED(smem);
  acc_t* beta_tile = reinterpret_cast<acc_t*>(smem);  // KP x kTileStride
  acc_t* grad_tile = beta_tile + KP * kTileStride;    // KP x kTileStride: dT
  acc_t* acc = grad_tile + KP * kTileStride;          // (N + M1 + 1) x KP
  const int tid = threadIdx.x, K = static_cast<int>(d.K), N = static_cast<int>(d.N), M1 = static_cast<int>(d.M1);
  const int R = N + M1 + 1;
  const int64_t b = blockIdx.y, j = blockIdx.x, P1 = d.P1;
  const in_t* go = dout + b * N * P1;
  const in_t* c1 = fc1 + b * M1 * P1;
  const acc_t* v_b = v + b * N * K;
  const in_t* gate_b = gate == nullptr ? nullptr : gate + b * K;
  for (int e = tid; e < R * KP; e += kThreads) acc[e] = acc_t(0);
  const int64_t start = j * chunk, end = min64(P1, start + chunk);
  for (int64_t t0 = start; t0 < end; t0 += kThreads) {
    const int L = static_cast<int>(min64(kThreads, end - t0));
    const int64_t p = t0 + tid;
    acc_t beta[KP], g[KP];
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) beta[k] = g[k] = acc_t(0);
    if (tid < L) {
      channel_attention<KP>(psi, bias, K, M1, c1 + p, P1, beta);
      project_add<KP>(v_b, 1, K, K, N, go + p, P1, g);  // sum_n V[n][k] dOut[n]
      acc_t dot = acc_t(0);
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) {
        g[k] *= gate_of<acc_t>(gate_b, K, k);  // dbeta = Vt^T dOut
        dot += beta[k] * g[k];
      }
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) g[k] = beta[k] * (g[k] - dot);  // dT
      for (int cc = 0; cc < M1; ++cc) dfc1[(b * M1 + cc) * P1 + p] = static_cast<in_t>(dot_regions(psi + cc, M1, K, g));
    }
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) {
      beta_tile[k * kTileStride + tid] = beta[k];
      grad_tile[k * kTileStride + tid] = g[k];
    }
    MSCA_BARRIER(6);
    accumulate_rows<KP>(N, [&](int r) { return go + r * P1 + t0; }, beta_tile, L, acc);
    accumulate_rows<KP>(
        M1 + 1, [&](int r) { return r < M1 ? c1 + r * P1 + t0 : nullptr; }, grad_tile, L, acc + N * KP);
    MSCA_BARRIER(7);
  }
  const int64_t task = b * gridDim.x + j;
  for (int e = tid; e < R * KP; e += kThreads) part[task * R * KP + e] = acc[e];
}

// Sweep B over exemplar pixels: thread p writes dFx2[:, p] and dFc2[:, p]; block (j, b) sums
// dphi^T (C2 x KP) over its pixels into part: (B, chunks, C2, KP).
// phi_t: C2 x KP, phi transposed and zero-padded by the driver: with both KP arrays live,
// the dot products over k need compile-time offsets (phi's runtime row stride would hold
// KP addresses in registers and spill at KP = 32); for the same reason dv = dVt o gate comes
// zero-padded, (B, N, KP), so that no loop over it needs the k < K mask. lse, delta: (B, K).
template <int KP, typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    sweep_b_kernel(Dims d, int64_t chunk, const in_t* fx2, const in_t* fc2, const acc_t* phi_t, const acc_t* lse,
                   const acc_t* dv, const acc_t* delta, in_t* dfx2, in_t* dfc2, acc_t* part) {
  MSCA_DYNAMIC_SHARED(smem);
  acc_t* grad_tile = reinterpret_cast<acc_t*>(smem);  // KP x kTileStride: dS
  acc_t* acc = grad_tile + KP * kTileStride;          // C2 x KP
  const int tid = threadIdx.x, K = static_cast<int>(d.K), N = static_cast<int>(d.N), M2 = static_cast<int>(d.M2);
  const int C2 = N + M2;
  const int64_t b = blockIdx.y, j = blockIdx.x, P2 = d.P2;
  const in_t* x = fx2 + b * N * P2;
  const in_t* c = fc2 + b * M2 * P2;
  const acc_t* dv_b = dv + b * N * KP;
  for (int e = tid; e < C2 * KP; e += kThreads) acc[e] = acc_t(0);
  const int64_t start = j * chunk, end = min64(P2, start + chunk);
  for (int64_t t0 = start; t0 < end; t0 += kThreads) {
    const int L = static_cast<int>(min64(kThreads, end - t0));
    const int64_t p = t0 + tid;
    acc_t prob[KP], g[KP];
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) prob[k] = g[k] = acc_t(0);
    if (tid < L) {
      project_add<KP>(phi_t, 1, KP, KP, N, x + p, P2, prob);
      project_add<KP>(phi_t + N * KP, 1, KP, KP, M2, c + p, P2, prob);
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) prob[k] = k < K ? exp_(prob[k] - lse[b * K + k]) : acc_t(0);  // P
      project_add<KP>(dv_b, 1, KP, KP, N, x + p, P2, g);                                          // dP = dV^T Fx2
      MSCA_UNROLL
      for (int k = 0; k < KP; ++k) g[k] = k < K ? prob[k] * (g[k] - delta[b * K + k]) : acc_t(0);  // dS
      in_t* dx = dfx2 + b * N * P2 + p;
      for (int n = 0; n < N; ++n, dx += P2) {
        *dx = static_cast<in_t>(dot_regions(dv_b + n * KP, 1, KP, prob) + dot_regions(phi_t + n * KP, 1, KP, g));
      }
      in_t* dc = dfc2 + b * M2 * P2 + p;
      for (int mm = 0; mm < M2; ++mm, dc += P2) *dc = static_cast<in_t>(dot_regions(phi_t + (N + mm) * KP, 1, KP, g));
    }
    MSCA_UNROLL
    for (int k = 0; k < KP; ++k) grad_tile[k * kTileStride + tid] = g[k];
    MSCA_BARRIER(8);
    accumulate_rows<KP>(C2, [&](int r) { return r < N ? x + r * P2 + t0 : c + (r - N) * P2 + t0; }, grad_tile, L, acc);
    MSCA_BARRIER(9);
  }
  const int64_t task = b * gridDim.x + j;
  for (int e = tid; e < C2 * KP; e += kThreads) part[task * C2 * KP + e] = acc[e];
}

}  // namespace cuda_kernels
}  // namespace msca_fast
