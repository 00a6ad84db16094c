"""Building blocks of the figures: tiles resized to a common size, label colouring,
coloured overlays, and tiles assembled into a padded grid. Images are in [-1,1] throughout.
"""

from __future__ import annotations

import colorsys

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor

WHITE = 1.0  # the padding and blank tiles, in [-1,1] units
PADDING = 2


def fit(image: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """(B,3,h,w) -> (B,3,*size); maps/labels use ``mode="nearest"`` to keep their cells visible."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if mode == "nearest":
        return F.interpolate(image, size=size, mode="nearest")
    return F.interpolate(image, size=size, mode=mode, align_corners=False).clamp(-1, 1)


def region_colours(count: int) -> Tensor:
    """(count, 3) in [0,1]: evenly spaced saturated hues, one per attention region."""
    return torch.tensor([colorsys.hsv_to_rgb(k / count, 0.8, 1.0) for k in range(count)])


def tint(base: Tensor, strength: Tensor, colour: Tensor) -> Tensor:
    """Base image (3,H,W) in [-1,1] as dim grey, turning into ``colour`` (3,) in [0,1] where
    strength (H,W) in [0,1] is high -> (3,H,W) in [-1,1]. The colour is shaded by the base's
    brightness so the image stays recognisable under a map that is strong everywhere."""
    brightness = ((base + 1) / 2).mean(0, keepdim=True)
    mixed = (1 - strength) * 0.4 * brightness + strength * colour.view(3, 1, 1) * (0.35 + 0.65 * brightness)
    return mixed * 2 - 1


def region_overlay(base: Tensor, regions: Tensor, colours: Tensor) -> Tensor:
    """Base (3,H,W) in [-1,1] half-covered by the colour of each pixel's region id (H,W) -> (3,H,W)."""
    painted = colours[regions].permute(2, 0, 1) * 2 - 1
    return 0.5 * base + 0.5 * painted


def blank(size: tuple[int, int]) -> Tensor:
    """A white tile (3,*size)."""
    return torch.full((3, *size), WHITE)


def tile_grid(tiles: list[Tensor], columns: int) -> Tensor:
    """Equal-size tiles (3,H,W) in [-1,1], row by row, ``columns`` a row, white padding -> (3,H',W')."""
    stacked = torch.stack([t.detach().float().cpu() for t in tiles])
    return torchvision.utils.make_grid(stacked, nrow=columns, padding=PADDING, pad_value=WHITE)
