// Host side of the CUDA kernels: the launch plan (msca_cuda_limits.h) turned into launches,
// three for the forward and four for the backward, and the buffers between them. Compiled
// by the GPU build (msca_cuda_*.cu) and by the CPU emulation (emulation/msca_cuda_emulated.cpp),
// each of which first defines namespace gpu: dim3, DeviceGuard, properties(),
// set_max_dynamic_shared(kernel, bytes) and launch(kernel, grid, block, shared_bytes, args...).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <array>
#include <limits>
#include <mutex>
#include <set>
#include <utility>
#include <type_traits>

#include "msca_common.h"
#include "msca_cuda_kernels.cuh"

namespace msca_fast {
namespace cuda_driver {

using namespace cuda_kernels;

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

// The launch plan of this problem on the current device.
inline std::array<Launch, kStages> plan_for(const Dims& d, at::ScalarType dtype) {
  constexpr int64_t most = std::numeric_limits<int>::max();
  TORCH_CHECK(d.P1 <= most && d.P2 <= most, "msca cuda: images of at most ", most, " pixels (H x W), got ", d.P2,
              " (fx2) and ", d.P1, " (fc1)");
  const Shape shape{d.B, d.N, d.M2, d.M1, d.K, d.P2, d.P1, int64_t(at::elementSize(compute_dtype(dtype)))};
  const auto& device = gpu::properties();
  return launch_plan(shape, device.multiProcessorCount, static_cast<int64_t>(device.sharedMemPerBlockOptin));
}

// Each kernel may use the device's whole opt-in shared memory, set once per kernel and
// device before its first launch (under a lock, so that no thread launches before it is
// set): a per-launch size would race between host threads launching the same kernel for
// different problems.
template <typename... Params>
void allow_all_shared(void (*kernel)(Params...), int device) {
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> done;
  const std::lock_guard<std::mutex> lock(mutex);
  if (done.emplace(reinterpret_cast<const void*>(kernel), device).second) {
    gpu::set_max_dynamic_shared(kernel, gpu::properties().sharedMemPerBlockOptin);
  }
}

// Launches `kernel` with its plan's grid and shared memory.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), const Launch& l, int device, const char* what, Args&&... args) {
  const size_t optin = gpu::properties().sharedMemPerBlockOptin;
  TORCH_CHECK(static_cast<size_t>(l.shared_bytes) <= optin, "msca cuda: the ", what, " needs ", l.shared_bytes,
              " bytes of shared memory a block, more than this device's ", optin,
              " (reduce N, M or K, or use another backend)");
  allow_all_shared(kernel, device);
  gpu::launch(kernel, gpu::dim3(l.grid_x, l.grid_y), gpu::dim3(kThreads), l.shared_bytes,
              std::forward<Args>(args)...);
}

inline int device_slot(const at::Tensor& t) { return t.is_cuda() ? t.get_device() : 0; }

template <typename T>
const T* optional_data(const std::optional<at::Tensor>& t) {
  return t ? t->data_ptr<T>() : nullptr;
}

// The data of a gradient that may be absent (an empty tensor): nullptr when empty.
template <typename T>
T* optional_data(const at::Tensor& t) {
  return t.numel() > 0 ? t.data_ptr<T>() : nullptr;
}

inline std::optional<at::Tensor> contiguous(const std::optional<at::Tensor>& t) {
  return t ? std::optional<at::Tensor>(t->contiguous()) : std::nullopt;
}

// The tensors of one forward call: inputs (contiguous), the partial sums and the outputs.
struct ForwardCall {
  Dims d;
  int KP, device;
  std::array<Launch, kStages> plan;
  at::Tensor fx2, fc2, fc1, phi, psi;
  std::optional<at::Tensor> bias, gate;
  at::Tensor part_ms, part_acc, v, lse, out;
};

// The tensors of one backward call: inputs, saved V and lse, partial sums, dVt and the gradients
// (dbias and dgate empty when absent).
struct BackwardCall {
  Dims d;
  int KP, device;
  std::array<Launch, kStages> plan;
  at::Tensor dout, fx2, fc2, fc1, phi, psi;
  std::optional<at::Tensor> bias, gate;
  at::Tensor v, lse, part_a, dvt, part_b;
  at::Tensor dfx2, dfc2, dfc1, dphi, dpsi, dbias, dgate;
};

// The forward's three launches for inputs of type scalar_t.
template <typename scalar_t>
void forward_launches(const ForwardCall& c) {
  using acc_t = at::opmath_type<scalar_t>;
  dispatch_regions<acc_t>(c.KP, [&](auto regions) {
    constexpr int R = decltype(regions)::value;
    const Launch &pass1 = c.plan[kAggregate], &pass2 = c.plan[kDistribute];
    launch(aggregate_kernel<R, scalar_t, acc_t>, pass1, c.device, "forward (aggregate)", c.d, pass1.chunk, pass1.lanes,
           c.fx2.data_ptr<scalar_t>(), c.fc2.data_ptr<scalar_t>(), c.phi.data_ptr<scalar_t>(),
           c.part_ms.data_ptr<acc_t>(), c.part_acc.data_ptr<acc_t>());
    launch(combine_kernel<acc_t>, c.plan[kCombine], c.device, "forward (combine)", c.d, R,
           static_cast<int>(pass1.chunks), c.part_ms.data_ptr<acc_t>(), c.part_acc.data_ptr<acc_t>(),
           c.v.data_ptr<acc_t>(), c.lse.data_ptr<acc_t>());
    launch(distribute_kernel<R, scalar_t, acc_t>, pass2, c.device, "forward (distribute)", c.d, pass2.lanes,
           c.fc1.data_ptr<scalar_t>(), c.psi.data_ptr<scalar_t>(), optional_data<scalar_t>(c.bias),
           c.v.data_ptr<acc_t>(), optional_data<scalar_t>(c.gate), c.out.data_ptr<scalar_t>());
  });
}

// The backward's four launches for inputs of type scalar_t.
template <typename scalar_t>
void backward_launches(const BackwardCall& c) {
  using acc_t = at::opmath_type<scalar_t>;
  dispatch_regions<acc_t>(c.KP, [&](auto regions) {
    constexpr int R = decltype(regions)::value;
    const Launch &a = c.plan[kSweepA], &b = c.plan[kSweepB];
    launch(sweep_a_kernel<R, scalar_t, acc_t>, a, c.device, "backward (target sweep)", c.d, a.chunk, a.lanes,
           c.dout.data_ptr<scalar_t>(), c.fc1.data_ptr<scalar_t>(), c.psi.data_ptr<scalar_t>(),
           optional_data<scalar_t>(c.bias), c.v.data_ptr<acc_t>(), optional_data<scalar_t>(c.gate),
           c.dfc1.data_ptr<scalar_t>(), c.part_a.data_ptr<acc_t>());
    launch(between_sweeps_kernel<scalar_t, acc_t>, c.plan[kBetweenSweeps], c.device, "backward (between the sweeps)",
           c.d, R, static_cast<int>(a.chunks), c.part_a.data_ptr<acc_t>(), c.dvt.data_ptr<acc_t>(),
           c.dpsi.data_ptr<scalar_t>(), optional_data<scalar_t>(c.dbias));
    launch(sweep_b_kernel<R, scalar_t, acc_t>, b, c.device, "backward (exemplar sweep)", c.d, b.chunk, b.lanes,
           c.fx2.data_ptr<scalar_t>(), c.fc2.data_ptr<scalar_t>(), c.phi.data_ptr<scalar_t>(), c.lse.data_ptr<acc_t>(),
           c.dvt.data_ptr<acc_t>(), c.v.data_ptr<acc_t>(), optional_data<scalar_t>(c.gate),
           c.dfx2.data_ptr<scalar_t>(), c.dfc2.data_ptr<scalar_t>(), optional_data<scalar_t>(c.dgate),
           c.part_b.data_ptr<acc_t>());
    launch(phi_gradient_kernel<scalar_t, acc_t>, c.plan[kPhiGradient], c.device, "backward (phi gradient)", c.d, R,
           static_cast<int>(b.chunks), c.part_b.data_ptr<acc_t>(), c.dphi.data_ptr<scalar_t>());
  });
}

// Explicit instantiations of the launches for one dtype (`prefix` extern: a declaration). The
// GPU build (MSCA_CUDA_LAUNCHES_PER_DTYPE) compiles each dtype in its own translation unit,
// msca_cuda_<dtype>.cu; everywhere else the dispatch below instantiates them.
#define MSCA_CUDA_LAUNCHES(prefix, scalar_t)                             \
  prefix template void forward_launches<scalar_t>(const ForwardCall&); \
  prefix template void backward_launches<scalar_t>(const BackwardCall&);

#ifdef MSCA_CUDA_LAUNCHES_PER_DTYPE
MSCA_CUDA_LAUNCHES(extern, float)
MSCA_CUDA_LAUNCHES(extern, double)
MSCA_CUDA_LAUNCHES(extern, c10::Half)
MSCA_CUDA_LAUNCHES(extern, c10::BFloat16)
#endif

inline std::tuple<at::Tensor, at::Tensor, at::Tensor> msca_forward(
    const at::Tensor& fx2_in, const at::Tensor& fc2_in, const at::Tensor& fc1_in, const at::Tensor& phi_in,
    const at::Tensor& psi_in, const std::optional<at::Tensor>& bias_in, const std::optional<at::Tensor>& gate_in) {
  const Dims d = check_inputs(fx2_in, fc2_in, fc1_in, phi_in, psi_in, bias_in, gate_in);
  const gpu::DeviceGuard guard(fx2_in.device());
  const auto dtype = fx2_in.scalar_type();
  const auto acc_opts = fx2_in.options().dtype(compute_dtype(dtype));
  auto out = at::empty({d.B, d.N, d.H1, d.W1}, fx2_in.options());
  auto v = at::empty({d.B, d.N, d.K}, acc_opts), lse = at::empty({d.B, d.K}, acc_opts);
  if (d.B == 0) return {out, v, lse};
  const int KP = checked_padded_regions(d.K, dtype);
  const auto plan = plan_for(d, dtype);
  const int64_t chunks = plan[kAggregate].chunks;
  // contiguous(): no-ops for the contiguous tensors a network passes; channels_last inputs are copied.
  const ForwardCall call{d, KP, device_slot(fx2_in), plan, fx2_in.contiguous(), fc2_in.contiguous(),
                         fc1_in.contiguous(), phi_in.contiguous(), psi_in.contiguous(), contiguous(bias_in),
                         contiguous(gate_in), at::empty({d.B, chunks, 2, KP}, acc_opts),
                         at::empty({d.B, chunks, d.N, KP}, acc_opts), v, lse, out};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "msca_forward_cuda",
                                  [&] { forward_launches<scalar_t>(call); });
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
  const auto acc_opts = fx2_in.options().dtype(acc_dtype), in_opts = fx2_in.options();
  auto fx2 = fx2_in.contiguous(), fc2 = fc2_in.contiguous(), fc1 = fc1_in.contiguous();
  auto dfx2 = at::empty_like(fx2), dfc2 = at::empty_like(fc2), dfc1 = at::empty_like(fc1);
  const bool has_bias = bias_in.has_value(), has_gate = gate_in.has_value();
  if (d.B == 0) {
    auto zeros = [&](at::IntArrayRef sizes) { return at::zeros(sizes, acc_opts); };
    return finish_grads(dtype, dfx2, dfc2, dfc1, zeros(phi_in.sizes()), zeros(psi_in.sizes()), zeros({d.K}),
                        zeros({0, d.K}), has_bias, has_gate);
  }
  const int KP = checked_padded_regions(d.K, dtype);
  const auto plan = plan_for(d, dtype);
  const int64_t chunks_a = plan[kSweepA].chunks, chunks_b = plan[kSweepB].chunks;
  // Gradients in the input dtype, written by the kernels; two distinct empty tensors for an
  // absent psi_bias or gate (outputs of an op must not alias each other).
  const BackwardCall call{d, KP, device_slot(fx2), plan, grad_out.to(dtype).contiguous(), fx2, fc2, fc1,
                          phi_in.contiguous(), psi_in.contiguous(), contiguous(bias_in), contiguous(gate_in),
                          v_in.to(acc_dtype).contiguous(), lse_in.to(acc_dtype).contiguous(),
                          at::empty({d.B, chunks_a, d.N + d.M1 + 1, KP}, acc_opts), at::empty({d.B, d.N, KP}, acc_opts),
                          at::empty({d.B, chunks_b, d.N + d.M2, KP}, acc_opts), dfx2, dfc2, dfc1,
                          at::empty({d.K, d.N + d.M2}, in_opts), at::empty({d.K, d.M1}, in_opts),
                          at::empty({has_bias ? d.K : 0}, in_opts),
                          has_gate ? at::empty({d.B, d.K}, in_opts) : at::empty({0}, in_opts)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "msca_backward_cuda",
                                  [&] { backward_launches<scalar_t>(call); });
  return {call.dfx2, call.dfc2, call.dfc1, call.dphi, call.dpsi, call.dbias, call.dgate};
}

}  // namespace cuda_driver
}  // namespace msca_fast
