"""What the CUDA backend should take on an H100 / H200, launch by launch: the prediction the
first GPU run (``python -m benchmarks.gpu_check``) tests. BENCHMARKS.md shows it.

    python -m benchmarks.cuda_prediction [--design before after] [--kernels]

"before" models the kernels as they were at commit 9be8344, "after" the rebuilt ones (their
grids from the driver's own launch plan, so it needs the built operator library).

Every launch of an op call is modelled from what it does per block (see :class:`Launch`):
  - issue: an SM's 4 schedulers each issue one warp FMA a clock (128 FP32 lanes) when at
    least FMA_LATENCY independent FMAs are in flight per scheduler (warps x independent chains
    a thread keeps); fewer hide less of the latency;
  - load/store unit: an SM moves one wavefront a clock: 128 bytes of shared memory or of L1,
    or one broadcast access (every lane the same address) -- so a loop that loads a weight
    per FMA runs at a quarter of the FMA rate;
  - a block's time is the larger of the two; an SM runs ceil(blocks / SMs) blocks, sharing
    its units between the ones resident together; a grid smaller than the device leaves SMs
    idle;
  - DRAM: the bytes it must move at MEMORY_EFFICIENCY of the bandwidth, and at most
    SM_BANDWIDTH_SHARE times an SM's fair share per active SM;
  - a dependent chain nothing hides (a serial loop over chunks) adds its cycles;
  - each launch costs LAUNCH_GAP_S on the device (back-to-back kernels in one stream).
Kernel time = the sum over the op's launches. The op's wall time adds the host: the public
API's Python (validation, autograd, dispatch; HOST_API_S, measured on this CPU) and
HOST_LAUNCH_S per launch; the device runs behind the host, so the wall time is the larger of
the host's total and the host's first launch plus the device's total.

The constants are assumptions the first GPU run confirms or corrects: it measures each
kernel (torch.profiler) and each op (CUDA events), and the report sets them beside
:func:`kernel_predictions` and :func:`op_predictions`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.cases import CASES, Case

FMA_LATENCY = 4  # cycles of a dependent FP32 FMA
MEMORY_EFFICIENCY = 0.8
SM_BANDWIDTH_SHARE = 3.0
LAUNCH_GAP_S = 1.5e-6
HOST_LAUNCH_S = 5e-6  # host time of one kernel launch through ATen or the C++ driver
# msca()'s Python around the raw op per call: 28 us measured on this repository's 2-core CPU
# (forward without autograd, tiny problem, API minus raw op; BENCHMARKS.md); with autograd it
# is several times more, which the GPU check's API-against-raw timings will show.
HOST_API_S = 30e-6
THREADS = 256
WARP = 32


@dataclass(frozen=True)
class Device:
    name: str
    sms: int
    clock_hz: float
    bandwidth: float  # bytes/s


DEVICES = {"H100": Device("H100 SXM", 132, 1.98e9, 3.35e12), "H200": Device("H200", 132, 1.98e9, 4.8e12)}


@dataclass(frozen=True)
class Launch:
    """One kernel launch. Counts are for the whole grid.

    kernel: the name the profiler shows (a substring of it); fma: thread FMAs (an exp, max or
    add counts as one); wavefronts: load/store-unit wavefronts; dram_bytes: what it must move;
    ilp: independent FMA chains one thread keeps in flight; resident: blocks an SM holds at
    once (registers, shared memory); serial_cycles: a dependent chain per block that nothing
    hides.
    """

    kernel: str
    blocks: int
    threads: int
    resident: int
    fma: float
    wavefronts: float
    dram_bytes: float
    ilp: float = 1.0
    serial_cycles: float = 0.0

    def seconds(self, device: Device) -> float:
        per_sm = math.ceil(self.blocks / device.sms)
        together = min(self.resident, per_sm)
        in_flight = together * self.threads / WARP / 4 * self.ilp
        hiding = min(1.0, in_flight / FMA_LATENCY)
        fma_cycles = self.fma / self.blocks / WARP / 4 / hiding
        lsu_cycles = self.wavefronts / self.blocks
        cycles = per_sm * max(fma_cycles, lsu_cycles) + math.ceil(per_sm / together) * self.serial_cycles
        active = min(self.blocks, device.sms)
        memory = max(
            self.dram_bytes / (MEMORY_EFFICIENCY * device.bandwidth),
            self.dram_bytes / active / (SM_BANDWIDTH_SHARE * device.bandwidth / device.sms),
        )
        return max(cycles / device.clock_hz, memory) + LAUNCH_GAP_S


# The CUDA kernels ATen launches for the small ops, as the profiler names them (substrings).
ATEN_KERNELS = {
    "sum": "reduce_kernel", "mul": "elementwise_kernel", "copy_": "elementwise_kernel", "zeros": "FillFunctor",
}  # fmt: skip


def small_op(op: str, bytes_moved: float) -> Launch:
    """An ATen op (``op`` a key of ATEN_KERNELS) on a few kB: a sum of partials, a cast, a fill;
    launch-bound."""
    return Launch(ATEN_KERNELS[op], blocks=max(1, int(bytes_moved // 4096)), threads=THREADS, resident=8, fma=0.0,
                  wavefronts=bytes_moved / 128, dram_bytes=bytes_moved)  # fmt: skip


def padded(k: int) -> int:
    return 8 if k <= 8 else 16 if k <= 16 else 32


def chunks(pixels: int, batch: int, sms: int, blocks_per_sm: int = 2) -> int:
    """Blocks per batch element of a reduction sweep, as csrc/msca_cuda_driver.h sizes them."""
    tiles = math.ceil(pixels / THREADS)
    return max(1, min(tiles, math.ceil(blocks_per_sm * sms / batch)))


@dataclass(frozen=True)
class Shape:
    """A case's sizes: B, N, M (= M1 = M2), K, KP, P (= P1 = P2), e (input bytes)."""

    B: int
    N: int
    M: int
    K: int
    KP: int
    P: int
    e: int

    @classmethod
    def of(cls, case: Case, element_bytes: int) -> Shape:
        k = case.num_regions
        return cls(case.batch, case.image_channels, case.label_channels, k, padded(k), case.pixels, element_bytes)


# --- the kernels as they were at commit 9be8344 ------------------------------------------------


def _tile_products(s: Shape, rows: int, tiles: float, element_bytes: int) -> tuple[float, float]:
    """(FMAs, wavefronts) of accumulate_rows over ``tiles`` tiles: rows x KP entries a tile, each
    a 256-long dot of a global input row (16-byte loads, lanes of one row share them) with a
    shared tile row (16-byte loads, 4 wavefronts a warp)."""
    entries = rows * s.KP * tiles
    fma = entries * THREADS
    lds = entries / WARP * (THREADS / 4) * 4
    ldg = entries / WARP * (THREADS * element_bytes / 16)
    return fma, lds + ldg


def before(case: Case, element_bytes: int, device: Device) -> dict[str, list[Launch]]:
    """Launches of one forward and one backward call (gate and psi bias given) before the
    rebuild: streaming loops load a weight per FMA, tile products are one serial chain,
    combine loops over chunks serially, ~15 ATen ops around the backward's sweeps."""
    s = Shape.of(case, element_bytes)
    e, kp, n, m, b, p = s.e, s.KP, s.N, s.M, s.B, s.P
    ch = chunks(p, b, device.sms)
    tiles = b * math.ceil(p / THREADS)
    warps = b * p / WARP
    resident = 2
    fma, wf = _tile_products(s, n + 1, tiles, e)
    aggregate = Launch(
        "aggregate_kernel", ch * b, THREADS, resident,
        fma=fma + b * p * (n + m) * kp + tiles * kp * THREADS * 2,
        wavefronts=wf + warps * (n + m) * (1 + kp) + tiles * kp * (8 + 8 * 3),
        dram_bytes=e * b * (n + m) * p,
    )  # fmt: skip
    # One thread a region over the chunks (max, sum, weights), then (N x K) / 256 sums over chunks a thread.
    combine = Launch(
        "combine_kernel", b, THREADS, 1,
        fma=b * ch * (3 * s.K + n * s.K),
        wavefronts=b * ch * (4 + n * s.K / WARP),
        dram_bytes=4 * b * ch * (n + 2) * kp,
        serial_cycles=ch * (3 * 40 + 40 * math.ceil(n * s.K / THREADS)),
    )  # fmt: skip
    distribute = Launch(
        "distribute_kernel", math.ceil(p / THREADS) * b, THREADS, 3,
        fma=b * p * (m * kp + 2 * kp + n * kp),
        wavefronts=warps * (m * (1 + kp) + n * (s.K + 1)),
        dram_bytes=e * b * (m + n) * p, ilp=kp,
    )  # fmt: skip
    fma_a, wf_a = _tile_products(s, n + m + 1, tiles, e)
    sweep_a = Launch(
        "sweep_a_kernel", ch * b, THREADS, resident,
        fma=fma_a + b * p * (m * kp + n * kp + m * kp + 3 * kp),
        wavefronts=wf_a + warps * (m * (1 + kp) + n * (1 + kp) + m * (kp + 1) + 2 * kp),
        dram_bytes=e * b * (n + 2 * m) * p,
    )  # fmt: skip
    fma_b, wf_b = _tile_products(s, n + m, tiles, e)
    sweep_b = Launch(
        "sweep_b_kernel", ch * b, THREADS, resident,
        fma=fma_b + b * p * ((n + m) * kp + n * kp + 2 * n * kp + m * kp + 3 * kp),
        wavefronts=wf_b + warps * ((n + m) * (1 + kp) + n * (1 + kp) + n * (2 * kp + 1) + m * (kp + 1) + 2 * kp),
        dram_bytes=e * b * 2 * (n + m) * p,
    )  # fmt: skip
    part_a = 4 * b * ch * (n + m + 1) * kp
    part_b = 4 * b * ch * (n + m) * kp
    small = 4 * b * n * kp
    between = [small_op("zeros", 4 * (n + m) * kp), small_op("copy_", 4 * (n + m) * kp),  # phi padded, transposed
               small_op("sum", part_a), small_op("sum", 4 * b * m * kp), small_op("copy_", 4 * m * kp),  # dpsi
               small_op("sum", 4 * b * kp),  # dbias
               small_op("mul", small), small_op("mul", small), small_op("sum", small),  # dV, dgate
               small_op("mul", small), small_op("sum", small),  # delta
               small_op("zeros", small), small_op("copy_", small)]  # dV padded  # fmt: skip
    after = [small_op("sum", part_b), small_op("copy_", 4 * (n + m) * kp)]
    casts = [small_op("copy_", 4 * (n + m) * kp)] * 4 if e == 2 else []  # weight gradients back to 16 bits
    return {
        "forward": [aggregate, combine, distribute],
        "backward": between[:2] + [sweep_a] + between[2:] + [sweep_b] + after + casts,
    }


# --- the kernels as they are now (launch plan from csrc/msca_cuda_limits.h) ----------------------

STAGES = ("aggregate", "combine", "distribute", "sweep_a", "between_sweeps", "sweep_b", "phi_gradient")
OPTIN_BYTES = 227 * 1024  # H100 / H200 opt-in shared memory a block
CHUNK_LOOP_CYCLES = 30  # one dependent load-and-add of a warp's loop over chunks (L2 hit, pipelined)


def launch_plan(s: Shape, device: Device) -> dict[str, dict[str, int]]:
    """The driver's own plan (msca_fast::cuda_launch_plan): per stage grid_x, grid_y, lanes,
    pixels_per_thread, chunk and shared_bytes. Needs the built operator library."""
    import torch

    import msca_fast._C  # noqa: F401 - registers the op

    flat = torch.ops.msca_fast.cuda_launch_plan(s.B, s.N, s.M, s.M, s.K, s.P, s.P, 4, device.sms, OPTIN_BYTES)
    keys = ("grid_x", "grid_y", "lanes", "pixels_per_thread", "chunk", "shared_bytes")
    return {stage: dict(zip(keys, flat[6 * i : 6 * i + 6])) for i, stage in enumerate(STAGES)}


def _pixel_launch(name: str, plan: dict[str, int], s: Shape, fma: float, streaming_reads: float, tile_reads: float,
                  global_reads: float, dram_bytes: float) -> Launch:  # fmt: skip
    """A pixel kernel from per-pixel counts: ``streaming_reads`` 16-byte shared reads the whole
    warp shares (one wavefront), ``tile_reads`` 16-byte reads of distinct tile columns (four),
    ``global_reads`` input elements through L1; plus the cross-lane sums when a pixel's
    channel sums are split over several lanes."""
    pixels = s.B * s.P
    lanes = plan["lanes"]
    cross = s.KP * min(lanes, 8) if lanes > 1 else 0
    wavefronts = pixels * ((streaming_reads + cross) / WARP + tile_reads * 4 / WARP + global_reads * s.e / 128)
    return Launch(f"{name}_kernel", plan["grid_x"] * plan["grid_y"], THREADS, 2, fma=pixels * fma,
                  wavefronts=wavefronts, dram_bytes=dram_bytes, ilp=4.0)  # fmt: skip


def _sum_launch(name: str, plan: dict[str, int], chunks: int, partial_bytes: float, fma: float) -> Launch:
    """A kernel that adds partial sums over ``chunks`` chunks, its warps taking a share each in a fixed order."""
    return Launch(f"{name}_kernel", plan["grid_x"] * plan["grid_y"], THREADS, 4, fma=fma,
                  wavefronts=partial_bytes / 128, dram_bytes=partial_bytes,
                  serial_cycles=math.ceil(chunks / 8) * CHUNK_LOOP_CYCLES)  # fmt: skip


def after(case: Case, element_bytes: int, device: Device) -> dict[str, list[Launch]]:
    """Launches of one forward and one backward call of the rebuilt kernels (3 and 4): weights
    staged in shared memory, register-blocked tile products, pixels split over lanes on small
    images, the work between and after the sweeps in two kernels. Per-pixel counts from
    csrc/msca_cuda_kernels.cuh (KB regions and RB rows per tile-product task)."""
    s = Shape.of(case, element_bytes)
    e, kp, n, m, b, p = s.e, s.KP, s.N, s.M, s.B, s.P
    plan = launch_plan(s, device)
    rb, kb = (2, 8) if kp == 8 else (1, 16)
    c2 = n + m
    ppt = plan["distribute"]["pixels_per_thread"]
    chunks_fwd = math.ceil(p / max(1, plan["aggregate"]["chunk"]))
    chunks_a = math.ceil(p / max(1, plan["sweep_a"]["chunk"]))
    chunks_b = math.ceil(p / max(1, plan["sweep_b"]["chunk"]))
    aggregate = _pixel_launch("aggregate", plan["aggregate"], s, (c2 + n) * kp, c2 * kp / 4 + n * kp / (4 * rb), 0.0,
                              c2 + n * kp / kb, e * b * c2 * p)  # fmt: skip
    combine = _sum_launch("combine", plan["combine"], chunks_fwd, 4 * b * chunks_fwd * (n + 2) * kp,
                          b * chunks_fwd * kp * (n + 3))  # fmt: skip
    distribute = _pixel_launch("distribute", plan["distribute"], s, (m + n) * kp, (m + n) * kp / (4 * ppt), 0.0, m + n,
                               e * b * (m + n) * p)  # fmt: skip
    sweep_a = _pixel_launch("sweep_a", plan["sweep_a"], s, (3 * m + 2 * n + 1) * kp, (2 * m + n) * kp / 4,
                            (n + m + 1) * kp / (4 * rb), m + n + (n + m) * kp / kb + m,
                            e * b * (n + 2 * m) * p)  # fmt: skip
    between = _sum_launch("between_sweeps", plan["between_sweeps"], chunks_a, 4 * b * chunks_a * (n + m + 1) * kp,
                          b * chunks_a * (n + m + 1) * kp)  # fmt: skip
    sweep_b = _pixel_launch("sweep_b", plan["sweep_b"], s, (5 * n + 3 * m) * kp, (4 * n + 2 * m) * kp / 4,
                            c2 * kp / (4 * rb), c2 + c2 * kp / kb + c2,
                            e * b * 2 * c2 * p)  # fmt: skip
    phi = _sum_launch("phi_gradient", plan["phi_gradient"], chunks_b, 4 * b * chunks_b * c2 * kp,
                      b * chunks_b * c2 * kp)  # fmt: skip
    return {"forward": [aggregate, combine, distribute], "backward": [sweep_a, between, sweep_b, phi]}


DESIGNS: dict[str, Callable[[Case, int, Device], dict[str, list[Launch]]]] = {"before": before, "after": after}
CURRENT = "after"  # the design csrc/ holds now
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _case(case_id: str) -> Case:
    for case in CASES:
        if case.id == case_id:
            return case
    raise ValueError(f"case_id: expected one of {[c.id for c in CASES]}, got {case_id!r}")


def _device(device: str) -> Device:
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {sorted(DEVICES)}, got {device!r}")
    return DEVICES[device]


def launches(case_id: str, dtype: str, device: str, design: str = CURRENT) -> dict[str, list[Launch]]:
    """{"forward": [...], "backward": [...]}: the launches of one call of each."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype: expected one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    if design not in DESIGNS:
        raise ValueError(f"design: expected one of {sorted(DESIGNS)}, got {design!r}")
    return DESIGNS[design](_case(case_id), DTYPE_BYTES[dtype], _device(device))


def kernel_predictions(case_id: str, dtype: str, device: str, design: str = CURRENT) -> dict[str, float]:
    """Kernel name -> predicted microseconds per call, summed over both passes' launches of it."""
    dev = _device(device)
    times: dict[str, float] = {}
    for group in launches(case_id, dtype, device, design).values():
        for launch in group:
            times[launch.kernel] = times.get(launch.kernel, 0.0) + launch.seconds(dev) * 1e6
    return times


def op_times(group: list[Launch], device: Device) -> tuple[float, float]:
    """(device seconds, wall seconds) of one op call made of ``group``."""
    kernels = sum(launch.seconds(device) for launch in group)
    host = HOST_API_S + HOST_LAUNCH_S * len(group)
    return kernels, max(host, HOST_API_S + HOST_LAUNCH_S + kernels)


def op_predictions(case_id: str, dtype: str, device: str, design: str = CURRENT) -> dict[str, float]:
    """Pass ("forward", "backward", "forward+backward") -> predicted op wall microseconds."""
    dev = _device(device)
    groups = launches(case_id, dtype, device, design)
    walls = {name: op_times(group, dev)[1] * 1e6 for name, group in groups.items()}
    walls["forward+backward"] = walls["forward"] + walls["backward"]
    return walls


def table(dtype: str, designs: tuple[str, ...]) -> str:
    """Markdown: per case and pass, launches, kernel time and op wall time, per design and device."""
    heads = [f"{d}: launches" for d in designs] + [
        f"{d}: kernels / wall {dev}" for d in designs for dev in DEVICES
    ]  # fmt: skip
    rows = [f"Inputs in {dtype}; microseconds per call (kernels = device time, wall = with the host).", "",
            "| case | pass | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]  # fmt: skip
    for case in CASES:
        for pass_name in ("forward", "backward"):
            counts, times = [], []
            for design in designs:
                counts.append(str(len(launches(case.id, dtype, "H100", design)[pass_name])))
            for design in designs:
                for dev_key, dev in DEVICES.items():
                    group = launches(case.id, dtype, dev_key, design)[pass_name]
                    kernels, wall = op_times(group, dev)
                    times.append(f"{kernels * 1e6:.1f} / {wall * 1e6:.1f}")
            rows.append(f"| {case.id} | {pass_name} | " + " | ".join(counts + times) + " |")
    return "\n".join(rows)


def kernel_table(dtype: str, design: str, device: str = "H200") -> str:
    """Markdown: each launch of each case's forward and backward, predicted microseconds."""
    dev = DEVICES[device]
    rows = [f"{design}, {dtype}, {dev.name}: each launch (blocks, predicted microseconds).", "",
            "| case | pass | launches (kernel: blocks, us) |", "|---|---|---|"]  # fmt: skip
    for case in CASES:
        for pass_name, group in launches(case.id, dtype, device, design).items():
            cells = ", ".join(f"{x.kernel}: {x.blocks}, {x.seconds(dev) * 1e6:.1f}" for x in group)
            rows.append(f"| {case.id} | {pass_name} | {cells} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", choices=sorted(DESIGNS), nargs="+", default=sorted(DESIGNS))
    parser.add_argument("--kernels", action="store_true", help="also list every launch")
    args = parser.parse_args(argv)
    for dtype in ("bfloat16", "float32"):
        print(table(dtype, tuple(args.design)))
        print()
        if args.kernels:
            for design in args.design:
                print(kernel_table(dtype, design))
                print()


if __name__ == "__main__":
    main()
