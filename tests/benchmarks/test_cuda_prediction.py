"""The CUDA performance model (benchmarks/cuda_prediction.py): each term does what its
docstring says, and the predictions the GPU check compares against are well formed."""

import pytest

from benchmarks import cuda_prediction as cp
from benchmarks.cases import CASES
from msca_fast import _extension

H100 = cp.DEVICES["H100"]


def launch(**overrides):
    base = dict(kernel="k", blocks=264, threads=256, resident=2, fma=1e9, wavefronts=0.0, dram_bytes=0.0, ilp=4.0)
    return cp.Launch(**{**base, **overrides})


def kernel_seconds(x: cp.Launch) -> float:
    return x.seconds(H100) - cp.LAUNCH_GAP_S


def test_fma_bound_launch_runs_at_the_issue_rate():
    """1e9 FMAs on 132 SMs x 128 lanes at 1.98 GHz, latency hidden (16 warps x 4 chains)."""
    expected = 1e9 / (132 * 128 * 1.98e9)
    assert kernel_seconds(launch()) == pytest.approx(expected, rel=0.02)


def test_one_load_per_fma_runs_at_a_quarter_of_the_issue_rate():
    fma = 1e9
    loads_per_warp_fma = fma / 32  # one broadcast wavefront a warp FMA
    assert kernel_seconds(launch(wavefronts=loads_per_warp_fma)) == pytest.approx(
        4 * kernel_seconds(launch()), rel=0.02
    )


def test_a_dependent_chain_with_too_few_warps_is_latency_bound():
    """One block of 8 warps, one chain each: 2 FMAs in flight a scheduler against a latency of 4."""
    hidden = kernel_seconds(launch(ilp=4.0))
    assert kernel_seconds(launch(ilp=1.0, resident=1)) == pytest.approx(2 * hidden, rel=0.02)


def test_a_grid_smaller_than_the_device_leaves_sms_idle():
    full, small = launch(blocks=132, resident=1), launch(blocks=2, resident=1)
    assert kernel_seconds(small) == pytest.approx(66 * kernel_seconds(full), rel=0.02)


def test_memory_bound_launch_moves_its_bytes_at_the_assumed_efficiency():
    x = launch(fma=0.0, dram_bytes=1e9)
    assert kernel_seconds(x) == pytest.approx(1e9 / (cp.MEMORY_EFFICIENCY * H100.bandwidth), rel=1e-6)


def test_serial_cycles_add_per_round_of_resident_blocks():
    x = launch(fma=0.0, blocks=1, resident=1, serial_cycles=1.98e3)
    assert kernel_seconds(x) == pytest.approx(1e-6, rel=1e-6)


NEEDS_LAUNCH_PLAN = pytest.mark.skipif(
    not _extension.extension_loaded(), reason="'after' reads msca_fast._C's launch plan"
)


@pytest.mark.parametrize(
    "design", [pytest.param(d, marks=NEEDS_LAUNCH_PLAN if d == "after" else ()) for d in sorted(cp.DESIGNS)]
)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_every_case_has_positive_predictions(design, dtype):
    for case in CASES:
        kernels = cp.kernel_predictions(case.id, dtype, "H200", design)
        ops = cp.op_predictions(case.id, dtype, "H200", design)
        assert kernels and all(t > 0 for t in kernels.values())
        assert ops["forward+backward"] == pytest.approx(ops["forward"] + ops["backward"])
        # the wall time holds the device time and at least the host's first launch
        for group in cp.launches(case.id, dtype, "H200", design).values():
            device_s, wall_s = cp.op_times(group, cp.DEVICES["H200"])
            assert wall_s >= device_s + cp.HOST_LAUNCH_S


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="case_id"):
        cp.kernel_predictions("s9", "float32", "H200")
    with pytest.raises(ValueError, match="dtype"):
        cp.kernel_predictions("s0_256", "int8", "H200")
    with pytest.raises(ValueError, match="device"):
        cp.kernel_predictions("s0_256", "float32", "A100")
