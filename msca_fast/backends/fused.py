"""What every fused backend (cpu, cuda, cuda_emulated, triton) does around its ops, written
once: autograd through its two-sweep backward op, autocast, phi's bias gradient and the
output layout.

A fused backend provides ``forward_op(fx2, fc2, fc1, phi, psi, psi_bias, gate) -> (out, V,
lse)`` and ``backward_op(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, V, lse)`` -> the
seven gradients (zero-size for an absent psi_bias or gate); :func:`register_two_sweep_autograd`
connects them, :func:`fused_msca` makes the backend's ``msca`` entry point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from msca_fast.reference import is_channels_last

ForwardOp = Callable[..., tuple[Tensor, Tensor, Tensor]]


def register_two_sweep_autograd(
    forward: str, backward_op: Callable[[], Callable[..., tuple[Tensor, ...]]], contiguous_grad: bool
) -> None:
    """Autograd for the op named ``forward`` ("namespace::name"): saves the inputs, V and lse,
    and runs ``backward_op()`` (looked up at call time). ``contiguous_grad``: the backward
    kernels need a contiguous upstream gradient."""

    def setup_context(ctx, inputs, output):
        fx2, fc2, fc1, phi, psi, psi_bias, gate = inputs
        _, v, lse = output
        ctx.mark_non_differentiable(v, lse)
        ctx.save_for_backward(fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)

    def backward(ctx, grad_out, grad_v, grad_lse):
        fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse = ctx.saved_tensors
        grad_out = grad_out.contiguous() if contiguous_grad else grad_out
        dfx2, dfc2, dfc1, dphi, dpsi, dbias, dgate = backward_op()(
            grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse
        )
        return (
            dfx2,
            dfc2,
            dfc1,
            dphi,
            dpsi,
            dbias if psi_bias is not None else None,
            dgate if gate is not None else None,
        )

    torch.library.register_autograd(forward, backward, setup_context=setup_context)


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


def run_fused(forward_op: ForwardOp, fx2, fc2, fc1, phi, phi_bias, psi, psi_bias, gate) -> Tensor:
    """fx2 (B,N,H2,W2), fc2 (B,M2,H2,W2), fc1 (B,M1,H1,W1), phi (K,N+M2), psi (K,M1) ->
    out (B,N,H1,W1), channels_last when fc1 is."""
    device_type = fx2.device.type
    if torch.is_autocast_enabled(device_type):
        # The ops are registered without autocast: run them in the autocast dtype, as the
        # reference's matmuls would (any autocast dtype, not a fixed one).
        dtype = torch.get_autocast_dtype(device_type)
        fx2, fc2, fc1, phi, psi = (t.to(dtype) for t in (fx2, fc2, fc1, phi, psi))
        psi_bias = psi_bias.to(dtype) if psi_bias is not None else None
        gate = gate.to(dtype) if gate is not None else None
        with torch.autocast(device_type, enabled=False):
            return run_fused(forward_op, fx2, fc2, fc1, phi, phi_bias, psi, psi_bias, gate)
    out, _, _ = forward_op(fx2, fc2, fc1, phi, psi, psi_bias, gate)
    if is_channels_last(fc1) and not out.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    if phi_bias is not None and phi_bias.requires_grad and torch.is_grad_enabled():
        out = _ZeroGradForPhiBias.apply(out, phi_bias)
    return out


def fused_msca(forward_op: Callable[[], ForwardOp]) -> Callable[..., Tensor]:
    """The ``msca`` entry point of a backend whose forward op ``forward_op()`` returns (looked
    up at call time: an op library may load after the backend registers)."""

    def msca(fx2, fc2, fc1, phi, phi_bias, psi, psi_bias, gate) -> Tensor:
        return run_fused(forward_op(), fx2, fc2, fc1, phi, phi_bias, psi, psi_bias, gate)

    return msca
