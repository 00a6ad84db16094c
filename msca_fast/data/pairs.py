"""Self-supervised training samples (paper section 3.4, Fig. 3).

From one image (already resized to ``load_size`` x ``load_size``, paper: 512) a sample holds
  * two patches p and q of ``patch_size`` (paper: 256, then 384 after epoch 20) for patch
    cross-reconstruction x^_p = G(c_p, x_q, c~_q) (Eq. 9); q is the exemplar, flipped
    left-right with probability ``flip_probability``;
  * the whole image resized to ``global_size`` for global self-reconstruction
    x^ = G(c, x, c~) (Eq. 10).
Patches do not overlap when two fit side by side or one above the other; when they cannot
(384 in 512), they sit in opposite corners, which overlaps them the least.

Every random choice comes from ``numpy.random.default_rng([seed, epoch, index])``, so a sample
depends only on (seed, epoch, index): not on worker processes, call order or resuming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset


@dataclass(frozen=True)
class PairSchedule:
    """Sizes of the self-supervised sample. ``patch_sizes`` (p0, p1, ...) with
    ``patch_epochs`` (e1, ...): patch size p0 before epoch e1, p1 from e1 on, and so on."""

    load_size: int = 512
    patch_sizes: tuple[int, ...] = (256, 384)
    patch_epochs: tuple[int, ...] = (20,)
    global_size: int = 256
    flip_probability: float = 0.5

    def __post_init__(self) -> None:
        if len(self.patch_sizes) != len(self.patch_epochs) + 1:
            raise ValueError(
                f"patch_epochs: expected {len(self.patch_sizes) - 1} epochs for patch_sizes {self.patch_sizes}, "
                f"got {self.patch_epochs}"
            )
        for size in (*self.patch_sizes, self.global_size):
            if size < 16 or size > self.load_size:
                raise ValueError(f"patch/global sizes: expected 16 <= size <= load_size={self.load_size}, got {size}")
        if list(self.patch_epochs) != sorted(self.patch_epochs):
            raise ValueError(f"patch_epochs: expected increasing epochs, got {self.patch_epochs}")
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"flip_probability: expected a probability, got {self.flip_probability}")

    def patch_size(self, epoch: int) -> int:
        return self.patch_sizes[sum(epoch >= e for e in self.patch_epochs)]


def place_patches(rng: np.random.Generator, image_size: int, patch_size: int) -> tuple[tuple[int, int], ...]:
    """Top-left corners (y, x) of two patch_size squares in an image_size square, not
    overlapping when possible, else in opposite corners.

    Non-overlapping pairs are separated along a random axis: there the two coordinates are
    ``gap`` >= patch_size apart (gap uniform, then the pair's offset uniform); along the other
    axis both coordinates are uniform and independent.
    """
    room = image_size - patch_size
    if 2 * patch_size <= image_size:
        gap = int(rng.integers(patch_size, room + 1))
        first = int(rng.integers(0, room - gap + 1))
        separated = [first, first + gap]
        if rng.random() < 0.5:
            separated.reverse()
        free = [int(v) for v in rng.integers(0, room + 1, size=2)]
        if rng.random() < 0.5:
            return (separated[0], free[0]), (separated[1], free[1])
        return (free[0], separated[0]), (free[1], separated[1])
    corners = [(0, 0), (room, room)] if rng.random() < 0.5 else [(0, room), (room, 0)]
    if rng.random() < 0.5:
        corners.reverse()
    return tuple(corners)


class SelfSupervisedPairs(Dataset):
    """Wraps a data set whose items hold ``image`` (3,S,S) in [-1,1] and ``label`` (S,S) int64
    with S = schedule.load_size.

    Item: dict of
      target_image (3,P,P), target_label (P,P)       -- x_p, c_p (P = patch size this epoch)
      exemplar_image (3,P,P), exemplar_label (P,P)   -- x_q, c~_q (maybe flipped)
      global_image (3,G,G), global_label (G,G)       -- x, c (G = global_size)
      name (str)
    Call :meth:`set_epoch` before each epoch (the patch size and the randomness depend on it).
    """

    def __init__(self, images: Dataset, schedule: PairSchedule = PairSchedule(), seed: int = 0) -> None:
        self.images = images
        self.schedule = schedule
        self.seed = seed
        self.epoch = 0
        self.num_classes = getattr(images, "num_classes", None)
        self.class_names: Sequence[str] | None = getattr(images, "class_names", None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        item = self.images[index]
        image, label = item["image"], item["label"]
        size = self.schedule.load_size
        if image.shape[-2:] != (size, size) or label.shape != (size, size):
            raise ValueError(
                f"images[{index}]: expected image (3, {size}, {size}) and label ({size}, {size}) "
                f"(the schedule's load_size), got {tuple(image.shape)} and {tuple(label.shape)}"
            )
        rng = np.random.default_rng([self.seed, self.epoch, index])
        patch = self.schedule.patch_size(self.epoch)
        (py, px), (qy, qx) = place_patches(rng, size, patch)
        exemplar_image = image[:, qy : qy + patch, qx : qx + patch]
        exemplar_label = label[qy : qy + patch, qx : qx + patch]
        if rng.random() < self.schedule.flip_probability:
            exemplar_image, exemplar_label = exemplar_image.flip(-1), exemplar_label.flip(-1)
        global_size = self.schedule.global_size
        return {
            "target_image": image[:, py : py + patch, px : px + patch].contiguous(),
            "target_label": label[py : py + patch, px : px + patch].contiguous(),
            "exemplar_image": exemplar_image.contiguous(),
            "exemplar_label": exemplar_label.contiguous(),
            "global_image": resize_image(image, global_size),
            "global_label": resize_label(label, global_size),
            "name": item.get("name", str(index)),
        }


def resize_image(image: Tensor, size: int) -> Tensor:
    """(3,H,W) -> (3,size,size), bilinear with antialiasing."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def resize_label(label: Tensor, size: int) -> Tensor:
    """(H,W) int64 -> (size,size), nearest."""
    if label.shape == (size, size):
        return label
    return F.interpolate(label[None, None].float(), size=(size, size), mode="nearest")[0, 0].to(torch.int64)
