import pytest
import torch

from helpers import make_inputs


@pytest.fixture(autouse=True)
def seed():
    """Every test starts from the same global RNG state (module initialisation uses it)."""
    torch.manual_seed(0)
    return 0


@pytest.fixture
def inputs():
    """A small float64 problem: B=2, N=3, M2=2, M1=2, K=3, exemplar 3x4, target 2x3."""
    return make_inputs()
