"""Which steps run and with what budgets: --only / --skip, scaling to --total-seconds, and
the text --dry-run prints."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.gpu_check.context import Step
from benchmarks.gpu_check.runner import KILL_GRACE_S

# After the last deadline: the last step's kill (SIGTERM, then SIGKILL) and the final pack.
RESERVE_S = 2 * KILL_GRACE_S + 4.0


def select(steps: list[Step], only: list[str] | None, skip: list[str] | None) -> list[Step]:
    """The steps named by --only (all when None), less those named by --skip, in their order."""
    names = [s.name for s in steps]
    for option, given in (("--only", only), ("--skip", skip)):
        unknown = sorted(set(given or ()) - set(names))
        if unknown:
            raise ValueError(f"{option}: unknown steps {unknown}; the steps are {names}")
    return [s for s in steps if (only is None or s.name in only) and s.name not in (skip or ())]


def scaled(steps: list[Step], total_s: float) -> list[Step]:
    """The steps with budgets scaled so that they add up to ``total_s``."""
    factor = total_s / sum(s.budget_s for s in steps)
    return [replace(s, budget_s=s.budget_s * factor) for s in steps]


def dry_run_text(steps: list[Step]) -> str:
    """What --dry-run prints: each step with its budget and command, and the total."""
    width = max(len(s.name) for s in steps)
    budgets = sum(s.budget_s for s in steps)
    lines = [f"{len(steps)} steps, {budgets:.0f} s of budgets; the check ends within {budgets + RESERVE_S:.0f} s "
             "(time a step leaves unused carries forward):", ""]  # fmt: skip
    for i, s in enumerate(steps, 1):
        lines.append(f"{i:2d}. {s.name:<{width}}  {s.budget_s:5.0f} s  {s.title}")
        lines.append(f"    {'':<{width}}           $ {s.shows}")
    return "\n".join(lines)
