"""The "cuda_emulated" backend's own checks: the CUDA kernels (csrc/msca_cuda_kernels.cuh) and
their host code (csrc/msca_cuda_driver.h) run on the CPU through the emulation of the CUDA
execution model. The checks every backend passes (K = 1..32, every dtype, layouts, B = 0)
are in test_backend_conformance.py, raw-op opcheck in test_extension_kernels.py.

The emulated device has 3 SMs by default, so grids of 6 blocks per batch element:
exemplars of more than 6 tiles (256 pixels) give blocks of several tiles, and more than
one block. One test gives it the 132 SMs of an H100 / H200 to get the benchmarks' grids.
Every call runs under each schedule the session sets (tests/conftest.py), compared bitwise.
"""

import contextlib

import pytest
import torch

from msca_fast import _extension
from msca_fast.backends import select_backend
from msca_fast.op_arguments import validate_msca
from msca_fast.ops import msca

from helpers import ARG_NAMES, SHAPES, call, compare_to_reference, forward_and_grads
from helpers import inputs_for_shape as inputs_for

pytestmark = [
    pytest.mark.cuda_emulated,
    pytest.mark.skipif(not _extension.emulation_loaded(), reason=f"{_extension.emulation_load_error}"),
]

BACKEND = "cuda_emulated"

# K = 17 in float64: more regions than the float64 kernels take.
K17 = (1, 4, 3, 3, 17, 20, 33, 11, 13)


def test_float64_beyond_16_regions_is_declined_by_name():
    """Arrays of 32 doubles a thread would not fit in registers: declined before any launch."""
    with pytest.raises(ValueError, match="K = 17 exceeds the CUDA kernels' limit of 16 in torch.float64"):
        call(lambda *a: msca(*a, backend=BACKEND), inputs_for(K17))


def test_results_are_deterministic():
    inp = inputs_for(SHAPES["multi_tile"], torch.float32)
    grad_out = torch.randn(1, 11, 37, 29)
    first, second = forward_and_grads(inp, BACKEND, grad_out), forward_and_grads(inp, BACKEND, grad_out)
    assert torch.equal(first[0], second[0])
    for name in ARG_NAMES:
        assert torch.equal(first[1][name], second[1][name]), name


def test_never_chosen_by_auto():
    problem = validate_msca(*(inputs_for(SHAPES["tiny"])[n] for n in ARG_NAMES)).problem
    assert select_backend(BACKEND, problem).name == BACKEND
    assert select_backend("auto", problem).name != BACKEND


def test_declines_what_it_cannot_hold():
    inp = inputs_for((1, 3, 2, 2, 33, 3, 3, 2, 2))
    with pytest.raises(ValueError, match="K = 33"):
        call(lambda *a: msca(*a, backend=BACKEND), inp)


def test_every_call_runs_under_two_schedules_at_least(emulation_schedules):
    """Results that depend on the order of a block's threads (a race) fail the call."""
    assert len(emulation_schedules.split(",")) >= 2, emulation_schedules


@contextlib.contextmanager
def multiprocessors(count):
    """The emulated device has ``count`` SMs in this context."""
    ops = torch.ops.msca_fast_emulated
    previous = ops.multiprocessor_count()
    ops.set_multiprocessor_count(count)
    try:
        yield
    finally:
        ops.set_multiprocessor_count(previous)


# B = 2 at 256x256, few channels: the pixels of benchmarks/cases.py's s0_256. On 132 SMs
# the driver aims at 2 blocks a SM, 132 a batch element: 256 tiles make 128 chunks of 2.
BENCHMARK_CHUNKING = (2, 2, 1, 1, 3, 256, 256, 256, 256)


def test_a_132_sm_device_gets_the_benchmark_chunking_and_the_reference_results():
    inp = inputs_for(BENCHMARK_CHUNKING, torch.float32)
    ops = torch.ops.msca_fast_emulated
    with multiprocessors(132):
        compare_to_reference(inp, BACKEND, 2e-6, 2e-5)
        # sweep A (chunks, B), between_sweeps (32 entries a block), sweep B (chunks, B), phi_gradient
        backward_grids = ops.launched_grids()
        ops.msca_forward(*(inp[n] for n in ("fx2", "fc2", "fc1", "phi_weight", "psi_weight", "psi_bias", "gate")))
        # aggregate (chunks, B), combine (32 entries of V a block, B), distribute (512-pixel tiles, B)
        forward_grids = ops.launched_grids()
    assert backward_grids == [128, 2, 1, 2, 1, 1, 128, 2, 1, 1, 1, 1]
    assert forward_grids == [128, 2, 1, 1, 2, 1, 128, 2, 1]
    assert ops.multiprocessor_count() == 3
