"""Low-level pictures shared by training, synthesis, evaluation and the data sets: class
colours for label maps, sample grids (target label | exemplar | output | ground truth, one
row per sample), and the one writer of picture files (:func:`save_picture`). Images are in
[-1,1] unless a function says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch import Tensor


def class_palette(num_classes: int, seed: int = 7) -> Tensor:
    """A fixed colour per class, (num_classes, 3) uint8 (random but the same on every call)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(40, 256, (num_classes, 3), generator=gen, dtype=torch.uint8)


def colorize(labels: Tensor, palette: Tensor | None = None) -> Tensor:
    """One-hot (B,C,H,W) or ids (B,H,W) -> RGB (B,3,H,W) in [-1,1], on labels' device; all-zero
    (don't-care) one-hot pixels are black. palette: (num_classes, 3) uint8, by default
    :func:`class_palette` of the one-hot's channel count."""
    labels = labels.detach()
    if palette is None:
        if labels.dim() != 4:
            raise ValueError("palette: needed for label ids (B,H,W); only one-hot labels imply their class count")
        palette = class_palette(labels.shape[1])
    palette = torch.as_tensor(palette, dtype=torch.uint8)
    if labels.dim() == 4:
        known = labels.sum(1) > 0
        ids = labels.argmax(1)
    else:
        known = torch.ones_like(labels, dtype=torch.bool)
        ids = labels
    rgb = palette.to(labels.device)[ids.clamp_max(len(palette) - 1)].permute(0, 3, 1, 2).float() / 127.5 - 1
    return rgb * known.unsqueeze(1) - (~known).unsqueeze(1).float()


def sample_grid(
    target_labels: Tensor, exemplars: Tensor, outputs: Tensor | list[Tensor], truths: Tensor, palette: Tensor
) -> Tensor:
    """A (3, H', W') image in [0,1]: each row is target label | exemplar | output(s) | ground truth;
    ``outputs`` is one (B,3,H,W) batch or a list of them (one column each, e.g. several models).
    Exemplars are resized to the target size when they differ."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    size = truths.shape[-2:]
    if exemplars.shape[-2:] != size:
        exemplars = torch.nn.functional.interpolate(exemplars, size=size, mode="bilinear", align_corners=False)
    columns = [colorize(target_labels, palette), exemplars, *outputs, truths]
    tiles = torch.stack([c.detach().float().cpu() for c in columns], dim=1).flatten(0, 1)
    return torchvision.utils.make_grid((tiles.clamp(-1, 1) + 1) / 2, nrow=len(columns), padding=2, pad_value=1.0)


def magnify(image: Tensor, factor: int) -> Tensor:
    """``image`` (..., H, W) enlarged ``factor`` times by repeating pixels (nearest neighbour):
    (..., H * factor, W * factor), so that texture shows pixel by pixel."""
    return image.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def save_picture(image: Tensor, path: str | os.PathLike, value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """Writes an RGB picture (3,H,W) or (1,3,H,W) to ``path`` (format from the suffix; the folder
    is made) and returns the path. uint8 pixels are written as they are; floating-point ones are
    in ``value_range`` (clamped to it): [-1,1] for images, (0, 1) for :func:`sample_grid`'s grids."""
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"save_picture: expected an RGB image (3, H, W), got shape {tuple(image.shape)}")
    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        low, high = value_range
        image = ((image.float().clamp(low, high) - low) * (255 / (high - low))).round().to(torch.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(path)  # (H,W,3) uint8 -> RGB
    return path


def save_grid(grid: Tensor, path: str | os.PathLike) -> None:
    """Writes a (3,H,W) grid in [0,1], as :func:`sample_grid` makes, with :func:`save_picture`."""
    save_picture(grid, path, value_range=(0.0, 1.0))


def to_uint8(image: Tensor) -> Tensor:
    """An image in [-1,1] -> uint8 in [0,255], same shape."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
