"""Ctrl-C or a scheduler's stop during training: finish the iteration in progress, then stop and save.

A checkpoint taken in the middle of an iteration is not a state the run ever passes through
at a boundary: BatchNorm running statistics and spectral-norm vectors already hold part of
the next forward pass, so a run resumed from it diverges. While :class:`StopAtBoundary` is
active, the first SIGINT, SIGTERM (SLURM's and torchrun's stop before SIGKILL) or SIGUSR1
(SLURM's --signal warning) only sets a flag that the loop reads between iterations; a second
one raises KeyboardInterrupt at once (quit without saving).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def notice(signum: int) -> bytes:
    """The line printed when the first stop signal arrives."""
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return (
        f"\n{name}: stopping after this iteration to save a checkpoint (Ctrl-C again quits without saving)\n"
    ).encode()


class StopRequested(KeyboardInterrupt):
    """Training stopped at an iteration boundary (or at once, on a second signal) because of
    ``signum``; train.py exits with 128 + signum, as a shell reports a process the signal ended."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopAtBoundary:
    """Context manager: a stop signal (SIGINT, SIGTERM, SIGUSR1) requests a stop instead of ending the process;
    ``signum`` is the first one received.

    Outside the main thread (where Python cannot install signal handlers) it changes nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum = signal.SIGINT
        self._previous: dict[int, object] = {}
        self._installed = False
        self._owner = os.getpid()

    def __enter__(self) -> StopAtBoundary:
        if threading.current_thread() is threading.main_thread():
            self._owner = os.getpid()
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._owner:
            # A forked DataLoader worker inherits this handler and gets the terminal's Ctrl-C
            # too; it keeps serving batches until the training process stops and ends it.
            return
        if self.requested:
            raise StopRequested(self.signum)
        self.requested = True
        self.signum = signum
        # os.write, not print: a handler that prints can interrupt a print in progress, and
        # Python's buffered streams then raise "reentrant call".
        os.write(2, notice(signum))
