"""Checks of count-like arguments (sizes, channels, batch sizes): one message for every caller."""

from __future__ import annotations


def check_positive_int(name: str, value: object, allow_none: bool = False) -> None:
    """Raise ``ValueError("<name>: expected a positive int, got <value>")`` unless ``value`` is
    an int >= 1 (a bool is not), or None when ``allow_none``."""
    _check_int_at_least(name, value, 1, "a positive int", allow_none)


def check_non_negative_int(name: str, value: object, allow_none: bool = False) -> None:
    """As :func:`check_positive_int`, for an int >= 0: "expected a non-negative int"."""
    _check_int_at_least(name, value, 0, "a non-negative int", allow_none)


def _check_int_at_least(name: str, value: object, minimum: int, expected: str, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        expected = f"{expected} or None" if allow_none else expected
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
