"""The op step's timings: rounds of a call timed by CUDA events (by the clock on a CPU), and
the backends' raw operators as zero-argument calls.

A CUDA round is the time between an event recorded before the call and one recorded after
it, on the current stream, with no synchronisation between rounds: a call that only
enqueues kernels is measured by the device's execution (plus any gap while the host is
still launching), a call that waits for the device by its wall time. Either way it is the
time the call holds the stream, which is what the per-kernel and per-op predictions are.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

MIN_ROUNDS, MAX_ROUNDS = 5, 100

# backend -> (forward op, backward op) in torch.ops.msca_fast: forward(fx2, fc2, fc1, phi,
# psi, psi_bias, gate) -> (out, V, lse); backward(grad_out, fx2, fc2, fc1, phi, psi,
# psi_bias, gate, V, lse) -> seven gradients. phi's bias is not an argument: it cancels.
RAW_OPS = {
    "cuda": ("msca_forward", "msca_backward"),
    "cpu": ("msca_forward", "msca_backward"),
    "triton": ("triton_forward", "triton_backward"),
}
RAW_PASSES = ("forward", "backward")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_rounds(call: Callable[[], object], device: torch.device, seconds: float) -> dict[str, float | int]:
    """first_call_s (wall, compilation included), then median_s and min_s of 5-100 rounds
    filling about ``seconds``."""
    start = time.perf_counter()
    call()
    _sync(device)
    first = time.perf_counter() - start
    estimate = max(_round_times(call, device, 1)[0], 1e-7)
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(seconds / estimate)))
    times = _round_times(call, device, rounds)
    return {"first_call_s": first, "median_s": statistics.median(times), "min_s": min(times), "rounds": rounds}


def _round_times(call: Callable[[], object], device: torch.device, rounds: int) -> list[float]:
    if device.type != "cuda":
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return times
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(rounds)]
    for begin, end in events:
        begin.record()
        call()
        end.record()
    torch.cuda.synchronize(device)
    return [begin.elapsed_time(end) / 1e3 for begin, end in events]


def raw_calls(backend: str, args: tuple[Tensor, ...], grad_out: Tensor) -> dict[str, Callable[[], object]]:
    """{"forward": ..., "backward": ...}: the backend's raw operators on the op's eight
    arguments (ARG_NAMES order) without autograd; the backward's V and lse come from one
    forward run here."""
    forward_name, backward_name = RAW_OPS[backend]
    forward_op = getattr(torch.ops.msca_fast, forward_name)
    backward_op = getattr(torch.ops.msca_fast, backward_name)
    fx2, fc2, fc1, phi, _phi_bias, psi, psi_bias, gate = (a.detach() for a in args)
    with torch.no_grad():
        _, v, lse = forward_op(fx2, fc2, fc1, phi, psi, psi_bias, gate)

    def forward() -> object:
        with torch.no_grad():
            return forward_op(fx2, fc2, fc1, phi, psi, psi_bias, gate)

    def backward() -> object:
        with torch.no_grad():
            return backward_op(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)

    return {"forward": forward, "backward": backward}
