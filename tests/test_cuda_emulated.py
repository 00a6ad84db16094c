"""The CUDA kernels (csrc/msca_cuda_kernels.cuh) and their host code (csrc/msca_cuda_driver.h),
run on the CPU through the emulation of the CUDA execution model (backend "cuda_emulated"),
against the reference: the checks the "cpu" backend passes, for K = 1..32.

The emulated device has 3 SMs, so grids of 6 blocks per batch element: exemplars of more
than 6 tiles (256 pixels) give blocks of several tiles, and more than one block.
"""

import pytest
import torch

from helpers import ARG_NAMES, GRAD_NAMES, call, compare_to_reference, forward_and_grads, relative_error, rel_rms
from helpers import inputs_for_shape as inputs_for
from msca_fast import _extension
from msca_fast.backends import select_backend
from msca_fast.ops import msca
from msca_fast.reference import msca_reference
from msca_fast.validation import validate_msca

pytestmark = [
    pytest.mark.cuda_emulated,
    pytest.mark.skipif(not _extension.emulation_loaded(), reason=f"{_extension.emulation_load_error}"),
]

BACKEND = "cuda_emulated"

# (B, N, M2, M1, K, H2, W2, H1, W1)
SHAPES = {
    "tiny": (2, 3, 2, 2, 3, 3, 4, 2, 3),
    "1x1": (1, 5, 3, 4, 2, 1, 1, 1, 1),
    "7x13": (2, 9, 7, 5, 4, 7, 13, 13, 7),
    # 9 exemplar tiles over 5 blocks of 2 tiles each (the last one short), target of 5 tiles.
    "multi_chunk": (1, 11, 5, 6, 8, 41, 53, 37, 29),
    # two batch elements: 3 blocks each; the target tiles end mid-warp.
    "batched_chunks": (2, 6, 3, 4, 9, 30, 61, 21, 23),
    "K32": (1, 5, 3, 3, 32, 9, 9, 5, 5),
}


def regions_shape(k):
    """K regions over an exemplar of 3 tiles and a target that ends mid-block."""
    return (1, 4, 3, 3, k, 20, 33, 11, 13)


@pytest.mark.parametrize("k", range(1, 33))
def test_every_region_count_matches_reference(k):
    """float64 where the kernels serve it (K <= 16), float32 above."""
    if k <= 16:
        compare_to_reference(inputs_for(regions_shape(k)), BACKEND, 1e-12, 1e-11)
    else:
        compare_to_reference(inputs_for(regions_shape(k), torch.float32), BACKEND, 2e-6, 2e-5)


FLOAT64_SHAPES = {name: shape for name, shape in SHAPES.items() if shape[4] <= 16}


@pytest.mark.parametrize("shape", FLOAT64_SHAPES.values(), ids=FLOAT64_SHAPES.keys())
def test_float64_matches_reference(shape):
    compare_to_reference(inputs_for(shape), BACKEND, 1e-12, 1e-11)


def test_float64_beyond_16_regions_is_declined_by_name():
    """Arrays of 32 doubles a thread would not fit in registers: declined before any launch."""
    with pytest.raises(ValueError, match="K = 17 exceeds the CUDA kernels' limit of 16 in torch.float64"):
        call(lambda *a: msca(*a, backend=BACKEND), inputs_for(regions_shape(17)))


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_float32_matches_reference(shape):
    compare_to_reference(inputs_for(shape, torch.float32), BACKEND, 2e-6, 2e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("shape", ["tiny", "multi_chunk", "K32"])
def test_low_precision_within_dtype_tolerance(shape, dtype):
    """Output and gradients (float32 accumulation) at most twice as far from the exact
    values as the reference computed in the same dtype."""
    inp = inputs_for(SHAPES[shape], torch.float64)
    low = {name: t.to(dtype) for name, t in inp.items()}
    exact_in = {name: t.double() for name, t in low.items()}  # the values the kernel sees
    grad_out = torch.randn_like(call(msca_reference, exact_in))
    out, grads = forward_and_grads(low, BACKEND, grad_out.to(dtype))
    ref_out, ref_grads = forward_and_grads(low, "reference", grad_out.to(dtype))
    exact_out, exact_grads = forward_and_grads(exact_in, "reference", grad_out)
    assert out.dtype == dtype
    assert rel_rms(out, exact_out) <= 2 * rel_rms(ref_out, exact_out) + 1e-6
    for name in GRAD_NAMES:
        if name == "phi_bias":
            assert torch.count_nonzero(grads[name]) == 0
            continue
        kernel_error = relative_error(grads[name], exact_grads[name])
        assert kernel_error <= 2 * relative_error(ref_grads[name], exact_grads[name]) + 1e-6, name


def test_optional_arguments_absent():
    inp = inputs_for(SHAPES["7x13"])
    for overrides in ({"gate": None}, {"psi_bias": None}, {"phi_bias": None}, {"gate": None, "psi_bias": None}):
        expected = call(msca_reference, inp, **overrides)
        assert rel_rms(call(lambda *a: msca(*a, backend=BACKEND), inp, **overrides), expected) < 1e-12


def test_channels_last_sliced_and_transposed_inputs():
    inp = inputs_for(SHAPES["batched_chunks"])
    expected = call(msca_reference, inp)
    channels_last = {n: inp[n].contiguous(memory_format=torch.channels_last) for n in ("fx2", "fc2", "fc1")}
    sliced = {n: inp[n].repeat_interleave(2, dim=3)[..., ::2] for n in ("fx2", "fc2", "fc1")}  # stride 2
    weights = {"phi_weight": inp["phi_weight"].t().contiguous().t(), "psi_weight": inp["psi_weight"].t().contiguous().t()}
    for overrides in (channels_last, sliced, weights):
        assert rel_rms(call(lambda *a: msca(*a, backend=BACKEND), inp, **overrides), expected) < 1e-12
    out = call(lambda *a: msca(*a, backend=BACKEND), inp, **channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_gradcheck():
    inp = inputs_for(SHAPES["tiny"])
    inp["phi_bias"] = None  # its gradient is a constant zero by construction
    names = [n for n in ARG_NAMES if inp[n] is not None]
    leaves = [inp[n].detach().clone().requires_grad_() for n in names]

    def fn(*tensors):
        return call(lambda *a: msca(*a, backend=BACKEND), {**inp, **dict(zip(names, tensors))})

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_results_are_deterministic():
    inp = inputs_for(SHAPES["multi_chunk"], torch.float32)
    grad_out = torch.randn(1, 11, 37, 29)
    first, second = forward_and_grads(inp, BACKEND, grad_out), forward_and_grads(inp, BACKEND, grad_out)
    assert torch.equal(first[0], second[0])
    for name in GRAD_NAMES:
        assert torch.equal(first[1][name], second[1][name]), name


def op_args(optional):
    inp = inputs_for(SHAPES["7x13"], torch.float32)
    bias = inp["psi_bias"] if optional else None
    gate = inp["gate"] if optional else None
    return [inp["fx2"], inp["fc2"], inp["fc1"], inp["phi_weight"], inp["psi_weight"], bias, gate]


@pytest.mark.parametrize("optional", [True, False], ids=["with_optional", "without_optional"])
@pytest.mark.parametrize("weights", ["contiguous", "transposed"])
def test_opcheck_forward_and_backward(optional, weights):
    args = op_args(optional)
    if weights == "transposed":
        args[3], args[4] = args[3].t().contiguous().t(), args[4].t().contiguous().t()
    ops = torch.ops.msca_fast_emulated
    out, v, lse = ops.msca_forward(*args)
    torch.library.opcheck(ops.msca_backward.default, [torch.randn_like(out), *args, v, lse])
    torch.library.opcheck(ops.msca_forward.default, [a.requires_grad_() if a is not None else None for a in args])


def test_empty_batch_returns_empty_results_without_a_launch():
    """An empty grid is an invalid launch configuration, which the emulation reports as CUDA does."""
    inp = {name: t[:0] if name in ("fx2", "fc2", "fc1", "gate") else t for name, t in inputs_for(SHAPES["tiny"]).items()}
    ops = torch.ops.msca_fast_emulated
    args = [inp["fx2"], inp["fc2"], inp["fc1"], inp["phi_weight"], inp["psi_weight"], inp["psi_bias"], inp["gate"]]
    out, v, lse = ops.msca_forward(*args)
    assert out.shape == (0, 3, 2, 3) and v.shape == (0, 3, 3) and lse.shape == (0, 3)
    grads = ops.msca_backward(torch.zeros_like(out), *args, v, lse)
    for grad, arg in zip(grads, args):
        assert grad.shape == arg.shape
        assert torch.count_nonzero(grad) == 0


def test_never_chosen_by_auto():
    problem = validate_msca(*(inputs_for(SHAPES["tiny"])[n] for n in ARG_NAMES)).problem
    assert select_backend(BACKEND, problem).name == BACKEND
    assert select_backend("auto", problem).name != BACKEND


def test_declines_what_it_cannot_hold():
    inp = inputs_for((1, 3, 2, 2, 33, 3, 3, 2, 2))
    with pytest.raises(ValueError, match="K = 33"):
        call(lambda *a: msca(*a, backend=BACKEND), inp)
