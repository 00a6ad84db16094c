"""The test steps' section of the report, from the JSON lines of benchmarks/gpu_check/pytest_plugin.py.

Counts, every failure and error with its message, skip reasons by count, the tests still
running when the step was stopped, and the slowest tests (to size the next run's budget).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmarks.gpu_check.results import read_json_lines

SLOWEST = 5


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_test_lines(path: Path) -> str:
    """Markdown for one test step's JSON lines file."""
    lines = read_json_lines(path)
    if not lines:
        return ("No test results (the step recorded none: it did not start pytest, "
                "or pytest failed before the first test).")  # fmt: skip
    finished: dict[str, dict] = {}
    started: list[str] = []
    for line in lines:
        if line.get("outcome") == "started":
            started.append(line["nodeid"])
        else:
            finished[line["nodeid"]] = line
    counts = Counter(r["outcome"] for r in finished.values())
    text = [", ".join(f"{counts.get(k, 0)} {k}{'s' if k == 'error' and counts.get(k, 0) != 1 else ''}"
                      for k in ("passed", "failed", "error", "skipped")) + "."]  # fmt: skip
    unfinished = [nodeid for nodeid in dict.fromkeys(started) if nodeid not in finished]
    if unfinished:
        text += ["", f"Still running when the step was stopped: `{unfinished[-1]}`"
                 + (f" (and {len(unfinished) - 1} more without an outcome)"
                    if len(unfinished) > 1 else "")]  # fmt: skip
    problems = [r for r in finished.values() if r["outcome"] in ("failed", "error")]
    if problems:
        text += ["", *(f"- **{r['outcome']}** `{r['nodeid']}`: {_one_line(r.get('message', ''))}"[:600]
                       for r in problems)]  # fmt: skip
    skipped = [r for r in finished.values() if r["outcome"] == "skipped"]
    skips = Counter(_one_line(r.get("message") or "(none given)")[:200] for r in skipped)
    if skips:
        text += ["", "Skip reasons:", "", *(f"- {reason} ({n})" for reason, n in skips.most_common(15))]
    slowest = sorted(finished.values(), key=lambda r: -r.get("duration", 0.0))[:SLOWEST]
    total = sum(r.get("duration", 0.0) for r in finished.values())
    if total >= 1.0:  # where the step's time went, for the next run's budget
        text += ["", f"Slowest (all {len(finished)} took {total:.1f} s):", "",
                 *(f"- {r.get('duration', 0.0):.2f} s `{r['nodeid']}`" for r in slowest)]  # fmt: skip
    return "\n".join(text)
