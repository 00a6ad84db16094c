"""The "triton" backend's own checks, without and with a GPU (its comparisons with the
reference, with the interpreter's and the GPU's tile sizes, are in test_backend_conformance.py).

Triton runs either interpreted on the CPU or compiled for a GPU, chosen once per process when
it is imported. Without a GPU, tests/conftest.py sets TRITON_INTERPRET=1 first: the kernels
then run in the interpreter on CPU tensors (which the backend serves only by name), with the
interpreter's small tiles and with the GPU's. tests/backends/test_triton_compile.py compiles every GPU
variant ahead of time. Tests on CUDA tensors carry the ``gpu`` marker and run whenever a GPU
is present (and triton is not interpreting).
"""

import dataclasses
import inspect
import itertools
import math
import re
from contextlib import contextmanager, nullcontext

import pytest
import torch

pytest.importorskip("triton")

from msca_fast.backends import (  # noqa: E402
    backend_reasons,
    register_backend,
    select_backend,
    triton_backend,  # noqa: E402
)
from msca_fast.op_arguments import validate_msca  # noqa: E402
from msca_fast.ops import MSCA, msca  # noqa: E402
from msca_fast.reference import aggregate_reference, msca_reference  # noqa: E402

from helpers import ARG_NAMES, LOW_PRECISION_TOL, SHAPES, call, compare_to_reference, inputs_for_shape, rel_rms  # noqa: E402

pytestmark = pytest.mark.skipif(triton_backend.import_error is not None, reason=f"{triton_backend.import_error}")

HAS_GPU = torch.cuda.is_available() and not triton_backend.INTERPRETED


@pytest.fixture
def interpreter():
    """For tests that run the kernels on CPU tensors."""
    if not triton_backend.INTERPRETED:
        pytest.skip("triton was imported for the GPU: set TRITON_INTERPRET=1 before it is imported "
                    "(tests/conftest.py does so without a GPU)")


def inputs_for(shape, dtype=torch.float32, device="cpu"):
    return inputs_for_shape(shape, dtype, device)


def forward_and_grads(fn, inp, grad_out):
    leaves = {name: t.detach().clone().requires_grad_() for name, t in inp.items() if t is not None}
    out = call(fn, {**inp, **leaves})
    out.backward(grad_out.to(out.dtype))
    return out.detach(), {name: leaf.grad for name, leaf in leaves.items()}


def triton_msca(*args):
    return msca(*args, backend="triton")


def truth_for(inp, grad_out):
    """The float64 reference on the same (rounded) values."""
    exact = {name: t.double() if t is not None else None for name, t in inp.items()}
    return forward_and_grads(msca_reference, exact, grad_out.double())


# --- numerics in the interpreter -----------------------------------------------------------------


def test_float16_gradients_at_an_exemplar_with_subnormal_attention(interpreter):
    """P2 = 18432 > 2^14: alpha ~ 1/P2 and dS ~ alpha * dalpha fall below float16's smallest
    normal. Scaled by a power of two per tile, dphi is exactly equivariant to the scale of
    grad_out, and dFx2 and dFc2 (tiny, as dS is) are the float64 truth correctly rounded."""
    inp = {n: t.half() for n, t in inputs_for((1, 4, 3, 2, 2, 96, 192, 4, 4)).items()}
    grad_out = torch.randn(1, 4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    small = 2.0**-10
    with triton_backend.kernels.gpu_configs_interpreted(0):
        _, grads = forward_and_grads(triton_msca, inp, grad_out)
        _, small_grads = forward_and_grads(triton_msca, inp, grad_out * small)
    # Equal where the scaled dphi is a normal float16; elsewhere up to its final rounding.
    expected = grads["phi_weight"].float() * small
    allowed = torch.where(expected.abs() >= 2.0**-14, 0.0, 2.0**-24)
    assert torch.all((small_grads["phi_weight"].float() - expected).abs() <= allowed)
    _, truth = truth_for(inp, grad_out * small)
    rounding = {n: rel_rms(truth[n].half(), truth[n]) for n in ("fx2", "fc2", "phi_weight")}
    assert rel_rms(small_grads["phi_weight"], truth["phi_weight"]) < 3 * rounding["phi_weight"]
    for name in ("fx2", "fc2"):
        assert rel_rms(small_grads[name], truth[name]) < 1.05 * rounding[name], name


def _gpu_sizes():
    """The GPU's tile sizes, also in the interpreter."""
    kernels = triton_backend.kernels
    return kernels.gpu_configs_interpreted(0) if triton_backend.INTERPRETED else nullcontext()


@pytest.mark.parametrize("sms", [108, 132], ids=["A100", "H100"])
def test_backward_partials_stay_small_at_large_shapes(sms):
    """One float32 slot per program, not per tile: below 5% of the inputs' bytes in bfloat16
    (the worst dtype for the ratio) on every large shape. Per tile, B=16, 1024x1024, N=512,
    M=200, K=32 needed 48 GB of partial sums."""
    with _gpu_sizes():
        for batch, side, n, m, k in itertools.product([1, 4, 16], [512, 1024], [64, 256, 512], [16, 200], [8, 16, 32]):
            pixels = side * side
            if batch * pixels < 2**20:
                continue
            shapes = triton_backend.backward_partial_shapes(batch, n, m, m, k, pixels, pixels, sms)
            partial_bytes = 4 * sum(math.prod(shape) for shape in shapes.values())
            input_bytes = 2 * batch * pixels * (n + 2 * m)
            assert partial_bytes < 0.05 * input_bytes, (batch, side, n, m, k, partial_bytes / input_bytes)


def test_backward_allocates_the_partials_it_reports(interpreter, monkeypatch):
    launched = {}
    real_launch = triton_backend._launch

    def recording_launch(kernel, grid, **args):
        launched.update({name: tuple(t.shape) for name, t in args.items() if name.startswith("part_d")})
        real_launch(kernel, grid, **args)

    monkeypatch.setattr(triton_backend, "_launch", recording_launch)
    batch, n, m2, m1, k, h2, w2, h1, w1 = SHAPES["chunks"]
    forward_and_grads(triton_msca, inputs_for(SHAPES["chunks"]), torch.randn(batch, n, h1, w1))
    expected = triton_backend.backward_partial_shapes(batch, n, m2, m1, k, h2 * w2, h1 * w1, None)
    assert launched == {f"part_{name}": shape for name, shape in expected.items()}
    assert expected["dphi"][1] > 1 and expected["dvt"][1] > 1, "the test shape should span several splits"


def test_autotuning_zeroes_the_partial_sums_kernels_add_into():
    """The autotuner times each candidate on the real arguments; whatever a kernel adds into
    (tl.atomic_add) must be zeroed before each timed run and before the real one."""
    for name, tuner in triton_backend.kernels.KERNELS.items():
        source = inspect.getsource(tuner.fn.fn)
        added_into = set(re.findall(r"tl\.atomic_add\(\s*(\w+)", source))
        assert added_into == set(triton_backend.kernels.ACCUMULATED[name]), name
        assert set(tuner.reset_to_zero) == added_into, name


def test_gpu_configs_run_in_the_interpreter(interpreter):
    kernels = triton_backend.kernels
    inp = inputs_for(SHAPES["tiny"])  # float32, K = 3: BK = 16

    def launched():
        forward_and_grads(triton_msca, inp, torch.randn(2, 3, 2, 3))
        return {
            name: (kernels.block_p(name), tuner.best_config.all_kwargs()) for name, tuner in kernels.KERNELS.items()
        }

    interpreter_config = kernels.INTERPRETER_CONFIG.as_triton().all_kwargs()
    assert launched() == {name: (kernels.INTERPRETER_BLOCK_P, interpreter_config) for name in kernels.KERNELS}
    with kernels.gpu_configs_interpreted(1):
        expected = {}
        for name in kernels.KERNELS:
            serving = kernels.candidates(name, None if name == "combine" else "fp32", 16)
            expected[name] = (kernels.GPU_BLOCK_P[name], serving[min(1, len(serving) - 1)].as_triton().all_kwargs())
        assert launched() == expected
    assert launched()["sweep_b"] == (kernels.INTERPRETER_BLOCK_P, interpreter_config)


def test_layouts_need_no_particular_strides(interpreter):
    """channels_last, a channel slice of a larger map (batch stride != C*P), H/W-transposed
    storage, transposed weight storage and 1x1-conv-shaped weights all give the same result."""
    inp = inputs_for(SHAPES["chunks"])
    expected = call(triton_msca, inp)
    channels_last = {n: inp[n].contiguous(memory_format=torch.channels_last) for n in ("fx2", "fc2", "fc1")}
    sliced = {n: torch.cat([inp[n], inp[n]], dim=1)[:, : inp[n].shape[1]] for n in ("fx2", "fc2", "fc1")}
    transposed = {n: inp[n].transpose(2, 3).contiguous().transpose(2, 3) for n in ("fx2", "fc2", "fc1")}
    weights = {
        "phi_weight": inp["phi_weight"].t().contiguous().t(),
        "psi_weight": inp["psi_weight"][:, :, None, None],
    }
    for overrides in (channels_last, sliced, transposed, weights):
        assert rel_rms(call(triton_msca, inp, **overrides), expected) < 1e-6
    compare_to_reference({**inp, **channels_last}, "triton", 1e-5, 1e-5)


def test_output_and_gradients_follow_the_input_layouts(interpreter):
    inp = inputs_for(SHAPES["7x13"])
    cl = {n: inp[n].contiguous(memory_format=torch.channels_last) for n in ("fx2", "fc2", "fc1")}
    out = call(triton_msca, {**inp, **cl})
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert call(triton_msca, inp).is_contiguous()
    out, v, lse = torch.ops.msca_fast.triton_forward(
        cl["fx2"], cl["fc2"], cl["fc1"], inp["phi_weight"], inp["psi_weight"],
        inp["psi_bias"], inp["gate"],
    )
    grads = torch.ops.msca_fast.triton_backward(
        torch.ones_like(out), cl["fx2"], cl["fc2"], cl["fc1"], inp["phi_weight"], inp["psi_weight"],
        inp["psi_bias"], inp["gate"], v, lse,
    )
    for grad in grads[:3]:
        assert grad.is_contiguous(memory_format=torch.channels_last)


def test_saved_tensors_are_v_and_lse_in_float32(interpreter):
    inp = inputs_for(SHAPES["chunks"])
    _, v, lse = torch.ops.msca_fast.triton_forward(
        inp["fx2"], inp["fc2"], inp["fc1"], inp["phi_weight"], inp["psi_weight"],
        inp["psi_bias"], inp["gate"],
    )
    assert v.dtype == lse.dtype == torch.float32
    exact = {n: t.double() for n, t in inp.items()}
    expected_v = aggregate_reference(exact["fx2"], exact["fc2"], exact["phi_weight"], None)
    torch.testing.assert_close(v, expected_v.float(), rtol=1e-5, atol=1e-6)
    logits = torch.einsum("kc,bcp->bkp", exact["phi_weight"], torch.cat([exact["fx2"], exact["fc2"]], 1).flatten(2))
    torch.testing.assert_close(lse, torch.logsumexp(logits, dim=-1).float(), rtol=1e-5, atol=1e-6)


def test_results_are_deterministic(interpreter):
    inp = inputs_for(SHAPES["chunks"])
    grad_out = torch.randn(2, 20, 7, 13)
    first, second = forward_and_grads(triton_msca, inp, grad_out), forward_and_grads(triton_msca, inp, grad_out)
    assert torch.equal(first[0], second[0])
    assert all(torch.equal(first[1][n], second[1][n]) for n in ARG_NAMES)


def test_autocast_runs_in_the_autocast_dtype(interpreter):
    inp = inputs_for(SHAPES["7x13"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = call(triton_msca, inp)
    assert out.dtype == torch.bfloat16
    expected = call(msca_reference, {n: t.to(torch.bfloat16) for n, t in inp.items()})
    assert rel_rms(out, expected) < LOW_PRECISION_TOL[torch.bfloat16]


def test_tf32_is_an_explicit_option(interpreter):
    assert triton_backend._fp32_dot_precision == "ieee"
    with pytest.raises(ValueError, match="ieee"):
        triton_backend.set_fp32_dot_precision("fast")
    triton_backend.set_fp32_dot_precision("tf32")
    try:
        # The interpreter multiplies in float32 either way; this checks the plumbing.
        compare_to_reference(inputs_for(SHAPES["tiny"]), "triton", 1e-5, 1e-5)
    finally:
        triton_backend.set_fp32_dot_precision("ieee")


def test_empty_batch_launches_nothing(interpreter, monkeypatch):
    """B = 0: an empty output, empty feature-map gradients and zero weight gradients, without
    a launch (an empty grid is a launch error on the GPU)."""

    def no_launch(kernel, grid, **args):
        raise AssertionError(f"{kernel} launched for an empty batch")

    monkeypatch.setattr(triton_backend, "_launch", no_launch)
    inp = inputs_for(SHAPES["7x13"])
    empty = {n: inp[n][:0] for n in ("fx2", "fc2", "fc1", "gate")}
    args = [empty["fx2"], empty["fc2"], empty["fc1"], inp["phi_weight"], inp["psi_weight"],
            inp["psi_bias"], empty["gate"]]
    out, v, lse = torch.ops.msca_fast.triton_forward(*args)
    n, k = inp["fx2"].shape[1], inp["phi_weight"].shape[0]
    assert out.shape == (0, n, *inp["fc1"].shape[2:]) and out.dtype == inp["fx2"].dtype
    assert v.shape == (0, n, k) and lse.shape == (0, k) and v.dtype == lse.dtype == torch.float32
    grads = torch.ops.msca_fast.triton_backward(
        torch.empty_like(out), empty["fx2"], empty["fc2"], empty["fc1"], inp["phi_weight"], inp["psi_weight"],
        inp["psi_bias"], empty["gate"], v, lse,
    )
    expected = [empty["fx2"], empty["fc2"], empty["fc1"], inp["phi_weight"], inp["psi_weight"], inp["psi_bias"],
                empty["gate"]]
    for grad, like in zip(grads, expected):
        assert grad.shape == like.shape and grad.dtype == like.dtype
        assert torch.count_nonzero(grad) == 0
    torch.library.opcheck(torch.ops.msca_fast.triton_forward.default, args)
    out, grads = forward_and_grads(triton_msca, {**inp, **empty}, torch.empty(0, n, *inp["fc1"].shape[2:]))
    assert out.shape == (0, n, *inp["fc1"].shape[2:])
    assert all(grads[name].shape == inp[name][:0].shape for name in empty)
    assert all(torch.count_nonzero(grads[name]) == 0 for name in ("phi_weight", "phi_bias", "psi_weight", "psi_bias"))


# --- torch.library and torch.compile -------------------------------------------------------------


@pytest.mark.parametrize("optional", ["all", "none"])
def test_opcheck_forward(interpreter, optional):
    inp = inputs_for(SHAPES["tiny"])
    keep = optional == "all"
    args = [
        inp["fx2"], inp["fc2"], inp["fc1"], inp["phi_weight"],
        inp["psi_weight"], inp["psi_bias"] if keep else None, inp["gate"] if keep else None,
    ]
    args = [a.requires_grad_() if a is not None else None for a in args]
    torch.library.opcheck(torch.ops.msca_fast.triton_forward.default, args)


def test_opcheck_backward(interpreter):
    inp = inputs_for(SHAPES["tiny"])
    cl = inp["fc1"].contiguous(memory_format=torch.channels_last)
    out, v, lse = torch.ops.msca_fast.triton_forward(
        inp["fx2"], inp["fc2"], cl, inp["phi_weight"], inp["psi_weight"], inp["psi_bias"], inp["gate"]
    )
    args = [torch.randn_like(out), inp["fx2"], inp["fc2"], cl, inp["phi_weight"], inp["psi_weight"],
            inp["psi_bias"], inp["gate"], v, lse]
    torch.library.opcheck(torch.ops.msca_fast.triton_backward.default, args)


# --- devices -------------------------------------------------------------------------------------


def test_device_guard_makes_the_tensors_cuda_device_current(monkeypatch):
    """Triton launches on torch's current CUDA device: the guard must switch to the tensors'."""
    entered = []

    @contextmanager
    def recording_cuda_device(device):
        entered.append(torch.device(device))
        yield

    monkeypatch.setattr(torch.cuda, "device", recording_cuda_device)
    with triton_backend._device_guard(torch.device("cuda", 1)):
        assert entered == [torch.device("cuda", 1)]
    with triton_backend._device_guard(torch.device("cpu")):
        pass
    assert entered == [torch.device("cuda", 1)]


def test_every_launch_happens_under_the_inputs_device(interpreter, monkeypatch):
    """Without a GPU this checks the plumbing only: each kernel launch of the forward and the
    backward is inside _device_guard(the inputs' device). That Triton then launches on that
    device is test_gpu_tensors_on_another_device's to check."""
    active, launches = [], []
    real_launch = triton_backend._launch

    @contextmanager
    def recording_guard(device):
        active.append(device)
        try:
            yield
        finally:
            active.pop()

    def recording_launch(kernel, grid, **args):
        launches.append((kernel, list(active)))
        real_launch(kernel, grid, **args)

    monkeypatch.setattr(triton_backend, "_device_guard", recording_guard)
    monkeypatch.setattr(triton_backend, "_launch", recording_launch)
    inp = inputs_for(SHAPES["tiny"])
    forward_and_grads(triton_msca, inp, torch.randn(2, 3, 2, 3))
    assert sorted({kernel for kernel, _ in launches}) == sorted(triton_backend.kernels.KERNELS)
    assert all(devices == [torch.device("cpu")] for _, devices in launches), launches


# --- dispatch ------------------------------------------------------------------------------------


def _problem(shape=SHAPES["tiny"], dtype=torch.float32, device="cpu"):
    problem = validate_msca(*(inputs_for(shape, dtype)[n] for n in ARG_NAMES)).problem
    return dataclasses.replace(problem, device=torch.device(device))


def test_kernels_are_built_in_the_mode_triton_was_imported_in():
    from triton.runtime.interpreter import InterpretedFunction

    kernel = triton_backend.kernels.msca_fwd_kernel_distribute.fn
    assert isinstance(kernel, InterpretedFunction) == triton_backend.INTERPRETED
    assert triton_backend.INTERPRETED == triton_backend._triton_runs_interpreted()


@pytest.fixture
def registered_as(monkeypatch):
    """registered_as(interpreted): the registry's "triton" as a GPU or an interpreter process
    registers it; the real entry is restored afterwards."""

    def register(interpreted: bool) -> None:
        monkeypatch.setattr(triton_backend, "INTERPRETED", interpreted)
        register_backend(triton_backend.registry_entry(interpreted))

    yield register
    register_backend(triton_backend.registry_entry(triton_backend.kernels.INTERPRETED))


def test_on_a_gpu_cpu_tensors_are_refused_and_triton_wins_auto(registered_as):
    registered_as(interpreted=False)
    reason = triton_backend.why_not(_problem())
    assert "TRITON_INTERPRET=1" in reason and "backend='triton'" in reason
    assert select_backend("auto", _problem()).name != "triton"
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        select_backend("triton", _problem())
    # Above the untested "cuda" extension backend, for now.
    assert select_backend("auto", _problem(device="cuda")).name == "triton"
    assert select_backend("auto", _problem(device="cuda", dtype=torch.bfloat16)).name == "triton"


def test_interpreted_serves_cpu_tensors_by_name_only(registered_as):
    registered_as(interpreted=True)
    assert triton_backend.why_not(_problem()) is None
    assert select_backend("triton", _problem()).name == "triton"
    assert select_backend("auto", _problem()).name != "triton"
    assert select_backend("auto", _problem(device="cuda")).name != "triton"


@pytest.mark.parametrize(
    "problem, reason",
    [
        (lambda: _problem(dtype=torch.float64, device="cuda"), "float32, float16 or bfloat16"),
        (lambda: _problem(shape=(1, 3, 2, 2, 33, 2, 2, 2, 2), device="cuda"), "K = 33"),
        (lambda: dataclasses.replace(_problem(device="cuda"), stage="aggregate"), "fused op only"),
        (lambda: _problem(device="meta"), "CUDA tensors"),
        (lambda: dataclasses.replace(_problem(device="cuda"), exemplar_pixels=2**30), "2**31"),
    ],
    ids=["float64", "K33", "aggregate", "meta", "int32"],
)
def test_why_not_reasons(problem, reason):
    assert reason in backend_reasons(problem())["triton"]


# --- on a GPU ------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device")
def test_gpu_large_image_and_channels_last():
    """Several splits per image with the GPU's blocks, N and M above one chunk, channels_last."""
    inp = inputs_for((2, 150, 70, 40, 16, 61, 67, 53, 59), device="cuda")
    cl = {n: inp[n].contiguous(memory_format=torch.channels_last) for n in ("fx2", "fc2", "fc1")}
    compare_to_reference({**inp, **cl}, "triton", 1e-5, 1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device")
def test_gpu_backward_is_deterministic():
    """Each backward program adds its tiles into its own slot of the partial sums
    (tl.atomic_add), one after another: the same inputs give the same bits."""
    inp = inputs_for((2, 150, 70, 40, 16, 61, 67, 53, 59), device="cuda")
    grad_out = torch.randn(2, 150, 53, 59, device="cuda")
    first, second = forward_and_grads(triton_msca, inp, grad_out), forward_and_grads(triton_msca, inp, grad_out)
    assert all(torch.equal(first[1][n], second[1][n]) for n in ARG_NAMES)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_gpu_tensors_on_another_device():
    """Tensors on cuda:1 while cuda:0 is current: the kernels must run on cuda:1."""
    assert torch.cuda.current_device() == 0
    compare_to_reference(inputs_for(SHAPES["chunks"], device="cuda:1"), "triton", 1e-5, 1e-5)
    assert torch.cuda.current_device() == 0


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device")
def test_gpu_opcheck():
    inp = inputs_for(SHAPES["7x13"], device="cuda")
    args = [inp[n].requires_grad_() for n in ARG_NAMES]
    torch.library.opcheck(torch.ops.msca_fast.triton_forward.default, args)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device")
def test_gpu_tf32_option():
    inp = inputs_for(SHAPES["chunks"], device="cuda")
    triton_backend.set_fp32_dot_precision("tf32")
    try:
        compare_to_reference(inp, "triton", 5e-3, 5e-3)
    finally:
        triton_backend.set_fp32_dot_precision("ieee")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device")
def test_gpu_module_under_torch_compile_and_auto():
    module = MSCA(6, 4, 5, num_regions=8).cuda()
    fx2, fc2, fc1 = (torch.randn(2, c, 9, 7, device="cuda") for c in (6, 4, 5))
    problem = validate_msca(fx2, fc2, fc1, module.phi.weight, module.phi.bias, module.psi.weight,
                            module.psi.bias, None).problem
    assert select_backend("auto", problem).name == "triton"
    out = torch.compile(module, fullgraph=True)(fx2, fc2, fc1)
    torch.testing.assert_close(out, module(fx2, fc2, fc1))
    out.sum().backward()
    assert all(p.grad is not None for p in module.parameters())
