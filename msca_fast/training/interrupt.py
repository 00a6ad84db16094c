"""Ctrl-C during training: finish the iteration in progress, then stop and save.

A checkpoint taken in the middle of an iteration is not a state the run ever passes through
at a boundary: BatchNorm running statistics and spectral-norm vectors already hold part of
the next forward pass, so a run resumed from it diverges. While :class:`StopAtBoundary` is
active, the first SIGINT only sets a flag that the loop reads between iterations; a second
one raises KeyboardInterrupt at once (quit without saving).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

NOTICE = b"\nCtrl-C: stopping after this iteration to save a checkpoint (Ctrl-C again quits without saving)\n"


class StopAtBoundary:
    """Context manager: SIGINT requests a stop instead of raising KeyboardInterrupt.

    Outside the main thread (where Python cannot install signal handlers) it changes nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: signal.Handlers | None = None
        self._installed = False
        self._owner = os.getpid()

    def __enter__(self) -> StopAtBoundary:
        if threading.current_thread() is threading.main_thread():
            self._owner = os.getpid()
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._owner:
            # A forked DataLoader worker inherits this handler and gets the terminal's Ctrl-C
            # too; it keeps serving batches until the training process stops and ends it.
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a handler that prints can interrupt a print in progress, and
        # Python's buffered streams then raise "reentrant call".
        os.write(2, NOTICE)
