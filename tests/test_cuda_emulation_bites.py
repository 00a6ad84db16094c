"""The emulation of the CUDA execution model catches what a GPU would get wrong: kernels
built with one barrier removed (a test-only compile-time switch, MSCA_MUTANT_SKIP_BARRIER
in csrc/msca_cuda_kernels.cuh) give wrong results; small kernels that break one rule each
(csrc/emulation/emulation_self_test.h) are stopped with an error naming it; the launch
checks reject what a GPU driver would.

The mutant, with the self-test kernels, is compiled here with torch.utils.cpp_extension.load
(about a minute on two cores, cached between runs in torch's extension directory).
"""

import os

import pytest
import torch

from helpers import call, rel_rms
from helpers import inputs_for_shape as inputs_for
from msca_fast import _extension
from msca_fast.reference import msca_reference

pytestmark = [
    pytest.mark.cuda_emulated,
    pytest.mark.skipif(not _extension.emulation_loaded(), reason=f"{_extension.emulation_load_error}"),
]

CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
SHAPE = (1, 11, 5, 6, 8, 41, 53, 37, 29)  # several blocks of several tiles


def op_args(inp):
    return [inp[n] for n in ("fx2", "fc2", "fc1", "phi_weight", "psi_weight", "psi_bias", "gate")]


@pytest.fixture(scope="module")
def mutant_skip_barrier():
    from torch.utils.cpp_extension import load

    load(
        name="msca_mutant_skip_barrier",
        sources=[os.path.join(CSRC, "emulation", "msca_cuda_emulated.cpp")],
        extra_include_paths=[CSRC, os.path.join(CSRC, "emulation")],
        extra_cflags=[
            "-O1",
            "-fopenmp",
            "-DMSCA_MUTANT_SKIP_BARRIER",
            "-DMSCA_EMULATION_SELF_TEST",
            "-DMSCA_EMULATED_NAMESPACE=msca_mutant_skip_barrier",
        ],
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )
    return torch.ops.msca_mutant_skip_barrier


def test_a_missing_barrier_gives_wrong_results(mutant_skip_barrier):
    inp = inputs_for(SHAPE)
    expected = call(msca_reference, inp)
    intact, _, _ = torch.ops.msca_fast_emulated.msca_forward(*op_args(inp))
    broken, _, _ = mutant_skip_barrier.msca_forward(*op_args(inp))
    assert rel_rms(intact, expected) < 1e-12
    assert not torch.isfinite(broken).all() or rel_rms(broken, expected) > 1e-2


def test_shared_memory_past_the_device_limit_is_refused_before_any_launch():
    inp = inputs_for((1, 3000, 2, 2, 32, 3, 3, 2, 2), torch.float32)  # 3000 x 32 floats: 384 KiB
    with pytest.raises(RuntimeError, match="shared memory"):
        torch.ops.msca_fast_emulated.msca_forward(*op_args(inp))


SELF_TESTS = {"divergent_barriers": 0, "exit_before_barrier": 1, "partial_warp_shuffle": 2, "missing_barrier": 3, "with_barrier": 4, "warp_sum": 5}


@pytest.mark.parametrize(
    "kernel, message",
    [
        ("divergent_barriers", "wait at barriers on lines"),
        ("exit_before_barrier", "is not reached by 1 threads"),
        ("partial_warp_shuffle", "is not reached by every lane of its warp"),
    ],
)
def test_broken_synchronisation_is_stopped_with_its_reason(mutant_skip_barrier, kernel, message):
    with pytest.raises(RuntimeError, match=message):
        mutant_skip_barrier.self_test(SELF_TESTS[kernel])


def test_shared_memory_read_before_it_is_written_is_nan(mutant_skip_barrier):
    broken = mutant_skip_barrier.self_test(SELF_TESTS["missing_barrier"])
    intact = mutant_skip_barrier.self_test(SELF_TESTS["with_barrier"])
    assert torch.equal(intact, (torch.arange(64.0) + 1) % 64)
    assert torch.isnan(broken).any()


def test_warp_shuffles_exchange_within_each_warp(mutant_skip_barrier):
    assert torch.equal(mutant_skip_barrier.self_test(SELF_TESTS["warp_sum"]), torch.full((64,), 496.0))
