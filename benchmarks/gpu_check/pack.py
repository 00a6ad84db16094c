"""The GPU check's output folder: ``report.md`` and ``logs.tar.gz`` (every step's log and
result file), nothing else, rewritten after every step so that a check stopped from outside
leaves what it did.

The machine that runs the check returns at most 8 files of at most 16 MiB each from its
output folder: each file is written to a ``.partial`` name and renamed over the old one, so
the folder holds at most these two and their two partials, and a file in the archive keeps
only its last MAX_MEMBER_BYTES.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

REPORT_NAME = "report.md"
ARCHIVE_NAME = "logs.tar.gz"
MAX_MEMBER_BYTES = 4 * 2**20
ARCHIVE_ROOT = "gpu_check"  # the folder the archive unpacks to


def _replace(path: Path, write) -> Path:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)
    return path


def write_report(out_dir: Path, text: str) -> Path:
    """Writes the report atomically (a reader never sees half of it); returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return _replace(out_dir / REPORT_NAME, lambda p: p.write_text(text, encoding="utf-8"))


def _member(tar: tarfile.TarFile, path: Path, name: str) -> None:
    data = path.read_bytes()
    if len(data) > MAX_MEMBER_BYTES:
        data = b"[... cut: the first %d bytes]\n" % (len(data) - MAX_MEMBER_BYTES) + data[-MAX_MEMBER_BYTES:]
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(path.stat().st_mtime)
    tar.addfile(info, io.BytesIO(data))


def write_archive(out_dir: Path, work: Path) -> Path:
    """Archives every file under ``work`` (the steps' logs and results) as logs.tar.gz."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in work.rglob("*") if p.is_file() and not p.name.endswith(".partial"))

    def write(partial: Path) -> None:
        with tarfile.open(partial, "w:gz") as tar:
            for path in files:
                try:
                    _member(tar, path, f"{ARCHIVE_ROOT}/{path.relative_to(work).as_posix()}")
                except OSError:  # a file removed while packing: the next pack has it or not
                    continue

    return _replace(out_dir / ARCHIVE_NAME, write)
