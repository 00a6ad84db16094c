"""Time budgets and the runner: each GPU-check step is a child process with a deadline.

The schedule gives step i the deadline ``start + budget_0 + ... + budget_i`` (capped at the
total): every step gets at least its own budget, and time an earlier step did not use
carries forward. A step still running at its deadline is killed with its whole process
group (SIGTERM, then SIGKILL) and reported as "timeout"; the next step starts either way.

Imports no torch, so that it runs (and is tested) anywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 40  # lines of a step's output kept for the report
KILL_GRACE_S = 3.0  # between SIGTERM and SIGKILL
MIN_STEP_S = 3.0  # a step allowed less than this (and under half its budget) is skipped, not started


@dataclass(frozen=True)
class Outcome:
    """What became of one step.

    status: "ok" (exit 0), "failed" (non-zero exit, or it could not start), "timeout"
    (killed at its deadline) or "skipped" (not started; ``note`` says why).
    seconds: wall time it ran; allowed_s: the time it was given (None when skipped).
    tail: its last output lines; note: one line for the summary table.
    """

    status: str
    seconds: float
    allowed_s: float | None
    returncode: int | None = None
    note: str = ""
    tail: str = ""


class Schedule:
    """Deadlines for a sequence of steps within ``total_s`` seconds from construction."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not total_s > 0:
            raise ValueError(f"total_s: expected a positive number of seconds, got {total_s}")
        self.total_s = total_s
        self._clock = clock
        self._start = clock()
        self._planned = 0.0  # sum of the budgets handed out so far

    def elapsed(self) -> float:
        """Seconds since the schedule started."""
        return self._clock() - self._start

    def remaining(self) -> float:
        """Seconds left of the total (never negative)."""
        return max(0.0, self.total_s - self.elapsed())

    @staticmethod
    def too_short(allowed_s: float, budget_s: float) -> bool:
        """Whether a step allowed ``allowed_s`` should be skipped rather than started: less than
        MIN_STEP_S left and less than half its own budget (the total is nearly spent)."""
        return allowed_s < min(MIN_STEP_S, budget_s / 2)

    def to_deadline(self) -> float:
        """The seconds left until the last allotted step's deadline (never negative)."""
        return max(0.0, min(self._planned, self.total_s) - self.elapsed())

    def allot(self, budget_s: float) -> float:
        """The seconds the next step may run: up to its deadline, at most what is left in total."""
        if not budget_s > 0:
            raise ValueError(f"budget_s: expected a positive number of seconds, got {budget_s}")
        self._planned += budget_s
        return self.to_deadline()


def _kill_group(process: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_command(
    argv: list[str],
    allowed_s: float,
    *,
    cwd: str | Path,
    env: dict[str, str] | None = None,
    log_path: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> Outcome:
    """Runs ``argv`` for at most ``allowed_s`` seconds; its stdout and stderr, merged, go line
    by line to ``echo`` and to ``log_path``. Never raises for the child's failure."""
    if not allowed_s > 0:
        return Outcome("skipped", 0.0, None, note="no time left in the total budget")
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    try:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )  # fmt: skip
    except OSError as exc:
        return Outcome("failed", 0.0, allowed_s, note=f"could not start {argv[0]!r}: {exc}")

    log = open(log_path, "w", encoding="utf-8") if log_path is not None else None

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if log is not None:
                log.write(line + "\n")
                log.flush()
            if echo is not None:
                echo(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=allowed_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
    # A grandchild that left the process group could hold the pipe open: do not wait on it forever.
    reader.join(timeout=KILL_GRACE_S)
    if log is not None and not reader.is_alive():
        log.close()
    seconds = time.monotonic() - start
    text = "\n".join(tail)
    if timed_out:
        return Outcome("timeout", seconds, allowed_s, process.returncode,
                       f"killed after {seconds:.0f} s (allowed {allowed_s:.0f} s)", text)  # fmt: skip
    if process.returncode == 0:
        return Outcome("ok", seconds, allowed_s, 0, "", text)
    last = next((line.strip() for line in reversed(tail) if line.strip()), "")
    return Outcome("failed", seconds, allowed_s, process.returncode, f"exit {process.returncode}: {last}"[:300], text)
