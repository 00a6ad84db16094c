"""Bit-for-bit comparison of two training states (checkpoints, or what a trainer holds), for the
tests that check a resumed or a skipped iteration leaves exactly what a straight run leaves."""

from __future__ import annotations

from typing import Any

import torch


def assert_same_state(a: Any, b: Any, where: str = "checkpoint") -> None:
    """Bit-for-bit equality of two checkpoint values (tensors: dtype, shape and every bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for key in a:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
