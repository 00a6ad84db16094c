"""The C++ extension's own checks (backends "cpu" and, on a GPU, "cuda"): gradcheck, thread
counts, the saved tensors, opcheck on the raw ops of both op libraries, torch.compile, the
CUDA limits. Every backend's comparison with the reference is in test_backend_conformance.py.

CPU tests run everywhere. Tests on CUDA tensors carry the ``gpu`` marker and run
whenever a GPU is present (``pytest -m gpu`` selects them).
"""

import pytest
import torch

from msca_fast import _extension
from msca_fast.backends import backend_reasons, select_backend
from msca_fast.backends.extension_backend import cuda_shared_bytes
from msca_fast.backends.problem import Problem
from msca_fast.op_arguments import validate_msca

from helpers import ARG_NAMES, SHAPES, compare_to_reference, forward_and_grads
from helpers import inputs_for_shape as inputs_for

pytestmark = pytest.mark.skipif(not _extension.extension_loaded(), reason=f"{_extension.load_error}")

HAS_GPU = torch.cuda.is_available() and _extension.built_with_cuda()

# Chunks of several 256-pixel tiles (the online softmax rescales within a task, the next tile
# is prefetched) and outputs of several MiB (the huge-page hint applies).
LARGE = (1, 40, 6, 5, 8, 150, 170, 160, 161)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_cpu_large_images_match_reference(dtype):
    tolerances = (1e-12, 1e-11) if dtype == torch.float64 else (2e-6, 2e-5)
    compare_to_reference(inputs_for(LARGE, dtype), "cpu", *tolerances)


def test_cpu_results_do_not_depend_on_thread_count():
    inp = inputs_for(SHAPES["multi_tile"], torch.float32)
    grad_out = torch.randn(inp["fx2"].shape[0], inp["fx2"].shape[1], *inp["fc1"].shape[2:])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = forward_and_grads(inp, "cpu", grad_out)
        torch.set_num_threads(max(2, threads))
        multi = forward_and_grads(inp, "cpu", grad_out)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single[0], multi[0])
    for name in ARG_NAMES:
        assert torch.equal(single[1][name], multi[1][name]), name


def test_saved_tensors_are_v_and_lse():
    inp = inputs_for(SHAPES["K16"], torch.float32)
    out, v, lse = torch.ops.msca_fast.msca_forward(
        inp["fx2"], inp["fc2"], inp["fc1"], inp["phi_weight"], inp["psi_weight"], inp["psi_bias"], inp["gate"]
    )
    from msca_fast.reference import aggregate_reference

    assert v.dtype == torch.float32 and lse.dtype == torch.float32
    torch.testing.assert_close(v, aggregate_reference(inp["fx2"], inp["fc2"], inp["phi_weight"], None))
    logits = torch.einsum("kc,bcp->bkp", inp["phi_weight"], torch.cat([inp["fx2"], inp["fc2"]], 1).flatten(2))
    torch.testing.assert_close(lse, torch.logsumexp(logits, dim=-1))


def op_args(device="cpu", optional="all"):
    """msca_forward's arguments (fx2, fc2, fc1, phi, psi, psi_bias, gate) for the 7x13 shape."""
    inp = inputs_for(SHAPES["7x13"], torch.float32, device)
    bias = inp["psi_bias"] if optional == "all" else None
    gate = inp["gate"] if optional == "all" else None
    return [inp["fx2"], inp["fc2"], inp["fc1"], inp["phi_weight"], inp["psi_weight"], bias, gate]


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device and a CUDA build")],
    ),
]

# (op library, device): the C++ kernels, and the CUDA kernels emulated on the CPU.
LIBRARIES = [
    pytest.param(("msca_fast", "cpu"), id="cpu"),
    pytest.param(
        ("msca_fast", "cuda"),
        id="cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device and a CUDA build")],
    ),
    pytest.param(
        ("msca_fast_emulated", "cpu"),
        id="cuda_emulated",
        marks=[
            pytest.mark.cuda_emulated,
            pytest.mark.skipif(not _extension.emulation_loaded(), reason="the emulated CUDA kernels are not built"),
        ],
    ),
]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("optional", ["all", "none"])
@pytest.mark.parametrize("weights", ["contiguous", "transposed"])
def test_opcheck_forward_and_backward(library, optional, weights):
    """Both raw ops against their fake kernels and autograd registration: no aliasing
    outputs (the empty dbias and dgate when psi_bias and gate are None), and the fake
    strides equal the kernel's for weights stored transposed."""
    namespace, device = library
    ops = getattr(torch.ops, namespace)
    args = op_args(device, optional)
    if weights == "transposed":
        args[3], args[4] = args[3].t().contiguous().t(), args[4].t().contiguous().t()
    out, v, lse = ops.msca_forward(*args)
    torch.library.opcheck(ops.msca_backward.default, [torch.randn_like(out), *args, v, lse])
    args = [a.requires_grad_() if a is not None else None for a in args]
    torch.library.opcheck(ops.msca_forward.default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_are_contiguous(device):
    """The backward op's gradients are contiguous, as its register_fake says: compiled
    graphs read them with the fake strides."""
    args = op_args(device)
    out, v, lse = torch.ops.msca_fast.msca_forward(*args)
    grads = torch.ops.msca_fast.msca_backward(torch.randn_like(out), *args, v, lse)
    for name, grad in zip(("fx2", "fc2", "fc1", "phi", "psi", "psi_bias", "gate"), grads):
        assert grad.is_contiguous(), f"d{name} has strides {grad.stride()}"


def test_cuda_kernels_registered_when_built_with_cuda():
    """The normal build compiles the CUDA kernels wherever nvcc and a CUDA torch exist."""
    has_cuda_kernel = torch._C._dispatch_has_kernel_for_dispatch_key("msca_fast::msca_forward", "CUDA")
    has_cuda_backward = torch._C._dispatch_has_kernel_for_dispatch_key("msca_fast::msca_backward", "CUDA")
    assert has_cuda_kernel == has_cuda_backward == _extension.built_with_cuda()
    from torch.utils.cpp_extension import CUDA_HOME

    if torch.version.cuda is not None and CUDA_HOME is not None:
        assert _extension.built_with_cuda(), "a CUDA toolchain is present but the kernels were not built"


@pytest.mark.skipif(not _extension.emulation_loaded(), reason="the emulated CUDA kernels are not built")
def test_cuda_kernels_decline_what_shared_memory_cannot_hold():
    """With up to 227 KiB of shared memory a block (an H100's opt-in limit, which the
    emulated device has too), N = 512 and K = 32 are served with gradients in float32;
    N = 4096 is declined before any launch, naming the stage."""

    def problem(dtype, n, k, requires_grad):
        return Problem("msca", torch.device("cpu"), dtype, 2, n, 200, 200, k, 4096, 4096, requires_grad)

    def why_not(p):
        return backend_reasons(p)["cuda_emulated"]

    assert why_not(problem(torch.float32, 512, 32, requires_grad=True)) is None
    assert cuda_shared_bytes(problem(torch.float32, 512, 32, True))["forward"] > 48 * 1024
    big = problem(torch.float32, 4096, 32, requires_grad=False)
    assert cuda_shared_bytes(big)["forward"] > 227 * 1024
    assert "forward" in why_not(big)
    assert why_not(problem(torch.float32, 64, 33, requires_grad=False)).startswith("K = 33")


def test_auto_prefers_the_cpu_kernels_for_the_fused_op():
    problem = validate_msca(*(inputs_for(SHAPES["tiny"])[n] for n in ARG_NAMES)).problem
    assert select_backend("auto", problem).name == "cpu"


