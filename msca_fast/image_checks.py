"""Checks of image batches and one-hot label maps, the arguments of the image-level entry points
(models, losses, metrics, data).

One rule for every failure: ``TypeError`` for the wrong kind of object or dtype,
``ValueError`` for a wrong shape, size or batch, each naming the argument, what it got
and what was expected. (The op's own arguments are checked in :mod:`msca_fast.op_arguments`,
counts in :mod:`msca_fast.number_checks`.)
"""

from __future__ import annotations

from torch import Tensor

# The generator's coarsest scale is 1/16 of its input and must keep at least one pixel.
MIN_SIDE = 16


def _floating(name: str, value: object, layout: str, hint: str = "") -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a tensor of shape {layout}, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor {layout}, got {value.dtype}{hint}")
    return value


def _check_batch_and_size(
    name: str, x: Tensor, batch: int | None, size: tuple[int, int] | None, min_side: int, like: str
) -> None:
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected a batch of at least one, got shape {tuple(x.shape)}")
    if batch is not None and x.shape[0] != batch:
        raise ValueError(f"{name}: expected batch size {batch} (as {like}), got shape {tuple(x.shape)}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"{name}: expected the spatial size of {like} {tuple(size)}, got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_side:
        raise ValueError(f"{name}: expected height and width of at least {min_side}, got {tuple(x.shape[-2:])}")


def check_image_batch(
    name: str,
    value: object,
    *,
    batch: int | None = None,
    size: tuple[int, int] | None = None,
    min_side: int = 1,
    like: str = "the other inputs",
) -> Tensor:
    """``value`` if it is a floating-point RGB batch (B, 3, H, W), B >= 1 (``batch`` and
    spatial ``size`` if given, as those of ``like``) with each side at least ``min_side``."""
    image = _floating(name, value, "(B, 3, H, W)")
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"{name}: expected an RGB image batch (B, 3, H, W) in [-1, 1], got shape {tuple(image.shape)}")
    _check_batch_and_size(name, image, batch, size, min_side, like)
    return image


def check_image_pair(first_name: str, first: object, second_name: str, second: object) -> tuple[Tensor, Tensor]:
    """Two image batches, checked, of the same shape."""
    first, second = check_image_batch(first_name, first), check_image_batch(second_name, second)
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} and {second_name}: expected the same shape, "
            f"got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    return first, second


def check_label_map(
    name: str,
    value: object,
    num_classes: int,
    *,
    batch: int | None = None,
    size: tuple[int, int] | None = None,
    min_side: int = 1,
    like: str = "the other inputs",
) -> Tensor:
    """``value`` if it is a floating-point one-hot label map (B, num_classes, H, W), with the
    batch, size and minimum side rules of :func:`check_image_batch`."""
    layout = f"(B, {num_classes}, H, W)"
    hint = f"; class-id maps convert with msca_fast.models.labels.one_hot(ids, {num_classes})"
    labels = _floating(name, value, layout, hint)
    if labels.dim() != 4 or labels.shape[1] != num_classes:
        raise ValueError(
            f"{name}: expected a one-hot label map {layout} with the model's num_classes = {num_classes} "
            f"channels, got shape {tuple(labels.shape)}"
        )
    _check_batch_and_size(name, labels, batch, size, min_side, like)
    return labels
