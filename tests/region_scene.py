"""A 4x4 scene whose region metrics are worked out by hand, shared by the region and evaluation tests.

The definitions (msca_fast/metrics/region.py's docstring, RESULTS.md "How we measure"): the
region colour error is, per image, the mean over the classes present in the target layout of
the Euclidean distance between the mean colours of image and truth in that class, in RGB 0-255
units (images in [-1, 1], so a difference d is 127.5 * d). Global painting uses the exemplar's
mean colour over all its pixels; class copy each class's exemplar mean, the exemplar's mean
colour where the exemplar lacks the class. PSNR has a data range of 2. Every constant below is
explicit arithmetic on the colours written here.
"""

from __future__ import annotations

import math

import torch

RGB = 127.5  # one unit of [-1, 1] in 0-255 units: 255 / 2


def ids_from_rows(*rows: list[int]) -> torch.Tensor:
    """A (1, H, W) class-id map from its rows."""
    return torch.tensor([list(r) for r in rows], dtype=torch.int64)[None]


def paint(ids: torch.Tensor, colours: dict[int, tuple[float, float, float]]) -> torch.Tensor:
    """(B,H,W) ids -> (B,3,H,W) float32 image, each pixel its class's colour (0 where none is given)."""
    image = torch.zeros(ids.shape[0], 3, *ids.shape[1:])
    for class_id, colour in colours.items():
        mask = (ids == class_id).unsqueeze(1)
        image = torch.where(mask, torch.tensor(colour).view(1, 3, 1, 1), image)
    return image


# The exemplar (2x8: 4 pixels of class 0, 12 of class 1) has no class 2; its mean colour is
# (0.8 * 4 / 16, 0.4 * 12 / 16, 0) = (0.2, 0.3, 0).
EXEMPLAR_IDS = ids_from_rows([0, 0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])
EXEMPLAR = paint(EXEMPLAR_IDS, {0: (0.8, 0.0, 0.0), 1: (0.0, 0.4, 0.0)})
EXEMPLAR_MEAN = (0.2, 0.3, 0.0)
# The target (4x4): class 0 on 8 pixels, class 1 on 4, class 2 (not in the exemplar) on 4.
TARGET_IDS = ids_from_rows([0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2])
TRUTH = paint(TARGET_IDS, {0: (0.8, 0.0, 0.0), 1: (0.0, 0.4, 0.0), 2: (0.0, 0.0, -0.6)})
CLASS_COPY = paint(TARGET_IDS, {0: (0.8, 0.0, 0.0), 1: (0.0, 0.4, 0.0), 2: EXEMPLAR_MEAN})

# Distances (in [-1,1] units) of each class's mean from the truth's:
#   global painting (0.2, 0.3, 0) everywhere: class 0 |(-0.6, 0.3, 0)| = sqrt(0.45),
#     class 1 |(0.2, -0.1, 0)| = sqrt(0.05), class 2 |(0.2, 0.3, 0.6)| = 0.7;
#   class copy: classes 0 and 1 exact, class 2 painted the exemplar's mean: 0.7.
ERR_GLOBAL = RGB * (math.sqrt(0.45) + math.sqrt(0.05) + 0.7) / 3
ERR_CLASS_COPY = RGB * (0 + 0 + 0.7) / 3
# PSNR: MSE over 16 pixels x 3 channels of the squared colour differences.
PSNR_GLOBAL = 10 * math.log10(4 / ((8 * 0.45 + 4 * 0.05 + 4 * 0.49) / 48))  # MSE 0.12
PSNR_CLASS_COPY = 10 * math.log10(4 / (4 * 0.49 / 48))
