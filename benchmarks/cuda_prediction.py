"""What the CUDA kernels should take on an H100 / H200: a prediction for the first GPU run
to be tested against (BENCHMARKS.md shows it).

Per kernel, from csrc/msca_cuda_kernels.cuh: the DRAM bytes it must move (inputs read once,
outputs written once; weights, partials and the re-reads of a tile's rows, which hit L1/L2,
are left out) and its FLOPs with K padded to KP, split by the loop that does them:
  - "streaming" loops (logits, channel softmax, output expansion): one load per KP FMAs,
    weights broadcast across the warp; assumed to reach half the FP32 FMA peak;
  - "tile" loops (sums over a block's pixels of row x tile products): a 16-byte shared
    load per 4 FMAs a thread; shared memory delivers 128 bytes a clock a SM, i.e. 32 FMAs
    a clock against the 128 an SM issues, so a quarter of the peak.
Predicted time = max(bytes / (0.8 x bandwidth), streaming / (0.5 x peak) + tile / (peak / 4))
plus 2 us per launch. The inputs' dtype sets the bytes; arithmetic is FP32 either way.

    python -m benchmarks.cuda_prediction
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.cases import CASES, Case

LAUNCH_S = 2e-6
MEMORY_EFFICIENCY = 0.8
STREAMING_EFFICIENCY = 0.5
TILE_EFFICIENCY = 1 / 4


@dataclass(frozen=True)
class Device:
    name: str
    bandwidth: float  # bytes/s
    fp32_flops: float  # FLOP/s, FMA = 2, CUDA cores


DEVICES = (Device("H100 SXM", 3.35e12, 67e12), Device("H200", 4.8e12, 67e12))


@dataclass(frozen=True)
class KernelWork:
    kernel: str
    bytes: float
    streaming_flops: float
    tile_flops: float

    def bound_s(self, device: Device) -> float:
        """The roofline: the larger of moving the bytes and doing the FLOPs at peak."""
        return max(self.bytes / device.bandwidth, (self.streaming_flops + self.tile_flops) / device.fp32_flops)

    def predicted_s(self, device: Device) -> float:
        memory = self.bytes / (MEMORY_EFFICIENCY * device.bandwidth)
        compute = self.streaming_flops / (STREAMING_EFFICIENCY * device.fp32_flops) + self.tile_flops / (
            TILE_EFFICIENCY * device.fp32_flops
        )
        return max(memory, compute) + LAUNCH_S


def padded(k: int) -> int:
    return 8 if k <= 8 else 16 if k <= 16 else 32


def kernel_work(case: Case, element_bytes: int) -> list[KernelWork]:
    """The four pixel kernels of one forward and one backward for ``case`` (P1 = P2, M1 = M2)."""
    b, n, m, kp, p, e = case.batch, case.image_channels, case.label_channels, padded(case.num_regions), case.pixels, element_bytes
    unit = 2.0 * b * p * kp  # FLOPs per input row of a KP-wide product over every pixel
    return [
        KernelWork("aggregate", e * b * (n + m) * p, unit * (n + m), unit * (n + 1)),
        KernelWork("distribute", e * b * (m + n) * p, unit * (m + n), 0.0),
        KernelWork("sweep_a", e * b * (n + 2 * m) * p, unit * (m + n + m), unit * (n + m + 1)),
        KernelWork("sweep_b", e * b * 2 * (n + m) * p, unit * (4 * n + 2 * m), unit * (n + m)),
    ]


def table(element_bytes: int, dtype: str) -> str:
    rows = [
        f"Inputs in {dtype}; times in microseconds (bound = roofline at peak, predicted = the model above).",
        "",
        "| case | kernel | MB moved | GFLOP (stream + tile) | "
        + " | ".join(f"{d.name} bound | {d.name} predicted" for d in DEVICES)
        + " |",
        "|---|---|---|---|" + "---|---|" * len(DEVICES),
    ]
    for case in CASES:
        works = kernel_work(case, element_bytes)
        for w in works:
            cells = " | ".join(f"{w.bound_s(d) * 1e6:.1f} | {w.predicted_s(d) * 1e6:.1f}" for d in DEVICES)
            rows.append(
                f"| {case.id} | {w.kernel} | {w.bytes / 1e6:.1f} | "
                f"{w.streaming_flops / 1e9:.2f} + {w.tile_flops / 1e9:.2f} | {cells} |"
            )
        forward = [w for w in works if w.kernel in ("aggregate", "distribute")]
        backward = [w for w in works if w.kernel.startswith("sweep")]
        for name, group in (("forward", forward), ("backward", backward)):
            cells = " | ".join(
                f"{sum(w.bound_s(d) for w in group) * 1e6:.1f} | {sum(w.predicted_s(d) for w in group) * 1e6:.1f}"
                for d in DEVICES
            )
            rows.append(f"| {case.id} | **{name}** | | | {cells} |")
    return "\n".join(rows)


def main() -> None:
    print(table(2, "bfloat16"))
    print()
    print(table(4, "float32"))


if __name__ == "__main__":
    main()
