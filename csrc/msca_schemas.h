// The op schemas, shared by the operator library (msca_fast::) and the emulated CUDA
// library (msca_fast_emulated::), which define the same two ops.
#pragma once

namespace msca_fast {

// Fused forward: out (B,N,H1,W1), V (B,N,K) and lse (B,K) of the spatial softmax in the
// accumulation dtype (float32, float64 for float64 inputs). phi (K,N+M2), psi (K,M1),
// psi_bias (K,) or None, gate (B,K) or None.
constexpr const char* kForwardSchema =
    "msca_forward(Tensor fx2, Tensor fc2, Tensor fc1, Tensor phi, Tensor psi, "
    "Tensor? psi_bias, Tensor? gate) -> (Tensor, Tensor, Tensor)";

// Two-sweep backward from the saved V and lse: grads of fx2, fc2, fc1, phi, psi, psi_bias
// and gate (the last two are zero-size when the input was None).
constexpr const char* kBackwardSchema =
    "msca_backward(Tensor grad_out, Tensor fx2, Tensor fc2, Tensor fc1, Tensor phi, "
    "Tensor psi, Tensor? psi_bias, Tensor? gate, Tensor v, Tensor lse) -> "
    "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)";

}  // namespace msca_fast
