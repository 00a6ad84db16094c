"""Static resource use of the built CUDA kernels and the occupancy it allows, without a GPU.

Reads ``cuobjdump --dump-resource-usage`` of msca_fast._C (cuobjdump ships in the triton
wheel under triton/backends/nvidia/bin/) and computes each kernel's theoretical occupancy
at its launch configuration (256 threads a block, the dynamic shared memory
csrc/msca_cuda_limits.h gives for a problem) on sm_80 and sm_90.

    python -m benchmarks.cuda_resources        # the per-kernel table at the benchmark shapes
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

THREADS_PER_BLOCK = 256


@dataclass(frozen=True)
class Architecture:
    """The per-SM limits occupancy depends on (CUDA occupancy calculator values)."""

    registers: int = 65536
    register_unit: int = 256  # registers are allocated per warp in units of this many
    max_warps: int = 64
    max_blocks: int = 32
    shared_bytes: int = 0  # shared memory per SM usable by blocks
    reserved_shared: int = 1024  # per block, taken by the system


ARCHITECTURES = {
    "sm_80": Architecture(shared_bytes=164 * 1024),
    "sm_90": Architecture(shared_bytes=228 * 1024),
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
        """aggregate, combine, distribute, sweep_a or sweep_b."""
        for stage in ("aggregate", "combine", "distribute", "sweep_a", "sweep_b"):
            if f"{stage}_kernel" in self.mangled:
                return stage
        return self.mangled

    @property
    def regions(self) -> int | None:
        """The KP template argument (8, 16 or 32); None for the combine kernel."""
        found = re.search(r"_kernelILi(\d+)E", self.mangled)
        return int(found.group(1)) if found else None

    @property
    def dtype(self) -> str:
        """The input dtype of the instantiation: float64, float32, float16 or bfloat16."""
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


def dynamic_shared_bytes(kernel: KernelResources, image_channels: int, label_channels: int) -> int:
    """The dynamic shared memory ``kernel`` is launched with for N image and M = M1 = M2
    label channels (the same formulas as csrc/msca_cuda_limits.h, read from the extension)."""
    import torch

    from msca_fast import _extension  # noqa: F401  (loads the extension and its ops)

    if kernel.stage in ("combine", "distribute"):
        return 0
    forward, sweep_a, sweep_b = torch.ops.msca_fast.cuda_shared_bytes(
        image_channels, label_channels, label_channels, kernel.regions, kernel.accumulator_bytes
    )
    return {"aggregate": forward, "sweep_a": sweep_a, "sweep_b": sweep_b}[kernel.stage]


def blocks_per_sm(kernel: KernelResources, dynamic_shared: int, arch: Architecture) -> int:
    """Resident blocks of 256 threads a SM allows, by registers, shared memory and warps."""
    warps = THREADS_PER_BLOCK // 32
    registers_per_warp = -(-kernel.registers * 32 // arch.register_unit) * arch.register_unit
    by_registers = (arch.registers // registers_per_warp) // warps
    by_shared = arch.shared_bytes // (kernel.static_shared + dynamic_shared + arch.reserved_shared)
    return min(arch.max_blocks, arch.max_warps // warps, by_registers, by_shared)


def occupancy(kernel: KernelResources, dynamic_shared: int, arch: Architecture) -> float:
    """Theoretical occupancy: resident warps over the SM's maximum."""
    return blocks_per_sm(kernel, dynamic_shared, arch) * (THREADS_PER_BLOCK // 32) / arch.max_warps


def table(kernels: list[KernelResources], image_channels: int, label_channels: int) -> str:
    """Markdown: one row per kernel with registers, stack, shared bytes, blocks and warps a SM."""
    rows = [
        f"N={image_channels}, M={label_channels}, 256 threads a block",
        "",
        "| arch | kernel | KP | dtype | registers | stack | shared bytes | blocks/SM | warps/SM | occupancy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(kernels, key=lambda k: (k.arch, k.stage, k.regions or 0, k.dtype)):
        shared = k.static_shared + dynamic_shared_bytes(k, image_channels, label_channels)
        blocks = blocks_per_sm(k, shared - k.static_shared, ARCHITECTURES[k.arch])
        rows.append(
            f"| {k.arch} | {k.stage} | {k.regions or '-'} | {k.dtype} | {k.registers} | {k.stack} | {shared} | "
            f"{blocks} | {blocks * 8} | {blocks * 8 / 64:.0%} |"
        )
    return "\n".join(rows)


def main() -> None:
    tool, library = cuobjdump(), extension_library()
    if tool is None or library is None:
        raise SystemExit("needs cuobjdump (from the triton wheel or the CUDA toolkit) and a built msca_fast._C")
    kernels = kernel_resources(library, tool)
    if not kernels:
        raise SystemExit(f"{library} holds no CUDA kernels (built without nvcc?)")
    print(table(kernels, image_channels=256, label_channels=64))


if __name__ == "__main__":
    main()
