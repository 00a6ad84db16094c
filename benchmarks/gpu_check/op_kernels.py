"""The op step's per-kernel times: torch.profiler around a few calls of a raw operator,
reduced to each CUDA kernel's name, launches per call and device time per call, so that each
kernel can be set against its prediction (benchmarks/cuda_prediction.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch

PROFILED_CALLS = 5
_TEMPLATE_OR_ARGS = re.compile(r"[<(]")


def short_kernel_name(name: str) -> str:
    """"void msca_fast::cuda_kernels::aggregate_kernel<8, float, float>(msca_fast::Dims, ...)"
    -> "aggregate_kernel"; a name
    without templates or arguments (Triton's) is kept as it is."""
    head = _TEMPLATE_OR_ARGS.split(name, maxsplit=1)[0].strip()
    head = head.split()[-1] if head.split() else name
    return head.rsplit("::", 1)[-1] or name


def per_call(kernels: Iterable[tuple[str, int, float]], calls: int) -> list[dict]:
    """(full name, launches, total device microseconds) of each kernel over ``calls`` calls ->
    [{"name", "launches", "device_us"}] per call, the longest first."""
    rows = [{"name": short_kernel_name(name), "full_name": name,
             "launches": launches / calls, "device_us": total / calls}
            for name, launches, total in kernels]  # fmt: skip
    return sorted(rows, key=lambda r: -r["device_us"])


def profile_kernels(call: Callable[[], object], calls: int = PROFILED_CALLS) -> list[dict]:
    """The CUDA kernels ``call`` launches, per call (see :func:`per_call`); call it once before
    (compilation and autotuning stay out of the profile)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    kernels = []
    for event in prof.key_averages():
        if event.device_type != DeviceType.CUDA:
            continue
        total = getattr(event, "device_time_total", None)
        if total is None:
            total = event.cuda_time_total
        kernels.append((event.key, event.count, float(total)))
    return per_call(kernels, calls)
