"""The C++ extension's fused kernels (backends "cpu" and, on a GPU, "cuda") against the reference.

CPU tests run everywhere. Tests on CUDA tensors carry the ``gpu`` marker and run
whenever a GPU is present (``pytest -m gpu`` selects them).
"""

import dataclasses

import pytest
import torch

from helpers import ARG_NAMES, GRAD_NAMES, LOW_PRECISION_TOL, call, compare_to_reference, forward_and_grads, rel_rms
from helpers import inputs_for_shape as inputs_for
from msca_fast import _extension
from msca_fast.backends import backend_reasons, select_backend
from msca_fast.backends.extension_backend import cuda_shared_bytes
from msca_fast.ops import msca
from msca_fast.reference import msca_reference
from msca_fast.validation import Problem, validate_msca

pytestmark = pytest.mark.skipif(not _extension.extension_loaded(), reason=f"{_extension.load_error}")

HAS_GPU = torch.cuda.is_available() and _extension.built_with_cuda()

# (B, N, M2, M1, K, H2, W2, H1, W1): odd sizes, 1x1 images, N and M not multiples of 8, K=1,
# K=16, K above the CPU's transposed-dot limit (32), exemplar size != target size, images
# of more than one tile (256 pixels) and more than one chunk, with remainders, and ("large")
# chunks of several tiles (the online softmax rescales within a task, the next tile is
# prefetched) with outputs of several MiB (the huge-page hint applies).
SHAPES = {
    "tiny": (2, 3, 2, 2, 3, 3, 4, 2, 3),
    "1x1": (1, 5, 3, 4, 2, 1, 1, 1, 1),
    "7x13": (2, 9, 7, 5, 4, 7, 13, 13, 7),
    "K1": (1, 6, 3, 3, 1, 5, 5, 4, 6),
    "K16": (2, 10, 6, 6, 16, 9, 11, 6, 5),
    "K40": (1, 7, 3, 5, 40, 6, 6, 5, 5),
    "multi_tile": (2, 11, 5, 6, 8, 41, 53, 37, 29),
    "large": (1, 40, 6, 5, 8, 150, 170, 160, 161),
}
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_cpu_float64_matches_reference(shape):
    compare_to_reference(inputs_for(shape), "cpu", 1e-12, 1e-11)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_cpu_float32_matches_reference(shape):
    compare_to_reference(inputs_for(shape, torch.float32), "cpu", 2e-6, 2e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cpu_low_precision_within_dtype_tolerance(dtype):
    """The kernel (fp32 accumulation) is at most as far from fp32 as the low-precision reference."""
    inp32 = inputs_for(SHAPES["multi_tile"], torch.float32)
    expected = call(msca_reference, inp32)
    low = {name: t.to(dtype) for name, t in inp32.items()}
    out = call(lambda *a: msca(*a, backend="cpu"), low)
    assert out.dtype == dtype
    kernel_error = rel_rms(out, expected)
    reference_error = rel_rms(call(msca_reference, low), expected)
    assert kernel_error < LOW_PRECISION_TOL[dtype]
    assert kernel_error <= 2 * reference_error + 1e-6


def test_cpu_optional_arguments_absent():
    inp = inputs_for(SHAPES["7x13"])
    for overrides in ({"gate": None}, {"psi_bias": None}, {"phi_bias": None}, {"gate": None, "psi_bias": None}):
        expected = call(msca_reference, inp, **overrides)
        assert rel_rms(call(lambda *a: msca(*a, backend="cpu"), inp, **overrides), expected) < 1e-12


def test_cpu_channels_last_and_non_contiguous_inputs():
    inp = inputs_for(SHAPES["multi_tile"])
    expected = call(msca_reference, inp)
    channels_last = {n: inp[n].contiguous(memory_format=torch.channels_last) for n in ("fx2", "fc2", "fc1")}
    strided = {n: inp[n].transpose(2, 3).contiguous().transpose(2, 3) for n in ("fx2", "fc2", "fc1")}
    weights = {"phi_weight": inp["phi_weight"].t().contiguous().t()}  # transposed storage
    for overrides in (channels_last, strided, weights):
        out = call(lambda *a: msca(*a, backend="cpu"), inp, **overrides)
        assert rel_rms(out, expected) < 1e-12
    out = call(lambda *a: msca(*a, backend="cpu"), inp, **channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_cpu_gradcheck():
    inp = inputs_for(SHAPES["7x13"])
    inp["phi_bias"] = None  # its gradient is a constant zero by construction
    names = [n for n in ARG_NAMES if inp[n] is not None]
    leaves = [inp[n].detach().clone().requires_grad_() for n in names]

    def fn(*tensors):
        return call(lambda *a: msca(*a, backend="cpu"), {**inp, **dict(zip(names, tensors))})

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-8, rtol=1e-6)


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
    for name in GRAD_NAMES:
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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("optional", ["all", "none"])
@pytest.mark.parametrize("weights", ["contiguous", "transposed"])
def test_opcheck_forward_and_backward(device, optional, weights):
    """Both raw ops against their fake kernels and autograd registration: no aliasing
    outputs (the empty dbias and dgate when psi_bias and gate are None), and the fake
    strides equal the kernel's for weights stored transposed."""
    args = op_args(device, optional)
    if weights == "transposed":
        args[3], args[4] = args[3].t().contiguous().t(), args[4].t().contiguous().t()
    out, v, lse = torch.ops.msca_fast.msca_forward(*args)
    torch.library.opcheck(torch.ops.msca_fast.msca_backward.default, [torch.randn_like(out), *args, v, lse])
    args = [a.requires_grad_() if a is not None else None for a in args]
    torch.library.opcheck(torch.ops.msca_fast.msca_forward.default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_are_contiguous(device):
    """The backward op's gradients are contiguous, as its register_fake says: compiled
    graphs read them with the fake strides."""
    args = op_args(device)
    out, v, lse = torch.ops.msca_fast.msca_forward(*args)
    grads = torch.ops.msca_fast.msca_backward(torch.randn_like(out), *args, v, lse)
    for name, grad in zip(("fx2", "fc2", "fc1", "phi", "psi", "psi_bias", "gate"), grads):
        assert grad.is_contiguous(), f"d{name} has strides {grad.stride()}"


def test_module_under_torch_compile_fullgraph():
    from msca_fast.ops import MSCA

    module = MSCA(6, 4, 5, num_regions=8, backend="cpu")
    fx2, fc2, fc1 = torch.randn(2, 6, 9, 7), torch.randn(2, 4, 9, 7), torch.randn(2, 5, 6, 8)
    compiled = torch.compile(module, fullgraph=True)
    out = compiled(fx2, fc2, fc1)
    torch.testing.assert_close(out, module(fx2, fc2, fc1))
    out.sum().backward()
    assert all(p.grad is not None for p in module.parameters())


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


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device and a CUDA build")
def test_cuda_matches_reference(shape, dtype):
    inp = inputs_for(shape, dtype, "cuda")
    problem = validate_msca(*(inp[n] for n in ARG_NAMES)).problem
    reason = backend_reasons(dataclasses.replace(problem, requires_grad=True))["cuda"]  # the test takes gradients
    if reason is not None:
        pytest.skip(reason)
    tol = (1e-12, 1e-11) if dtype == torch.float64 else (2e-5, 1e-4)
    compare_to_reference(inp, "cuda", *tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device and a CUDA build")
def test_cuda_low_precision_within_dtype_tolerance(dtype):
    inp32 = inputs_for(SHAPES["multi_tile"], torch.float32, "cuda")
    expected = call(msca_reference, inp32)
    low = {name: t.to(dtype) for name, t in inp32.items()}
    out = call(lambda *a: msca(*a, backend="cuda"), low)
    assert out.dtype == dtype
    assert rel_rms(out, expected) <= 2 * rel_rms(call(msca_reference, low), expected) + 1e-6
