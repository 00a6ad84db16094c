"""The C++/CUDA extension backends "cpu" and "cuda": fake kernels, autograd, registration.

The ops msca_fast::msca_forward / msca_backward are defined and implemented in csrc/;
this file adds what torch.compile and autograd need (register_fake, register_autograd)
in the pytorch/extension-cpp manner, then registers the backends.
"""

from __future__ import annotations

import torch
from torch import Tensor

from msca_fast import _extension
from msca_fast.reference import is_channels_last
from msca_fast.backends.registry import Backend, register_backend
from msca_fast.validation import Problem


def _saved_dtype(dtype: torch.dtype) -> torch.dtype:
    """V and lse are kept in float32, or float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _register_op_support() -> None:
    @torch.library.register_fake("msca_fast::msca_forward")
    def _(fx2, fc2, fc1, phi, psi, psi_bias, gate):
        batch, channels = fx2.shape[:2]
        saved = _saved_dtype(fx2.dtype)
        out = fx2.new_empty((batch, channels, fc1.shape[2], fc1.shape[3]))
        return out, fx2.new_empty((batch, channels, phi.shape[0]), dtype=saved), fx2.new_empty(
            (batch, phi.shape[0]), dtype=saved
        )

    @torch.library.register_fake("msca_fast::msca_backward")
    def _(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse):
        bias_grad = torch.empty_like(psi_bias) if psi_bias is not None else fx2.new_empty((0,))
        gate_grad = torch.empty_like(gate) if gate is not None else fx2.new_empty((0,))
        return (
            torch.empty_like(fx2, memory_format=torch.contiguous_format),
            torch.empty_like(fc2, memory_format=torch.contiguous_format),
            torch.empty_like(fc1, memory_format=torch.contiguous_format),
            torch.empty_like(phi),
            torch.empty_like(psi),
            bias_grad,
            gate_grad,
        )

    def setup_context(ctx, inputs, output):
        fx2, fc2, fc1, phi, psi, psi_bias, gate = inputs
        _, v, lse = output
        ctx.mark_non_differentiable(v, lse)
        ctx.save_for_backward(fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)

    def backward(ctx, grad_out, grad_v, grad_lse):
        fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse = ctx.saved_tensors
        grads = torch.ops.msca_fast.msca_backward(
            grad_out.contiguous(), fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse
        )
        dfx2, dfc2, dfc1, dphi, dpsi, dbias, dgate = grads
        return (
            dfx2,
            dfc2,
            dfc1,
            dphi,
            dpsi,
            dbias if psi_bias is not None else None,
            dgate if gate is not None else None,
        )

    torch.library.register_autograd("msca_fast::msca_forward", backward, setup_context=setup_context)


class _ZeroGradForPhiBias(torch.autograd.Function):
    """Passes ``out`` through and gives phi's bias its exact gradient: zero (it cancels in
    the spatial softmax). Without it the bias would get no gradient at all, which
    DistributedDataParallel reports as an unused parameter."""

    @staticmethod
    def forward(ctx, out: Tensor, phi_bias: Tensor) -> Tensor:
        ctx.bias_shape = phi_bias.shape
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, grad.new_zeros(ctx.bias_shape)


def _fused_msca(fx2, fc2, fc1, phi, phi_bias, psi, psi_bias, gate):
    """fx2 (B,N,H2,W2), fc2 (B,M2,H2,W2), fc1 (B,M1,H1,W1), phi (K,N+M2), psi (K,M1) -> (B,N,H1,W1)."""
    device_type = fx2.device.type
    if torch.is_autocast_enabled(device_type):
        # Run in the autocast dtype, as the reference's matmuls would; the op itself is
        # registered without autocast, so cast here (any autocast dtype, not a fixed one).
        dtype = torch.get_autocast_dtype(device_type)
        fx2, fc2, fc1, phi, psi = (t.to(dtype) for t in (fx2, fc2, fc1, phi, psi))
        psi_bias = psi_bias.to(dtype) if psi_bias is not None else None
        gate = gate.to(dtype) if gate is not None else None
        with torch.autocast(device_type, enabled=False):
            return _fused_msca(fx2, fc2, fc1, phi, phi_bias, psi, psi_bias, gate)
    out, _, _ = torch.ops.msca_fast.msca_forward(fx2, fc2, fc1, phi, psi, psi_bias, gate)
    if is_channels_last(fc1):
        out = out.contiguous(memory_format=torch.channels_last)
    if phi_bias is not None and phi_bias.requires_grad and torch.is_grad_enabled():
        out = _ZeroGradForPhiBias.apply(out, phi_bias)
    return out


def _not_fused(*args, **kwargs):
    raise RuntimeError("the extension backends implement the fused op only")


# Limits of csrc/msca_cuda.cu: K logits per thread in registers, and a block's shared
# memory within 48 KiB: the forward's K x 256 attention tile + N x K accumulator + 3K
# values, the backward's two K x 256 tiles (sweep A), in the accumulation dtype.
_CUDA_MAX_K = 32
_CUDA_BLOCK = 256
_CUDA_SHARED_BYTES = 48 * 1024


def cuda_shared_bytes(problem: Problem) -> dict[str, int]:
    """Shared memory per block of the CUDA kernels: {"forward": ..., "backward": ...}."""
    k, n = problem.num_regions, problem.image_channels
    element = 8 if problem.dtype == torch.float64 else 4
    return {"forward": element * (k * _CUDA_BLOCK + n * k + 3 * k), "backward": element * 2 * k * _CUDA_BLOCK}


def _cuda_limits(problem: Problem) -> str | None:
    if not _extension.built_with_cuda():
        return "this build of msca_fast._C has no CUDA kernels (nvcc or a CUDA torch was missing at build time)"
    k, n = problem.num_regions, problem.image_channels
    if k > _CUDA_MAX_K:
        return f"K = {k} exceeds the CUDA kernel's limit of {_CUDA_MAX_K}"
    shared = cuda_shared_bytes(problem)
    if shared["forward"] > _CUDA_SHARED_BYTES:
        return (
            f"N*K = {n}*{k} needs {shared['forward']} bytes of shared memory in the forward, "
            f"over the kernel's {_CUDA_SHARED_BYTES}"
        )
    if problem.requires_grad and shared["backward"] > _CUDA_SHARED_BYTES:
        return (
            f"K = {k} in {problem.dtype} needs {shared['backward']} bytes of shared memory in the backward, "
            f"over the kernel's {_CUDA_SHARED_BYTES}"
        )
    return None


def _why_not(device_type: str):
    def why_not(problem: Problem) -> str | None:
        if not _extension.extension_loaded():
            return f"the extension msca_fast._C is not built: {_extension.load_error}"
        if problem.stage != "msca":
            return "implements the fused op only (aggregate/distribute use another backend)"
        if problem.device.type != device_type:
            return f"runs on {device_type} tensors, got {problem.device.type}"
        if device_type == "cuda":
            return _cuda_limits(problem)
        return None

    return why_not


if _extension.extension_loaded():
    _register_op_support()

for _device in ("cpu", "cuda"):
    register_backend(
        Backend(
            name=_device,
            priority=10,
            why_not=_why_not(_device),
            msca=_fused_msca,
            aggregate=_not_fused,
            distribute=_not_fused,
            description=f"C++ extension, fused forward and two-sweep backward ({_device} kernels)",
        )
    )
