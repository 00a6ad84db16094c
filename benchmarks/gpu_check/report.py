"""The GPU check's markdown report: header, step summary, each step's section, failures.

Pure text assembly: the step sections arrive as markdown (results.py, op_results.py,
pytest_results.py and sanitizer.py make them); pack.py writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.gpu_check.results import table
from benchmarks.gpu_check.runner import Outcome

STATUS_MARK = {"ok": "ok", "failed": "FAILED", "timeout": "TIMEOUT", "skipped": "skipped", "pending": "not run yet"}


@dataclass(frozen=True)
class StepReport:
    """One step as the report shows it. outcome None: not run yet. section: its markdown results."""

    name: str
    title: str
    budget_s: float
    outcome: Outcome | None = None
    section: str = ""


def _fence(text: str) -> str:
    """``text`` in a code block that its own backticks cannot close."""
    return "````text\n" + text.replace("````", "'''") + "\n````"


def render(header: list[tuple[str, str]], steps: list[StepReport], extra: list[tuple[str, str]] = ()) -> str:
    """The report.

    header: (label, value) lines under the title. steps: in the order they run. extra:
    (heading, markdown) sections that draw on several steps (e.g. the verdict on "auto"),
    shown after the step table and before the steps' own sections.
    """
    lines = ["# MSCA GPU check", ""]
    lines += [f"- {label}: {value}" for label, value in header]
    rows = []
    for step in steps:
        o = step.outcome
        status = STATUS_MARK["pending"] if o is None else STATUS_MARK[o.status]
        ran = "-" if o is None or o.status == "skipped" else f"{o.seconds:.1f}"
        allowed = "-" if o is None or o.allowed_s is None else f"{o.allowed_s:.0f}"
        rows.append([step.name, status, ran, f"{step.budget_s:.0f}", allowed, step.title, "" if o is None else o.note])
    lines += ["", "## Steps", "",
              table(["step", "status", "seconds", "budget (s)", "allowed (s)", "what", "note"], rows, "llrrrll"),
              ""]  # fmt: skip
    for heading, body in extra:
        lines += [f"## {heading}", "", body.rstrip(), ""]
    for step in steps:
        if step.section:
            lines += [f"## {step.title}", "", step.section.rstrip(), ""]
    troubled = [s for s in steps if s.outcome is not None and s.outcome.status in ("failed", "timeout")]
    if troubled:
        lines += ["## Failures", ""]
        for step in troubled:
            lines += [f"### {step.name}: {step.outcome.note}", "", _fence(step.outcome.tail or "(no output)"), ""]
    return "\n".join(lines).rstrip() + "\n"

