"""Semantic label maps: one-hot encoding and resizing to the pyramid's scales."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
