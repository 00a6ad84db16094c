"""The once-per-benchmark check that a contender computes the op before it is timed.

A broken peer or backend must fail here rather than be reported as fast.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmarks.cases import ARG_NAMES

OUT_RTOL, OUT_ATOL = 1e-4, 1e-5
# Weight gradients are sums over up to B*P = 2.6e5 pixels, so entries near zero carry
# summation-order noise far above an elementwise atol: gradients are compared in units
# of their own largest entry instead.
GRAD_RTOL = 1e-4


def check_output(got: Tensor, want: Tensor, who: str) -> None:
    """(B,N,H1,W1) outputs agree elementwise to rtol 1e-4, atol 1e-5 (fp32)."""
    torch.testing.assert_close(got, want, rtol=OUT_RTOL, atol=OUT_ATOL, msg=lambda m: f"{who}: output: {m}")


def check_grads(got: tuple[Tensor | None, ...], want: tuple[Tensor | None, ...], who: str) -> None:
    """Gradients w.r.t. the eight arguments (:data:`ARG_NAMES` order; None = not computed).

    Each must satisfy max|got - want| <= 1e-4 * max|want|. phi_bias's exact gradient is
    zero (the bias cancels in the softmax), so its scale is that of phi_weight's gradient
    and a contender may return None for it.
    """
    grads = dict(zip(ARG_NAMES, want))
    for name, g, w in zip(ARG_NAMES, got, want):
        if w is None:
            continue
        if g is None:
            if name != "phi_bias":
                raise AssertionError(f"{who}: no gradient for {name}")
            g = torch.zeros_like(w)
        scale_of = grads["phi_weight"] if name == "phi_bias" else w
        scale = scale_of.abs().max().item()
        err = (g - w).abs().max().item()
        if not err <= GRAD_RTOL * scale:
            raise AssertionError(
                f"{who}: d{name}: max abs error {err:.3g} > {GRAD_RTOL} * {scale:.3g}"
                " (the largest reference entry)"
            )
