"""How far a backend's result may be from the reference: the one tolerance table that the
conformance suite (tests/backends/test_backend_conformance.py) and the GPU check's op step
(benchmarks/gpu_check/op_accuracy.py) both apply, with the error measures they share.

Against the float64 reference run on the same (rounded) input values:
  - float64 and float32: fixed bounds on the output's and every gradient's relative error;
  - float16 and bfloat16: at most twice the error of the reference itself run in that dtype
    (the flash-attention rule), plus a small slack.
phi's bias is not bounded: its exact gradient is zero (it cancels in the softmax), and every
fused backend returns exactly zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

# dtype -> (output bound, gradient bound) on the relative error against the float64 reference.
TOLERANCE = {torch.float64: (1e-12, 1e-11), torch.float32: (2e-6, 2e-5)}
# Added to twice the low-precision reference's own error: "output" and "gradients".
LOW_PRECISION_SLACK = {"output": 1e-6, "gradients": 1e-4}
# Relative RMS error of a 16-bit run allowed against the float32 result (reference-only tests).
LOW_PRECISION_TOL = {torch.float16: 5e-3, torch.bfloat16: 3e-2}


def rel_rms(actual: Tensor, expected: Tensor) -> float:
    """||actual - expected|| / ||expected||, computed in float64."""
    a, e = actual.detach().double(), expected.detach().double()
    return float((a - e).norm() / e.norm())


def relative_error(actual: Tensor, expected: Tensor) -> float:
    """||actual - expected|| / max(||expected||, 1): relative, but defined where the exact
    gradient is zero (e.g. fc2's through a 1-pixel exemplar, whose softmax is constant)."""
    a, e = actual.detach().double(), expected.detach().double()
    return float((a - e).norm() / max(float(e.norm()), 1.0))


def low_precision_bound(reference_error: float, kind: str) -> float:
    """The bound for a 16-bit result whose dtype's reference is ``reference_error`` from the
    float64 one; ``kind``: "output" or "gradients"."""
    return 2 * reference_error + LOW_PRECISION_SLACK[kind]
