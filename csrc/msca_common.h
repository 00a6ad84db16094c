// Host-side helpers shared by the CPU and CUDA drivers: sizes, checks, dtype handling.
// The Python API validates arguments with friendlier messages first; these checks keep
// direct torch.ops calls from reading out of bounds.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace msca_fast {

struct Dims {
  int64_t B, N, M2, M1, K, H2, W2, H1, W1, P2, P1;
};

// A kernel handed a tensor on another device would read the wrong memory: one device for
// every argument, the one of fx2.
inline void check_device(const at::Tensor& fx2, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == fx2.device(), "msca: ", name, " must be on fx2's device (", fx2.device(), "), got ",
              t.device());
}

inline Dims check_inputs(const at::Tensor& fx2, const at::Tensor& fc2, const at::Tensor& fc1,
                         const at::Tensor& phi, const at::Tensor& psi,
                         const std::optional<at::Tensor>& psi_bias,
                         const std::optional<at::Tensor>& gate) {
  TORCH_CHECK(fx2.dim() == 4, "msca: fx2 must be (B,N,H2,W2), got ", fx2.sizes());
  TORCH_CHECK(fc2.dim() == 4, "msca: fc2 must be (B,M2,H2,W2), got ", fc2.sizes());
  TORCH_CHECK(fc1.dim() == 4, "msca: fc1 must be (B,M1,H1,W1), got ", fc1.sizes());
  Dims d{fx2.size(0), fx2.size(1), fc2.size(1), fc1.size(1), phi.size(0),
         fx2.size(2), fx2.size(3), fc1.size(2), fc1.size(3), 0, 0};
  d.P2 = d.H2 * d.W2;
  d.P1 = d.H1 * d.W1;
  TORCH_CHECK(fc2.size(0) == d.B && fc1.size(0) == d.B, "msca: batch sizes differ");
  TORCH_CHECK(fc2.size(2) == d.H2 && fc2.size(3) == d.W2, "msca: fc2 and fx2 sizes differ");
  TORCH_CHECK(d.P2 > 0 && d.P1 > 0, "msca: empty exemplar or target");
  TORCH_CHECK(phi.dim() == 2 && phi.size(1) == d.N + d.M2, "msca: phi must be (K, N+M2), got ", phi.sizes());
  TORCH_CHECK(psi.dim() == 2 && psi.size(0) == d.K && psi.size(1) == d.M1,
              "msca: psi must be (K, M1), got ", psi.sizes());
  TORCH_CHECK(d.K >= 1, "msca: K must be >= 1");
  if (psi_bias) TORCH_CHECK(psi_bias->dim() == 1 && psi_bias->size(0) == d.K, "msca: psi_bias must be (K,)");
  if (gate) TORCH_CHECK(gate->dim() == 2 && gate->size(0) == d.B && gate->size(1) == d.K, "msca: gate must be (B,K)");
  for (const at::Tensor* t : {&fc2, &fc1, &phi, &psi}) {
    TORCH_CHECK(t->scalar_type() == fx2.scalar_type(), "msca: all inputs must share fx2's dtype");
  }
  check_device(fx2, fc2, "fc2");
  check_device(fx2, fc1, "fc1");
  check_device(fx2, phi, "phi");
  check_device(fx2, psi, "psi");
  if (psi_bias) check_device(fx2, *psi_bias, "psi_bias");
  if (gate) check_device(fx2, *gate, "gate");
  return d;
}

inline void check_saved(const at::Tensor& fx2, const at::Tensor& grad_out, const at::Tensor& v, const at::Tensor& lse,
                        const Dims& d) {
  TORCH_CHECK(grad_out.dim() == 4 && grad_out.size(0) == d.B && grad_out.size(1) == d.N &&
                  grad_out.size(2) == d.H1 && grad_out.size(3) == d.W1,
              "msca_backward: grad_out must be (B,N,H1,W1), got ", grad_out.sizes());
  TORCH_CHECK(v.dim() == 3 && v.size(0) == d.B && v.size(1) == d.N && v.size(2) == d.K,
              "msca_backward: v must be (B,N,K), got ", v.sizes());
  TORCH_CHECK(lse.dim() == 2 && lse.size(0) == d.B && lse.size(1) == d.K,
              "msca_backward: lse must be (B,K), got ", lse.sizes());
  check_device(fx2, grad_out, "grad_out");
  check_device(fx2, v, "v");
  check_device(fx2, lse, "lse");
}

// Accumulation dtype: double for double inputs, float for everything else.
inline at::ScalarType compute_dtype(at::ScalarType input) {
  TORCH_CHECK(at::isFloatingType(input), "msca: expected a floating dtype, got ", input);
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

// Contiguous (B,C,H,W) / (K,C) in the compute dtype; channels_last inputs are copied.
inline at::Tensor as_compute(const at::Tensor& t, at::ScalarType dtype) {
  return t.to(dtype).contiguous();
}

inline at::Tensor bias_or_zeros(const std::optional<at::Tensor>& bias, int64_t K, const at::TensorOptions& opts) {
  return bias ? bias->to(opts.dtype()).contiguous() : at::zeros({K}, opts);
}

inline at::Tensor gate_or_ones(const std::optional<at::Tensor>& gate, int64_t B, int64_t K,
                               const at::TensorOptions& opts) {
  return gate ? gate->to(opts.dtype()).contiguous() : at::ones({B, K}, opts);
}

// Gradients back in the input dtype; an absent psi_bias or gate gets a zero-size grad.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
finish_grads(at::ScalarType dtype, const at::Tensor& dfx2, const at::Tensor& dfc2, const at::Tensor& dfc1,
             const at::Tensor& dphi, const at::Tensor& dpsi, const at::Tensor& dbias, const at::Tensor& dgate,
             bool has_bias, bool has_gate) {
  // Two distinct empty tensors: outputs of an op must not alias each other.
  auto empty = [&] { return dfx2.new_empty({0}, dfx2.options().dtype(dtype)); };
  return {dfx2.to(dtype), dfc2.to(dtype), dfc1.to(dtype), dphi.to(dtype), dpsi.to(dtype),
          has_bias ? dbias.to(dtype) : empty(), has_gate ? dgate.to(dtype) : empty()};
}

}  // namespace msca_fast
