"""Session set-up for the benchmarks: the machine's limits, and the report at the end.

After ``pytest benchmarks/ --benchmark-only`` the report table (benchmarks/report.py) is
printed below pytest-benchmark's own tables and saved as benchmarks/results/latest.md
and latest.json ($MSCA_BENCH_RESULTS_DIR, when set, replaces benchmarks/results: the GPU
check uses it so that its short run does not overwrite the full run's results).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import contention, report
from benchmarks.machine import Machine, measure_machine

RESULTS_DIR = Path(os.environ.get("MSCA_BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")
_SUITE_START = contention.snapshot()  # taken when pytest loads this conftest: about the session start


@pytest.fixture(scope="session")
def machine() -> Machine:
    """Copy bandwidth and fp32 GEMM rate of the benchmark device, measured once."""
    return measure_machine()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return
    records = [b.as_dict(include_data=False) for b in session.benchmarks if b]
    results = report.results_from_records(
        records,
        suite_wall_s=contention.snapshot().wall - _SUITE_START.wall,
        other_cpu_share=contention.other_cpu_share(_SUITE_START),
    )
    if results is None:
        return
    terminalreporter.write_sep("=", "MSCA benchmark report")
    terminalreporter.write_line(report.render(results))
    md_path, json_path = report.save(results, RESULTS_DIR)
    terminalreporter.write_line(f"saved {md_path} and {json_path}")
