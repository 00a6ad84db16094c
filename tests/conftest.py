import functools
import os

import pytest
import torch

# Triton picks its CPU interpreter or its GPU compiler once, when it is first imported (by
# msca_fast or torch._dynamo, during collection). Without a GPU, pick the interpreter so that
# tests/backends/test_triton.py can run the kernels on CPU tensors. Only the "triton" backend reads
# it, and it then never wins "auto" (see msca_fast/backends/triton_backend.py).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from extension_requirements import missing_extensions, running_in_ci  # noqa: E402
from helpers import make_inputs  # noqa: E402

# Every call of the emulated CUDA kernels in the test session runs under each of these
# orders of a block's threads and fails unless all give the same bits (csrc/emulation/).
EMULATION_SCHEDULES = "ascending,descending,random:1"


def pytest_addoption(parser):
    parser.addoption(
        "--emulation-schedules",
        default=EMULATION_SCHEDULES,
        help="orders of the threads every emulated CUDA call runs under, compared bitwise: a comma-separated "
        f"list of ascending, descending, random:SEED (default {EMULATION_SCHEDULES})",
    )


def pytest_sessionstart(session):
    """Under CI a missing extension fails the run at once instead of skipping its tests."""
    if running_in_ci():
        missing = missing_extensions()
        if missing:
            pytest.exit("CI=true: " + "; ".join(missing), returncode=1)


@pytest.fixture(scope="session", autouse=True)
def emulation_schedules(request):
    """The schedules of the emulated CUDA kernels (torch.ops.msca_fast_emulated) for the
    whole session; None when the emulation is not built."""
    from msca_fast import _extension

    if not _extension.emulation_loaded():
        yield None
        return
    ops = torch.ops.msca_fast_emulated
    previous = ops.schedules()
    ops.set_schedules(request.config.getoption("--emulation-schedules"))
    yield ops.schedules()
    ops.set_schedules(previous)


@pytest.fixture(autouse=True)
def seed():
    """Every test starts from the same global RNG state (module initialisation uses it)."""
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="module")
def cached_load_model():
    """msca_fast.synthesis.model_file.load_model, remembering each file's model for one test module."""
    from msca_fast.synthesis.model_file import load_model

    cached = functools.cache(load_model)
    yield cached
    cached.cache_clear()


@pytest.fixture
def load_each_checkpoint_once(monkeypatch, cached_load_model):
    """The synthesis commands read their checkpoint (100 MB, mostly VGG) on every call; tests
    that ask for this share one read per file. Failed loads are not cached, so every error path
    still runs."""
    from msca_fast.synthesis import session

    monkeypatch.setattr(session, "load_model", cached_load_model)


@pytest.fixture
def inputs():
    """A small float64 problem: B=2, N=3, M2=2, M1=2, K=3, exemplar 3x4, target 2x3."""
    return make_inputs()
