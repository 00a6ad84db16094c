"""The C++/CUDA extension backends "cpu", "cuda" and "cuda_emulated": fake kernels,
autograd, registration.

The ops msca_fast::msca_forward / msca_backward are defined and implemented in csrc/
(CPU and CUDA kernels); msca_fast_emulated:: holds the same ops with the CUDA kernels run
on CPU tensors through csrc/emulation/. This file adds what torch.compile and autograd
need (register_fake, register_autograd) in the pytorch/extension-cpp manner, then
registers the backends.
"""

from __future__ import annotations

import torch

from msca_fast import _extension
from msca_fast.backends.devices import BACKWARD_ARGS, FORWARD_ARGS, check_one_device
from msca_fast.backends.fused import fused_msca, register_two_sweep_autograd
from msca_fast.backends.problem import Problem
from msca_fast.backends.registry import Backend, register_backend


def _saved_dtype(dtype: torch.dtype) -> torch.dtype:
    """V and lse are kept in float32, or float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _register_op_support(namespace: str) -> None:
    """register_fake and register_autograd for ``namespace``::msca_forward / msca_backward."""
    ops = getattr(torch.ops, namespace)

    @torch.library.register_fake(f"{namespace}::msca_forward")
    def _(fx2, fc2, fc1, phi, psi, psi_bias, gate):
        check_one_device(f"{namespace}::msca_forward", FORWARD_ARGS, (fx2, fc2, fc1, phi, psi, psi_bias, gate))
        batch, channels = fx2.shape[:2]
        saved = _saved_dtype(fx2.dtype)
        out = fx2.new_empty((batch, channels, fc1.shape[2], fc1.shape[3]))
        return out, fx2.new_empty((batch, channels, phi.shape[0]), dtype=saved), fx2.new_empty(
            (batch, phi.shape[0]), dtype=saved
        )

    @torch.library.register_fake(f"{namespace}::msca_backward")
    def _(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse):
        args = (grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)
        check_one_device(f"{namespace}::msca_backward", BACKWARD_ARGS, args)
        # Every gradient contiguous, as the kernels return them, whatever the inputs' strides.
        bias_grad = psi_bias.new_empty(psi_bias.shape) if psi_bias is not None else fx2.new_empty((0,))
        gate_grad = gate.new_empty(gate.shape) if gate is not None else fx2.new_empty((0,))
        return (
            torch.empty_like(fx2, memory_format=torch.contiguous_format),
            torch.empty_like(fc2, memory_format=torch.contiguous_format),
            torch.empty_like(fc1, memory_format=torch.contiguous_format),
            phi.new_empty(phi.shape),
            psi.new_empty(psi.shape),
            bias_grad,
            gate_grad,
        )

    register_two_sweep_autograd(f"{namespace}::msca_forward", lambda: ops.msca_backward, contiguous_grad=True)


def _accumulator_bytes(dtype: torch.dtype) -> int:
    """Bytes of the kernels' accumulation type: double for float64, float otherwise."""
    return 8 if dtype == torch.float64 else 4


# The limits come from the operator library (csrc/msca_cuda_limits.h). torch.compile traces
# backend selection, and an op returning ints would break its graph: these are constants for
# a given shape, so Dynamo takes their values at trace time.
@torch._dynamo.assume_constant_result
def _kernel_limits(n: int, m2: int, m1: int, k: int, element: int) -> tuple[int, int, int, int]:
    """(most regions, forward, sweep A, sweep B shared bytes a block) for these sizes."""
    forward, sweep_a, sweep_b = torch.ops.msca_fast.cuda_shared_bytes(n, m2, m1, k, element)
    return int(torch.ops.msca_fast.cuda_max_regions(element)), int(forward), int(sweep_a), int(sweep_b)


@torch._dynamo.assume_constant_result
def _shared_memory_optin(device_type: str, device_index: int) -> int:
    """The most dynamic shared memory a block may ask for on the (emulated) device."""
    if device_type == "cuda_emulated":
        return int(torch.ops.msca_fast_emulated.shared_memory_per_block_optin())
    return int(torch.cuda.get_device_properties(device_index).shared_memory_per_block_optin)


def _limits_of(problem: Problem) -> tuple[int, int, int, int]:
    return _kernel_limits(
        problem.image_channels,
        problem.exemplar_label_channels,
        problem.target_label_channels,
        problem.num_regions,
        _accumulator_bytes(problem.dtype),
    )


def cuda_shared_bytes(problem: Problem) -> dict[str, int]:
    """Dynamic shared memory a block of each CUDA kernel needs for ``problem``, in bytes:
    {"forward": ..., "backward": ...} (the larger of the backward's two sweeps)."""
    _, forward, sweep_a, sweep_b = _limits_of(problem)
    return {"forward": forward, "backward": max(sweep_a, sweep_b)}


def _cuda_limits(problem: Problem, device_type: str) -> str | None:
    """Why the CUDA kernels (on a GPU or emulated) cannot hold ``problem``, or None."""
    k = problem.num_regions
    max_regions = _limits_of(problem)[0]
    if k > max_regions:
        return f"K = {k} exceeds the CUDA kernels' limit of {max_regions} in {problem.dtype}"
    shared = cuda_shared_bytes(problem)
    device_index = problem.device.index if problem.device.index is not None else 0
    if device_type == "cuda" and problem.device.index is None:
        device_index = torch.cuda.current_device()
    optin = _shared_memory_optin(device_type, device_index)
    for stage in ("forward", "backward") if problem.requires_grad else ("forward",):
        if shared[stage] > optin:
            return (
                f"N={problem.image_channels}, M={problem.exemplar_label_channels}/{problem.target_label_channels}, "
                f"K={k} in {problem.dtype} need {shared[stage]} bytes of shared memory a block in the {stage}, "
                f"over the device's {optin}"
            )
    return None


def _why_not(backend: str):
    """why_not of backend "cpu", "cuda" or "cuda_emulated"."""
    tensor_device = "cpu" if backend == "cuda_emulated" else backend

    def why_not(problem: Problem) -> str | None:
        if not _extension.extension_loaded():
            return f"the extension msca_fast._C is not built: {_extension.load_error}"
        if backend == "cuda_emulated" and not _extension.emulation_loaded():
            return f"the emulated CUDA kernels are not built: {_extension.emulation_load_error}"
        if backend == "cuda" and not _extension.built_with_cuda():
            return "this build of msca_fast._C has no CUDA kernels (nvcc or a CUDA torch was missing at build time)"
        if problem.device.type != tensor_device:
            return f"runs on {tensor_device} tensors, got {problem.device.type}"
        if backend == "cuda" and not torch.cuda.is_available():
            return "no CUDA device is available"
        if backend != "cpu":
            return _cuda_limits(problem, backend)
        return None

    return why_not


if _extension.extension_loaded():
    _register_op_support("msca_fast")
if _extension.emulation_loaded():
    _register_op_support("msca_fast_emulated")

_DESCRIPTIONS = {
    "cpu": "C++ extension, fused forward and two-sweep backward (CPU kernels)",
    "cuda": "C++ extension, fused forward and two-sweep backward (CUDA kernels)",
    "cuda_emulated": "the CUDA kernels on CPU tensors through an emulation of the CUDA execution model (tests only)",
}

for _name, _namespace in (("cpu", "msca_fast"), ("cuda", "msca_fast"), ("cuda_emulated", "msca_fast_emulated")):
    register_backend(
        Backend(
            name=_name,
            priority=10 if _name != "cuda_emulated" else -20,
            why_not=_why_not(_name),
            msca=fused_msca(lambda namespace=_namespace: getattr(torch.ops, namespace).msca_forward),
            description=_DESCRIPTIONS[_name],
            in_auto=_name != "cuda_emulated",
        )
    )
