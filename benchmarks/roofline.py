"""Minimum bytes and FLOPs of one MSCA call (DESIGN.md section 3), and the roofline time.

Per batch element, e bytes per element, P1 / P2 target / exemplar pixels:
    forward   bytes e*[(N+M2)*P2 + (M1+N)*P1]      FLOPs 2K*[(2N+M2)*P2 + (M1+N)*P1]
    backward  bytes e*[(N+2*M1)*P1 + 2*(N+M2)*P2]  FLOPs 2K*[(5N+3*M2)*P2 + (3*M1+2N)*P1]
"backward" is the gradient computation alone, "forward+backward" the sum of both. The
weights (K x C) and the (N,K) / (K,) tensors a fused kernel keeps are ignored: they are
tiny next to the feature maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # at run time only duck typing: report.py uses this module without torch
    from benchmarks.cases import Case


@dataclass(frozen=True)
class Work:
    """The least traffic and arithmetic a pass needs, for the whole batch."""

    bytes: int
    flops: int

    def __add__(self, other: Work) -> Work:
        return Work(self.bytes + other.bytes, self.flops + other.flops)


def forward_work(n: int, m1: int, m2: int, k: int, p1: int, p2: int, elem: int = 4) -> Work:
    """One batch element's forward."""
    return Work(
        bytes=elem * ((n + m2) * p2 + (m1 + n) * p1),
        flops=2 * k * ((2 * n + m2) * p2 + (m1 + n) * p1),
    )


def backward_work(n: int, m1: int, m2: int, k: int, p1: int, p2: int, elem: int = 4) -> Work:
    """One batch element's backward (both sweeps)."""
    return Work(
        bytes=elem * ((n + 2 * m1) * p1 + 2 * (n + m2) * p2),
        flops=2 * k * ((5 * n + 3 * m2) * p2 + (3 * m1 + 2 * n) * p1),
    )


def case_work(case: Case, pass_name: str, elem: int = 4) -> Work:
    """Bytes and FLOPs of ``pass_name`` ("forward", "backward" or "forward+backward") for ``case``, times B."""
    sizes = dict(
        n=case.image_channels,
        m1=case.label_channels,
        m2=case.label_channels,
        k=case.num_regions,
        p1=case.pixels,
        p2=case.pixels,
        elem=elem,
    )
    if pass_name == "forward":
        work = forward_work(**sizes)
    elif pass_name == "backward":
        work = backward_work(**sizes)
    elif pass_name == "forward+backward":
        work = forward_work(**sizes) + backward_work(**sizes)
    else:
        raise ValueError(f"pass_name: expected 'forward', 'backward' or 'forward+backward', got {pass_name!r}")
    return Work(work.bytes * case.batch, work.flops * case.batch)


@dataclass(frozen=True)
class Achieved:
    """What a measured time means against the roofline.

    gbs / gflops: minimum bytes and FLOPs divided by the time; roofline_s: the bound;
    fraction: roofline_s / time (1.0 = at the limit); bound: "memory" or "compute".
    """

    gbs: float
    gflops: float
    roofline_s: float
    fraction: float
    bound: str


def achieved(work: Work, seconds: float, copy_gbs: float, gemm_gflops: float) -> Achieved:
    """Rates and roofline fraction of ``work`` done in ``seconds`` on a machine with the
    given copy bandwidth (GB/s) and GEMM rate (GFLOP/s)."""
    memory_s = work.bytes / (copy_gbs * 1e9)
    compute_s = work.flops / (gemm_gflops * 1e9)
    bound_s = max(memory_s, compute_s)
    return Achieved(
        gbs=work.bytes / seconds / 1e9,
        gflops=work.flops / seconds / 1e9,
        roofline_s=bound_s,
        fraction=bound_s / seconds,
        bound="memory" if memory_s >= compute_s else "compute",
    )
