"""Static gates on the built CUDA kernels (no GPU needed): no local memory, and at least
25% theoretical occupancy on sm_80 and sm_90 at the benchmark shapes' launch configurations.

Reads cuobjdump's resource report of msca_fast._C; skipped when the build has no CUDA
kernels or no cuobjdump is at hand (it ships in the triton wheel).
"""

import pytest

from benchmarks.cases import CASES
from benchmarks.cuda_resources import (
    ARCHITECTURES,
    KernelResources,
    cuobjdump,
    dynamic_shared_bytes,
    extension_library,
    kernel_resources,
    occupancy,
    parse_resource_usage,
    table,
)
from msca_fast import _extension

TOOL, LIBRARY = cuobjdump(), extension_library()
pytestmark = pytest.mark.skipif(
    not _extension.built_with_cuda() or TOOL is None or LIBRARY is None,
    reason="needs a build with CUDA kernels and cuobjdump",
)


@pytest.fixture(scope="module")
def kernels():
    found = kernel_resources(LIBRARY, TOOL)
    assert found, f"no msca kernels found in {LIBRARY}"
    return found


def test_every_architecture_and_stage_is_built(kernels):
    assert {k.arch for k in kernels} >= {"sm_80", "sm_90"}
    for arch in ("sm_80", "sm_90"):
        stages = {(k.stage, k.regions, k.dtype) for k in kernels if k.arch == arch}
        for stage in ("aggregate", "distribute", "sweep_a", "sweep_b"):
            for dtype in ("float32", "float16", "bfloat16"):
                assert {(stage, kp, dtype) for kp in (8, 16, 32)} <= stages
            assert {(stage, kp, "float64") for kp in (8, 16)} <= stages


def test_the_newest_architecture_is_also_embedded_as_ptx():
    """PTX for sm_90 lets GPUs newer than the build's list JIT the kernels ("no kernel image" otherwise)."""
    import subprocess

    listing = subprocess.run([TOOL, "--list-ptx", LIBRARY], capture_output=True, text=True, check=True).stdout
    assert "sm_90" in listing, listing


def test_no_kernel_uses_local_memory(kernels):
    offenders = [f"{k.arch} {k.stage} KP={k.regions} {k.dtype}: stack {k.stack}, local {k.local}" for k in kernels if k.stack or k.local]
    assert not offenders, "\n".join(offenders)


# (id, N, M, K): the benchmark cases, and the finest scale with the most regions the kernels take.
LAUNCHES = [(c.id, c.image_channels, c.label_channels, c.num_regions) for c in CASES] + [("s0_256_K32", 64, 32, 32)]


@pytest.mark.parametrize("launch", LAUNCHES, ids=[launch[0] for launch in LAUNCHES])
def test_occupancy_at_least_a_quarter_at_the_benchmark_launches(kernels, launch):
    """Every kernel a benchmark shape launches (KP = K padded), in the dtypes that are tuned."""
    _, n, m, k_regions = launch
    kp = 8 if k_regions <= 8 else 16 if k_regions <= 16 else 32
    launched = [k for k in kernels if k.regions in (kp, None)]
    print("\n" + table(launched, n, m))
    low = []
    for k in launched:
        if k.dtype == "float64":  # validation dtype: served, not tuned
            continue
        value = occupancy(k, dynamic_shared_bytes(k, n, m), ARCHITECTURES[k.arch])
        if value < 0.25:
            low.append(f"{k.arch} {k.stage} KP={k.regions} {k.dtype}: {value:.1%} ({k.registers} registers)")
    assert not low, "\n".join(low)


def test_parser_and_occupancy_on_a_known_report():
    report = """
arch = sm_90
 Function _ZN9msca_fast12cuda_kernels14sweep_b_kernelILi16EffEEvNS_4DimsE:
  REG:128 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:520
 Function _ZN9msca_fast12cuda_kernels14combine_kernelIdEEvNS_4DimsE:
  REG:200 STACK:16 SHARED:0 LOCAL:0
 Function other:
  REG:10 STACK:0 SHARED:0 LOCAL:0
"""
    sweep, combine = parse_resource_usage(report)
    assert (sweep.arch, sweep.stage, sweep.regions, sweep.dtype, sweep.registers) == ("sm_90", "sweep_b", 16, "float32", 128)
    assert (combine.stage, combine.regions, combine.dtype, combine.stack) == ("combine", None, "float64", 16)
    sm90 = ARCHITECTURES["sm_90"]
    assert occupancy(sweep, 0, sm90) == 0.25  # 128 registers: two blocks of 8 warps
    assert occupancy(sweep, 114 * 1024, sm90) == 0.125  # shared memory then allows one
    light = KernelResources("sm_90", sweep.mangled, 32, 0, 0, 0)
    assert occupancy(light, 0, sm90) == 1.0
