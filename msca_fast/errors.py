"""The errors a user fixes: every command reports them as one line, never as a traceback.

:func:`msca_fast.cli.run_command` reports a :class:`UserError` (and a ValueError or OSError,
the usual bad-option and bad-file errors) as ``<command>: error: <message>`` with exit code 2.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user's options, files or installation lack; the message says what is
    expected and how to provide it."""


class WeightsUnavailable(UserError):
    """A pretrained network's weight file was not given, found, or downloaded; the message
    says which file to fetch from where (see :mod:`msca_fast.pretrained`)."""
