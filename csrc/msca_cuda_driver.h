// Host side of the CUDA kernels: weight padding to KP regions, grid sizing, partial
// buffers and the final sums. Compiled by the GPU build (msca_cuda.cu) and by the CPU
// emulation (emulation/msca_cuda_emulated.cpp), each of which first defines namespace
// gpu: dim3, DeviceGuard, properties(), set_max_dynamic_shared(kernel, bytes) and
// launch(kernel, grid, block, shared_bytes, args...).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <limits>
#include <type_traits>

#include "msca_common.h"
#include "msca_cuda_kernels.cuh"

namespace msca_fast {
namespace cuda_driver {

using namespace cuda_kernels;

// Blocks per SM the reduction grids aim at when the batch alone cannot fill the device.
constexpr int64_t kBlocksPerSM = 2;

inline int checked_padded_regions(int64_t K, at::ScalarType dtype) {
  const int64_t most = max_regions(at::elementSize(compute_dtype(dtype)));
  TORCH_CHECK(K >= 1 && K <= most, "msca cuda: K = ", K, " outside the kernels' range 1..", most, " in ", dtype);
  return padded_regions(K);
}

// body(std::integral_constant<int, KP>) for KP = 8, 16 or 32 (the last not for double).
template <typename acc_t, typename F>
void dispatch_regions(int KP, F&& body) {
  switch (KP) {
    case 8: return body(std::integral_constant<int, 8>{});
    case 16: return body(std::integral_constant<int, 16>{});
    default:
      if constexpr (max_regions(sizeof(acc_t)) >= 32) return body(std::integral_constant<int, 32>{});
      TORCH_CHECK(false, "msca cuda: no kernel for ", KP, " regions of ", sizeof(acc_t), "-byte values");
  }
}

// Pixels per block of a reduction sweep over `pixels` pixels of each of B batch elements:
// whole tiles, as few as keep kBlocksPerSM blocks on every SM.
inline int64_t chunk_pixels(int64_t pixels, int64_t B) {
  const int64_t tiles = (pixels + kThreads - 1) / kThreads;
  const int64_t wanted = (kBlocksPerSM * gpu::properties().multiProcessorCount + B - 1) / B;
  const int64_t chunks = std::max<int64_t>(1, std::min(tiles, wanted));
  return (tiles + chunks - 1) / chunks * kThreads;
}

inline int64_t chunks_of(int64_t pixels, int64_t chunk) { return (pixels + chunk - 1) / chunk; }

// Raises a kernel's dynamic shared memory limit past the default 48 KiB when it needs it.
template <typename Kernel>
void reserve_shared(Kernel kernel, size_t bytes, const char* what) {
  const size_t optin = gpu::properties().sharedMemPerBlockOptin;
  TORCH_CHECK(bytes <= optin, "msca cuda: the ", what, " needs ", bytes,
              " bytes of shared memory a block, more than this device's ", optin,
              " (reduce N, M or K, or use another backend)");
  if (bytes > gpu::properties().sharedMemPerBlock) gpu::set_max_dynamic_shared(kernel, bytes);
}

// (K, C) weights -> (C, KP) in the compute dtype, zero columns for the padded regions.
inline at::Tensor padded_transpose(const at::Tensor& w, int KP, at::ScalarType dtype) {
  auto out = at::zeros({w.size(1), KP}, w.options().dtype(dtype));
  out.narrow(1, 0, w.size(0)).copy_(w.t());
  return out;
}

// (..., K) -> (..., KP), zero-padded.
inline at::Tensor zero_padded(const at::Tensor& t, int KP) {
  auto sizes = t.sizes().vec();
  sizes.back() = KP;
  auto out = at::zeros(sizes, t.options());
  out.narrow(-1, 0, t.size(-1)).copy_(t);
  return out;
}

template <typename T>
const T* optional_data(const std::optional<at::Tensor>& t) {
  return t ? t->data_ptr<T>() : nullptr;
}

inline std::optional<at::Tensor> contiguous(const std::optional<at::Tensor>& t) {
  return t ? std::optional<at::Tensor>(t->contiguous()) : std::nullopt;
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor> msca_forward(
    const at::Tensor& fx2_in, const at::Tensor& fc2_in, const at::Tensor& fc1_in, const at::Tensor& phi_in,
    const at::Tensor& psi_in, const std::optional<at::Tensor>& bias_in, const std::optional<at::Tensor>& gate_in) {
  const Dims d = check_inputs(fx2_in, fc2_in, fc1_in, phi_in, psi_in, bias_in, gate_in);
  const gpu::DeviceGuard guard(fx2_in.device());
  const auto acc_opts = fx2_in.options().dtype(compute_dtype(fx2_in.scalar_type()));
  auto out = at::empty({d.B, d.N, d.H1, d.W1}, fx2_in.options());
  auto v = at::empty({d.B, d.N, d.K}, acc_opts), lse = at::empty({d.B, d.K}, acc_opts);
  if (d.B == 0) return {out, v, lse};
  const int KP = checked_padded_regions(d.K, fx2_in.scalar_type());
  // No-ops for the contiguous tensors a network passes; channels_last inputs are copied.
  auto fx2 = fx2_in.contiguous(), fc2 = fc2_in.contiguous(), fc1 = fc1_in.contiguous();
  auto phi = phi_in.contiguous(), psi = psi_in.contiguous();
  auto bias = contiguous(bias_in), gate = contiguous(gate_in);
  const int64_t chunk = chunk_pixels(d.P2, d.B), chunks = chunks_of(d.P2, chunk);
  auto part_m = at::empty({d.B, chunks, KP}, acc_opts);
  auto part_acc = at::empty({d.B, chunks, d.N + 1, KP}, acc_opts);
  auto weights = at::empty({d.B, d.K, chunks}, acc_opts);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fx2.scalar_type(), "msca_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_regions<acc_t>(KP, [&](auto regions) {
      constexpr int R = decltype(regions)::value;
      const auto aggregate = aggregate_kernel<R, scalar_t, acc_t>;
      const size_t shared = sizeof(acc_t) * aggregate_shared(R, d.N);
      reserve_shared(aggregate, shared, "forward");
      gpu::launch(aggregate, gpu::dim3(chunks, d.B), gpu::dim3(kThreads), shared, d, chunk,
                  fx2.data_ptr<scalar_t>(), fc2.data_ptr<scalar_t>(), phi.data_ptr<scalar_t>(),
                  part_m.data_ptr<acc_t>(), part_acc.data_ptr<acc_t>());
      gpu::launch(combine_kernel<acc_t>, gpu::dim3(d.B), gpu::dim3(kThreads), 0, d, R, static_cast<int>(chunks),
                  part_m.data_ptr<acc_t>(), part_acc.data_ptr<acc_t>(), weights.data_ptr<acc_t>(),
                  v.data_ptr<acc_t>(), lse.data_ptr<acc_t>());
      gpu::launch(distribute_kernel<R, scalar_t, acc_t>, gpu::dim3((d.P1 + kThreads - 1) / kThreads, d.B),
                  gpu::dim3(kThreads), 0, d, fc1.data_ptr<scalar_t>(), psi.data_ptr<scalar_t>(),
                  optional_data<scalar_t>(bias), v.data_ptr<acc_t>(), optional_data<scalar_t>(gate),
                  out.data_ptr<scalar_t>());
    });
  });
  return {out, v, lse};
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> msca_backward(
    const at::Tensor& grad_out, const at::Tensor& fx2_in, const at::Tensor& fc2_in, const at::Tensor& fc1_in,
    const at::Tensor& phi_in, const at::Tensor& psi_in, const std::optional<at::Tensor>& bias_in,
    const std::optional<at::Tensor>& gate_in, const at::Tensor& v_in, const at::Tensor& lse_in) {
  const Dims d = check_inputs(fx2_in, fc2_in, fc1_in, phi_in, psi_in, bias_in, gate_in);
  check_saved(fx2_in, grad_out, v_in, lse_in, d);
  const gpu::DeviceGuard guard(fx2_in.device());
  const auto dtype = fx2_in.scalar_type();
  const auto acc_dtype = compute_dtype(dtype);
  const auto acc_opts = fx2_in.options().dtype(acc_dtype);
  auto fx2 = fx2_in.contiguous(), fc2 = fc2_in.contiguous(), fc1 = fc1_in.contiguous();
  auto dfx2 = at::empty_like(fx2), dfc2 = at::empty_like(fc2), dfc1 = at::empty_like(fc1);
  const bool has_bias = bias_in.has_value(), has_gate = gate_in.has_value();
  if (d.B == 0) {
    auto zeros = [&](at::IntArrayRef sizes) { return at::zeros(sizes, acc_opts); };
    return finish_grads(dtype, dfx2, dfc2, dfc1, zeros(phi_in.sizes()), zeros(psi_in.sizes()), zeros({d.K}),
                        zeros({0, d.K}), has_bias, has_gate);
  }
  const int KP = checked_padded_regions(d.K, dtype);
  auto dout = grad_out.to(dtype).contiguous();
  auto phi_t = padded_transpose(phi_in, KP, acc_dtype), psi = psi_in.contiguous();
  auto bias = contiguous(bias_in), gate = contiguous(gate_in);
  auto v = v_in.to(acc_dtype).contiguous(), lse = lse_in.to(acc_dtype).contiguous();
  const int64_t R = d.N + d.M1 + 1, C2 = d.N + d.M2;
  const int64_t chunk_a = chunk_pixels(d.P1, d.B), chunks_a = chunks_of(d.P1, chunk_a);
  const int64_t chunk_b = chunk_pixels(d.P2, d.B), chunks_b = chunks_of(d.P2, chunk_b);
  auto part_a = at::empty({d.B, chunks_a, R, KP}, acc_opts);
  auto part_b = at::empty({d.B, chunks_b, C2, KP}, acc_opts);
  at::Tensor dgate, dbias, dpsi, dphi;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "msca_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_regions<acc_t>(KP, [&](auto regions) {
      constexpr int RP = decltype(regions)::value;
      const auto sweep_a = sweep_a_kernel<RP, scalar_t, acc_t>;
      const size_t shared_a = sizeof(acc_t) * sweep_a_shared(RP, d.N, d.M1);
      reserve_shared(sweep_a, shared_a, "backward (target sweep)");
      gpu::launch(sweep_a, gpu::dim3(chunks_a, d.B), gpu::dim3(kThreads), shared_a, d, chunk_a,
                  dout.data_ptr<scalar_t>(), fc1.data_ptr<scalar_t>(), psi.data_ptr<scalar_t>(),
                  optional_data<scalar_t>(bias), v.data_ptr<acc_t>(), optional_data<scalar_t>(gate),
                  dfc1.data_ptr<scalar_t>(), part_a.data_ptr<acc_t>());
      // Between the sweeps (small, ATen): dV = dVt o g, dgate = sum_n dVt V, delta = sum_n dV V.
      auto sums_a = part_a.sum(1).narrow(2, 0, d.K);  // (B, R, K)
      auto dvt = sums_a.narrow(1, 0, d.N);
      dpsi = sums_a.narrow(1, d.N, d.M1).sum(0).t().contiguous();
      if (has_bias) dbias = sums_a.select(1, d.N + d.M1).sum(0);
      auto dv = has_gate ? dvt * gate->to(acc_dtype).unsqueeze(1) : dvt;
      if (has_gate) dgate = (dvt * v).sum(1);
      auto delta = (dv * v).sum(1).contiguous();
      auto dv_padded = zero_padded(dv, RP);
      const auto sweep_b = sweep_b_kernel<RP, scalar_t, acc_t>;
      const size_t shared_b = sizeof(acc_t) * sweep_b_shared(RP, C2);
      reserve_shared(sweep_b, shared_b, "backward (exemplar sweep)");
      gpu::launch(sweep_b, gpu::dim3(chunks_b, d.B), gpu::dim3(kThreads), shared_b, d, chunk_b,
                  fx2.data_ptr<scalar_t>(), fc2.data_ptr<scalar_t>(), phi_t.data_ptr<acc_t>(), lse.data_ptr<acc_t>(),
                  dv_padded.data_ptr<acc_t>(), delta.data_ptr<acc_t>(), dfx2.data_ptr<scalar_t>(),
                  dfc2.data_ptr<scalar_t>(), part_b.data_ptr<acc_t>());
      // Contiguous, as register_fake promises: compiled graphs trust the fake strides.
      dphi = part_b.sum({0, 1}).narrow(1, 0, d.K).t().contiguous();
    });
  });
  return finish_grads(dtype, dfx2, dfc2, dfc1, dphi, dpsi, dbias, dgate, has_bias, has_gate);
}

}  // namespace cuda_driver
}  // namespace msca_fast
