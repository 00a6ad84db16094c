"""Everything that gets timed: each registered backend, then the peers.

A backend registered later (cpu, cuda, triton) shows up here with no change to the
benchmarks; one that cannot serve a case says why and its benchmark is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import Tensor

from benchmarks import peers
from msca_fast.backends import registered_backends
from msca_fast.op_arguments import validate_msca
from msca_fast.ops import msca


@dataclass(frozen=True)
class Contender:
    """name; kind "backend" or "peer"; build() -> a callable with msca's eight arguments."""

    name: str
    kind: str
    build: Callable[[], Callable[..., Tensor]]


def _backend_contender(name: str) -> Contender:
    return Contender(name, "backend", lambda: partial(msca, backend=name))


def all_contenders() -> list[Contender]:
    """Registered backends (fastest first), then "compiled_reference" and "sdpa"."""
    found = [_backend_contender(b.name) for b in registered_backends()]
    found.append(Contender("compiled_reference", "peer", _cached(peers.compiled_reference)))
    found.append(Contender("sdpa", "peer", lambda: peers.sdpa_msca))
    return found


def _cached(factory: Callable[[], Callable[..., Tensor]]) -> Callable[[], Callable[..., Tensor]]:
    """One object per session, so torch.compile's per-shape graphs are kept between tests."""
    made: list[Callable[..., Tensor]] = []

    def build() -> Callable[..., Tensor]:
        if not made:
            made.append(factory())
        return made[0]

    return build


def why_not(contender: Contender, args: tuple[Tensor, ...]) -> str | None:
    """Why a backend cannot serve these arguments (None when it can; peers always can)."""
    if contender.kind != "backend":
        return None
    problem = validate_msca(*args).problem
    backend = {b.name: b for b in registered_backends()}[contender.name]
    if not backend.in_auto:
        return "served by name only (a test vehicle such as the emulated CUDA kernels): not timed"
    return backend.reason(problem)
