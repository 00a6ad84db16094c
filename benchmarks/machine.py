"""The machine's own limits, measured once per session: copy bandwidth and fp32 GEMM rate.

They set the roofline every benchmark is compared with, so that a fraction of the
roofline means the same on a laptop and on a server.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


def bench_device() -> torch.device:
    """Where the benchmarks run: $MSCA_BENCH_DEVICE, default "cpu"."""
    return torch.device(os.environ.get("MSCA_BENCH_DEVICE", "cpu"))


def synchronize(device: torch.device) -> None:
    """Waits for queued GPU work; a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Machine:
    """copy_gbs: GB/s of a large tensor copy_, read + write counted (1 GB = 1e9 bytes).
    gemm_gflops: GFLOP/s of a square fp32 torch.mm. Both are the best of a few tries."""

    device: str
    device_name: str
    threads: int
    torch_version: str
    copy_gbs: float
    gemm_gflops: float

    def as_dict(self) -> dict:
        return asdict(self)


def _best_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: page faults, thread pool start, kernel selection
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth_gbs(device: torch.device, nbytes: int = 256 * 2**20, repeats: int = 10) -> float:
    """GB/s of dst.copy_(src) for float32 tensors of ``nbytes`` each (far beyond the caches)."""
    src = torch.randn(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), device, repeats)
    return 2 * nbytes / seconds / 1e9


def gemm_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an fp32 (size x size) @ (size x size) torch.mm: 2*size^3 FLOPs per call."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    seconds = _best_seconds(lambda: torch.mm(a, b, out=out), device, repeats)
    return 2 * size**3 / seconds / 1e9


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_model() or platform.processor() or "cpu"


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def measure_machine(device: torch.device | None = None) -> Machine:
    """Measures copy bandwidth and GEMM rate on ``device`` (default :func:`bench_device`)."""
    device = bench_device() if device is None else device
    return Machine(
        device=str(device),
        device_name=_device_name(device),
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        copy_gbs=copy_bandwidth_gbs(device),
        gemm_gflops=gemm_gflops(device),
    )
