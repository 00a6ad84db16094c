import os

import pytest
import torch

# Triton picks its CPU interpreter or its GPU compiler once, when it is first imported (by
# msca_fast or torch._dynamo, during collection). Without a GPU, pick the interpreter so that
# tests/test_triton.py can run the kernels on CPU tensors. Only the "triton" backend reads
# it, and it then never wins "auto" (see msca_fast/backends/triton_backend.py).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from helpers import make_inputs  # noqa: E402


@pytest.fixture(autouse=True)
def seed():
    """Every test starts from the same global RNG state (module initialisation uses it)."""
    torch.manual_seed(0)
    return 0


@pytest.fixture
def inputs():
    """A small float64 problem: B=2, N=3, M2=2, M1=2, K=3, exemplar 3x4, target 2x3."""
    return make_inputs()
