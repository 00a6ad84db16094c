"""The error the command line reports as one line: a problem with the user's files or options."""

from __future__ import annotations


class InputError(ValueError):
    """A bad input file or option; the message names the file and says what to do."""
