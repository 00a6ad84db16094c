"""Checks of the MSCA op's arguments (msca, aggregate, distribute, attention_maps), run before any kernel.

Every failure is a ``TypeError`` (wrong kind of object or dtype) or a ``ValueError``
(wrong shape, size, device or value) whose message names the argument, what it got and
what was expected. Nothing is broadcast silently.

The checks read only shapes, dtypes and devices, never tensor values, so they cost no
device synchronisation. The one value check, that the weights are finite, needs a sync
and is off unless asked for: set ``MSCA_FAST_CHECK_FINITE=1`` before msca_fast is
imported, or call :func:`set_finite_check` / use :func:`finite_check` at run time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from msca_fast.backends.problem import Problem

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

FINITE_CHECK_ENV = "MSCA_FAST_CHECK_FINITE"
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("", "0", "false", "no", "off")


def _env_flag(name: str) -> bool:
    """The boolean value of environment variable ``name`` (unset = False)."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise ValueError(f"{name}: expected one of 1/true/yes/on or 0/false/no/off, got {os.environ[name]!r}")


_finite_check = _env_flag(FINITE_CHECK_ENV)


def finite_check_enabled() -> bool:
    """Whether every call checks that the weights are finite (off by default)."""
    return _finite_check


def set_finite_check(enabled: bool) -> bool:
    """Turns the weight-finiteness check on or off for every later call; returns the old setting.

    On, each call of msca / aggregate / distribute / attention_maps raises
    ``ValueError("<name>: contains NaN or Inf; weights must be finite")`` for a non-finite
    phi/psi weight or bias, at the price of one host-device synchronisation per call.
    The check is skipped while torch.compile traces and while a CUDA graph is captured.
    """
    global _finite_check
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
    previous, _finite_check = _finite_check, enabled
    return previous


@contextmanager
def finite_check(enabled: bool = True) -> Iterator[None]:
    """Within the ``with`` block the finiteness check is ``enabled``; the old setting is restored after."""
    previous = set_finite_check(enabled)
    try:
        yield
    finally:
        set_finite_check(previous)


def _shape(x: Tensor) -> str:
    return "(" + ", ".join(str(d) for d in x.shape) + ")"


def _check_tensor(name: str, x: object, ndim: int, layout: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor {layout}, got shape {_shape(x)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name}: expected dtype float16, bfloat16, float32 or float64, got {x.dtype}"
        )
    return x


def _weight_matrix(name: str, weight: object, in_channels: int, in_desc: str) -> Tensor:
    """(K,C) or a 1x1 conv's (K,C,1,1) -> a (K,C) view, with C checked against in_channels."""
    expected = f"(K, {in_desc}) or (K, {in_desc}, 1, 1) with {in_desc} = {in_channels}"
    if not isinstance(weight, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape {expected}, got {type(weight).__name__}")
    if weight.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: expected a floating dtype, got {weight.dtype}")
    if weight.dim() == 4 and tuple(weight.shape[2:]) != (1, 1):
        raise ValueError(f"{name}: expected a 1x1 kernel, shape {expected}; got {_shape(weight)}")
    if weight.dim() not in (2, 4):
        raise ValueError(f"{name}: expected shape {expected}, got {_shape(weight)}")
    if weight.shape[0] < 1:
        raise ValueError(f"{name}: expected K >= 1 rows (attention regions), got shape {_shape(weight)}")
    if weight.shape[1] != in_channels:
        raise ValueError(f"{name}: expected shape {expected}, got {_shape(weight)}")
    return weight.reshape(weight.shape[0], weight.shape[1])


def _check_bias(name: str, bias: object, k: int) -> Tensor | None:
    if bias is None:
        return None
    if not isinstance(bias, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (K,) = ({k},) or None, got {type(bias).__name__}")
    if tuple(bias.shape) != (k,):
        raise ValueError(f"{name}: expected shape (K,) = ({k},), got {_shape(bias)}")
    return bias


def _check_gate(gate: object, batch: int, k: int) -> Tensor | None:
    if gate is None:
        return None
    if not isinstance(gate, Tensor):
        raise TypeError(
            f"gate: expected a torch.Tensor of shape (B, K) = ({batch}, {k}) or None, got {type(gate).__name__}"
        )
    if tuple(gate.shape) != (batch, k):
        raise ValueError(f"gate: expected shape (B, K) = ({batch}, {k}), got {_shape(gate)}")
    return gate


def _check_agreement(named: dict[str, Tensor | None]) -> None:
    """All tensors on one device with one dtype; the first one named sets the expectation."""
    present = [(name, t) for name, t in named.items() if t is not None]
    first_name, first = present[0]
    for name, t in present[1:]:
        if t.device != first.device:
            raise ValueError(f"{name}: expected device {first.device} (that of {first_name}), got {t.device}")
    for name, t in present[1:]:
        if t.dtype != first.dtype:
            raise TypeError(f"{name}: expected dtype {first.dtype} (that of {first_name}), got {t.dtype}")


def _check_finite(named: dict[str, Tensor | None]) -> None:
    # Opt-in: .item() is a device sync on GPU (and an error under CUDA-graph capture).
    # Skipped while torch.compile traces (it would break the graph).
    # Fast test first, over all tensors at once (they share a dtype and device by now):
    # finite L2 norms (one fused op, the one clip_grad_norm_ uses) imply finite entries.
    # Between s4_256 forwards (0.2 ms each) per-tensor isfinite().all() took 100 us, this
    # takes 60. The exact per-tensor test runs only when the fast one fails, which huge
    # but finite weights can also cause (their squares overflow).
    if not _finite_check or torch.compiler.is_compiling():
        return
    present = {name: t.detach() for name, t in named.items() if t is not None}
    first = next(iter(present.values()))
    if first.is_cuda and torch.cuda.is_current_stream_capturing():
        return
    norms = torch._foreach_norm(list(present.values()), 2.0)
    if math.isfinite(torch.stack(norms).sum().item()):
        return
    for name, t in present.items():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: contains NaN or Inf; weights must be finite")


def _check_pixels(name: str, x: Tensor, layout: str) -> int:
    pixels = x.shape[2] * x.shape[3]
    if pixels == 0:
        raise ValueError(f"{name}: expected at least one pixel in {layout}, got shape {_shape(x)}")
    return pixels


def _check_batch(name: str, x: Tensor, batch: int, reference_name: str) -> None:
    if x.shape[0] != batch:
        raise ValueError(
            f"{name}: expected batch size {batch} (that of {reference_name}), got shape {_shape(x)}"
        )


def _requires_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


@dataclass(frozen=True)
class AggregateArgs:
    fx2: Tensor  # (B, N, H2, W2)
    fc2: Tensor  # (B, M2, H2, W2)
    phi_weight: Tensor  # (K, N+M2)
    phi_bias: Tensor | None  # (K,)
    problem: Problem


@dataclass(frozen=True)
class DistributeArgs:
    v: Tensor  # (B, N, K)
    fc1: Tensor  # (B, M1, H1, W1)
    psi_weight: Tensor  # (K, M1)
    psi_bias: Tensor | None  # (K,)
    gate: Tensor | None  # (B, K)
    problem: Problem


@dataclass(frozen=True)
class MscaArgs:
    fx2: Tensor
    fc2: Tensor
    fc1: Tensor
    phi_weight: Tensor  # (K, N+M2)
    phi_bias: Tensor | None
    psi_weight: Tensor  # (K, M1)
    psi_bias: Tensor | None
    gate: Tensor | None
    problem: Problem


def _exemplar_checks(fx2, fc2, phi_weight, phi_bias):
    fx2 = _check_tensor("fx2", fx2, 4, "(B, N, H2, W2)")
    fc2 = _check_tensor("fc2", fc2, 4, "(B, M2, H2, W2)")
    _check_batch("fc2", fc2, fx2.shape[0], "fx2")
    if fc2.shape[2:] != fx2.shape[2:]:
        raise ValueError(
            f"fc2: expected the exemplar's spatial size (H2, W2) = {tuple(fx2.shape[2:])} (that of fx2), "
            f"got shape {_shape(fc2)}"
        )
    pixels = _check_pixels("fx2", fx2, "(H2, W2)")
    n, m2 = fx2.shape[1], fc2.shape[1]
    phi = _weight_matrix("phi_weight", phi_weight, n + m2, "N+M2")
    phi_bias = _check_bias("phi_bias", phi_bias, phi.shape[0])
    return fx2, fc2, phi, phi_bias, pixels


def _target_checks(fc1, psi_weight, psi_bias, k: int, batch: int, batch_name: str):
    fc1 = _check_tensor("fc1", fc1, 4, "(B, M1, H1, W1)")
    _check_batch("fc1", fc1, batch, batch_name)
    pixels = _check_pixels("fc1", fc1, "(H1, W1)")
    psi = _weight_matrix("psi_weight", psi_weight, fc1.shape[1], "M1")
    if psi.shape[0] != k:
        raise ValueError(
            f"psi_weight: expected K = {k} rows (the number of attention regions), got shape {_shape(psi_weight)}"
        )
    psi_bias = _check_bias("psi_bias", psi_bias, k)
    return fc1, psi, psi_bias, pixels


def validate_aggregate(fx2, fc2, phi_weight, phi_bias) -> AggregateArgs:
    """Checks Eq. 4-5's arguments; returns them with phi as a (K, N+M2) matrix."""
    fx2, fc2, phi, phi_bias, p2 = _exemplar_checks(fx2, fc2, phi_weight, phi_bias)
    named = {"fx2": fx2, "fc2": fc2, "phi_weight": phi, "phi_bias": phi_bias}
    _check_agreement(named)
    _check_finite({"phi_weight": phi, "phi_bias": phi_bias})
    problem = Problem(
        "aggregate", fx2.device, fx2.dtype, fx2.shape[0], fx2.shape[1], fc2.shape[1], 0,
        phi.shape[0], p2, 0, _requires_grad(*named.values()),
    )
    return AggregateArgs(fx2, fc2, phi, phi_bias, problem)


def validate_distribute(v, fc1, psi_weight, psi_bias, gate) -> DistributeArgs:
    """Checks Eq. 6-8's arguments; returns them with psi as a (K, M1) matrix."""
    v = _check_tensor("v", v, 3, "(B, N, K)")
    batch, n, k = v.shape
    if k < 1 or n < 1:
        raise ValueError(f"v: expected N >= 1 and K >= 1 in (B, N, K), got shape {_shape(v)}")
    fc1, psi, psi_bias, p1 = _target_checks(fc1, psi_weight, psi_bias, k, batch, "v")
    gate = _check_gate(gate, batch, k)
    named = {"v": v, "fc1": fc1, "psi_weight": psi, "psi_bias": psi_bias, "gate": gate}
    _check_agreement(named)
    _check_finite({"psi_weight": psi, "psi_bias": psi_bias})
    problem = Problem(
        "distribute", v.device, v.dtype, batch, n, 0, fc1.shape[1], k, 0, p1,
        _requires_grad(*named.values()),
    )
    return DistributeArgs(v, fc1, psi, psi_bias, gate, problem)


def validate_msca(fx2, fc2, fc1, phi_weight, phi_bias, psi_weight, psi_bias, gate) -> MscaArgs:
    """Checks all of Eq. 4-8's arguments; returns them with the weights as matrices."""
    fx2, fc2, phi, phi_bias, p2 = _exemplar_checks(fx2, fc2, phi_weight, phi_bias)
    batch, k = fx2.shape[0], phi.shape[0]
    fc1, psi, psi_bias, p1 = _target_checks(fc1, psi_weight, psi_bias, k, batch, "fx2")
    gate = _check_gate(gate, batch, k)
    named = {
        "fx2": fx2, "fc2": fc2, "fc1": fc1, "phi_weight": phi, "phi_bias": phi_bias,
        "psi_weight": psi, "psi_bias": psi_bias, "gate": gate,
    }
    _check_agreement(named)
    _check_finite({"phi_weight": phi, "phi_bias": phi_bias, "psi_weight": psi, "psi_bias": psi_bias})
    problem = Problem(
        "msca", fx2.device, fx2.dtype, batch, fx2.shape[1], fc2.shape[1], fc1.shape[1], k, p2, p1,
        _requires_grad(*named.values()),
    )
    return MscaArgs(fx2, fc2, fc1, phi, phi_bias, psi, psi_bias, gate, problem)
