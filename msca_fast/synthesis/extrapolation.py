"""Example-guided scene extrapolation (paper Fig. 8): a canvas larger than the model's
training size, synthesized patch by patch in the style of one exemplar patch.

The paper blends 256x256 patches at the 4 corners and 10 random locations of a 512x512
canvas with unspecified weights. Here the patches lie on a regular grid, ``stride`` apart
and always including the last row and column, so every pixel is covered and the result
is deterministic. Each patch is weighted by a separable Hann window sampled at pixel
centres, sin^2(pi (n + 1/2) / patch): it falls smoothly towards the patch border (no
seams), is never zero (pixels covered by one patch, at the canvas border, keep it), and
with stride = patch / 2 the overlapping windows sum to exactly 1 (sin^2 + cos^2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from msca_fast.image_checks import MIN_SIDE
from msca_fast.models.generator import Generator
from msca_fast.number_checks import check_positive_int
from msca_fast.synthesis.core import Exemplar, model_device, synthesize


def patch_starts(length: int, patch: int, stride: int) -> list[int]:
    """Offsets of the patches along one side: 0, stride, 2 stride, ..., and length - patch."""
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def hann_window(patch: int, device: torch.device | str | None = None) -> Tensor:
    """(patch, patch) blending weights in (0, 1]: the outer product of a pixel-centred Hann window."""
    n = torch.arange(patch, dtype=torch.float64, device=device)
    line = torch.sin(math.pi * (n + 0.5) / patch) ** 2
    return (line[:, None] * line[None, :]).float()


def extrapolate(
    g: Generator, canvas_labels: Tensor, exemplar: Exemplar, patch: int = 256, stride: int = 128, batch_size: int = 4
) -> Tensor:
    """The canvas layout (1,C,Hc,Wc) one-hot in the style of ``exemplar`` -> (1,3,Hc,Wc) in [-1,1].

    Every patch x patch window of the canvas (see :func:`patch_starts`) is synthesized with
    the whole exemplar as style guide, ``batch_size`` windows at a time, and the windows are
    blended with :func:`hann_window` weights. ``patch`` must fit the canvas; 0 < stride <= patch.
    """
    if canvas_labels.dim() != 4 or canvas_labels.shape[0] != 1:
        raise ValueError(f"canvas_labels: expected a one-hot label map (1, C, H, W), got {tuple(canvas_labels.shape)}")
    height, width = canvas_labels.shape[-2:]
    shorter = min(height, width)
    if not MIN_SIDE <= patch <= shorter:
        raise ValueError(f"patch: expected {MIN_SIDE} <= patch <= the canvas's shorter side {shorter}, got {patch}")
    if not 0 < stride <= patch:
        raise ValueError(f"stride: expected 0 < stride <= patch ({patch}) to cover the canvas, got {stride}")
    x2, c2 = exemplar
    if x2.shape[0] != 1 or c2.shape[0] != 1:
        raise ValueError(f"exemplar: expected one exemplar (batch size 1), got {x2.shape[0]} and {c2.shape[0]}")
    check_positive_int("batch_size", batch_size)
    device = model_device(g)
    canvas_labels = canvas_labels.to(device)
    x2, c2 = x2.to(device), c2.to(device)
    window = hann_window(patch, device)
    total = torch.zeros(1, 3, height, width, device=device)
    weight_sum = torch.zeros(1, 1, height, width, device=device)
    rows, columns = patch_starts(height, patch, stride), patch_starts(width, patch, stride)
    corners = [(top, left) for top in rows for left in columns]
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        labels = torch.cat([canvas_labels[..., top : top + patch, left : left + patch] for top, left in chunk])
        n = len(chunk)
        images = synthesize(g, labels, x2.expand(n, -1, -1, -1), c2.expand(n, -1, -1, -1))
        for image, (top, left) in zip(images, chunk):
            total[0, :, top : top + patch, left : left + patch] += window * image
            weight_sum[0, :, top : top + patch, left : left + patch] += window
    return total / weight_sum
