"""What a GPU-check step is (Step, Command, Skip) and what the steps share (Context).

A step's command is made when the step starts, from what earlier steps found: their result
files lie in ``Context.work``. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.gpu_check.results import read_json

ENVIRONMENT_FILE = "environment.json"


class Skip(Exception):
    """Raised by a step's ``prepare`` when it should not run; the message says why."""


@dataclass
class Context:
    """Where things are, and what earlier steps found (their files in ``work``)."""

    repo: Path
    work: Path  # every step's log and result files; packed into the output folder's archive
    python: str

    @property
    def environment(self) -> dict:
        """The environment step's JSON; empty until it has run, or if it failed early."""
        return read_json(self.work / ENVIRONMENT_FILE) or {}

    def has_cuda(self) -> bool | None:
        """True / False as the environment step found, None when unknown."""
        return self.environment.get("cuda_available")

    def has_package(self, name: str) -> bool | None:
        """Whether the environment step found the package installed; None when unknown."""
        packages = self.environment.get("packages")
        return None if packages is None else packages.get(name) is not None

    def arch(self) -> str | None:
        """The GPU's architecture as the environment step found it (torch), e.g. "9.0"."""
        capability = self.environment.get("capability")
        return f"{capability[0]}.{capability[1]}" if isinstance(capability, list) and len(capability) == 2 else None


@dataclass(frozen=True)
class Command:
    """argv, and variables added to the environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """name: short id (--only / --skip); title: what it does; budget_s: its time budget;
    shows: the command as --dry-run prints it; prepare(ctx) -> Command (or raises Skip);
    render(ctx) -> its markdown section, from the files it wrote."""

    name: str
    title: str
    budget_s: float
    shows: str
    prepare: Callable[[Context], Command]
    render: Callable[[Context], str] | None = None
