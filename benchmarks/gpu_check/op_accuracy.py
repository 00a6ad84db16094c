"""The op step's accuracy check: a backend's output and gradients against the float64
reference, judged by the conformance suite's tolerance table (msca_fast/tolerances.py).

The reference backend is measured but not judged: it is the yardstick, and its float32 sums
over 262k pixels (s0_512) are themselves 2e-6 off (measured on the CPU, where the cpu
backend's fused sums stay at or under 5e-7 for the output and 1.2e-6 for the gradients at
every benchmark case).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmarks.cases import ARG_NAMES
from msca_fast.ops import msca
from msca_fast.tolerances import TOLERANCE, low_precision_bound, rel_rms, relative_error

UNJUDGED = ("reference",)


@dataclass(frozen=True)
class Result:
    """A forward+backward: out (B,N,H1,W1) and the gradient of each of the eight arguments."""

    out: Tensor
    grads: dict[str, Tensor]


def forward_backward(args: tuple[Tensor, ...], grad_out: Tensor, backend: str) -> Result:
    """msca(*args, backend=backend) and the gradients of every argument for ``grad_out``."""
    leaves = tuple(a.detach().clone().requires_grad_() for a in args)
    out = msca(*leaves, backend=backend)
    grads = torch.autograd.grad(out, leaves, grad_out)
    return Result(out.detach(), dict(zip(ARG_NAMES, grads)))


def errors(result: Result, exact: Result) -> dict[str, float]:
    """"output": relative RMS error of the output; one entry per argument but phi_bias:
    relative error of its gradient (the measures of the conformance suite)."""
    found = {"output": rel_rms(result.out, exact.out)}
    found.update({
        name: relative_error(result.grads[name], exact.grads[name]) for name in ARG_NAMES if name != "phi_bias"
    })  # fmt: skip
    return found


def bounds(dtype: torch.dtype, low_precision_reference: Result | None, exact: Result) -> dict[str, float]:
    """The bound on each entry of :func:`errors`: the table's for float64 / float32; for 16-bit
    dtypes twice the error of the reference run in that dtype (``low_precision_reference``)
    plus the slack."""
    if dtype in TOLERANCE:
        output_bound, grad_bound = TOLERANCE[dtype]
        return {"output": output_bound, **{name: grad_bound for name in ARG_NAMES if name != "phi_bias"}}
    if low_precision_reference is None:
        raise ValueError(f"low_precision_reference: expected the reference's result in {dtype}, got None")
    reference_errors = errors(low_precision_reference, exact)
    return {name: low_precision_bound(err, "output" if name == "output" else "gradients")
            for name, err in reference_errors.items()}  # fmt: skip


def violations(errs: dict[str, float], limits: dict[str, float], phi_bias_grad_is_zero: bool) -> list[str]:
    """One line per quantity over its bound (a NaN error is over any bound), and phi_bias's
    gradient when it is not exactly zero; empty when the result is within tolerance."""
    found = [f"{name} {err:.2e} > {limits[name]:.2e}" for name, err in errs.items() if not err <= limits[name]]
    if not phi_bias_grad_is_zero:
        found.append("phi_bias gradient not exactly zero")
    return found


def check(backend: str, args: tuple[Tensor, ...], grad_out: Tensor, exact: Result,
          low_precision_reference: Result | None) -> dict:  # fmt: skip
    """The accuracy record of one backend on ``args``: errors, bounds, violations (empty when
    within tolerance, or when the backend is not judged)."""
    result = forward_backward(args, grad_out, backend)
    errs = errors(result, exact)
    limits = bounds(args[0].dtype, low_precision_reference, exact)
    phi_bias_zero = bool(torch.count_nonzero(result.grads["phi_bias"]) == 0)
    judged = backend not in UNJUDGED
    return {"errors": errs, "bounds": limits, "judged": judged,
            "violations": violations(errs, limits, phi_bias_zero) if judged else []}  # fmt: skip
