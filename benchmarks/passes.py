"""The two timed passes, as zero-argument calls around an msca-like function."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from benchmarks.machine import synchronize

Op = Callable[..., Tensor]


def pass_inputs(args: tuple[Tensor, ...], pass_name: str) -> tuple[Tensor, ...]:
    """Leaf copies of the arguments; for "backward" and "forward+backward" every one requires grad."""
    needs_grad = pass_name in ("backward", "forward+backward")
    return tuple(a.detach().clone().requires_grad_(needs_grad) for a in args)


def make_call(
    op: Op, pass_name: str, args: tuple[Tensor, ...], grad_out: Tensor, device: torch.device
) -> Callable[[], object]:
    """A call that runs one pass and waits for the device.

    "forward": op(*args) under torch.no_grad() -> out (B,N,H1,W1).
    "forward+backward": out = op(*args), then torch.autograd.grad of out against grad_out
    w.r.t. all eight arguments -> (out, grads); grads are returned, not accumulated into
    .grad, so every round does the same work.
    "backward": the same gradients of one out computed here, outside the timed call, with
    the graph kept between calls -> (out, grads).
    """
    if pass_name == "forward":

        def forward() -> Tensor:
            with torch.no_grad():
                out = op(*args)
            synchronize(device)
            return out

        return forward

    if pass_name == "forward+backward":

        def forward_backward() -> tuple[Tensor, tuple[Tensor | None, ...]]:
            out = op(*args)
            grads = torch.autograd.grad(out, args, grad_out, allow_unused=True)
            synchronize(device)
            return out, grads

        return forward_backward

    if pass_name == "backward":
        out = op(*args)
        synchronize(device)

        def backward() -> tuple[Tensor, tuple[Tensor | None, ...]]:
            grads = torch.autograd.grad(out, args, grad_out, retain_graph=True, allow_unused=True)
            synchronize(device)
            return out, grads

        return backward

    raise ValueError(f"pass_name: expected 'forward', 'backward' or 'forward+backward', got {pass_name!r}")
