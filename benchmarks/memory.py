"""Peak memory allocated during one call: how much more memory the call needs at its worst.

CPU: torch.profiler with profile_memory=True records every allocation and free of the
CPU allocator as a "[memory]" event with a signed byte count. Their running sum in time
order, starting from zero at the call, peaks at the call's peak extra memory. Frees of
blocks allocated before profiling began are not reported, so what existed before the
call (the inputs) neither counts nor drives the sum negative.

CUDA: the caching allocator's own peak counter, minus what was allocated before the call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.machine import synchronize


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by ``fn()`` over what was allocated before it, on ``device``.

    Everything ``fn`` returns is dropped only after the measurement ends, so it counts.
    """
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    if device.type == "cpu":
        return _cpu_peak(fn)
    raise ValueError(f"device: peak memory is measured on cpu or cuda, got {device}")


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> int:
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del result
    return peak


def _cpu_peak(fn: Callable[[], object]) -> int:
    with warnings.catch_warnings():
        # "Memory block of unknown size was allocated before the profiling started": expected.
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            result = fn()
    del result
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for event in events:
        if event.device_type() == torch.autograd.DeviceType.CPU:
            running += event.nbytes()
            peak = max(peak, running)
    return peak
