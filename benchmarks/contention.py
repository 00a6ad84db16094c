"""How much CPU other processes used while the benchmarks ran (Linux only).

On a small shared machine a concurrent build or test run can slow every timing several
fold; the report states this share so that such a run is recognised, not believed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


def _busy_cpu_seconds() -> float | None:
    """Machine-wide busy CPU seconds since boot (all states but idle and iowait, steal included)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest time is already inside user time on Linux: count the first 8 fields only
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass(frozen=True)
class Snapshot:
    wall: float
    busy: float | None
    own: float


def snapshot() -> Snapshot:
    return Snapshot(time.perf_counter(), _busy_cpu_seconds(), _own_cpu_seconds())


def other_cpu_share(start: Snapshot) -> float | None:
    """Fraction of the machine's CPU time since ``start`` used by other processes
    (0 = this process had the machine to itself); None where /proc/stat is missing."""
    end = snapshot()
    if start.busy is None or end.busy is None:
        return None
    available = (end.wall - start.wall) * (os.cpu_count() or 1)
    others = (end.busy - start.busy) - (end.own - start.own)
    return max(0.0, others) / available if available > 0 else None
