"""The backend registry: which implementations exist and which one serves a call.

A backend registers itself with a priority (higher is faster, set from what the benchmarks
show) and a function that says why it cannot serve a given :class:`Problem` (or ``None``
when it can). ``"auto"`` picks the highest-priority backend that can serve; a request no
backend can serve, or a named backend that cannot, raises a ``ValueError`` listing every
backend and its reason, in the manner of xformers' dispatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from msca_fast.backends.problem import Problem


@dataclass(frozen=True)
class Backend:
    """One implementation of the op's three entry points.

    msca(fx2, fc2, fc1, phi (K,N+M2), phi_bias, psi (K,M1), psi_bias, gate) -> (B,N,H1,W1)
    aggregate(fx2, fc2, phi (K,N+M2), phi_bias) -> V (B,N,K)
    distribute(v, fc1, psi (K,M1), psi_bias, gate) -> (B,N,H1,W1)
    Arguments arrive validated, weights as matrices. A fused backend leaves aggregate and
    distribute None (those stages then go to another backend). A backend with
    ``in_auto=False`` serves only when asked for by name (a test vehicle, such as the emulated
    CUDA kernels or Triton's interpreter). The priority is fixed when it registers.
    """

    name: str
    priority: int
    why_not: Callable[[Problem], str | None]
    msca: Callable[..., Tensor]
    aggregate: Callable[..., Tensor] | None = None
    distribute: Callable[..., Tensor] | None = None
    description: str = ""
    in_auto: bool = True

    def reason(self, problem: Problem) -> str | None:
        """Why this backend cannot serve ``problem``, or None."""
        if problem.stage != "msca" and getattr(self, problem.stage) is None:
            return "implements the fused op only (aggregate/distribute use another backend)"
        return self.why_not(problem)


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> None:
    """Adds (or replaces) a backend under its name; "auto" is reserved."""
    if backend.name == "auto":
        raise ValueError('backend name "auto" is reserved for automatic selection')
    _BACKENDS[backend.name] = backend


def registered_backends() -> list[Backend]:
    """All registered backends, fastest (highest priority) first."""
    return sorted(_BACKENDS.values(), key=lambda b: -b.priority)


def backend_reasons(problem: Problem) -> dict[str, str | None]:
    """For every backend, why it cannot serve ``problem`` (None where it can)."""
    return {b.name: b.reason(problem) for b in registered_backends()}


def _reason_lines(problem: Problem) -> str:
    return "\n".join(
        f"  {name}: {reason or 'can serve'}" for name, reason in backend_reasons(problem).items()
    )


def _describe(problem: Problem) -> str:
    return (
        f"stage={problem.stage}, device={problem.device}, dtype={problem.dtype}, "
        f"K={problem.num_regions}, requires_grad={problem.requires_grad}"
    )


def check_backend_name(name: object, argument: str = "backend") -> str:
    """``name`` if it is "auto" or a registered backend's name; else a TypeError/ValueError
    naming ``argument`` and the choices."""
    if not isinstance(name, str):
        raise TypeError(f"{argument}: expected a backend name (a string), got {type(name).__name__}")
    if name != "auto" and name not in _BACKENDS:
        known = ", ".join(['"auto"'] + [f'"{b.name}"' for b in registered_backends()])
        raise ValueError(f"{argument}: unknown backend {name!r}; expected one of {known}")
    return name


def select_backend(name: str, problem: Problem) -> Backend:
    """The backend that will run ``problem``: the named one, or the best one for "auto"."""
    check_backend_name(name)
    if name == "auto":
        for backend in registered_backends():
            if backend.in_auto and backend.reason(problem) is None:
                return backend
        raise ValueError(f"backend: no backend can serve ({_describe(problem)}):\n{_reason_lines(problem)}")
    backend = _BACKENDS[name]
    reason = backend.reason(problem)
    if reason is not None:
        raise ValueError(
            f"backend: {name!r} cannot serve ({_describe(problem)}): {reason}\n"
            f"every backend:\n{_reason_lines(problem)}"
        )
    return backend
