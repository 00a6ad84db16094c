"""The style loss of Gatys et al. as an evaluation metric: a thin wrapper of :class:`msca_fast.losses.StyleLoss`.

StyleLoss needs pretrained VGG-19 weights; when they are missing it raises
:class:`msca_fast.errors.WeightsUnavailable` saying how to provide them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from msca_fast.image_checks import check_image_pair
from msca_fast.losses import StyleLoss


def style_distance(x: Tensor, y: Tensor, style_loss: StyleLoss) -> Tensor:
    """Per-image style loss (B,) between x and y (B,3,H,W) in [-1,1], without gradients.

    Use ``style_loss(x, y)`` directly when gradients are wanted.
    """
    if not isinstance(style_loss, StyleLoss):
        raise TypeError(f"style_loss: expected a msca_fast.losses.StyleLoss, got {type(style_loss).__name__}")
    x, y = check_image_pair("x", x, "y", y)
    with torch.no_grad():
        return style_loss(x, y)
