"""A full disk during training: one line naming the file, the free space and the size it needed.

torch's checkpoint writer does not pass the ``ENOSPC`` of a failed write on: it reports
``RuntimeError: [enforce fail at inline_container.cc:...] . unexpected pos A vs B`` (the bytes
it wrote against the bytes the file took). Such an error is recognised as a full disk when the
disk has less free space than the file needs, as is an OSError with ``ENOSPC`` or ``EDQUOT``
from any other writer (PIL for samples, Python for the loss log).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
TORCH_WRITER_FAILURES = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")


class DiskFull(OSError):
    """A write failed for lack of space; the message is the line to show (no "[Errno 28]")."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system holding ``folder`` (or its nearest existing parent)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def size_text(count: int) -> str:
    """1234567 -> "1.2 MB"."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def is_out_of_space(error: BaseException, folder: Path, needed: int) -> bool:
    if isinstance(error, OSError):
        return error.errno in OUT_OF_SPACE
    text = str(error)
    return (
        isinstance(error, RuntimeError)
        and any(s in text for s in TORCH_WRITER_FAILURES)
        and free_bytes(folder) < needed
    )


@contextlib.contextmanager
def reporting_full_disk(what: str, path: Path, needed: int, afterwards: str = "") -> Iterator[None]:
    """Turn a write of ``path`` (about ``needed`` bytes) that runs out of space into a DiskFull:
    "<what>: no space left on the device for <path>: <free> free, it needs about <needed>;
    <afterwards> free some space or choose another --output-dir"."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        if isinstance(error, DiskFull) or not is_out_of_space(error, path.parent, needed):
            raise
        raise DiskFull(
            f"{what}: no space left on the device for {path}: {size_text(free_bytes(path.parent))} free, "
            f"it needs about {size_text(needed)}; {afterwards}free some space or choose another --output-dir"
        ) from error
