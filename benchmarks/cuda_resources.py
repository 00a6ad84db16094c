"""Static resource use of the built CUDA kernels and the occupancy it allows, without a GPU.

Reads ``cuobjdump --dump-resource-usage`` of msca_fast._C (cuobjdump ships in the triton
wheel under triton/backends/nvidia/bin/) and, for each kernel a problem launches, takes the
launch from the kernels' own plan (csrc/msca_cuda_limits.h, exported as
``torch.ops.msca_fast.cuda_launch_plan``: grid, lanes per pixel, pixels per thread, dynamic
shared memory) on an A100 (sm_80) and an H100/H200 (sm_90), then computes the theoretical
occupancy and whether the block's registers fit the SM.

    python -m benchmarks.cuda_resources        # the per-kernel table at every benchmark case
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from benchmarks.cases import CASES, Case

THREADS_PER_BLOCK = 256

# The kernels in csrc/msca_cuda_kernels.cuh, in launch order (cuda_limits::kStageNames).
STAGES = ("aggregate", "combine", "distribute", "sweep_a", "between_sweeps", "sweep_b", "phi_gradient")
# Stages that take the regions KP as a template argument (the others take it at run time).
PIXEL_STAGES = ("aggregate", "distribute", "sweep_a", "sweep_b")


@dataclass(frozen=True)
class Architecture:
    """The per-SM limits occupancy depends on (CUDA occupancy calculator values) and the SM
    count and opt-in shared memory of the GPU the launch plan is made for."""

    sms: int
    optin_shared: int  # dynamic shared memory a block may ask for
    shared_bytes: int  # shared memory per SM usable by blocks
    registers: int = 65536
    max_registers_per_thread: int = 255
    register_unit: int = 256  # registers are allocated per warp in units of this many
    max_warps: int = 64
    max_blocks: int = 32
    reserved_shared: int = 1024  # per block, taken by the system


ARCHITECTURES = {
    "sm_80": Architecture(sms=108, optin_shared=163 * 1024, shared_bytes=164 * 1024),  # A100
    "sm_90": Architecture(sms=132, optin_shared=227 * 1024, shared_bytes=228 * 1024),  # H100 / H200
}


@dataclass(frozen=True)
class KernelResources:
    """One kernel of one architecture as cuobjdump reports it."""

    arch: str
    mangled: str
    registers: int
    stack: int
    local: int
    static_shared: int

    @property
    def stage(self) -> str:
        """One of STAGES (the mangled name otherwise)."""
        for stage in STAGES:
            if re.search(rf"\d{stage}_kernelI", self.mangled):
                return stage
        return self.mangled

    @property
    def regions(self) -> int | None:
        """The KP template argument (8, 16 or 32); None for the kernels that take it at run time."""
        found = re.search(r"_kernelILi(\d+)E", self.mangled)
        return int(found.group(1)) if found else None

    @property
    def dtype(self) -> str:
        """The input dtype of the instantiation: float64, float32, float16 or bfloat16 (the
        combine kernel's accumulation type: float32 serves the 16-bit inputs too)."""
        if "BFloat16" in self.mangled:
            return "bfloat16"
        if "Half" in self.mangled:
            return "float16"
        tail = self.mangled.split("_kernelI", 1)[-1]
        if self.regions is not None:
            tail = tail.split("E", 1)[1]  # skip "Li<KP>"
        return "float64" if tail.startswith("d") else "float32"

    @property
    def accumulator_bytes(self) -> int:
        return 8 if self.dtype == "float64" else 4


@dataclass(frozen=True)
class Launch:
    """One kernel's launch as the plan gives it."""

    grid_x: int
    grid_y: int
    lanes: int
    pixels_per_thread: int
    chunk: int  # pixels a block (pixel kernels)
    shared_bytes: int

    @property
    def blocks(self) -> int:
        return self.grid_x * self.grid_y


def cuobjdump() -> str | None:
    """The cuobjdump of the CUDA toolkit or of the triton wheel, or None."""
    try:
        import triton

        bundled = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
        if os.path.exists(bundled):
            return bundled
    except ImportError:
        pass
    return shutil.which("cuobjdump")


def extension_library() -> str | None:
    """The built msca_fast._C shared library, or None."""
    import msca_fast

    found = glob.glob(os.path.join(os.path.dirname(msca_fast.__file__), "_C.*.so"))
    return found[0] if found else None


def parse_resource_usage(text: str) -> list[KernelResources]:
    """The msca kernels in ``cuobjdump --dump-resource-usage`` output."""
    kernels, arch, function = [], None, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("arch = "):
            arch = line.split("=", 1)[1].strip()
        elif line.startswith("Function "):
            function = line[len("Function ") :].rstrip(":")
        elif line.startswith("REG:") and function is not None and "cuda_kernels" in function:
            fields = dict(item.split(":", 1) for item in line.split() if ":" in item)
            kernels.append(
                KernelResources(
                    arch=arch,
                    mangled=function,
                    registers=int(fields["REG"]),
                    stack=int(fields["STACK"]),
                    local=int(fields["LOCAL"]),
                    static_shared=int(fields["SHARED"]),
                )
            )
            function = None
    return kernels


def kernel_resources(library: str, tool: str) -> list[KernelResources]:
    text = subprocess.run([tool, "--dump-resource-usage", library], capture_output=True, text=True, check=True).stdout
    return parse_resource_usage(text)


def padded_regions(k: int) -> int:
    return 8 if k <= 8 else 16 if k <= 16 else 32


def launch_plan(case: Case, accumulator_bytes: int, arch: Architecture) -> dict[str, Launch]:
    """Every kernel's launch for ``case`` on ``arch``'s GPU, from the extension's plan."""
    import torch

    from msca_fast import _extension  # noqa: F401  (loads the extension and its ops)

    flat = torch.ops.msca_fast.cuda_launch_plan(
        case.batch, case.image_channels, case.label_channels, case.label_channels, case.num_regions,
        case.pixels, case.pixels, accumulator_bytes, arch.sms, arch.optin_shared,
    )  # fmt: skip
    fields = len(flat) // len(STAGES)
    return {stage: Launch(*flat[i * fields : (i + 1) * fields]) for i, stage in enumerate(STAGES)}


def launched(kernels: list[KernelResources], case: Case) -> list[KernelResources]:
    """The kernels ``case`` launches: KP = its K padded, for the pixel kernels."""
    kp = padded_regions(case.num_regions)
    return [k for k in kernels if k.regions in (kp, None)]


def block_registers(kernel: KernelResources, arch: Architecture) -> int:
    """Registers a block of 256 threads takes: whole allocation units per warp."""
    per_warp = -(-kernel.registers * 32 // arch.register_unit) * arch.register_unit
    return per_warp * (THREADS_PER_BLOCK // 32)


def registers_fit(kernel: KernelResources, arch: Architecture) -> bool:
    """Whether a launch of 256 threads can start at all ("too many resources requested" otherwise)."""
    return kernel.registers <= arch.max_registers_per_thread and block_registers(kernel, arch) <= arch.registers


def blocks_per_sm(kernel: KernelResources, dynamic_shared: int, arch: Architecture) -> int:
    """Resident blocks of 256 threads a SM allows, by registers, shared memory and warps."""
    warps = THREADS_PER_BLOCK // 32
    by_registers = arch.registers // block_registers(kernel, arch)
    by_shared = arch.shared_bytes // (kernel.static_shared + dynamic_shared + arch.reserved_shared)
    return min(arch.max_blocks, arch.max_warps // warps, by_registers, by_shared)


def occupancy(kernel: KernelResources, dynamic_shared: int, arch: Architecture) -> float:
    """Theoretical occupancy: resident warps over the SM's maximum."""
    return blocks_per_sm(kernel, dynamic_shared, arch) * (THREADS_PER_BLOCK // 32) / arch.max_warps


def table(kernels: list[KernelResources], case: Case) -> str:
    """Markdown: one row per kernel ``case`` launches, with its launch, registers, shared
    memory, blocks and occupancy a SM."""
    rows = [
        f"{case.id}: {case.describe()}, 256 threads a block",
        "",
        "| arch | kernel | KP | dtype | grid | lanes/pixel | pixels/thread | pixels/block | registers | stack "
        "| shared bytes | blocks/SM | occupancy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {stage: i for i, stage in enumerate(STAGES)}
    for k in sorted(launched(kernels, case), key=lambda k: (k.arch, order.get(k.stage, 99), k.dtype)):
        arch = ARCHITECTURES[k.arch]
        launch = launch_plan(case, k.accumulator_bytes, arch)[k.stage]
        shared = k.static_shared + launch.shared_bytes
        blocks = blocks_per_sm(k, launch.shared_bytes, arch)
        pixels = launch.chunk if k.stage in PIXEL_STAGES else "-"
        lanes = launch.lanes if k.stage in PIXEL_STAGES else "-"
        per_thread = launch.pixels_per_thread if k.stage in PIXEL_STAGES else "-"
        rows.append(
            f"| {k.arch} | {k.stage} | {k.regions or '-'} | {k.dtype} | {launch.grid_x}x{launch.grid_y} | {lanes} | "
            f"{per_thread} | {pixels} | {k.registers} | {k.stack} | {shared} | {blocks} | {blocks * 8 / 64:.0%} |"
        )
    return "\n".join(rows)


def main() -> None:
    tool, library = cuobjdump(), extension_library()
    if tool is None or library is None:
        raise SystemExit("needs cuobjdump (from the triton wheel or the CUDA toolkit) and a built msca_fast._C")
    kernels = kernel_resources(library, tool)
    if not kernels:
        raise SystemExit(f"{library} holds no CUDA kernels (built without nvcc?)")
    for case in CASES:
        print(table([k for k in kernels if k.dtype in ("float32", "bfloat16")], case))
        print()


if __name__ == "__main__":
    main()
