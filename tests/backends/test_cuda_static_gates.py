"""Static gates on the CUDA kernels (no GPU needed).

On the built kernels (cuobjdump's resource report of msca_fast._C; skipped when the build has
no CUDA kernels or no cuobjdump is at hand, which ships in the triton wheel): no local memory,
registers that let every launch start, and at least 25% theoretical occupancy on sm_80 and
sm_90 at the benchmark shapes' launches. On the launch plan (csrc/msca_cuda_limits.h, in
every build): small images still give every SM a block.
"""

import pytest

from benchmarks.cases import CASES, Case
from benchmarks.cuda_resources import (
    ARCHITECTURES,
    PIXEL_STAGES,
    STAGES,
    KernelResources,
    blocks_per_sm,
    cuobjdump,
    extension_library,
    kernel_resources,
    launch_plan,
    launched,
    occupancy,
    parse_resource_usage,
    registers_fit,
    table,
)
from msca_fast import _extension

TOOL, LIBRARY = cuobjdump(), extension_library()
needs_built_kernels = pytest.mark.skipif(
    not _extension.built_with_cuda() or TOOL is None or LIBRARY is None,
    reason="needs a build with CUDA kernels and cuobjdump",
)
needs_extension = pytest.mark.skipif(not _extension.extension_loaded(), reason=f"{_extension.load_error}")

# The benchmark cases, and the finest scale with the most regions the kernels take.
LAUNCHES = list(CASES) + [Case("s0_256_K32", 256, 256, image_channels=64, label_channels=32, num_regions=32, batch=2)]


@pytest.fixture(scope="module")
def kernels():
    found = kernel_resources(LIBRARY, TOOL)
    assert found, f"no msca kernels found in {LIBRARY}"
    return found


@needs_built_kernels
def test_every_architecture_and_stage_is_built(kernels):
    assert {k.arch for k in kernels} >= {"sm_80", "sm_90"}
    for arch in ("sm_80", "sm_90"):
        built = {(k.stage, k.regions, k.dtype) for k in kernels if k.arch == arch}
        for dtype in ("float64", "float32", "float16", "bfloat16"):
            for stage in PIXEL_STAGES:
                assert {(stage, kp, dtype) for kp in ((8, 16) if dtype == "float64" else (8, 16, 32))} <= built
            for stage in ("between_sweeps", "phi_gradient"):
                assert (stage, None, dtype) in built
        assert {("combine", None, "float32"), ("combine", None, "float64")} <= built


@needs_built_kernels
def test_the_newest_architecture_is_also_embedded_as_ptx():
    """PTX for sm_90 lets GPUs newer than the build's list JIT the kernels ("no kernel image" otherwise)."""
    import subprocess

    listing = subprocess.run([TOOL, "--list-ptx", LIBRARY], capture_output=True, text=True, check=True).stdout
    assert "sm_90" in listing, listing


@needs_built_kernels
def test_no_kernel_uses_local_memory(kernels):
    offenders = [
        f"{k.arch} {k.stage} KP={k.regions} {k.dtype}: stack {k.stack}, local {k.local}"
        for k in kernels
        if k.stack or k.local
    ]
    assert not offenders, "\n".join(offenders)


@needs_built_kernels
def test_every_launch_has_the_registers_it_needs(kernels):
    """Registers a thread <= 255 and a block of 256 threads within the SM's 65536: otherwise the
    launch fails with "too many resources requested"."""
    offenders = [
        f"{k.arch} {k.stage} KP={k.regions} {k.dtype}: {k.registers} registers"
        for k in kernels
        if not registers_fit(k, ARCHITECTURES[k.arch])
    ]
    assert not offenders, "\n".join(offenders)


@needs_built_kernels
@pytest.mark.parametrize("case", LAUNCHES, ids=[c.id for c in LAUNCHES])
def test_occupancy_at_least_a_quarter_at_the_benchmark_launches(kernels, case):
    """Every kernel a benchmark shape launches, with the plan's shared memory on an A100 and an
    H100, in the dtypes that are tuned (float64 is served for validation, not tuned)."""
    print("\n" + table(kernels, case))
    low = []
    for k in launched(kernels, case):
        if k.dtype == "float64":
            continue
        arch = ARCHITECTURES[k.arch]
        shared = launch_plan(case, k.accumulator_bytes, arch)[k.stage].shared_bytes
        value = occupancy(k, shared, arch)
        if value < 0.25:
            low.append(
                f"{k.arch} {k.stage} KP={k.regions} {k.dtype}: {value:.1%} ({k.registers} registers, {shared} B)"
            )
    assert not low, "\n".join(low)


@needs_extension
@pytest.mark.parametrize("case", LAUNCHES, ids=[c.id for c in LAUNCHES])
@pytest.mark.parametrize("arch", ARCHITECTURES, ids=list(ARCHITECTURES))
def test_pixel_kernels_give_every_sm_a_block_where_the_image_allows(case, arch):
    """Each pixel kernel launches a block for every SM, or as many as tiles of 4 pixels a
    thread's lanes allow (64 lanes a pixel; 16x16 images, B = 2: 128 of 132), in the tuned
    dtypes (float32 accumulation); the reduction sweeps stay within 256 chunks a batch element."""
    device = ARCHITECTURES[arch]
    plan = launch_plan(case, 4, device)
    for stage in PIXEL_STAGES:
        launch = plan[stage]
        most = case.batch * -(-case.pixels // (4 * launch.pixels_per_thread))
        assert launch.blocks >= min(device.sms, most), (stage, launch)
        assert (
            launch.chunk * launch.grid_x >= case.pixels and launch.shared_bytes <= device.optin_shared
        ), (stage, launch)
        if stage != "distribute":
            assert launch.grid_x <= 256, (stage, launch)


@needs_extension
def test_the_plan_covers_every_kernel_in_launch_order():
    plan = launch_plan(CASES[0], 4, ARCHITECTURES["sm_90"])
    assert list(plan) == list(STAGES)
    assert plan["combine"].grid_y == CASES[0].batch and plan["combine"].shared_bytes > 0


def test_parser_and_occupancy_on_a_known_report():
    report = """
arch = sm_90
 Function _ZN9msca_fast12cuda_kernels14sweep_b_kernelILi16EffEEvNS_4DimsE:
  REG:128 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:520
 Function _ZN9msca_fast12cuda_kernels14combine_kernelIdEEvNS_4DimsE:
  REG:200 STACK:16 SHARED:0 LOCAL:0
 Function _ZN9msca_fast12cuda_kernels21between_sweeps_kernelIN3c108BFloat16EfEEvNS_4DimsE:
  REG:32 STACK:0 SHARED:0 LOCAL:0
 Function other:
  REG:10 STACK:0 SHARED:0 LOCAL:0
"""
    sweep, combine, between = parse_resource_usage(report)
    assert (sweep.arch, sweep.stage, sweep.regions, sweep.dtype, sweep.registers) == (
        "sm_90", "sweep_b", 16, "float32", 128
    )
    assert (combine.stage, combine.regions, combine.dtype, combine.stack) == ("combine", None, "float64", 16)
    assert (between.stage, between.regions, between.dtype) == ("between_sweeps", None, "bfloat16")
    sm90 = ARCHITECTURES["sm_90"]
    assert occupancy(sweep, 0, sm90) == 0.25  # 128 registers: two blocks of 8 warps
    assert occupancy(sweep, 114 * 1024, sm90) == 0.125  # shared memory then allows one
    assert blocks_per_sm(combine, 0, sm90) == 1 and registers_fit(combine, sm90)  # 200 x 256 fits 65536
    light = KernelResources("sm_90", sweep.mangled, 32, 0, 0, 0)
    assert occupancy(light, 0, sm90) == 1.0
    too_many = KernelResources("sm_90", sweep.mangled, 255, 0, 0, 0)
    assert registers_fit(too_many, sm90)  # 255 rounds to 256 a thread: 65536 for 256 threads
    assert not registers_fit(KernelResources("sm_90", sweep.mangled, 256, 0, 0, 0), sm90)
