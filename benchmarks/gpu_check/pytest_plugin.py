"""A pytest plugin that writes each test's outcome as one JSON line the moment it finishes,
so that a test step killed at its deadline keeps what it did (pytest's JUnit XML is written
only at the end).

    python -m pytest -p benchmarks.gpu_check.pytest_plugin --gpu-check-results tests.jsonl ...

Lines: {"nodeid", "outcome": "started"} when a test begins, then {"nodeid", "outcome":
"passed" | "failed" | "error" | "skipped", "duration" (s, setup + call + teardown),
"message" (the failure's or skip's short text)} when it ends. A test with a "started" line
and no outcome was running when the step was stopped.
"""

from __future__ import annotations

import json

import pytest

MESSAGE_CHARS = 500


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gpu-check-results", metavar="PATH", default=None,
                     help="append one JSON line per test outcome to PATH (the GPU check)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--gpu-check-results")
    if path:
        config.pluginmanager.register(_Recorder(path), "gpu_check_recorder")


def short_message(report: pytest.TestReport) -> str:
    """The report's one-line reason: the crash message of a failure, the reason of a skip."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        text = str(longrepr[2]).removeprefix("Skipped: ")
    elif getattr(longrepr, "reprcrash", None) is not None:
        text = longrepr.reprcrash.message
    else:
        lines = str(longrepr).strip().splitlines()
        text = lines[-1] if lines else ""
    if getattr(report, "wasxfail", None) is not None:
        text = f"xfail: {report.wasxfail} {text}".strip()
    return text[:MESSAGE_CHARS]


class _Recorder:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")
        self._phases: dict[str, list[pytest.TestReport]] = {}

    def _write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self._write({"nodeid": nodeid, "outcome": "started"})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        phases = self._phases.setdefault(report.nodeid, [])
        phases.append(report)
        if report.when == "teardown":
            self._write(outcome_record(report.nodeid, phases))
            del self._phases[report.nodeid]

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._file.close()


def outcome_record(nodeid: str, phases: list[pytest.TestReport]) -> dict:
    """One test's line from its setup, call and teardown reports: "error" when setup or
    teardown failed, else the call's outcome, or "skipped" when setup skipped it."""
    duration = sum(r.duration for r in phases)
    for report in phases:
        if report.failed and report.when != "call":
            return {"nodeid": nodeid, "outcome": "error", "duration": duration, "message": short_message(report)}
    for report in phases:
        if report.when == "call" or report.skipped:
            return {"nodeid": nodeid, "outcome": report.outcome, "duration": duration, "message": short_message(report)}
    return {"nodeid": nodeid, "outcome": "passed", "duration": duration, "message": ""}
