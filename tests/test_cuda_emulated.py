"""The "cuda_emulated" backend's own checks: the CUDA kernels (csrc/msca_cuda_kernels.cuh) and
their host code (csrc/msca_cuda_driver.h) run on the CPU through the emulation of the CUDA
execution model. The checks every backend passes (K = 1..32, every dtype, layouts, B = 0)
are in test_backend_conformance.py, raw-op opcheck in test_extension_kernels.py.

The emulated device has 3 SMs, so grids of 6 blocks per batch element: exemplars of more
than 6 tiles (256 pixels) give blocks of several tiles, and more than one block.
"""

import pytest
import torch

from helpers import ARG_NAMES, GRAD_NAMES, SHAPES, call, forward_and_grads
from helpers import inputs_for_shape as inputs_for
from msca_fast import _extension
from msca_fast.backends import select_backend
from msca_fast.ops import msca
from msca_fast.validation import validate_msca

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
    for name in GRAD_NAMES:
        assert torch.equal(first[1][name], second[1][name]), name


def test_never_chosen_by_auto():
    problem = validate_msca(*(inputs_for(SHAPES["tiny"])[n] for n in ARG_NAMES)).problem
    assert select_backend(BACKEND, problem).name == BACKEND
    assert select_backend("auto", problem).name != BACKEND


def test_declines_what_it_cannot_hold():
    inp = inputs_for((1, 3, 2, 2, 33, 3, 3, 2, 2))
    with pytest.raises(ValueError, match="K = 33"):
        call(lambda *a: msca(*a, backend=BACKEND), inp)
