"""One conformance suite for every fused backend: the output and all eight gradients against
the float64 reference, over one set of shapes and dtypes, with one tolerance table.

Backends (each a parameter; a backend that declines a case says why and the case is skipped):
  cpu                the C++ CPU kernels;
  cuda_emulated      the CUDA kernels on the CPU through the execution-model emulation;
  triton             Triton's interpreter on CPU tensors, with its own small blocks and with
                     each GPU candidate's block sizes (triton_gpu0, triton_gpu1);
  cuda, triton_cuda  on a GPU (marker ``gpu``).
Backend-specific tests (thread counts, determinism, ahead-of-time compiles, the emulation's
mutants, raw-op opcheck) stay in test_extension_kernels.py, test_cuda_emulated.py,
test_cuda_emulation_bites.py and test_triton*.py.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from msca_fast import _extension
from msca_fast.backends import backend_reasons, triton_backend
from msca_fast.op_arguments import validate_msca
from msca_fast.tolerances import TOLERANCE, low_precision_bound

from helpers import (
    ARG_NAMES,
    SHAPES,
    call,
    compare_to_reference,
    forward_and_grads,
    rel_rms,
    relative_error,
    seeded_grad_out,
)
from helpers import inputs_for_shape as inputs_for

HAS_GPU = torch.cuda.is_available()


# The tolerance table (msca_fast/tolerances.py) is shared with the GPU check's op step.
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


@dataclasses.dataclass(frozen=True)
class Target:
    """A backend on a device, with what must hold while it runs (Triton's GPU tile sizes)."""

    backend: str
    device: str
    gpu_configs: int | None = None

    def context(self):
        if self.gpu_configs is None:
            return contextlib.nullcontext()
        return triton_backend.kernels.gpu_configs_interpreted(self.gpu_configs)


def _needs_gpu():
    return [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device")]


def _interpreted_triton():
    return pytest.mark.skipif(
        triton_backend.import_error is not None or not triton_backend.INTERPRETED,
        reason="needs triton imported with TRITON_INTERPRET=1 (tests/conftest.py sets it without a GPU)",
    )


TARGETS = [
    pytest.param(Target("cpu", "cpu"), id="cpu"),
    pytest.param(Target("cuda_emulated", "cpu"), id="cuda_emulated", marks=pytest.mark.cuda_emulated),
    pytest.param(Target("triton", "cpu"), id="triton", marks=_interpreted_triton()),
    pytest.param(Target("triton", "cpu", 0), id="triton_gpu0", marks=_interpreted_triton()),
    pytest.param(Target("triton", "cpu", 1), id="triton_gpu1", marks=_interpreted_triton()),
    pytest.param(Target("cuda", "cuda"), id="cuda", marks=_needs_gpu()),
    pytest.param(Target("triton", "cuda"), id="triton_cuda", marks=_needs_gpu()),
]


def skip_unless_served(target: Target, inp: dict) -> None:
    """Skips the case, with the backend's own reason, when it declines these inputs."""
    problem = validate_msca(*(inp[n] for n in ARG_NAMES)).problem
    reason = backend_reasons(dataclasses.replace(problem, requires_grad=True)).get(target.backend, "not registered")
    if reason is not None:
        pytest.skip(f"{target.backend}: {reason}")


def check_against_reference(target: Target, inp: dict) -> None:
    """Output and every gradient of ``target`` on ``inp`` against the float64 reference on the
    same (rounded) values, with :data:`TOLERANCE` or the low-precision rule."""
    skip_unless_served(target, inp)
    dtype = inp["fx2"].dtype
    if dtype in TOLERANCE:
        compare_to_reference(inp, target.backend, *TOLERANCE[dtype], context=target.context())
        return
    exact = {name: t.double() if t is not None else None for name, t in inp.items()}
    grad_out = seeded_grad_out(exact)
    exact_out, exact_grads = forward_and_grads(exact, "reference", grad_out)
    ref_out, ref_grads = forward_and_grads(inp, "reference", grad_out.to(dtype))
    grad_bounds = {
        name: low_precision_bound(relative_error(ref_grads[name], exact_grads[name]), "gradients")
        for name in ARG_NAMES
        if name != "phi_bias" and inp[name] is not None
    }
    output_bound = low_precision_bound(rel_rms(ref_out, exact_out), "output")
    compare_to_reference(inp, target.backend, output_bound, grad_bounds, context=target.context())


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32", "fp16", "bf16"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("target", TARGETS)
def test_matches_reference(target, shape, dtype):
    check_against_reference(target, inputs_for(shape, dtype, target.device))


@pytest.mark.parametrize("k", range(1, 33))
@pytest.mark.parametrize("target", TARGETS)
def test_every_region_count_up_to_32(target, k):
    """K = 1..32 over an exemplar of three 256-pixel tiles and a target that ends mid-block,
    in float64 where the backend takes it for K, float32 otherwise."""
    shape = (1, 4, 3, 3, k, 20, 33, 11, 13)
    inp = inputs_for(shape, torch.float64, target.device)
    problem = validate_msca(*(inp[n] for n in ARG_NAMES)).problem
    if backend_reasons(dataclasses.replace(problem, requires_grad=True)).get(target.backend) is not None:
        inp = inputs_for(shape, torch.float32, target.device)
    check_against_reference(target, inp)


@pytest.mark.parametrize("target", TARGETS)
def test_optional_arguments_absent(target):
    base = inputs_for(SHAPES["7x13"], torch.float32, target.device)
    for absent in ({"gate": None}, {"psi_bias": None}, {"phi_bias": None}, {"gate": None, "psi_bias": None}):
        check_against_reference(target, {**base, **absent})


@pytest.mark.parametrize("target", TARGETS)
def test_channels_last_sliced_and_transposed_inputs(target):
    """The same values in other layouts give the same results; channels_last stays channels_last."""
    base = inputs_for(SHAPES["batched"], torch.float32, target.device)
    maps = ("fx2", "fc2", "fc1")
    layouts = {
        "channels_last": {n: base[n].contiguous(memory_format=torch.channels_last) for n in maps},
        "sliced": {n: base[n].repeat_interleave(2, dim=3)[..., ::2] for n in maps},  # stride 2 along W
        "transposed weights": {w: base[w].t().contiguous().t() for w in ("phi_weight", "psi_weight")},
    }
    for layout in layouts.values():
        check_against_reference(target, {**base, **layout})
    skip_unless_served(target, base)
    from msca_fast.ops import msca

    with target.context():
        out = call(lambda *a: msca(*a, backend=target.backend), {**base, **layouts["channels_last"]})
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("target", TARGETS)
def test_empty_batch(target):
    """B = 0: an empty output and zero weight gradients, without a launch."""
    inp = {
        n: (t[:0] if n in ("fx2", "fc2", "fc1", "gate") else t)
        for n, t in inputs_for(SHAPES["tiny"], torch.float32, target.device).items()
    }
    if target.backend == "cuda_emulated" and not _extension.emulation_loaded():
        pytest.skip("the emulated CUDA kernels are not built")
    skip_unless_served(target, inputs_for(SHAPES["tiny"], torch.float32, target.device))
    with target.context():
        out, grads = forward_and_grads(inp, target.backend, torch.zeros(0, 3, 2, 3, device=target.device))
    assert out.shape == (0, 3, 2, 3)
    for name in ARG_NAMES:
        assert grads[name] is not None and grads[name].shape == inp[name].shape, name
        assert torch.count_nonzero(grads[name]) == 0, name


@pytest.mark.parametrize("target", TARGETS)
def test_gradcheck(target):
    """Finite differences in float64 for the backends that take it (phi's bias aside: its
    gradient is a constant zero by construction)."""
    inp = {**inputs_for(SHAPES["tiny"], torch.float64, target.device), "phi_bias": None}
    skip_unless_served(target, inp)
    names = [n for n in ARG_NAMES if inp[n] is not None]
    leaves = [inp[n].detach().clone().requires_grad_() for n in names]
    from msca_fast.ops import msca

    def fn(*tensors):
        return call(lambda *a: msca(*a, backend=target.backend), {**inp, **dict(zip(names, tensors))})

    with target.context():
        assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_module_under_torch_compile_fullgraph(target):
    """The MSCA module compiles to one graph around the backend's ops and trains through them."""
    if target.gpu_configs is not None:
        pytest.skip("the tile sizes do not change what torch.compile sees")
    skip_unless_served(target, inputs_for((2, 6, 4, 5, 8, 9, 7, 6, 8), torch.float32, target.device))
    from msca_fast.ops import MSCA

    module = MSCA(6, 4, 5, num_regions=8, backend=target.backend).to(target.device)
    fx2, fc2, fc1 = (torch.randn(*shape, device=target.device) for shape in ((2, 6, 9, 7), (2, 4, 9, 7), (2, 5, 6, 8)))
    compiled = torch.compile(module, fullgraph=True)
    out = compiled(fx2, fc2, fc1)
    torch.testing.assert_close(out, module(fx2, fc2, fc1))
    out.sum().backward()
    assert all(p.grad is not None for p in module.parameters())
