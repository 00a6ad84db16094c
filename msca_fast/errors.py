"""The errors a user fixes: every command reports them as one line, never as a traceback.

:func:`msca_fast.cli.run_command` reports a :class:`UserError` (and a ValueError or OSError,
the usual bad-option and bad-file errors) as ``<command>: error: <message>`` with exit code 2,
and a :class:`RunFailed` the same way with exit code 1.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user's options, files or installation lack; the message says what is
    expected and how to provide it."""


class WeightsUnavailable(UserError):
    """A pretrained network's weight file was not given, found, or downloaded; the message
    says which file to fetch from where (see :mod:`msca_fast.pretrained`)."""


class RunFailed(RuntimeError):
    """A run that started well could not go on (e.g. training diverged); the message says what
    happened and what to do, in one line."""
