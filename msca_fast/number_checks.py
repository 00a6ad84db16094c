"""Checks of count-like arguments (sizes, channels, batch sizes): one message for every caller."""

from __future__ import annotations


def check_positive_int(name: str, value: object, allow_none: bool = False) -> None:
    """Raise ``ValueError("<name>: expected a positive int, got <value>")`` unless ``value`` is
    an int >= 1 (a bool is not), or None when ``allow_none``."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        expected = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
