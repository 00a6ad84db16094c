"""The loss log, ``losses.jsonl``: one JSON object a line, each with the iteration it follows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from msca_fast.training.disk_full import reporting_full_disk


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Add ``row`` (which holds an "iteration") as the log's last line (a full disk: DiskFull)."""
    line = json.dumps(row) + "\n"
    with reporting_full_disk("loss log", path, len(line)), open(path, "a") as handle:
        handle.write(line)


def truncate_after(path: Path, iteration: int) -> int:
    """Drop the rows of iterations after ``iteration``, and any line cut short; returns how many.

    A run killed after its last checkpoint has logged iterations that the resumed run, starting
    from that checkpoint, logs again. The file is rewritten atomically.
    """
    if not path.is_file():
        return 0
    kept: list[str] = []
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the last line, when a kill -9 landed mid-write
            continue
        if isinstance(row, dict) and isinstance(row.get("iteration"), int) and row["iteration"] <= iteration:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("".join(line + "\n" for line in kept))
        os.replace(temporary, path)
    return dropped
