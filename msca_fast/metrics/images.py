"""Checks for the image batches every metric takes: (B, 3, H, W), floating point, in [-1, 1]."""

from __future__ import annotations

from torch import Tensor


def check_image_batch(name: str, value: object) -> Tensor:
    """``value`` if it is a floating-point image batch (B, 3, H, W) with B >= 1."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected an image batch tensor (B, 3, H, W) in [-1, 1], got {type(value).__name__}")
    if value.dim() != 4 or value.shape[1] != 3 or value.shape[0] == 0:
        raise ValueError(f"{name}: expected an image batch (B, 3, H, W) with B >= 1, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor with values in [-1, 1], got {value.dtype}")
    return value


def check_image_pair(first_name: str, first: object, second_name: str, second: object) -> tuple[Tensor, Tensor]:
    """Both batches, checked, which must have the same shape."""
    first, second = check_image_batch(first_name, first), check_image_batch(second_name, second)
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} and {second_name}: expected the same shape, "
            f"got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    return first, second
