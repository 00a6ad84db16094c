"""The checks behind every "expected a positive int" and "expected a non-negative int" message."""

from __future__ import annotations

import pytest

from msca_fast.number_checks import check_non_negative_int, check_positive_int


@pytest.mark.parametrize("value", [1, 7, 2**40])
def test_positive_ints_pass(value):
    check_positive_int("size", value)


@pytest.mark.parametrize("value", [0, -3, True, 2.0, "4", None])
def test_anything_else_is_named_with_what_was_expected(value):
    with pytest.raises(ValueError, match=rf"^size: expected a positive int, got {value!r}$"):
        check_positive_int("size", value)


def test_none_passes_only_when_allowed():
    check_positive_int("epochs", None, allow_none=True)
    with pytest.raises(ValueError, match=r"^epochs: expected a positive int or None, got 0$"):
        check_positive_int("epochs", 0, allow_none=True)


@pytest.mark.parametrize("value", [0, 1, 2**40])
def test_non_negative_ints_pass(value):
    check_non_negative_int("rows", value)


@pytest.mark.parametrize("value", [-1, False, 0.0, "0", None])
def test_a_negative_or_non_int_count_is_named_with_what_was_expected(value):
    with pytest.raises(ValueError, match=rf"^rows: expected a non-negative int, got {value!r}$"):
        check_non_negative_int("rows", value)
    check_non_negative_int("rows", None, allow_none=True)
