// CPU driver of the fused MSCA op: tiles of pixels, at::parallel_for over (batch, chunk)
// tasks, the math from msca_math.h. No K x HW tensor is allocated: each task keeps a
// K x kTile scratch tile, and cross-chunk sums go through small per-task partial buffers
// summed in a fixed order (deterministic for any thread count).
//
// float and double compute in their own precision; float16 / bfloat16 are upcast to float
// on entry and the results cast back.

#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "msca_common.h"
#include "msca_math.h"

namespace msca_fast {
namespace {

using namespace math;

constexpr int64_t kTile = 128;           // pixels per tile: the K x kTile scratch stays in L1
constexpr int64_t kChunksPerImage = 16;  // pixel ranges per batch element (parallel tasks)

// Pixel ranges [chunk * size, ...) of a P-pixel image: a function of P alone, so the
// summation order, and hence the result, does not depend on the thread count.
struct Chunking {
  int64_t size;
  int64_t count;
  explicit Chunking(int64_t pixels) {
    const int64_t tiles = (pixels + kTile - 1) / kTile;
    size = std::max<int64_t>(1, (tiles + kChunksPerImage - 1) / kChunksPerImage) * kTile;
    count = (pixels + size - 1) / size;
  }
};

template <typename Fn>
void for_each_task(int64_t batch, const Chunking& chunks, Fn fn) {
  at::parallel_for(0, batch * chunks.count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) fn(task / chunks.count, task % chunks.count);
  });
}

// Channel attention of one tile: y (K x kTile) = softmax over K of psi Fc1 + b.
template <typename T>
void channel_attention_tile(const T* psi, const T* bias, int K, int M1, const T* fc1, int64_t P1,
                            T* y, T* colmax, T* colsum, int L) {
  for (int k = 0; k < K; ++k) std::fill(y + k * kTile, y + k * kTile + L, bias[k]);
  project_add(psi, M1, K, M1, fc1, P1, y, kTile, L);
  softmax_columns(y, kTile, K, L, colmax, colsum);
}

// Spatial logits of one tile: y (K x kTile) = phi [Fx2; Fc2].
template <typename T>
void spatial_logits_tile(const T* phi, int K, int N, int M2, const T* fx2, const T* fc2,
                         int64_t P2, T* y, int L) {
  for (int k = 0; k < K; ++k) std::fill(y + k * kTile, y + k * kTile + L, T(0));
  project_add(phi, N + M2, K, N, fx2, P2, y, kTile, L);
  project_add(phi + N, N + M2, K, M2, fc2, P2, y, kTile, L);
}

template <typename T>
void forward_kernel(const Dims& d, const T* fx2, const T* fc2, const T* fc1, const T* phi,
                    const T* psi, const T* bias, const T* gate, T* out, T* v, T* lse) {
  const int K = d.K, N = d.N, M1 = d.M1, M2 = d.M2;
  // Pass 1: partial (max, sum, accumulator) per pixel chunk of the exemplar.
  const Chunking ex(d.P2);
  std::vector<T> part_m(d.B * ex.count * K), part_s(d.B * ex.count * K);
  std::vector<T> part_acc(d.B * ex.count * N * K);
  for_each_task(d.B, ex, [&](int64_t b, int64_t j) {
    std::vector<T> y(K * kTile), scale(K);
    T* m = &part_m[(b * ex.count + j) * K];
    T* s = &part_s[(b * ex.count + j) * K];
    T* acc = &part_acc[(b * ex.count + j) * N * K];
    std::fill(m, m + K, -std::numeric_limits<T>::infinity());
    std::fill(s, s + K, T(0));
    std::fill(acc, acc + N * K, T(0));
    const T* x = fx2 + b * N * d.P2;
    const T* c = fc2 + b * M2 * d.P2;
    const int64_t end = std::min(d.P2, (j + 1) * ex.size);
    for (int64_t t0 = j * ex.size; t0 < end; t0 += kTile) {
      const int L = static_cast<int>(std::min(kTile, end - t0));
      spatial_logits_tile(phi, K, N, M2, x + t0, c + t0, d.P2, y.data(), L);
      online_softmax_tile(y.data(), kTile, K, L, m, s, scale.data());
      for (int64_t i = 0; i < N * K; ++i) acc[i] *= scale[i % K];
      outer_accumulate(x + t0, d.P2, N, y.data(), kTile, K, acc, L);
    }
  });
  // Combine the chunks: V = sum_j w_j acc_j, lse = M + log L.
  std::vector<T> weight(ex.count);
  for (int64_t b = 0; b < d.B; ++b) {
    for (int k = 0; k < K; ++k) {
      const int64_t first = b * ex.count * K + k;
      lse[b * K + k] = combine_partials(&part_m[first], &part_s[first], K, ex.count, weight.data());
      for (int n = 0; n < N; ++n) {
        T sum = T(0);
        for (int64_t j = 0; j < ex.count; ++j) sum += part_acc[((b * ex.count + j) * N + n) * K + k] * weight[j];
        v[(b * N + n) * K + k] = sum;
      }
    }
  }
  // Pass 2: out = (V o g) beta, tile by tile over the target.
  std::vector<T> vt(d.B * N * K);
  for (int64_t i = 0; i < d.B * N * K; ++i) vt[i] = v[i] * gate[(i / (N * K)) * K + i % K];
  const Chunking tg(d.P1);
  for_each_task(d.B, tg, [&](int64_t b, int64_t j) {
    std::vector<T> y(K * kTile), colmax(kTile), colsum(kTile), row(kTile);
    const T* c1 = fc1 + b * M1 * d.P1;
    T* o = out + b * N * d.P1;
    const int64_t end = std::min(d.P1, (j + 1) * tg.size);
    for (int64_t t0 = j * tg.size; t0 < end; t0 += kTile) {
      const int L = static_cast<int>(std::min(kTile, end - t0));
      channel_attention_tile(psi, bias, K, M1, c1 + t0, d.P1, y.data(), colmax.data(), colsum.data(), L);
      for (int n = 0; n < N; ++n) {
        expand_row(&vt[(b * N + n) * K], K, y.data(), kTile, o + n * d.P1 + t0, L);
      }
    }
  });
}

template <typename T>
void backward_kernel(const Dims& d, const T* dout, const T* fx2, const T* fc2, const T* fc1,
                     const T* phi, const T* psi, const T* bias, const T* gate, const T* v,
                     const T* lse, T* dfx2, T* dfc2, T* dfc1, T* dphi, T* dpsi, T* dbias, T* dgate) {
  const int K = d.K, N = d.N, M1 = d.M1, M2 = d.M2, C2 = N + M2;
  std::vector<T> vt(d.B * N * K), vt_t(d.B * K * N), psi_t(M1 * K), phi_t(C2 * K);
  for (int64_t b = 0; b < d.B; ++b)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) {
        const T value = v[(b * N + n) * K + k] * gate[b * K + k];
        vt[(b * N + n) * K + k] = value;
        vt_t[(b * K + k) * N + n] = value;
      }
  for (int k = 0; k < K; ++k) {
    for (int c = 0; c < M1; ++c) psi_t[c * K + k] = psi[k * M1 + c];
    for (int c = 0; c < C2; ++c) phi_t[c * K + k] = phi[k * C2 + c];
  }

  // Sweep A over target pixels: dFc1 directly; dVt, dpsi^T, dbias as per-task partials.
  const Chunking tg(d.P1);
  std::vector<T> part_dvt(d.B * tg.count * N * K, T(0)), part_dpsi(d.B * tg.count * M1 * K, T(0));
  std::vector<T> part_dbias(d.B * tg.count * K, T(0));
  for_each_task(d.B, tg, [&](int64_t b, int64_t j) {
    std::vector<T> beta(K * kTile), g(K * kTile), colmax(kTile), colsum(kTile);
    const int64_t task = b * tg.count + j;
    const T* c1 = fc1 + b * M1 * d.P1;
    const T* go = dout + b * N * d.P1;
    T* gc1 = dfc1 + b * M1 * d.P1;
    const int64_t end = std::min(d.P1, (j + 1) * tg.size);
    for (int64_t t0 = j * tg.size; t0 < end; t0 += kTile) {
      const int L = static_cast<int>(std::min(kTile, end - t0));
      channel_attention_tile(psi, bias, K, M1, c1 + t0, d.P1, beta.data(), colmax.data(), colsum.data(), L);
      outer_accumulate(go + t0, d.P1, N, beta.data(), kTile, K, &part_dvt[task * N * K], L);
      for (int k = 0; k < K; ++k) std::fill(g.data() + k * kTile, g.data() + k * kTile + L, T(0));
      project_add(&vt_t[b * K * N], N, K, N, go + t0, d.P1, g.data(), kTile, L);  // dbeta
      softmax_columns_backward(beta.data(), g.data(), kTile, K, L, colmax.data());  // dT
      for (int c = 0; c < M1; ++c) expand_row(&psi_t[c * K], K, g.data(), kTile, gc1 + c * d.P1 + t0, L);
      outer_accumulate(c1 + t0, d.P1, M1, g.data(), kTile, K, &part_dpsi[task * M1 * K], L);
      for (int k = 0; k < K; ++k)
        for (int l = 0; l < L; ++l) part_dbias[task * K + k] += g[k * kTile + l];
    }
  });

  // Between the sweeps (tiny): dV = dVt o g, dgate = sum_n dVt V, delta = sum_n dV V.
  std::vector<T> dv(d.B * N * K), dv_t(d.B * K * N), delta(d.B * K, T(0));
  std::fill(dpsi, dpsi + K * M1, T(0));
  std::fill(dbias, dbias + K, T(0));
  for (int64_t b = 0; b < d.B; ++b) {
    for (int k = 0; k < K; ++k) dgate[b * K + k] = T(0);
    for (int64_t j = 0; j < tg.count; ++j) {
      const int64_t task = b * tg.count + j;
      for (int k = 0; k < K; ++k) {
        dbias[k] += part_dbias[task * K + k];
        for (int c = 0; c < M1; ++c) dpsi[k * M1 + c] += part_dpsi[(task * M1 + c) * K + k];
      }
    }
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) {
        T dvt = T(0);
        for (int64_t j = 0; j < tg.count; ++j) dvt += part_dvt[((b * tg.count + j) * N + n) * K + k];
        const T value = v[(b * N + n) * K + k];
        const T grad_v = dvt * gate[b * K + k];
        dgate[b * K + k] += dvt * value;
        delta[b * K + k] += grad_v * value;
        dv[(b * N + n) * K + k] = grad_v;
        dv_t[(b * K + k) * N + n] = grad_v;
      }
  }

  // Sweep B over exemplar pixels: dFx2, dFc2 directly; dphi^T as per-task partials.
  // The tile holds [P; dS] (2K x kTile) so dFx2 = [dV, phi_x^T] [P; dS] is one expansion.
  std::vector<T> coef_x(d.B * N * 2 * K);
  for (int64_t b = 0; b < d.B; ++b)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) {
        coef_x[(b * N + n) * 2 * K + k] = dv[(b * N + n) * K + k];
        coef_x[(b * N + n) * 2 * K + K + k] = phi_t[n * K + k];
      }
  const Chunking ex(d.P2);
  std::vector<T> part_dphi(d.B * ex.count * C2 * K, T(0));
  for_each_task(d.B, ex, [&](int64_t b, int64_t j) {
    std::vector<T> y(2 * K * kTile);
    T* p = y.data();
    T* g = y.data() + K * kTile;
    T* acc = &part_dphi[(b * ex.count + j) * C2 * K];
    const T* x = fx2 + b * N * d.P2;
    const T* c = fc2 + b * M2 * d.P2;
    T* gx = dfx2 + b * N * d.P2;
    T* gc = dfc2 + b * M2 * d.P2;
    const int64_t end = std::min(d.P2, (j + 1) * ex.size);
    for (int64_t t0 = j * ex.size; t0 < end; t0 += kTile) {
      const int L = static_cast<int>(std::min(kTile, end - t0));
      spatial_logits_tile(phi, K, N, M2, x + t0, c + t0, d.P2, p, L);
      exp_shift(p, kTile, K, L, lse + b * K);
      for (int k = 0; k < K; ++k) std::fill(g + k * kTile, g + k * kTile + L, T(0));
      project_add(&dv_t[b * K * N], N, K, N, x + t0, d.P2, g, kTile, L);  // dP
      softmax_rows_backward(p, g, kTile, K, L, &delta[b * K]);            // dS
      for (int n = 0; n < N; ++n)
        expand_row(&coef_x[(b * N + n) * 2 * K], 2 * K, p, kTile, gx + n * d.P2 + t0, L);
      for (int m = 0; m < M2; ++m) expand_row(&phi_t[(N + m) * K], K, g, kTile, gc + m * d.P2 + t0, L);
      outer_accumulate(x + t0, d.P2, N, g, kTile, K, acc, L);
      outer_accumulate(c + t0, d.P2, M2, g, kTile, K, acc + N * K, L);
    }
  });
  std::fill(dphi, dphi + K * C2, T(0));
  for (int64_t task = 0; task < d.B * ex.count; ++task)
    for (int c = 0; c < C2; ++c)
      for (int k = 0; k < K; ++k) dphi[k * C2 + c] += part_dphi[(task * C2 + c) * K + k];
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> msca_forward_cpu(
    const at::Tensor& fx2, const at::Tensor& fc2, const at::Tensor& fc1, const at::Tensor& phi,
    const at::Tensor& psi, const std::optional<at::Tensor>& psi_bias,
    const std::optional<at::Tensor>& gate) {
  const Dims d = check_inputs(fx2, fc2, fc1, phi, psi, psi_bias, gate);
  const auto compute = compute_dtype(fx2.scalar_type());
  const auto opts = fx2.options().dtype(compute);
  auto x2 = as_compute(fx2, compute), c2 = as_compute(fc2, compute), c1 = as_compute(fc1, compute);
  auto w_phi = as_compute(phi, compute), w_psi = as_compute(psi, compute);
  auto b = bias_or_zeros(psi_bias, d.K, opts), g = gate_or_ones(gate, d.B, d.K, opts);
  auto out = at::empty({d.B, d.N, d.H1, d.W1}, opts);
  auto v = at::empty({d.B, d.N, d.K}, opts);
  auto lse = at::empty({d.B, d.K}, opts);
  AT_DISPATCH_FLOATING_TYPES(compute, "msca_forward_cpu", [&] {
    forward_kernel<scalar_t>(d, x2.data_ptr<scalar_t>(), c2.data_ptr<scalar_t>(), c1.data_ptr<scalar_t>(),
                             w_phi.data_ptr<scalar_t>(), w_psi.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                             g.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                             lse.data_ptr<scalar_t>());
  });
  return {out.to(fx2.scalar_type()), v, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
msca_backward_cpu(const at::Tensor& grad_out, const at::Tensor& fx2, const at::Tensor& fc2,
                  const at::Tensor& fc1, const at::Tensor& phi, const at::Tensor& psi,
                  const std::optional<at::Tensor>& psi_bias, const std::optional<at::Tensor>& gate,
                  const at::Tensor& v, const at::Tensor& lse) {
  const Dims d = check_inputs(fx2, fc2, fc1, phi, psi, psi_bias, gate);
  check_saved(grad_out, v, lse, d);
  const auto dtype = fx2.scalar_type();
  const auto compute = compute_dtype(dtype);
  const auto opts = fx2.options().dtype(compute);
  auto go = as_compute(grad_out, compute);
  auto x2 = as_compute(fx2, compute), c2 = as_compute(fc2, compute), c1 = as_compute(fc1, compute);
  auto w_phi = as_compute(phi, compute), w_psi = as_compute(psi, compute);
  auto b = bias_or_zeros(psi_bias, d.K, opts), g = gate_or_ones(gate, d.B, d.K, opts);
  auto v_c = as_compute(v, compute), lse_c = as_compute(lse, compute);
  auto dfx2 = at::empty({d.B, d.N, d.H2, d.W2}, opts), dfc2 = at::empty({d.B, d.M2, d.H2, d.W2}, opts);
  auto dfc1 = at::empty({d.B, d.M1, d.H1, d.W1}, opts);
  auto dphi = at::empty({d.K, d.N + d.M2}, opts), dpsi = at::empty({d.K, d.M1}, opts);
  auto dbias = at::empty({d.K}, opts), dgate = at::empty({d.B, d.K}, opts);
  AT_DISPATCH_FLOATING_TYPES(compute, "msca_backward_cpu", [&] {
    backward_kernel<scalar_t>(
        d, go.data_ptr<scalar_t>(), x2.data_ptr<scalar_t>(), c2.data_ptr<scalar_t>(), c1.data_ptr<scalar_t>(),
        w_phi.data_ptr<scalar_t>(), w_psi.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
        v_c.data_ptr<scalar_t>(), lse_c.data_ptr<scalar_t>(), dfx2.data_ptr<scalar_t>(), dfc2.data_ptr<scalar_t>(),
        dfc1.data_ptr<scalar_t>(), dphi.data_ptr<scalar_t>(), dpsi.data_ptr<scalar_t>(),
        dbias.data_ptr<scalar_t>(), dgate.data_ptr<scalar_t>());
  });
  return finish_grads(dtype, dfx2, dfc2, dfc1, dphi, dpsi, dbias, dgate, psi_bias.has_value(), gate.has_value());
}

}  // namespace

TORCH_LIBRARY_IMPL(msca_fast, CPU, m) {
  m.impl("msca_forward", &msca_forward_cpu);
  m.impl("msca_backward", &msca_backward_cpu);
}

}  // namespace msca_fast
