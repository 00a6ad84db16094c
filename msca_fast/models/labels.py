"""Semantic label maps: one-hot encoding, resizing to the pyramid's scales, input checks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_SIDE = 16  # the coarsest scale is 1/16 of the input and must keep at least one pixel


def scale_sizes(height: int, width: int, num_scales: int) -> list[tuple[int, int]]:
    """(H // 2**i, W // 2**i) for i = 0..num_scales-1: VGG-19's sizes after i poolings."""
    return [(height >> i, width >> i) for i in range(num_scales)]


def one_hot(label_ids: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Label ids (B,H,W) or (B,1,H,W), integers in [0, num_classes) -> one-hot (B,num_classes,H,W) float32.

    Pixels equal to ``ignore_index`` (if given) get an all-zero vector.
    """
    if label_ids.dim() == 4 and label_ids.shape[1] == 1:
        label_ids = label_ids[:, 0]
    if label_ids.dim() != 3 or label_ids.dtype.is_floating_point or label_ids.dtype == torch.bool:
        raise ValueError(
            f"label_ids: expected integer class ids of shape (B, H, W) or (B, 1, H, W), "
            f"got {label_ids.dtype} of shape {tuple(label_ids.shape)}"
        )
    ids = label_ids.long()
    valid = torch.ones_like(ids, dtype=torch.bool) if ignore_index is None else ids != ignore_index
    bad = valid & ((ids < 0) | (ids >= num_classes))
    if bool(bad.any()):
        found = sorted(set(ids[bad].unique().tolist()))[:10]
        raise ValueError(f"label_ids: class ids {found} are outside [0, {num_classes}) (num_classes={num_classes})")
    ids = torch.where(valid, ids, torch.zeros_like(ids))
    out = F.one_hot(ids, num_classes).permute(0, 3, 1, 2).float()
    return out * valid.unsqueeze(1)


def resize_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of a one-hot map (B,C,H,W) -> (B,C,*size): stays one-hot."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels, size=size, mode="nearest")


def check_image(name: str, image: Tensor, batch: int | None = None) -> None:
    """An image batch (B,3,H,W), floating point, each side at least :data:`MIN_SIDE`."""
    if not isinstance(image, Tensor):
        raise TypeError(f"{name}: expected a (B, 3, H, W) image tensor, got {type(image).__name__}")
    if image.dim() != 4 or image.shape[1] != 3 or not image.dtype.is_floating_point:
        raise ValueError(
            f"{name}: expected a floating-point RGB image batch (B, 3, H, W) in [-1, 1], "
            f"got {image.dtype} of shape {tuple(image.shape)}"
        )
    _check_common(name, image, batch)


def check_label_map(name: str, labels: Tensor, num_classes: int, batch: int | None = None) -> None:
    """A one-hot label map (B,num_classes,H,W), floating point, each side at least :data:`MIN_SIDE`."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name}: expected a one-hot label map (B, {num_classes}, H, W), got {type(labels).__name__}")
    if labels.dim() != 4 or not labels.dtype.is_floating_point:
        raise ValueError(
            f"{name}: expected a floating-point one-hot label map (B, {num_classes}, H, W), got "
            f"{labels.dtype} of shape {tuple(labels.shape)}; class-id maps can be converted with "
            f"msca_fast.models.labels.one_hot(ids, {num_classes})"
        )
    if labels.shape[1] != num_classes:
        raise ValueError(
            f"{name}: expected {num_classes} label channels (the model's num_classes), "
            f"got {labels.shape[1]} in shape {tuple(labels.shape)}"
        )
    _check_common(name, labels, batch)


def _check_common(name: str, x: Tensor, batch: int | None) -> None:
    if batch is not None and x.shape[0] != batch:
        raise ValueError(f"{name}: expected batch size {batch} (as the other inputs), got {x.shape[0]}")
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"{name}: expected height and width of at least {MIN_SIDE}, got {tuple(x.shape[-2:])}")
